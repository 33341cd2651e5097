import Foundation

/// Token usage of one request or of a whole run.
public struct Usage: Sendable, Hashable, Codable {
    public var inputTokens: Int
    public var outputTokens: Int
    /// Input tokens served from the provider's prompt cache (a subset of `inputTokens`).
    public var cachedInputTokens: Int
    /// Reasoning tokens (a subset of `outputTokens`), where the provider reports them.
    public var reasoningTokens: Int
    /// Tokens spent through a provider's batch API (billed at the batch discount).
    public var batchInputTokens: Int
    public var batchOutputTokens: Int

    public init(
        inputTokens: Int = 0, outputTokens: Int = 0, cachedInputTokens: Int = 0, reasoningTokens: Int = 0,
        batchInputTokens: Int = 0, batchOutputTokens: Int = 0
    ) {
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
            batchOutputTokens: a.batchOutputTokens + b.batchOutputTokens)
    }

    public static func += (a: inout Usage, b: Usage) { a = a + b }
}
