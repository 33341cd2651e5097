/// When and how long to wait before sending a failed request again.
///
/// Capped exponential backoff with full jitter: attempt *n* waits a uniformly random time in
/// `0 ... min(maxDelay, baseDelay · 2^(n-1))`, never less than the server's `retryAfter`.
/// Only retryable errors are retried (``BatchError/isRetryable``).
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included (1 = never retry).
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Full jitter on (the default) or off (deterministic delays, for tests).
    public var jitter: Bool
    /// A server asking for a longer wait than this is not retried (the item fails with its error).
    public var maxRetryAfter: Duration

    public init(
        maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
        jitter: Bool = true, maxRetryAfter: Duration = .seconds(600)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.jitter = jitter
        self.maxRetryAfter = maxRetryAfter
    }

    /// No retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The wait before attempt `attempt + 1`, after attempt `attempt` failed with `error`; `nil`
    /// when the request should not be retried.
    package func delay(afterAttempt attempt: Int, error: BatchError, random: () -> Double) -> Duration? {
        guard error.isRetryable, attempt < maxAttempts else { return nil }
        if let ra = error.retryAfter, ra > maxRetryAfter { return nil }
        let exponent = min(attempt - 1, 30)
        var ceiling = baseDelay * (1 << exponent)
        if ceiling > maxDelay { ceiling = maxDelay }
        let backoff = jitter ? ceiling * random() : ceiling
        return max(backoff, error.retryAfter ?? .zero)
    }
}
