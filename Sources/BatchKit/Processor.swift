public import Foundation

/// Runs many requests and reports what happens as a stream of events.
///
/// Every processor (``ConcurrentProcessor``, ``NativeBatchProcessor``, ``HybridProcessor``) takes
/// the same requests and produces the same events, so switching backends is a one-line change:
///
/// ```swift
/// for await event in processor.processAsync(requests) {
///     switch event {
///     case .item(let result): print(result.id, result.response?.text ?? "-")
///     case .progress(let p): print("\(p.completed)/\(p.total ?? 0)")
///     case .completed(let summary): print("done:", summary.succeeded, "succeeded")
///     default: break
///     }
/// }
/// ```
///
/// Guarantees: exactly one `.item` per request; `.started` first; `.completed` or `.failed`
/// last and exactly once; item events are never dropped; the stream is backpressured (while the
/// consumer is a bounded number of events behind, no new work starts); breaking out of the loop,
/// dropping the iterator or cancelling the consuming task cancels the run promptly.
public protocol Processor: Sendable {
    /// Processes `requests`, pulled lazily, and reports events. Nothing runs until the stream is
    /// iterated.
    func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream
}

extension Processor {
    /// Processes an array of requests.
    public func processAsync(_ requests: [BatchRequest]) -> BatchEventStream {
        processAsync(ArrayAsyncSequence(requests))
    }

    /// Processes `requests` and collects every result.
    ///
    /// - Returns: the results, in the order of `requests`, and the run's summary.
    /// - Throws: the run's ``BatchError`` when the run as a whole failed (individual failed
    ///   requests do not throw: they are results), or `CancellationError` when the calling task was
    ///   cancelled.
    public func process(_ requests: [BatchRequest]) async throws -> BatchResponse {
        var results: [BatchResult] = []
        results.reserveCapacity(requests.count)
        var summary: BatchSummary?
        for await event in processAsync(requests) {
            switch event {
            case .item(let r): results.append(r)
            case .completed(let s): summary = s
            case .failed(let e): throw e
            default: break
            }
        }
        try Task.checkCancellation()
        guard let summary else { throw CancellationError() }
        var position: [String: Int] = [:]
        position.reserveCapacity(requests.count)
        for (i, r) in requests.enumerated() where position[r.id] == nil { position[r.id] = i }
        results.sort { (position[$0.id] ?? .max) < (position[$1.id] ?? .max) }
        return BatchResponse(results: results, summary: summary)
    }
}

/// What ``Processor/process(_:)`` returns.
public struct BatchResponse: Sendable {
    /// One result per request, in request order.
    public var results: [BatchResult]
    public var summary: BatchSummary

    package init(results: [BatchResult], summary: BatchSummary) {
        self.results = results
        self.summary = summary
    }

    /// The result for a custom id.
    public subscript(id: String) -> BatchResult? { results.first { $0.id == id } }
}

/// Something that happened during a run.
public enum BatchEvent: Sendable {
    /// The run began. Always the first event.
    case started
    /// A native batch job was created remotely; persist its id to collect results later.
    case submitted(BatchJob)
    /// One request finished, successfully or not. Exactly one per request.
    case item(BatchResult)
    /// A request failed with a retryable error and will be sent again after `delay`.
    case retrying(id: String, attempt: Int, delay: Duration, error: BatchError)
    /// Periodic counts. May be coalesced when the consumer is slow; items never are.
    case progress(BatchProgress)
    /// The run ended; every request has had its item. Always the last event unless `.failed`.
    case completed(BatchSummary)
    /// The run as a whole could not go on (for instance it was cancelled, or a native job could not
    /// be created). Items already reported stand. Always the last event unless `.completed`.
    case failed(BatchError)
}

/// Counts during a run.
public struct BatchProgress: Sendable, Hashable {
    /// Requests finished (succeeded + failed).
    public var completed: Int { succeeded + failed }
    public var succeeded: Int
    public var failed: Int
    /// Requests started and not yet finished.
    public var inFlight: Int
    /// The number of requests, when known (an array input, or a native job).
    public var total: Int?
    public var usage: Usage
    /// Cost so far in US dollars, when a price table knows the model.
    public var cost: Double?
    /// Finished requests per second since the run started.
    public var requestsPerSecond: Double
    /// Estimated time to finish, when `total` is known.
    public var eta: Duration?
    /// Time since the run started.
    public var elapsed: Duration
    /// The remote job status (native batch), e.g. `in_progress`.
    public var remoteStatus: String?

    package init(
        succeeded: Int = 0, failed: Int = 0, inFlight: Int = 0, total: Int? = nil, usage: Usage = .zero,
        cost: Double? = nil, requestsPerSecond: Double = 0, eta: Duration? = nil, elapsed: Duration = .zero,
        remoteStatus: String? = nil
    ) {
        self.succeeded = succeeded
        self.failed = failed
        self.inFlight = inFlight
        self.total = total
        self.usage = usage
        self.cost = cost
        self.requestsPerSecond = requestsPerSecond
        self.eta = eta
        self.elapsed = elapsed
        self.remoteStatus = remoteStatus
    }
}

/// The totals of a finished run.
public struct BatchSummary: Sendable, Hashable {
    /// Requests seen (one item each).
    public var total: Int { succeeded + failed }
    public var succeeded: Int
    public var failed: Int
    public var usage: Usage
    /// Cost in US dollars, when a price table knows the model(s).
    public var cost: Double?
    public var duration: Duration
    /// Extra attempts made after retryable failures.
    public var retries: Int
    /// 429 answers received.
    public var rateLimited: Int
    /// Native batch jobs the run created or attached to.
    public var jobs: [BatchJob]

    package init(
        succeeded: Int = 0, failed: Int = 0, usage: Usage = .zero, cost: Double? = nil, duration: Duration = .zero,
        retries: Int = 0, rateLimited: Int = 0, jobs: [BatchJob] = []
    ) {
        self.succeeded = succeeded
        self.failed = failed
        self.usage = usage
        self.cost = cost
        self.duration = duration
        self.retries = retries
        self.rateLimited = rateLimited
        self.jobs = jobs
    }
}

/// A provider-side batch job.
public struct BatchJob: Sendable, Hashable, Codable {
    /// Where a job is in its life, in one vocabulary for all providers.
    public enum Status: String, Sendable, Hashable, Codable {
        case validating, inProgress, finalizing, completed, failed, expired, cancelling, cancelled

        /// Whether the job will not change any more.
        public var isTerminal: Bool {
            switch self {
            case .completed, .failed, .expired, .cancelled: return true
            default: return false
            }
        }
    }

    /// The provider's id (`batch_…`, `msgbatch_…`, `batches/…`).
    public var id: String
    /// `openai`, `anthropic`, `gemini`, or a custom backend's name.
    public var provider: String
    public var status: Status
    /// The provider's own status string, verbatim.
    public var remoteStatus: String?
    /// Requests in the job.
    public var requestCount: Int
    /// Requests finished successfully, as the provider counts them.
    public var succeededCount: Int
    /// Requests failed (errored, expired, cancelled), as the provider counts them.
    public var failedCount: Int
    public var createdAt: Date?
    public var expiresAt: Date?
    /// Provider-specific handles (input/output/error file ids, results URL...).
    public var metadata: [String: String]

    package init(
        id: String, provider: String, status: Status, remoteStatus: String? = nil, requestCount: Int,
        succeededCount: Int = 0, failedCount: Int = 0, createdAt: Date? = nil, expiresAt: Date? = nil,
        metadata: [String: String] = [:]
    ) {
        self.id = id
        self.provider = provider
        self.status = status
        self.remoteStatus = remoteStatus
        self.requestCount = requestCount
        self.succeededCount = succeededCount
        self.failedCount = failedCount
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.metadata = metadata
    }
}

/// An `AsyncSequence` over an array, for ``Processor/processAsync(_:)-([BatchRequest])``.
struct ArrayAsyncSequence<Element: Sendable>: AsyncSequence, Sendable {
    typealias Failure = Never
    let elements: [Element]

    init(_ elements: [Element]) { self.elements = elements }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[Element]>
        mutating func next() async -> Element? { base.next() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> Element? { base.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: elements.makeIterator()) }

    /// The number of elements.
    var count: Int { elements.count }
}
