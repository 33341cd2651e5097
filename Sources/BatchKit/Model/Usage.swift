import Foundation

/// Token usage of one request or of a whole run.
public struct Usage: Sendable, Hashable, Codable {
    public var inputTokens: Int
    public var outputTokens: Int
    /// Input tokens read from the provider's prompt cache (a subset of `inputTokens`): OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`, Gemini
    /// `cachedContentTokenCount`.
    public var cachedInputTokens: Int
    /// Input tokens written to the prompt cache (a subset of `inputTokens`, billed above the input
    /// rate): Anthropic `cache_creation_input_tokens`. OpenAI and Gemini bill no writes per
    /// request: 0 there.
    public var cacheWriteTokens: Int
    /// The part of ``cacheWriteTokens`` written with a one-hour lifetime (Anthropic
    /// `cache_creation.ephemeral_1h_input_tokens`, billed at 2× input rather than 1.25×).
    public var cacheWrite1hTokens: Int
    /// Reasoning tokens (a subset of `outputTokens`), where the provider reports them.
    public var reasoningTokens: Int
    /// Tokens spent through a provider's batch API (billed at the batch discount).
    public var batchInputTokens: Int
    public var batchOutputTokens: Int

    public init(
        inputTokens: Int = 0, outputTokens: Int = 0, cachedInputTokens: Int = 0, reasoningTokens: Int = 0,
        batchInputTokens: Int = 0, batchOutputTokens: Int = 0, cacheWriteTokens: Int = 0, cacheWrite1hTokens: Int = 0
    ) {
        self.cacheWriteTokens = cacheWriteTokens
        self.cacheWrite1hTokens = cacheWrite1hTokens
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedInputTokens = cachedInputTokens
        self.reasoningTokens = reasoningTokens
        self.batchInputTokens = batchInputTokens
        self.batchOutputTokens = batchOutputTokens
    }

    /// No tokens.
    public static let zero = Usage()

    /// Input plus output tokens.
    public var totalTokens: Int { inputTokens + outputTokens }

    /// This usage marked as spent through a batch API (all tokens billed at the batch discount).
    public var asBatch: Usage {
        var u = self
        u.batchInputTokens = inputTokens
        u.batchOutputTokens = outputTokens
        return u
    }

    public static func + (a: Usage, b: Usage) -> Usage {
        Usage(
            inputTokens: a.inputTokens + b.inputTokens, outputTokens: a.outputTokens + b.outputTokens,
            cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
            reasoningTokens: a.reasoningTokens + b.reasoningTokens,
            batchInputTokens: a.batchInputTokens + b.batchInputTokens,
            batchOutputTokens: a.batchOutputTokens + b.batchOutputTokens,
            cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
            cacheWrite1hTokens: a.cacheWrite1hTokens + b.cacheWrite1hTokens)
    }

    public static func += (a: inout Usage, b: Usage) { a = a + b }

    private enum CodingKeys: String, CodingKey {
        case inputTokens, outputTokens, cachedInputTokens, reasoningTokens, batchInputTokens, batchOutputTokens
        case cacheWriteTokens, cacheWrite1hTokens
    }

    /// Decodes a usage; counts missing from the encoded form (written before they existed) are 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func n(_ k: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: k) ?? 0 }
        self.init(
            inputTokens: try n(.inputTokens), outputTokens: try n(.outputTokens), cachedInputTokens: try n(.cachedInputTokens),
            reasoningTokens: try n(.reasoningTokens), batchInputTokens: try n(.batchInputTokens),
            batchOutputTokens: try n(.batchOutputTokens), cacheWriteTokens: try n(.cacheWriteTokens),
            cacheWrite1hTokens: try n(.cacheWrite1hTokens))
    }
}
