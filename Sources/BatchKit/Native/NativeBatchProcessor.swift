public import Foundation
import Synchronization

/// Runs requests through a provider's native batch API (half price, results within hours), with
/// the same events as ``ConcurrentProcessor``.
///
/// ```swift
/// let processor = NativeBatchProcessor.openAI(apiKey: key)   // or .anthropic(...), .gemini(...)
/// for await event in processor.processAsync(requests) {
///     if case .submitted(let job) = event { save(job.id) }     // to attach after a restart
///     if case .item(let result) = event { ... }
/// }
/// ```
///
/// What it does, the same for every provider:
/// - validates before anything is sent: unique ids, and whatever the backend cannot express
///   (those become `validation` items; the rest goes on);
/// - splits the input into jobs within the backend's count and byte limits, and by group key (one
///   model and endpoint per OpenAI file);
/// - emits `.submitted` with each remote job as soon as it exists;
/// - polls with an interval that backs off; a failed poll is retried and never ends the wait;
///   `maxWait` ends it with an error that names the job ids (the jobs keep running: ``attach(_:expecting:)``
///   collects them later);
/// - streams each finished job's results (downloaded to a temporary file, parsed line by line) and
///   joins them on custom id; ids missing from the results, and items of expired or cancelled jobs,
///   become error items; partial results of failed, expired or cancelled jobs are kept;
/// - optionally resubmits retryable failures (expired, server errors) as new jobs;
/// - cancelling the consuming task cancels the remote jobs (unless configured otherwise).
public struct NativeBatchProcessor<C: Clock>: Processor where C.Duration == Duration {
    /// How the processor runs.
    public struct Configuration: Sendable {
        /// The first wait between polls.
        public var pollInterval: Duration
        /// The longest wait between polls.
        public var maxPollInterval: Duration
        /// Each wait is the previous one times this, up to `maxPollInterval`.
        public var pollBackoff: Double
        /// Give up waiting after this long (the jobs keep running); `nil` waits until they end.
        public var maxWait: Duration?
        /// Which failed items to send again as a new job, and how many rounds.
        public var resubmit: ResubmitPolicy
        /// Cancel the remote jobs when the run is cancelled (the default), or leave them running.
        public var cancelsRemoteJobsOnCancellation: Bool
        /// Tighter limits than the backend's (for tests, or to keep jobs small).
        public var limits: BatchLimits?
        /// Metadata attached to every job, where the provider supports it.
        public var metadata: [String: String]
        /// Prices for cost in progress and summary (batch-discounted).
        public var priceTable: PriceTable?
        /// Events that may wait for the consumer before work stops.
        public var eventBufferSize: Int
        /// Attempts to download one job's results before its items fail.
        public var downloadAttempts: Int
        /// Where job intents and jobs are recorded before and after each create call, so a rerun
        /// finds every job that may exist (see ``JobLedger``); `nil` records nothing. Package-only:
        /// set it with ``withLedger(_:)``.
        package var ledger: (any JobLedger)?
        /// Create calls per chunk. A call that may have reached the server is only repeated after
        /// the provider's jobs were listed and none matched.
        public var createAttempts: Int
        /// At `maxWait`, report the requests of jobs still running as `timeout` failures (the
        /// default), or leave them unreported, to be collected later by ``attach(_:expecting:)``
        /// (what `batchkit run --mode native --deadline` does).
        public var reportsUnfinishedAtMaxWait: Bool
        /// A spending limit in dollars for each run; `nil` for none. Each job's estimated cost (its
        /// requests' prompt estimates + `maxTokens`, at batch prices from ``priceTable`` or
        /// ``PriceTable/defaults``) is reserved before it is created; a job whose estimate exceeds
        /// what remains is not created, and its requests fail with
        /// ``BatchError/Code/budgetExceeded``. A request of a model without a price fails
        /// validation. Reservations are kept (estimates are upper bounds when requests set
        /// `maxTokens`); resubmissions reuse the reservation of their first job.
        public var maxCost: Double?
        /// Where chunks are spooled before they are uploaded (each run makes a directory of its
        /// own inside, removed when the run ends; each chunk's file is removed once its job's
        /// results are in); `nil`: the temporary directory.
        public var spoolDirectory: URL?
        /// Writes to spool files (tests make it fail like a full disk); `nil` writes to the file.
        package var spoolWrite: (@Sendable (FileHandle, [UInt8]) throws -> Void)?

        /// The spool storage chunks go to.
        package var spool: SpoolStorage {
            var s = spoolDirectory.map { SpoolStorage(directory: $0) } ?? .temporary
            if let spoolWrite { s.write = spoolWrite }
            return s
        }

        public init(
            pollInterval: Duration = .seconds(15), maxPollInterval: Duration = .seconds(300), pollBackoff: Double = 1.5,
            maxWait: Duration? = nil, resubmit: ResubmitPolicy = .none, cancelsRemoteJobsOnCancellation: Bool = true,
            limits: BatchLimits? = nil, metadata: [String: String] = [:], priceTable: PriceTable? = nil,
            eventBufferSize: Int = 256, downloadAttempts: Int = 5, createAttempts: Int = 4,
            reportsUnfinishedAtMaxWait: Bool = true, maxCost: Double? = nil, spoolDirectory: URL? = nil
        ) {
            self.pollInterval = pollInterval
            self.maxPollInterval = maxPollInterval
            self.pollBackoff = max(1, pollBackoff)
            self.maxWait = maxWait
            self.resubmit = resubmit
            self.cancelsRemoteJobsOnCancellation = cancelsRemoteJobsOnCancellation
            self.limits = limits
            self.metadata = metadata
            self.priceTable = priceTable
            self.eventBufferSize = max(1, eventBufferSize)
            self.downloadAttempts = max(1, downloadAttempts)
            self.ledger = nil
            self.createAttempts = max(1, createAttempts)
            self.reportsUnfinishedAtMaxWait = reportsUnfinishedAtMaxWait
            self.maxCost = maxCost
            self.spoolDirectory = spoolDirectory
            self.spoolWrite = nil
        }

        /// This configuration, recording job intents and jobs in `ledger`.
        package func withLedger(_ ledger: (any JobLedger)?) -> Configuration {
            var copy = self
            copy.ledger = ledger
            return copy
        }
    }

    package let backend: any BatchBackend
    package let configuration: Configuration
    let clock: C

    package init(backend: any BatchBackend, configuration: Configuration = Configuration(), clock: C) {
        self.backend = backend
        self.configuration = configuration
        self.clock = clock
    }

    /// The limits jobs are split under.
    package var limits: BatchLimits {
        let b = backend.limits
        guard let l = configuration.limits else { return b }
        return BatchLimits(maxRequests: min(b.maxRequests, l.maxRequests), maxBytes: min(b.maxBytes, l.maxBytes))
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let run = NativeRun(backend: backend, configuration: configuration, limits: limits, clock: clock)
        let total = (requests as? ArrayAsyncSequence<BatchRequest>)?.count
        return BatchEventStream(bufferSize: configuration.eventBufferSize) { sink in
            await run.process(requests, total: total, sink: sink)
        }
    }

    /// Resumes after a restart: polls jobs created earlier, downloads what finished, and reports
    /// their results, without submitting anything.
    ///
    /// - Parameters:
    ///   - jobIDs: the remote ids from earlier `.submitted` events.
    ///   - expecting: the custom ids the jobs were given, when known, so ids missing from the
    ///     results are reported as items too.
    public func attach(_ jobIDs: [String], expecting: [String: [String]] = [:]) -> BatchEventStream {
        var packed: [String: PackedIDs] = [:]
        for (job, ids) in expecting {
            var unique = Set<String>()
            packed[job] = PackedIDs(ids.filter { unique.insert($0).inserted })
        }
        return attach(jobIDs, expectingPacked: packed)
    }

    /// ``attach(_:expecting:)`` with each job's ids packed (and unique): `batchkit run` reads them
    /// from its job file's ids files, a job at a time, without a `String` array per job.
    package func attach(_ jobIDs: [String], expectingPacked: [String: PackedIDs]) -> BatchEventStream {
        let run = NativeRun(backend: backend, configuration: configuration, limits: limits, clock: clock)
        return BatchEventStream(bufferSize: configuration.eventBufferSize) { sink in
            await run.attach(jobIDs, expecting: expectingPacked, sink: sink)
        }
    }

    // MARK: - Job management (submit now, collect later)

    /// Validates, splits and submits `requests` without waiting for the jobs.
    ///
    /// - Returns: the created jobs, and the requests that failed validation (never sent).
    public func submit(_ requests: [BatchRequest]) async throws -> (jobs: [BatchJob], rejected: [BatchResult]) {
        try await submit(ArrayAsyncSequence(requests))
    }

    /// Validates, splits and submits `requests` without waiting for the jobs, reading them one
    /// at a time: each chunk is spooled to a file and uploaded from it, so a file of a million
    /// requests is never in memory.
    ///
    /// ```swift
    /// let (jobs, rejected) = try await processor.submit(requestsFromFile)   // any AsyncSequence
    /// ```
    ///
    /// - Returns: the created jobs, and the requests that failed validation (never sent) or whose
    ///   job could not be created.
    /// - Throws: when no job could be created and a chunk failed, or when the spool could not be
    ///   written (a full disk) before any job was created.
    public func submit(
        _ requests: some AsyncSequence<BatchRequest, Never> & Sendable
    ) async throws -> (jobs: [BatchJob], rejected: [BatchResult]) {
        let report = await submitReporting(requests)
        if let failure = report.failedChunks.first, report.jobs.isEmpty { throw failure.error }
        if let spoolFailure = report.spoolFailure, report.jobs.isEmpty { throw spoolFailure }
        return (report.jobs.map(\.job), report.rejected.map(\.result) + report.failedChunks.flatMap { chunk in
            chunk.ids.map { BatchResult(id: $0, outcome: .failure(chunk.error), attempts: 0, route: .none) }
        })
    }

    /// What ``submitReporting(_:admit:)`` did with each request.
    struct SubmissionReport: Sendable {
        /// Created jobs, with the custom ids each holds and the sum of their admitted estimates.
        var jobs: [(job: BatchJob, ids: PackedIDs, estimate: Double)] = []
        /// Requests refused before sending; `duplicate` when the id repeats an earlier request.
        var rejected: [(result: BatchResult, duplicate: Bool)] = []
        /// Chunks whose job could not be created, with the sum of their admitted estimates.
        var failedChunks: [(ids: [String], error: BatchError, estimate: Double)] = []
        /// The spool could not be written: submission stopped there (requests after it were not read).
        var spoolFailure: BatchError?
    }

    /// Submits everything, chunk by chunk (each spooled to a file, removed once its job exists),
    /// never losing the id of a job that was created.
    ///
    /// - Parameters:
    ///   - until: no create attempt starts after this instant (the hybrid deadline): a chunk
    ///     whose job is not created by then, or that comes later, fails without one.
    ///   - admit: called with each request that passed validation, before it is spooled:
    ///     whether it goes into a job; an error it throws stops submission like a spool failure.
    func submitReporting(
        _ requests: some AsyncSequence<BatchRequest, Never> & Sendable, until: C.Instant? = nil,
        admit: (BatchRequest) throws -> BatchAdmission = { _ in .submit(estimate: 0) }
    ) async -> SubmissionReport {
        let run = NativeRun(backend: backend, configuration: configuration, limits: limits, clock: clock, submitsUntil: until)
        let storage = configuration.spool
        let directory = storage.runDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var report = SubmissionReport()
        var seen = NativeRun<C>.SeenIDs()
        let chunker = SpoolChunker(limits: limits, storage: storage, directory: directory)
        func send(_ chunk: SpooledChunk) async {
            defer { chunk.remove() }
            if run.submissionTimeIsOver {
                let error = BatchError(.timeout, "the deadline passed before the job was created")
                report.failedChunks.append((Array(chunk.ids), NativeRun<C>.submissionError(error), chunk.estimate))
                return
            }
            do {
                let job = try await run.create(chunk, excluding: Set(report.jobs.map(\.job.id)))
                report.jobs.append((job, chunk.ids, chunk.estimate))
            } catch {
                report.failedChunks.append((Array(chunk.ids), NativeRun<C>.submissionError(error), chunk.estimate))
            }
        }
        do {
            for await r in requests {
                let duplicate = seen.contains(r.id)
                switch run.encode(r, seen: &seen) {
                case .failure(let e):
                    report.rejected.append((BatchResult(id: r.id, outcome: .failure(e), attempts: 0, route: .none, metadata: r.metadata), duplicate))
                case .success(let item):
                    switch try admit(r) {
                    case .submit(let estimate):
                        if let full = try chunker.add(item, estimate: estimate) { await send(full) }
                    case .hold:
                        break
                    case .reject(let e):
                        report.rejected.append((BatchResult(id: r.id, outcome: .failure(e), attempts: 0, route: .none, metadata: r.metadata), false))
                    }
                }
            }
            for chunk in try chunker.drain() { await send(chunk) }
        } catch {
            chunker.discardAll()
            report.spoolFailure = (error as? BatchError) ?? SpoolStorage.writeError(error, file: directory)
        }
        return report
    }

    /// The job's current state.
    public func status(_ jobID: String) async throws -> BatchJob { try await backend.status(of: jobID) }

    /// The results of an ended job (or the partial results of one that failed, expired or was
    /// cancelled).
    public func results(_ jobID: String) async throws -> [BatchResult] {
        let job = try await backend.status(of: jobID)
        var out: [BatchResult] = []
        try await backend.results(of: job) { out.append($0) }
        return out
    }

    /// Asks the provider to cancel a job.
    @discardableResult
    public func cancel(_ jobID: String) async throws -> BatchJob { try await backend.cancel(jobID: jobID) }

    /// Jobs known to the provider, newest first.
    public func list(limit: Int = 20) async throws -> [BatchJob] { try await backend.list(limit: limit) }

    /// Deletes a job (and its files, where the provider keeps them), where the provider supports it.
    public func delete(_ jobID: String) async throws { try await backend.delete(jobID: jobID) }
}

extension NativeBatchProcessor where C == ContinuousClock {
    /// A processor on the continuous clock.
    package init(backend: any BatchBackend, configuration: Configuration = Configuration()) {
        self.init(backend: backend, configuration: configuration, clock: ContinuousClock())
    }
}

/// What ``NativeBatchProcessor``'s `submitReporting(_:admit:)` does with a request that passed
/// validation.
enum BatchAdmission: Sendable {
    /// Into a job; `estimate` is added to its chunk's (see `SubmissionReport`).
    case submit(estimate: Double)
    /// Not submitted and not reported: the caller runs it some other way.
    case hold
    /// Refused with this error (reported in `SubmissionReport.rejected`).
    case reject(BatchError)
}

/// Which failed items of a native batch are sent again as a new job.
public enum ResubmitPolicy: Sendable, Hashable {
    /// Report failures as they are.
    case none
    /// Resubmit items that expired or failed with a retryable error, up to `maxRounds` times.
    case failedAndExpired(maxRounds: Int)

    var rounds: Int {
        switch self {
        case .none: return 0
        case .failedAndExpired(let n): return max(0, n)
        }
    }
}
