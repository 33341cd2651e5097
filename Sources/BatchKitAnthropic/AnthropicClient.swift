public import BatchKit
public import Foundation

/// A ``ModelClient`` for Anthropic's Messages API (`POST /v1/messages`).
///
/// ```swift
/// let client = AnthropicClient()          // key from ANTHROPIC_API_KEY, URLSessionTransport
/// let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 32))
/// ```
///
/// Chat requests only: Anthropic has no embeddings endpoint, and raw (OpenAI-path) requests have
/// no Anthropic form, so both fail ``validate(_:)`` before anything is sent. Each call carries the
/// request's custom id in `x-client-request-id`. Answers carry the `anthropic-ratelimit-*` state
/// in ``ModelResponse/rateLimit``; errors are translated by ``AnthropicWire/error(status:headers:body:now:)``.
/// The client never retries: ``ConcurrentProcessor`` is the one retry layer.
public struct AnthropicClient: ModelClient, CustomStringConvertible {
    let connection: ProviderConnection
    /// `max_tokens` for requests that do not set ``ChatRequest/maxTokens`` (Anthropic requires it).
    public let defaultMaxTokens: Int
    /// How JSON response formats are expressed.
    public let structuredOutput: AnthropicStructuredOutput

    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `ANTHROPIC_API_KEY` from the environment.
    ///   - baseURL: `https://api.anthropic.com` (paths start with `/v1/`), or the emulator's URL.
    ///   - version: the `anthropic-version` header.
    ///   - defaultMaxTokens: `max_tokens` when a request sets none.
    ///   - structuredOutput: how JSON response formats are expressed (a forced tool by default).
    ///   - extraHeaders: added to every request (`anthropic-beta`, `anthropic-workspace-id`...).
    ///   - transport: the HTTP transport (a new ``URLSessionTransport`` by default).
    ///   - timeout: per-request timeout (10 minutes, as for every provider); `nil` uses the transport's.
    public init(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.anthropic.com")!, version: String = "2023-06-01",
        defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens, structuredOutput: AnthropicStructuredOutput = .forcedTool,
        extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(), timeout: Duration? = .seconds(600)
    ) {
        self.connection = .anthropic(
            apiKey: apiKey, baseURL: baseURL, version: version, extraHeaders: extraHeaders, transport: transport, timeout: timeout)
        self.defaultMaxTokens = defaultMaxTokens
        self.structuredOutput = structuredOutput
    }

    /// The base URL requests go to.
    public var baseURL: URL { connection.baseURL }

    /// The `anthropic-version` header sent.
    public var version: String { connection.anthropicVersion }

    /// Describes the client without its key.
    public var description: String { "AnthropicClient(baseURL: \(connection.baseURL.absoluteString), version: \(connection.anthropicVersion))" }

    /// Accepts chat requests Anthropic can express; rejects embeddings and raw requests, and any
    /// field Anthropic cannot express (see ``AnthropicWire``), naming the field.
    public func validate(_ request: BatchRequest) throws(BatchError) {
        _ = try body(for: request)
    }

    /// Sends one chat request and returns the parsed Message.
    public func send(_ request: BatchRequest) async throws -> ModelResponse {
        let (body, chat) = try body(for: request)
        let (json, response) = try await connection.sendJSON(
            "POST", connection.url("/v1/messages"), json: body, headers: ProviderConnection.requestIDHeaders(request.id))
        var answer = try AnthropicWire.parseMessage(
            json, structuredOutputTool: AnthropicWire.structuredOutputTool(for: chat, structuredOutput: structuredOutput))
        answer.rateLimit = connection.rateLimit(of: response)
        return answer
    }

    func body(for request: BatchRequest) throws(BatchError) -> (JSONValue, ChatRequest) {
        switch request.body {
        case .chat(let chat):
            return (try AnthropicWire.messagesBody(chat, defaultMaxTokens: defaultMaxTokens, structuredOutput: structuredOutput), chat)
        case .embedding:
            throw .validation("Anthropic has no embeddings endpoint", field: "body")
        case .raw(let raw):
            throw .validation("Anthropic cannot send a raw request for \(raw.endpoint) (an OpenAI endpoint)", field: "body")
        }
    }
}
