import Foundation

/// One unit of work: a caller-chosen id, unique within a run, and what to ask.
///
/// ```swift
/// let requests = products.map { p in
///     BatchRequest(id: "sku-\(p.sku)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user(p.title)]))
/// }
/// ```
public struct BatchRequest: Sendable, Hashable, Identifiable {
    /// What is asked.
    public enum Body: Sendable, Hashable {
        case chat(ChatRequest)
        case embedding(EmbeddingRequest)
        /// A verbatim request for an endpoint BatchKit does not model (OpenAI paths only).
        case raw(RawRequest)
    }

    /// The custom id: echoed in the result, used to join batch output, journal and resume.
    public var id: String
    public var body: Body
    /// The caller's own labels, carried to ``BatchResult/metadata`` and to the output line
    /// (`batchkit.metadata`). Never sent to a provider: OpenAI batch lines and Anthropic's
    /// `metadata` (which takes only `user_id`) cannot hold it, so it stays on this side.
    public var metadata: [String: String]

    public init(id: String, body: Body, metadata: [String: String] = [:]) {
        self.id = id
        self.body = body
        self.metadata = metadata
    }

    /// A chat request.
    public init(id: String, chat: ChatRequest, metadata: [String: String] = [:]) {
        self.init(id: id, body: .chat(chat), metadata: metadata)
    }
    /// An embedding request.
    public init(id: String, embedding: EmbeddingRequest, metadata: [String: String] = [:]) {
        self.init(id: id, body: .embedding(embedding), metadata: metadata)
    }

    /// The model named by the request.
    public var model: String? {
        switch body {
        case .chat(let c): return c.model
        case .embedding(let e): return e.model
        case .raw(let r): return r.model
        }
    }

    /// The endpoint path of this request in a batch input line (`/v1/chat/completions`,
    /// `/v1/embeddings`, or the raw request's own).
    public var endpoint: String {
        switch body {
        case .chat: return "/v1/chat/completions"
        case .embedding: return "/v1/embeddings"
        case .raw(let r): return r.endpoint
        }
    }
}
