public import Foundation

/// The one result of one request.
public struct BatchResult: Sendable {
    /// How the request was executed.
    public enum Route: String, Sendable, Hashable, Codable {
        /// Through a real-time endpoint.
        case realtime
        /// Through a provider's batch API (billed at the batch discount).
        case batch
        /// Not sent at all (validation failed, or the run was cancelled before it started).
        case none
        /// Answered from a ``ResponseCache`` without being sent: no attempts, no usage, no cost
        /// (see ``CachingProcessor``).
        case cache
    }

    /// The request's custom id.
    public var id: String
    public var outcome: Result<ModelResponse, BatchError>
    /// How many times the request was sent (0 when it never was).
    public var attempts: Int
    /// Tokens consumed (zero for failures that cost nothing).
    public var usage: Usage
    /// Time from first attempt to outcome.
    public var latency: Duration
    public var route: Route
    /// When the request started: its first attempt (real time), or the creation of the batch job
    /// that ran it (batch; the provider's time). `nil` when not known (older output lines, requests
    /// never sent).
    public var startedAt: Date? = nil
    /// When the outcome was known: the last answer (real time), or when BatchKit saw the batch job
    /// end (batch). ``Journal`` stamps the time of writing on results that carry none.
    public var endedAt: Date? = nil
    /// The provider batch job that ran the request (batch route only).
    public var jobID: String? = nil
    /// How many 429 (rate limited) answers the request met before its outcome; each paused every
    /// new start of the run for its retry-after.
    public var rateLimitedAttempts: Int = 0
    /// What the request cost in US dollars, when the processor had a price for its model.
    public var cost: Double? = nil
    /// The request's ``BatchRequest/metadata``, as given.
    public var metadata: [String: String] = [:]

    public init(
        id: String, outcome: Result<ModelResponse, BatchError>, attempts: Int, usage: Usage? = nil,
        latency: Duration = .zero, route: Route = .realtime, metadata: [String: String] = [:]
    ) {
        self.metadata = metadata
        self.id = id
        self.outcome = outcome
        self.attempts = attempts
        if let usage {
            self.usage = usage
        } else if case .success(let response) = outcome {
            self.usage = response.usage
        } else {
            self.usage = .zero
        }
        self.latency = latency
        self.route = route
    }

    /// The response, when the request succeeded.
    ///
    /// A pattern match, not `try? outcome.get()`: a throw is not free (a test runner may capture
    /// a backtrace for every error thrown), and this is read for every result.
    public var response: ModelResponse? {
        if case .success(let response) = outcome { return response }
        return nil
    }
    /// The error, when the request failed.
    public var error: BatchError? {
        if case .failure(let e) = outcome { return e }
        return nil
    }
    /// Whether the request succeeded.
    public var isSuccess: Bool {
        if case .success = outcome { return true }
        return false
    }
}
