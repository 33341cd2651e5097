import Foundation
import Synchronization

/// One native-batch run: submission, polling, collection, resubmission.
final class NativeRun<C: Clock>: Sendable where C.Duration == Duration {
    let backend: any BatchBackend
    let configuration: NativeBatchProcessor<C>.Configuration
    let limits: BatchLimits
    let clock: C

    init(backend: any BatchBackend, configuration: NativeBatchProcessor<C>.Configuration, limits: BatchLimits, clock: C) {
        self.backend = backend
        self.configuration = configuration
        self.limits = limits
        self.clock = clock
    }

    /// A job being waited for, with the items it holds that have not been reported.
    struct Tracked {
        var job: BatchJob
        /// Items not yet reported, by id (kept encoded so they can be resubmitted as they are).
        var pending: [String: EncodedBatchItem]
        /// Whether the ids of the job are known (false when attaching without expectations).
        var knowsIDs: Bool
        var round: Int
    }

    /// Totals for progress and summary.
    struct Books {
        var total: Int?
        var totals = RunTotals()
        var jobs: [String: BatchJob] = [:]
        var jobOrder: [String] = []

        mutating func record(_ job: BatchJob) {
            if jobs[job.id] == nil { jobOrder.append(job.id) }
            jobs[job.id] = job
        }
    }

    func encode(_ request: BatchRequest, seen: inout Set<String>) -> Result<EncodedBatchItem, BatchError> {
        if request.id.isEmpty { return .failure(.validation("the request id is empty", field: "id")) }
        if !seen.insert(request.id).inserted {
            return .failure(.validation("duplicate id \"\(request.id)\": ids must be unique within a run", field: "id"))
        }
        do {
            var item = try backend.encode(request)
            item.metadata = request.metadata
            if item.data.count + 1 > limits.maxBytes {
                return .failure(.validation("the request is \(item.data.count) bytes, over the \(limits.maxBytes)-byte job limit", field: "body"))
            }
            return .success(item)
        } catch {
            return .failure(error)
        }
    }

    // MARK: - process

    func process(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable, total: Int?, sink: EventSink) async -> BatchRunOutcome {
        let start = clock.now
        var books = Books(total: total)
        var tracked: [Tracked] = []
        var seen = Set<String>()
        var chunker = Chunker(limits: limits)
        var iterator = requests.makeAsyncIterator()
        let budget = configuration.maxCost.map { CostBudget(limit: $0) }
        /// The estimated batch cost of each item in a chunk not yet submitted (with a budget).
        var estimates: [String: Double] = [:]
        /// Submits `chunk` if its estimate fits what remains of the budget; otherwise fails its items.
        func submitWithinBudget(_ chunk: [EncodedBatchItem]) async -> Bool {
            if let budget {
                let estimate = chunk.reduce(0) { $0 + (estimates.removeValue(forKey: $1.id) ?? 0) }
                if !budget.reserve(estimate) {
                    let e = budget.exceededError(estimate: estimate)
                    for item in chunk {
                        books.totals.failed += 1
                        if !(await sink.emit(.item(BatchResult(id: item.id, outcome: .failure(e), attempts: 0, route: .none)))) { return false }
                    }
                    return true
                }
            }
            return await submit(chunk, round: 0, tracked: &tracked, books: &books, sink: sink)
        }

        // 1. Validate, split, submit.
        while let request = await iterator.next(isolation: nil) {
            if Task.isCancelled { return await cancelled(tracked, books: books) }
            var encoded = encode(request, seen: &seen)
            if budget != nil, case .success(let item) = encoded {
                let prices = configuration.priceTable ?? .defaults
                if let model = request.model, let price = prices.price(for: model) {
                    let usage = Usage(
                        inputTokens: TokenEstimator.inputTokens(request),
                        outputTokens: TokenEstimator.outputTokens(request, default: CostEstimate.defaultOutputTokens))
                    estimates[item.id] = price.cost(of: usage.asBatch)
                } else {
                    encoded = .failure(.validation(
                        "no price for model \(request.model ?? "(none)"): a budget (maxCost) needs the price of every model; add it to the price table",
                        field: "model"))
                }
            }
            switch encoded {
            case .failure(let e):
                books.totals.failed += 1
                if !(await sink.emit(.item(BatchResult(id: request.id, outcome: .failure(e), attempts: 0, route: .none, metadata: request.metadata)))) {
                    return await cancelled(tracked, books: books)
                }
            case .success(let item):
                if let full = chunker.add(item), !(await submitWithinBudget(full)) {
                    return await cancelled(tracked, books: books)
                }
            }
        }
        for chunk in chunker.drain() {
            if !(await submitWithinBudget(chunk)) { return await cancelled(tracked, books: books) }
        }
        seen = []
        // 2. Wait and collect.
        return await collect(&tracked, books: &books, start: start, sink: sink)
    }

    /// Creates one job. If it cannot be created, its items fail and the run goes on.
    ///
    /// - Returns: `false` when the consumer went away.
    func submit(_ items: [EncodedBatchItem], round: Int, tracked: inout [Tracked], books: inout Books, sink: EventSink) async -> Bool {
        do {
            let job = try await create(items, excluding: Set(books.jobs.keys))
            books.record(job)
            tracked.append(
                Tracked(job: job, pending: Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }), knowsIDs: true, round: round))
            return await sink.emit(.submitted(job))
        } catch {
            let e = Self.submissionError(error)
            for item in items {
                books.totals.failed += 1
                if !(await sink.emit(.item(BatchResult(id: item.id, outcome: .failure(e), attempts: 0, route: .none, metadata: item.metadata)))) {
                    return false
                }
            }
            return true
        }
    }

    // MARK: - create

    /// Creates the job for one chunk, never blindly twice: the intent is recorded in the ledger
    /// first; a create call that failed in a way that may have reached the server (timeout, reset,
    /// cut answer, 5xx) is followed by a look at the provider's recent jobs, and the match is
    /// adopted. A new create call is made only when no job matches; when the jobs cannot be
    /// listed, the chunk fails (its intent stays open in the ledger for a rerun to resolve).
    ///
    /// - Parameter excluding: jobs this run already holds (never adopted for this chunk).
    func create(_ items: [EncodedBatchItem], excluding: Set<String>) async throws(BatchError) -> BatchJob {
        let intent = JobIntent(provider: backend.provider, items: items)
        let ledger = configuration.ledger
        if let ledger {
            do { try ledger.recordIntent(intent, ids: items.map(\.id)) } catch {
                throw BatchError(.io, "cannot record the intent to create a batch job: \(BatchError(wrapping: error).message)", isRetryable: false)
            }
        }
        // The input file of the latest attempt: a job that reads it is this chunk's.
        let uploadedFile = Mutex<String?>(nil)
        var attempt = 0
        while true {
            attempt += 1
            let failure: BatchError
            do {
                let job = try await backend.submit(items, metadata: configuration.metadata, intent: intent) { fileID in
                    try ledger?.recordUpload(fileID, for: intent)
                    uploadedFile.withLock { $0 = fileID }
                }
                try await record(job, for: intent)
                return job
            } catch {
                failure = BatchError(wrapping: error)
            }
            if failure.code == .io || failure.code == .cancelled || Task.isCancelled { throw failure }
            if failure.mayHaveReachedServer {
                // The job may exist: look before creating another one.
                let found: BatchJob?
                var sought = intent
                sought.fileID = uploadedFile.withLock { $0 }
                do {
                    found = try await lookUp(sought, excluding: excluding.union(ledger?.recordedJobIDs ?? []))
                } catch {
                    var e = failure
                    e.message = "the batch job may have been created (\(failure.message)), and the provider's jobs could not be listed to tell (\(error.message)); a rerun looks again"
                    throw e
                }
                if let found {
                    try await record(found, for: intent)
                    return found
                }
            }
            guard failure.isRetryable, attempt < configuration.createAttempts else { throw failure }
            try? await clock.sleep(until: clock.now.advanced(by: .seconds(1 << min(attempt, 6))), tolerance: nil)
        }
    }

    /// The provider's job for `intent`, if any; a failed listing is tried a few times.
    func lookUp(_ intent: JobIntent, excluding: Set<String>) async throws(BatchError) -> BatchJob? {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await backend.findJob(for: intent, excluding: excluding)
            } catch {
                let e = BatchError(wrapping: error)
                guard attempt < configuration.createAttempts, e.code != .cancelled, !Task.isCancelled else { throw e }
                try? await clock.sleep(until: clock.now.advanced(by: .seconds(1 << min(attempt, 6))), tolerance: nil)
            }
        }
    }

    /// Records a created or adopted job. A job that cannot be recorded is cancelled (a rerun
    /// could not find it otherwise) and the chunk fails.
    func record(_ job: BatchJob, for intent: JobIntent) async throws(BatchError) {
        guard let ledger = configuration.ledger else { return }
        do {
            try ledger.recordJob(job, for: intent)
        } catch {
            _ = try? await backend.cancel(jobID: job.id)
            throw BatchError(.io, "cannot record batch job \(job.id) (cancelled it): \(BatchError(wrapping: error).message)", isRetryable: false)
        }
    }

    // MARK: - attach

    func attach(_ jobIDs: [String], expecting: [String: [String]], sink: EventSink) async -> BatchRunOutcome {
        let start = clock.now
        var books = Books(total: nil)
        var tracked: [Tracked] = []
        for id in jobIDs {
            var job: BatchJob?
            var lastError: (any Error)?
            for _ in 0..<configuration.downloadAttempts {
                do {
                    job = try await backend.status(of: id)
                    break
                } catch {
                    if Task.isCancelled { return .failed(.cancelled()) }
                    lastError = error
                }
            }
            guard let job else {
                return .failed(BatchError(.notFound, "could not read job \(id): \(BatchError(wrapping: lastError ?? CancellationError()).message)"))
            }
            books.record(job)
            let ids = expecting[id] ?? []
            tracked.append(Tracked(job: job, pending: Dictionary(ids.map { ($0, EncodedBatchItem(id: $0, data: Data())) }, uniquingKeysWith: { a, _ in a }), knowsIDs: !ids.isEmpty, round: configuration.resubmit.rounds))
        }
        books.total = expecting.isEmpty ? nil : expecting.values.reduce(0) { $0 + $1.count }
        return await collect(&tracked, books: &books, start: start, sink: sink)
    }

    // MARK: - collect

    func collect(_ tracked: inout [Tracked], books: inout Books, start: C.Instant, sink: EventSink) async -> BatchRunOutcome {
        var interval = configuration.pollInterval
        while !tracked.isEmpty {
            if Task.isCancelled { return await cancelled(tracked, books: books) }
            var index = 0
            while index < tracked.count {
                var t = tracked[index]
                if !t.job.status.isTerminal {
                    // A failed poll is retried at the next round; it never ends the wait.
                    if let job = try? await backend.status(of: t.job.id) {
                        t.job = job
                        books.record(job)
                    }
                }
                if t.job.status.isTerminal {
                    var retry: [EncodedBatchItem] = []
                    if let end = await download(&t, books: &books, retry: &retry, sink: sink) { return end }
                    tracked.remove(at: index)
                    if !retry.isEmpty {
                        books.totals.retries += retry.count
                        var chunker = Chunker(limits: limits)
                        var chunks: [[EncodedBatchItem]] = []
                        for item in retry { if let full = chunker.add(item) { chunks.append(full) } }
                        chunks += chunker.drain()
                        for chunk in chunks {
                            if !(await submit(chunk, round: t.round + 1, tracked: &tracked, books: &books, sink: sink)) {
                                return await cancelled(tracked, books: books)
                            }
                        }
                    }
                    continue
                }
                tracked[index] = t
                index += 1
            }
            if tracked.isEmpty { break }
            sink.offer(.progress(progress(tracked, books: books, start: start)))
            if let maxWait = configuration.maxWait, start.duration(to: clock.now) >= maxWait {
                return await gaveUp(tracked, books: &books, sink: sink, maxWait: maxWait)
            }
            var sleep = interval
            if let maxWait = configuration.maxWait {
                sleep = min(sleep, maxWait - start.duration(to: clock.now))
            }
            do {
                try await clock.sleep(until: clock.now.advanced(by: max(sleep, .zero)), tolerance: nil)
            } catch {
                return await cancelled(tracked, books: books)
            }
            interval = min(configuration.maxPollInterval, interval * configuration.pollBackoff)
        }
        return .completed(summary(books, start: start))
    }

    /// Streams a terminal job's results, then reports what is missing. Returns an outcome only
    /// when the consumer went away.
    func download(_ t: inout Tracked, books: inout Books, retry: inout [EncodedBatchItem], sink: EventSink) async -> BatchRunOutcome? {
        var consumerGone = false
        var lastError: (any Error)?
        var lines = BatchResultsSummary()
        let mayResubmit = t.round < configuration.resubmit.rounds
        // What a failed attempt already reported stays reported: its ids leave the pending set,
        // so the next attempt skips them instead of reporting them twice.
        var local = t
        var localBooks = books
        var localRetry = retry
        // The job was just seen ending; its items are placed from its creation to now.
        let ended = Date()
        let job = t.job
        let prices = configuration.priceTable
        func stamped(_ r: BatchResult) -> BatchResult {
            var r = r
            r.jobID = job.id
            r.endedAt = ended
            r.startedAt = job.createdAt.map { min($0, ended) }
            if r.cost == nil, let prices, r.usage != .zero { r.cost = prices.cost(of: r) }
            return r
        }
        for attempt in 1...configuration.downloadAttempts {
            do {
                lines = try await backend.downloadResults(of: local.job) { downloaded in
                    var result = stamped(downloaded)
                    if local.knowsIDs {
                        guard let item = local.pending.removeValue(forKey: result.id) else { return }  // not ours, or reported already
                        result.metadata = item.metadata
                        if mayResubmit, !result.isSuccess, result.error?.isRetryable == true {
                            localRetry.append(item)
                            return
                        }
                    } else {
                        guard local.pending.updateValue(EncodedBatchItem(id: result.id, data: Data()), forKey: result.id) == nil else { return }
                    }
                    self.count(result, into: &localBooks)
                    if !(await sink.emit(.item(result))) {
                        consumerGone = true
                        throw CancellationError()
                    }
                }
                lastError = nil
                break
            } catch {
                if consumerGone || Task.isCancelled {
                    t = local
                    books = localBooks
                    return .failed(.cancelled())
                }
                lastError = error
                if attempt < configuration.downloadAttempts {
                    try? await clock.sleep(until: clock.now.advanced(by: .seconds(1 << min(attempt, 6))), tolerance: nil)
                }
            }
        }
        t = local
        books = localBooks
        retry = localRetry
        guard t.knowsIDs else { return nil }
        // Whatever is still pending had no result line.
        var missing: BatchError
        if let lastError {
            missing = BatchError(.network, "the results of job \(t.job.id) could not be downloaded: \(BatchError(wrapping: lastError).message)", isRetryable: true)
        } else {
            switch t.job.status {
            case .expired: missing = BatchError(.expired, "job \(t.job.id) expired before this request ran", isRetryable: true)
            case .cancelled: missing = BatchError(.cancelled, "job \(t.job.id) was cancelled before this request ran", isRetryable: false)
            case .failed: missing = BatchError(.invalidRequest, "job \(t.job.id) failed: \(t.job.metadata["error"] ?? "the provider rejected it")", isRetryable: false)
            default: missing = BatchError(.invalidResponse, "job \(t.job.id) ended without a result for this request", isRetryable: true)
            }
            if lines.malformedLines > 0 {
                // One of those lines may have been this request's: say so, and where they are.
                missing.message += "; \(lines.malformedLines) result line(s) could not be read and named no id"
                    + " (\(lines.malformedLocations.prefix(5).joined(separator: ", ")))"
            }
        }
        for (id, item) in t.pending.sorted(by: { $0.key < $1.key }) {
            if mayResubmit, missing.isRetryable {
                retry.append(item)
                continue
            }
            let r = stamped(BatchResult(id: id, outcome: .failure(missing), attempts: 1, route: .batch, metadata: item.metadata))
            count(r, into: &books)
            if !(await sink.emit(.item(r))) { return .failed(.cancelled()) }
        }
        t.pending = [:]
        return nil
    }

    func count(_ r: BatchResult, into books: inout Books) {
        books.totals.add(r, prices: configuration.priceTable)
    }

    func progress(_ tracked: [Tracked], books: Books, start: C.Instant) -> BatchProgress {
        var remoteSucceeded = 0
        var remoteFailed = 0
        var pending = 0
        var statuses = Set<String>()
        for t in tracked {
            remoteSucceeded += t.job.succeededCount
            remoteFailed += t.job.failedCount
            pending += t.knowsIDs ? t.pending.count : t.job.requestCount
            statuses.insert(t.job.remoteStatus ?? t.job.status.rawValue)
        }
        let elapsed = start.duration(to: clock.now)
        let done = books.totals.succeeded + books.totals.failed + remoteSucceeded + remoteFailed
        let rate = elapsed > .zero ? Double(done) / elapsed.seconds : 0
        var eta: Duration?
        if let total = books.total, rate > 0 { eta = .seconds(Double(max(0, total - done)) / rate) }
        return BatchProgress(
            succeeded: books.totals.succeeded + remoteSucceeded, failed: books.totals.failed + remoteFailed,
            inFlight: max(0, pending - remoteSucceeded - remoteFailed), total: books.total, usage: books.totals.usage,
            cost: books.totals.cost(priced: configuration.priceTable != nil), requestsPerSecond: rate, eta: eta,
            elapsed: elapsed, remoteStatus: statuses.sorted().joined(separator: ","))
    }

    func summary(_ books: Books, start: C.Instant) -> BatchSummary {
        books.totals.summary(
            duration: start.duration(to: clock.now), priced: configuration.priceTable != nil,
            jobs: books.jobOrder.compactMap { books.jobs[$0] })
    }

    /// `maxWait` passed: the pending items fail with an error naming their job, and the run fails
    /// with an error naming every job still running (they are left running, to attach later).
    func gaveUp(_ tracked: [Tracked], books: inout Books, sink: EventSink, maxWait: Duration) async -> BatchRunOutcome {
        let ids = tracked.map(\.job.id)
        guard configuration.reportsUnfinishedAtMaxWait else {
            let pending = tracked.reduce(0) { $0 + ($1.knowsIDs ? $1.pending.count : $1.job.requestCount) }
            return .failed(BatchError(
                .timeout,
                "gave up after \(maxWait) with \(ids.count) job(s) still running (\(pending) request(s) unreported): \(ids.joined(separator: ", "))",
                isRetryable: true))
        }
        for t in tracked where t.knowsIDs {
            let e = BatchError(.timeout, "gave up after \(maxWait) waiting for job \(t.job.id) (still \(t.job.remoteStatus ?? t.job.status.rawValue)); attach to it later to collect the result", isRetryable: false)
            for id in t.pending.keys.sorted() {
                books.totals.failed += 1
                var r = BatchResult(id: id, outcome: .failure(e), attempts: 1, route: .batch)
                r.jobID = t.job.id
                r.startedAt = t.job.createdAt
                if !(await sink.emit(.item(r))) { break }
            }
        }
        return .failed(BatchError(.timeout, "gave up after \(maxWait); jobs still running: \(ids.joined(separator: ", "))", isRetryable: false))
    }

    /// The run was cancelled: cancel the remote jobs (unless configured not to) and end.
    func cancelled(_ tracked: [Tracked], books: Books) async -> BatchRunOutcome {
        let open = tracked.filter { !$0.job.status.isTerminal }.map(\.job.id)
        if configuration.cancelsRemoteJobsOnCancellation, !open.isEmpty {
            let backend = self.backend
            // The calling task is cancelled; the cancellation requests run in a task of their own.
            await Task {
                await withTaskGroup(of: Void.self) { group in
                    for id in open { group.addTask { _ = try? await backend.cancel(jobID: id) } }
                }
            }.value
        }
        return .failed(.cancelled("the run was cancelled; \(configuration.cancelsRemoteJobsOnCancellation ? "cancelled" : "left running") jobs: \(open.joined(separator: ", "))"))
    }

    static func submissionError(_ error: any Error) -> BatchError {
        var e = BatchError(wrapping: error)
        e.message = "the batch job could not be created: \(e.message)"
        return e
    }
}

extension Duration {
    static func * (lhs: Duration, rhs: Double) -> Duration { .seconds(lhs.seconds * rhs) }
}
