import Foundation

/// Why generation stopped, in one vocabulary for all providers.
public struct FinishReason: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// Natural end or a stop sequence (OpenAI `stop`, Anthropic `end_turn`/`stop_sequence`, Gemini `STOP`).
    public static let stop: FinishReason = "stop"
    /// The output-token limit was reached (OpenAI `length`, Anthropic `max_tokens`, Gemini `MAX_TOKENS`).
    public static let length: FinishReason = "length"
    /// The model called a tool.
    public static let toolCalls: FinishReason = "tool_calls"
    /// Output withheld by a safety filter (OpenAI `content_filter`, Anthropic `refusal`, Gemini `SAFETY`...).
    public static let contentFilter: FinishReason = "content_filter"
}

/// A successful answer: parsed fields for convenience, the provider's raw JSON for everything else.
public struct ModelResponse: Sendable, Hashable {
    /// The generated text (chat), `nil` for embeddings.
    public var text: String?
    /// One vector per input (embeddings), `nil` for chat.
    public var embeddings: [[Float]]?
    public var finishReason: FinishReason?
    /// The tool calls of the answer, in order (empty when the model called none). Parsed by each
    /// provider's decoder: OpenAI `message.tool_calls`, Anthropic `tool_use` blocks, Gemini
    /// `functionCall` parts; ``finishReason`` is then ``FinishReason/toolCalls``.
    public var toolCalls: [ToolCall]
    public var usage: Usage
    /// The model that answered, as the provider names it.
    public var model: String?
    /// The provider's response body, verbatim.
    public var raw: JSONValue
    /// Rate-limit state the server reported with this answer, if any. `ConcurrentProcessor` uses
    /// it to tighten its buckets before it would earn a 429.
    public var rateLimit: RateLimitInfo? { get { rateLimitBox.value } set { rateLimitBox = Boxed(newValue) } }
    /// Boxed so that values stay small to copy through the event pipeline.
    var rateLimitBox = Boxed<RateLimitInfo>(nil)

    public init(
        text: String? = nil, embeddings: [[Float]]? = nil, finishReason: FinishReason? = nil,
        usage: Usage = .zero, model: String? = nil, raw: JSONValue = .null, rateLimit: RateLimitInfo? = nil,
        toolCalls: [ToolCall] = []
    ) {
        self.text = text
        self.toolCalls = toolCalls
        self.embeddings = embeddings
        self.finishReason = finishReason
        self.usage = usage
        self.model = model
        self.raw = raw
        self.rateLimitBox = Boxed(rateLimit)
    }
}

/// An optional value kept in one shared, immutable box, so that values holding a large, rarely
/// set field (``RateLimitInfo`` on responses and errors) stay small to copy. Equality and hashing
/// are the value's.
struct Boxed<Value: Sendable & Hashable>: Sendable, Hashable {
    private final class Box: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }
    private let box: Box?

    init(_ value: Value?) { box = value.map(Box.init) }

    var value: Value? { box?.value }

    static func == (a: Boxed, b: Boxed) -> Bool { a.value == b.value }
    func hash(into h: inout Hasher) { h.combine(value) }
}
