import Foundation

/// Rate-limit state a server reports in its response headers, normalised across providers.
///
/// Each provider module reads its own header names into this type through a
/// ``RateLimitHeaderParser`` (for example `RateLimitHeaderParser.openAI` in BatchKitOpenAI).
/// `ConcurrentProcessor` reads it from `ModelResponse.rateLimit` and `BatchError.rateLimit` to
/// tighten its buckets and to learn limits it was not told.
public struct RateLimitInfo: Sendable, Hashable {
    /// One budget (requests or tokens) as the server sees it.
    public struct Budget: Sendable, Hashable {
        /// The budget per window (per minute for all three providers).
        public var limit: Int?
        /// What is left of it now.
        public var remaining: Int?
        /// Time until the budget is fully refilled.
        public var resetAfter: Duration?

        package init(limit: Int? = nil, remaining: Int? = nil, resetAfter: Duration? = nil) {
            self.limit = limit
            self.remaining = remaining
            self.resetAfter = resetAfter
        }

        package var isEmpty: Bool { limit == nil && remaining == nil && resetAfter == nil }
    }

    public var requests: Budget
    public var tokens: Budget
    public var inputTokens: Budget
    public var outputTokens: Budget

    package init(requests: Budget = .init(), tokens: Budget = .init(), inputTokens: Budget = .init(), outputTokens: Budget = .init()) {
        self.requests = requests
        self.tokens = tokens
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    package var isEmpty: Bool { requests.isEmpty && tokens.isEmpty && inputTokens.isEmpty && outputTokens.isEmpty }
}
