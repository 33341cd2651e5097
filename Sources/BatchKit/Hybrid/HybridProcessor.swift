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
/// still without a result runs through the real-time processor. Requests whose job the provider
/// ended failed, expired or cancelled (whatever error their items carry), or whose batch item
/// failed with a retryable error, run in real time too, once (without waiting for the deadline). Each request still yields exactly one item, and no request is sent
/// to the real-time path after it finished in the batch.
public struct HybridProcessor<C: Clock>: Processor where C.Duration == Duration {
    package let batch: NativeBatchProcessor<C>
    package let realtime: ConcurrentProcessor<C>
    /// How long the batch may take before the rest runs in real time.
    package var deadline: Duration
    /// How long to wait, after cancelling at the deadline, for results that finished remotely.
    package var cancellationGrace: Duration
    /// Prices for the summary's cost (batch items are billed at the batch discount).
    package var priceTable: PriceTable?
    let clock: C

    public init(
        batch: NativeBatchProcessor<C>, realtime: ConcurrentProcessor<C>, deadline: Duration,
        cancellationGrace: Duration = .seconds(600), priceTable: PriceTable? = nil, clock: C
    ) {
        self.batch = batch
        self.realtime = realtime
        self.deadline = deadline
        self.cancellationGrace = cancellationGrace
        self.priceTable = priceTable
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
        // The originals are kept: what misses the deadline is sent again as real-time requests.
        var collected: [BatchRequest] = []
        for await r in requests { collected.append(r) }
        let all = collected
        let book = HybridBook(requests: all, priceTable: priceTable)

        // Submission is not raced against the deadline: a job created while its request is cut
        // off would run unseen and be paid twice.
        let report = await batch.submitReporting(ArrayAsyncSequence(all))
        for job in report.jobs {
            book.addJob(job.job)
            if !(await sink.emit(.submitted(job.job))) { return .failed(.cancelled()) }
        }
        for (result, duplicate) in report.rejected {
            if await !book.reportRejected(result, duplicate: duplicate, sink: sink) { return .failed(.cancelled()) }
        }
        // Chunks that could not be submitted simply stay pending: they run in real time.

        // Phase 1: wait for the jobs until they end or the deadline passes.
        let batch = self.batch
        let clock = self.clock
        let deadline = self.deadline
        let expecting = Dictionary(report.jobs.map { ($0.job.id, $0.ids) }, uniquingKeysWith: { a, _ in a })
        let jobIDs = report.jobs.map(\.job.id)
        book.addMembership(expecting)
        // Reads job states through the book, so failures of a job that ended failed, expired or
        // cancelled by the provider go to real time.
        let observed = NativeBatchProcessor(
            backend: JobEndObserver(base: batch.backend, book: book), configuration: batch.configuration, clock: clock)
        let hitDeadline: Bool = jobIDs.isEmpty ? false : await withTaskGroup(of: DeadlineRace.self) { group in
            group.addTask {
                for await event in observed.attach(jobIDs, expecting: expecting) {
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
            var graceConfig = batch.configuration
            graceConfig.maxWait = cancellationGrace
            graceConfig.resubmit = .none
            let collector = NativeBatchProcessor(backend: batch.backend, configuration: graceConfig, clock: clock)
            for await event in collector.attach(book.jobIDs) {
                if case .item(let r) = event, r.isSuccess {
                    if await !book.report(r, sink: sink) { return .failed(.cancelled()) }
                }
            }
        }

        // Phase 3: everything without a result runs in real time.
        let rest = book.takePending()
        if !rest.isEmpty {
            for await event in realtime.processAsync(rest) {
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
        return .completed(book.summary(duration: start.duration(to: clock.now)))
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
    /// A hybrid processor on the continuous clock.
    public init(
        batch: NativeBatchProcessor<C>, realtime: ConcurrentProcessor<C>, deadline: Duration,
        cancellationGrace: Duration = .seconds(600), priceTable: PriceTable? = nil
    ) {
        self.init(batch: batch, realtime: realtime, deadline: deadline, cancellationGrace: cancellationGrace, priceTable: priceTable, clock: ContinuousClock())
    }
}

/// Which requests still need a result, and the totals.
final class HybridBook: Sendable {
    private struct State {
        var pending: [String: BatchRequest] = [:]
        var order: [String] = []
        var finished = Set<String>()
        var totals = RunTotals()
        var jobs: [BatchJob] = []
        /// The job each submitted id went to.
        var jobOfID: [String: String] = [:]
        /// Jobs seen in a terminal state other than completed.
        var endedBadly = Set<String>()
    }

    private let state: Mutex<State>
    private let priceTable: PriceTable?

    init(requests: [BatchRequest], priceTable: PriceTable?) {
        var s = State()
        for r in requests where s.pending[r.id] == nil {
            s.pending[r.id] = r
            s.order.append(r.id)
        }
        state = Mutex(s)
        self.priceTable = priceTable
    }

    var jobIDs: [String] { state.withLock { $0.jobs.map(\.id) } }

    func addJob(_ job: BatchJob) { state.withLock { $0.jobs.append(job) } }

    /// Records which job holds each id.
    func addMembership(_ idsByJob: [String: [String]]) {
        state.withLock { s in
            for (job, ids) in idsByJob { for id in ids { s.jobOfID[id] = job } }
        }
    }

    /// Records a job's state as the native run reads it.
    func noteStatus(_ job: BatchJob) {
        guard job.status == .failed || job.status == .expired || job.status == .cancelled else { return }
        _ = state.withLock { $0.endedBadly.insert(job.id) }
    }

    /// Whether the job holding `id` ended failed, expired or cancelled.
    func jobEndedBadly(holding id: String) -> Bool {
        state.withLock { s in s.jobOfID[id].map { s.endedBadly.contains($0) } ?? false }
    }

    /// A request refused before sending. A repeated id is its own item (the first request with
    /// that id is still pending); any other refusal settles the id.
    func reportRejected(_ r: BatchResult, duplicate: Bool, sink: EventSink) async -> Bool {
        if !duplicate { return await report(r, sink: sink) }
        state.withLock { $0.totals.add(r, prices: priceTable) }
        return await sink.emit(.item(r))
    }
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Handles an event of the native run. Returns `false` when the consumer went away.
    func forwardBatchEvent(_ event: BatchEvent, sink: EventSink) async -> Bool {
        switch event {
        case .submitted:
            return true
        case .item(let r):
            // Failures worth another try (expired, cancelled, retryable, or any failure of a job
            // the provider ended failed, expired or cancelled) go to real time instead, once.
            let retryLater =
                !r.isSuccess
                && (r.error?.isRetryable == true || r.error?.code == .expired || r.error?.code == .cancelled
                    || jobEndedBadly(holding: r.id))
            if retryLater { return true }
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
    func report(_ r: BatchResult, sink: EventSink) async -> Bool {
        let metadata = state.withLock { s -> [String: String]? in
            guard let request = s.pending.removeValue(forKey: r.id), s.finished.insert(r.id).inserted else { return nil }
            s.totals.add(r, model: request.model, prices: priceTable)
            return request.metadata
        }
        guard let metadata else { return true }
        var r = r
        r.metadata = metadata
        return await sink.emit(.item(r))
    }

    /// The requests still without a result, in input order; they are now the real-time path's.
    func takePending() -> [BatchRequest] {
        state.withLock { s in s.order.compactMap { s.pending[$0] } }
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
