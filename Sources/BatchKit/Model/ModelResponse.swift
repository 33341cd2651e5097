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
    public var usage: Usage
    /// The model that answered, as the provider names it.
    public var model: String?
    /// The provider's response body, verbatim.
    public var raw: JSONValue
    /// Rate-limit state the server reported with this answer, if any. `ConcurrentProcessor` uses
    /// it to tighten its buckets before it would earn a 429.
    public var rateLimit: RateLimitInfo? {
        get { rateLimitBox?.value }
        set { rateLimitBox = newValue.map(RateLimitBox.init) }
    }
    /// Boxed so that results stay small to copy through the event pipeline.
    var rateLimitBox: RateLimitBox?

    public init(
        text: String? = nil, embeddings: [[Float]]? = nil, finishReason: FinishReason? = nil,
        usage: Usage = .zero, model: String? = nil, raw: JSONValue = .null, rateLimit: RateLimitInfo? = nil
    ) {
        self.text = text
        self.embeddings = embeddings
        self.finishReason = finishReason
        self.usage = usage
        self.model = model
        self.raw = raw
        self.rateLimitBox = rateLimit.map(RateLimitBox.init)
    }
}

/// Immutable storage for a ``RateLimitInfo`` shared by copies of a response or error.
final class RateLimitBox: Sendable, Hashable {
    let value: RateLimitInfo
    init(_ value: RateLimitInfo) { self.value = value }
    static func == (a: RateLimitBox, b: RateLimitBox) -> Bool { a.value == b.value }
    func hash(into h: inout Hasher) { h.combine(value) }
}
