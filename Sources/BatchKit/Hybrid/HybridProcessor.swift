import Foundation
import Synchronization

/// Batch first, real time for what misses the deadline: the discount of a native batch with a
/// bound on how long the slowest request can take.
///
/// ```swift
/// let hybrid = HybridProcessor(
///     batch: NativeBatchProcessor(backend: OpenAIBatchBackend(apiKey: key)),
///     realtime: ConcurrentProcessor(client: OpenAIClient(apiKey: key), configuration: .init(maxConcurrency: 32)),
///     deadline: .seconds(2 * 3600))
/// ```
///
/// The requests go to the native batch. Items that finish there are reported as they arrive. At
/// the deadline the remote jobs are cancelled; every result that finished remotely before the
/// cancellation took effect is collected (for at most `cancellationGrace`), and every request
/// still without a result runs through the real-time processor — except the requests of a
/// cancelled job whose state could not be read (5 reads over 15 s, backing off): it may have run
/// any of them, and they are paid, so they fail instead (attach to the job later to collect them). Requests whose job the provider
/// ended failed, expired or cancelled (whatever error their items carry), or whose batch item
/// failed with a retryable error, run in real time too, once (without waiting for the deadline).
/// Each request still yields exactly one item, and no request is sent to the real-time path after
/// it finished in the batch.
///
/// With `maxCost`, spending over both paths (the batch at its discount, real time at full price)
/// stays within the limit: see ``init(batch:realtime:deadline:cancellationGrace:priceTable:maxCost:clock:)``.
public struct HybridProcessor<C: Clock>: Processor where C.Duration == Duration {
    package let batch: NativeBatchProcessor<C>
    package let realtime: ConcurrentProcessor<C>
    /// How long the batch may take before the rest runs in real time.
    package var deadline: Duration
    /// How long to wait, after cancelling at the deadline, for results that finished remotely.
    package var cancellationGrace: Duration
    /// Prices for the summary's cost (batch items are billed at the batch discount).
    package var priceTable: PriceTable?
    /// The spending limit over both paths, in dollars; `nil` for none.
    package var maxCost: Double?
    let clock: C
    /// The hash the run's ``PendingIDs`` keys are cut from (tests inject colliding ones).
    var idHash: @Sendable (String) -> UInt64 = FingerprintSet.fingerprint

    /// A hybrid processor.
    ///
    /// - Parameters:
    ///   - batch: the native processor the requests go to first.
    ///   - realtime: the real-time processor for what misses the deadline or fails in the batch.
    ///   - deadline: how long the batch may take before the rest runs in real time.
    ///   - cancellationGrace: how long to wait, after cancelling at the deadline, for results that
    ///     finished remotely.
    ///   - priceTable: prices for the summary's cost and for `maxCost` (which falls back on the
    ///     batch processor's table, then ``PriceTable/defaults``).
    ///   - maxCost: spend at most this many dollars over both paths; `nil` (the default) for no
    ///     limit beyond the real-time processor's own. Before submission each request reserves
    ///     its estimated batch cost (prompt estimate + `maxTokens`, at batch prices); a request
    ///     whose estimate does not fit is not submitted and waits for the real-time phase. Batch
    ///     results count at what they cost. When the batch phase ends, the reservations of jobs
    ///     whose results were read in full are released (a job that may still bill, e.g. one whose
    ///     cancellation had not taken effect within `cancellationGrace`, keeps its reservation),
    ///     and the real-time phase runs with `maxCost` = the smaller of its own and what remains:
    ///     a request that could take spending over it is not sent and fails with
    ///     ``BatchError/Code/budgetExceeded`` (a rerun with a larger budget picks it up). A request
    ///     of a model without a price fails validation, never sent. With a budget the batch
    ///     processor does not resubmit failed items (they run in real time, under the budget),
    ///     and its own `maxCost` does not apply.
    ///   - clock: the clock of the deadline (tests pass a `ManualClock`).
    public init(
        batch: NativeBatchProcessor<C>, realtime: ConcurrentProcessor<C>, deadline: Duration,
        cancellationGrace: Duration = .seconds(600), priceTable: PriceTable? = nil, maxCost: Double? = nil, clock: C
    ) {
        self.batch = batch
        self.realtime = realtime
        self.deadline = deadline
        self.cancellationGrace = cancellationGrace
        self.priceTable = priceTable
        self.maxCost = maxCost
        self.clock = clock
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let me = self
        return BatchEventStream(bufferSize: batch.configuration.eventBufferSize) { sink in
            await me.run(requests, sink: sink)
        }
    }

    func run(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable, sink: EventSink) async -> BatchRunOutcome {
        let start = clock.now
        // The accepted requests are spooled as they are read (never held in memory): what misses
        // the deadline is read back from the spool and sent as real-time requests.
        let storage = batch.configuration.spool
        let directory = storage.runDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let budget = makeBudget()
        let book = HybridBook(priceTable: priceTable, budget: budget, hash: idHash)
        let requestSpool: RequestSpoolWriter
        do {
            requestSpool = try RequestSpoolWriter(storage: storage, directory: directory)
        } catch {
            return .failed(error)
        }

        // Submission is not raced against the deadline: a job created while its request is cut
        // off would run unseen and be paid twice. But no create attempt starts after it (a
        // stalled upload retried for the deadline's sake would hold the real-time phase back);
        // such chunks run in real time. With a budget, a request whose batch estimate does not
        // fit is not submitted: it is spooled and waits for the real-time phase.
        let report = await batch.submitReporting(requests, until: start.advanced(by: deadline)) { request in
            try Self.admit(request, budget: budget, spool: requestSpool, book: book)
        }
        var spoolFailure = report.spoolFailure
        do {
            try requestSpool.finish()
        } catch {
            spoolFailure = spoolFailure ?? error
        }
        // Submission's own set of ids is gone: the pending ids are built now, from the ids file.
        book.loadPending(fromIDsFile: requestSpool.idsFile)
        for job in report.jobs {
            budget?.jobCreated(job.job.id, estimate: job.estimate)
            book.addJob(job.job)
            if !(await sink.emit(.submitted(job.job))) { return .failed(.cancelled()) }
        }
        for (result, duplicate) in report.rejected {
            if await !book.reportRejected(result, duplicate: duplicate, sink: sink) { return .failed(.cancelled()) }
        }
        // Chunks that could not be submitted simply stay pending: they run in real time.
        for chunk in report.failedChunks { budget?.chunkFailed(estimate: chunk.estimate, error: chunk.error) }

        // Phase 1: wait for the jobs until they end or the deadline passes.
        let batch = self.batch
        let clock = self.clock
        let deadline = self.deadline
        let expecting = Dictionary(report.jobs.map { ($0.job.id, $0.ids) }, uniquingKeysWith: { a, _ in a })
        let jobIDs = report.jobs.map(\.job.id)
        // Reads job states through the book, so failures of a job that ended failed, expired or
        // cancelled by the provider go to real time.
        // With a budget, failed items are not resubmitted as new jobs (nothing reserved them): they
        // run in real time, within what remains.
        var observedConfiguration = batch.configuration
        if budget != nil { observedConfiguration.resubmit = .none }
        let observed = NativeBatchProcessor(
            backend: JobEndObserver(base: batch.backend, book: book, budget: budget), configuration: observedConfiguration, clock: clock)
        let hitDeadline: Bool = jobIDs.isEmpty ? false : await withTaskGroup(of: DeadlineRace.self) { group in
            group.addTask {
                for await event in observed.attach(jobIDs, expectingPacked: expecting) {
                    if await !book.forwardBatchEvent(event, sink: sink) { return .consumerGone }
                }
                return .batchEnded
            }
            group.addTask {
                do {
                    try await clock.sleep(until: start.advanced(by: deadline), tolerance: nil)
                    return .deadlinePassed
                } catch {
                    return .deadlineCancelled
                }
            }
            // Whichever ends first decides; the other is cancelled. Ending the batch consumer
            // cancels the attached run, which cancels the remote jobs.
            let first = await group.next()
            group.cancelAll()
            while await group.next() != nil {}
            return first == .deadlinePassed
        }
        if sink.isCancelled || Task.isCancelled { return .failed(.cancelled("the run was cancelled")) }

        // Phase 2: after a deadline, collect what finished remotely before the cancellation.
        if hitDeadline, !book.jobIDs.isEmpty, book.pendingCount > 0 {
            for id in book.jobIDs { _ = try? await batch.cancel(id) }
            // A job whose every item already reached the book (and, with a budget, whose download
            // the budget saw end) has nothing more to give: it is not read again. The others are
            // read with their expected ids, so only their own ids come back.
            let unread = book.jobIDs.filter { id in
                guard let ids = expecting[id] else { return true }
                return !(book.receivedAllItems(ofJob: id, size: ids.count) && budget?.wasDownloaded(id) != false)
            }
            var graceConfig = batch.configuration
            graceConfig.maxWait = cancellationGrace
            graceConfig.resubmit = .none
            let collector = NativeBatchProcessor(
                backend: JobEndObserver(base: batch.backend, book: book, budget: budget), configuration: graceConfig, clock: clock)
            // Each job is read on its own, all at once: one that cannot be read does not keep the
            // others' results from being read.
            let unreadable = await withTaskGroup(of: (String, BatchError)?.self) { group in
                for id in unread {
                    group.addTask {
                        var ids: [String: PackedIDs] = [:]
                        if let own = expecting[id] { ids[id] = own }
                        for await event in collector.attach([id], expectingPacked: ids) {
                            switch event {
                            case .item(let r) where r.isSuccess:
                                if await !book.report(r, sink: sink) { return nil }
                            case .failed(let e) where e.code == .notFound:
                                return (id, e)
                            default:
                                break
                            }
                        }
                        return nil
                    }
                }
                var found: [(String, BatchError)] = []
                for await job in group { if let job { found.append(job) } }
                return found
            }
            if sink.isCancelled || Task.isCancelled { return .failed(.cancelled("the run was cancelled")) }
            // A cancelled job whose state could not be read (after backing off) may have run any
            // of its requests, and they are paid: none of them is sent in real time. Each fails,
            // saying so; the job can be read later (`attach`; `batchkit run` reads it on its rerun).
            for (job, error) in unreadable.sorted(by: { $0.0 < $1.0 }) {
                guard let ids = expecting[job] else { continue }
                let e = BatchError(
                    .network,
                    "job \(job) was cancelled at the deadline but could not be read (\(error.message)); it may have run this "
                        + "request, so it was not sent in real time (paying twice): attach to the job later to collect its result",
                    httpStatus: error.httpStatus, isRetryable: false)
                for id in ids where !book.isFinished(id) {
                    var r = BatchResult(id: id, outcome: .failure(e), attempts: 1, route: .batch)
                    r.jobID = job
                    if await !book.report(r, sink: sink) { return .failed(.cancelled()) }
                }
            }
        }

        // Phase 3: everything without a result runs in real time, read back from the spool; with
        // a budget, within what the batch left of it.
        let realtime = self.realtime(within: budget)
        if book.pendingCount > 0 {
            for await event in realtime.processAsync(PendingSpooledRequests(file: requestSpool.file, book: book)) {
                switch event {
                case .item(let r):
                    if await !book.report(r, sink: sink) { return .failed(.cancelled()) }
                case .retrying, .progress:
                    if !(await sink.emit(event)) { return .failed(.cancelled()) }
                case .completed(let s):
                    book.addRetries(s.retries, rateLimited: s.rateLimited)
                case .failed(let e):
                    // A tripped failure breaker ends the hybrid run too: the rest would fail alike.
                    if e.code == .cancelled || e.code == .systematicFailure { return .failed(e) }
                default:
                    break
                }
            }
        }
        if sink.isCancelled || Task.isCancelled { return .failed(.cancelled("the run was cancelled")) }
        // A spool that could not be written stopped submission: what was read ran; the run says why.
        if let spoolFailure { return .failed(spoolFailure) }
        return .completed(book.summary(duration: start.duration(to: clock.now)))
    }
}

extension HybridProcessor {
    /// The run's budget, with `maxCost`.
    func makeBudget() -> HybridBudget? {
        guard let maxCost else { return nil }
        return HybridBudget(limit: maxCost, prices: priceTable ?? batch.configuration.priceTable ?? .defaults)
    }

    /// The real-time processor of the last phase. It checks no ids for duplicates, whatever its
    /// `duplicateIDCheck`: it reads only accepted requests from the spool, whose ids submission
    /// already found unique, so it keeps nothing per id (and no fingerprint collision can refuse
    /// one). With a budget, its own `maxCost` is lowered to what the batch phase left of it (which
    /// ends that phase), and it is priced like the budget unless it has prices of its own.
    func realtime(within budget: HybridBudget?) -> ConcurrentProcessor<C> {
        var configuration = realtime.configuration
        configuration.duplicateIDCheck = .never
        if let budget {
            let remaining = budget.endBatchPhase()
            configuration.maxCost = min(configuration.maxCost ?? .infinity, remaining)
            if configuration.priceTable == nil { configuration.priceTable = budget.prices }
        }
        return ConcurrentProcessor(client: realtime.client, configuration: configuration, clock: realtime.clock)
    }

    /// Takes a valid request into the run: spooled and booked (it waits for a result), and into a
    /// job if the budget (if any) has room for its batch estimate; refused if its model has no
    /// price while a budget needs one.
    static func admit(
        _ request: BatchRequest, budget: HybridBudget?, spool: RequestSpoolWriter, book: HybridBook
    ) throws(BatchError) -> BatchAdmission {
        let admission = budget?.admit(request) ?? .submit(estimate: 0)
        if case .reject = admission { return admission }
        try spool.append(request)
        book.accept(request)
        return admission
    }
}

/// What a child task of the hybrid run's first phase reports when it ends.
private enum DeadlineRace: Sendable, Hashable {
    /// Every job ended (or the batch run stopped) before the deadline.
    case batchEnded
    /// The consumer went away while batch events were forwarded.
    case consumerGone
    /// The deadline passed with jobs still running.
    case deadlinePassed
    /// The deadline wait was cancelled (the batch side ended first, or the run was cancelled).
    case deadlineCancelled
}

extension HybridProcessor where C == ContinuousClock {
    /// A hybrid processor on the continuous clock (see
    /// ``init(batch:realtime:deadline:cancellationGrace:priceTable:maxCost:clock:)``).
    public init(
        batch: NativeBatchProcessor<C>, realtime: ConcurrentProcessor<C>, deadline: Duration,
        cancellationGrace: Duration = .seconds(600), priceTable: PriceTable? = nil, maxCost: Double? = nil
    ) {
        self.init(
            batch: batch, realtime: realtime, deadline: deadline, cancellationGrace: cancellationGrace, priceTable: priceTable,
            maxCost: maxCost, clock: ContinuousClock())
    }
}

/// Which requests still need a result, and the totals. Compact: the ids still waiting for a
/// result (``PendingIDs``: about 2 bytes an id, exact, shrinking as results come), and the
/// metadata of the requests that carry some; the requests themselves are in the run's spool.
///
/// Every request is accepted (``accept(_:)``, during submission) and the pending ids are loaded
/// (``loadPending(fromIDsFile:)``, once submission has ended and its own set of ids is gone)
/// before the first result is reported, and every result reported as accepted names an accepted
/// id: the batch results come through ``NativeBatchProcessor``'s attach with each job's expected
/// ids (it drops ids not in the job), the real-time ones from the spool. Ids are unique among the
/// accepted requests (submission refuses a repeat), and a refused request is never accepted.
final class HybridBook: Sendable {
    /// How the book knows which accepted ids have their result.
    private enum Tracking {
        /// The ids without a result: ``PendingIDs`` (about 2 bytes an id).
        case pending(PendingIDs)
        /// The ids file could not be read back whole: the ids reported, exactly, as strings
        /// (more memory, nothing lost).
        case reported(Set<String>)

        func isFinished(_ id: String) -> Bool {
            switch self {
            case .pending(let p): return !p.contains(id)
            case .reported(let r): return r.contains(id)
            }
        }

        /// Marks `id` reported; whether it was not before.
        mutating func finish(_ id: String) -> Bool {
            switch self {
            case .pending(var p):
                self = .reported([])  // (lets `p` be uniquely referenced while it changes)
                let first = p.remove(id)
                self = .pending(p)
                return first
            case .reported(var r):
                self = .pending(PendingIDs())
                let first = r.insert(id).inserted
                self = .reported(r)
                return first
            }
        }
    }

    private struct State {
        /// Which accepted ids have their result (set up by ``HybridBook/loadPending(fromIDsFile:)``).
        var tracking: Tracking
        /// Items of each job that reached the book (reported, or held back for real time).
        var itemsReceived: [String: Int] = [:]
        /// Requests accepted for the batch (spooled), and how many of them were reported.
        var accepted = 0
        var settled = 0
        /// ``BatchRequest/metadata`` of the accepted requests that have any, by fingerprint.
        var metadata: [UInt64: [String: String]] = [:]
        var totals = RunTotals()
        var jobs: [BatchJob] = []
        /// Jobs seen in a terminal state other than completed.
        var endedBadly = Set<String>()
    }

    private let state: Mutex<State>
    private let priceTable: PriceTable?
    /// The run's budget: told what each batch result cost.
    private let budget: HybridBudget?
    /// The hash ``PendingIDs`` keys are cut from.
    private let hash: @Sendable (String) -> UInt64

    /// - Parameter hash: the hash ``PendingIDs`` keys are cut from (tests inject colliding ones).
    init(
        priceTable: PriceTable?, budget: HybridBudget? = nil,
        hash: @escaping @Sendable (String) -> UInt64 = FingerprintSet.fingerprint
    ) {
        state = Mutex(State(tracking: .reported([])))
        self.hash = hash
        self.priceTable = priceTable
        self.budget = budget
    }

    static func fingerprint(_ id: String) -> UInt64 { FingerprintSet.fingerprint(id) }

    /// Records a request accepted for the batch (it waits for a result).
    func accept(_ request: BatchRequest) {
        state.withLock { s in
            s.accepted += 1
            if !request.metadata.isEmpty { s.metadata[Self.fingerprint(request.id)] = request.metadata }
        }
    }

    /// Builds the pending ids from the accepted ids in `file` (``RequestSpoolWriter``'s ids
    /// file), once every request was accepted and before any result is reported. A file that
    /// cannot be read back whole, or holds another number of ids than were accepted, leaves the
    /// book recording the ids reported as strings instead.
    func loadPending(fromIDsFile file: URL) {
        var pending = PendingIDs(hash: hash)
        let read = try? RequestSpoolWriter.forEachID(in: file) { pending.insert($0) }
        state.withLock { s in
            s.tracking = read == s.accepted ? .pending(pending) : .reported([])
        }
    }

    /// Whether the accepted request `id` has been reported.
    func isFinished(_ id: String) -> Bool { state.withLock { $0.tracking.isFinished(id) } }

    /// Whether every item of job `id` (of `size` requests) reached the book in the batch phase:
    /// each was reported, or held back for real time, so reading the job again adds nothing.
    func receivedAllItems(ofJob id: String, size: Int) -> Bool {
        state.withLock { ($0.itemsReceived[id] ?? 0) >= size }
    }

    var jobIDs: [String] { state.withLock { $0.jobs.map(\.id) } }

    func addJob(_ job: BatchJob) { state.withLock { $0.jobs.append(job) } }

    /// Records a job's state as the native run reads it.
    func noteStatus(_ job: BatchJob) {
        guard job.status == .failed || job.status == .expired || job.status == .cancelled else { return }
        _ = state.withLock { $0.endedBadly.insert(job.id) }
    }

    /// Whether the job that reported `r` ended failed, expired or cancelled.
    func jobEndedBadly(reporting r: BatchResult) -> Bool {
        guard let job = r.jobID else { return false }
        return state.withLock { $0.endedBadly.contains(job) }
    }

    /// A request refused before sending. A repeated id is its own item (the first request with
    /// that id is still pending); any other refusal settles the id.
    func reportRejected(_ r: BatchResult, duplicate: Bool, sink: EventSink) async -> Bool {
        if !duplicate { return await report(r, sink: sink, accepted: false) }
        state.withLock { $0.totals.add(r, prices: priceTable) }
        return await sink.emit(.item(r))
    }
    /// Accepted requests without a result yet.
    var pendingCount: Int { state.withLock { $0.accepted - $0.settled } }

    /// Handles an event of the native run. Returns `false` when the consumer went away.
    func forwardBatchEvent(_ event: BatchEvent, sink: EventSink) async -> Bool {
        switch event {
        case .submitted:
            return true
        case .item(let r):
            if let job = r.jobID { state.withLock { $0.itemsReceived[job, default: 0] += 1 } }
            // Failures worth another try (expired, cancelled, retryable, or any failure of a job
            // the provider ended failed, expired or cancelled) go to real time instead, once.
            let retryLater =
                !r.isSuccess
                && (r.error?.isRetryable == true || r.error?.code == .expired || r.error?.code == .cancelled
                    || jobEndedBadly(reporting: r))
            if retryLater {
                // Not reported; if it was billed all the same, it counts.
                budget?.settle(r)
                return true
            }
            return await report(r, sink: sink)
        case .progress:
            sink.offer(event)
            return true
        case .completed(let s):
            state.withLock { st in
                for job in s.jobs where !st.jobs.contains(where: { $0.id == job.id }) { st.jobs.append(job) }
                for job in s.jobs { if let i = st.jobs.firstIndex(where: { $0.id == job.id }) { st.jobs[i] = job } }
            }
            return true
        case .failed, .started, .retrying:
            return true
        }
    }

    /// Reports a result once per id; results for ids already reported are dropped. Returns
    /// `false` when the consumer went away.
    ///
    /// - Parameter accepted: whether the id is one of the accepted requests; a refused one (never
    ///   accepted, and refused once) is reported as it is.
    func report(_ r: BatchResult, sink: EventSink, accepted: Bool = true) async -> Bool {
        let first = state.withLock { s -> (Bool, [String: String]?) in
            if accepted {
                guard s.tracking.finish(r.id) else { return (false, nil) }
                s.settled += 1
            }
            s.totals.add(r, prices: priceTable)
            return (true, s.metadata.isEmpty ? nil : s.metadata.removeValue(forKey: Self.fingerprint(r.id)))
        }
        guard first.0 else { return true }
        if r.route == .batch { budget?.settle(r) }
        var r = r
        if let metadata = first.1, r.metadata.isEmpty { r.metadata = metadata }
        return await sink.emit(.item(r))
    }

    func addRetries(_ retries: Int, rateLimited: Int) {
        state.withLock { s in
            s.totals.retries += retries
            s.totals.rateLimited += rateLimited
        }
    }

    func summary(duration: Duration) -> BatchSummary {
        state.withLock { $0.totals.summary(duration: duration, priced: priceTable != nil, jobs: $0.jobs) }
    }
}
