import Foundation
import Synchronization

/// One native-batch run: submission, polling, collection, resubmission.
final class NativeRun<C: Clock>: Sendable where C.Duration == Duration {
    let backend: any BatchBackend
    let configuration: NativeBatchProcessor<C>.Configuration
    let limits: BatchLimits
    let clock: C
    /// No create attempt starts after this (the hybrid deadline): a chunk whose job is not
    /// created by then fails, and its requests run in real time. An attempt under way is not cut
    /// off (a job created while its answer is abandoned would run unseen), and a lost answer is
    /// still looked up.
    let submitsUntil: C.Instant?

    init(
        backend: any BatchBackend, configuration: NativeBatchProcessor<C>.Configuration, limits: BatchLimits, clock: C,
        submitsUntil: C.Instant? = nil
    ) {
        self.backend = backend
        self.configuration = configuration
        self.limits = limits
        self.clock = clock
        self.submitsUntil = submitsUntil
    }

    /// Whether the time for starting create attempts is over (never without ``submitsUntil``).
    var submissionTimeIsOver: Bool { submitsUntil.map { clock.now >= $0 } ?? false }

    /// A job being waited for. Its tracking is compact: the ids (packed), which of them have been
    /// reported, and the metadata of the items that have any; the encoded bodies stay in the
    /// chunk's spool file, which resubmission re-reads.
    struct Tracked {
        var job: BatchJob
        /// The chunk's spool file, until the job's results are in (`nil` when attached).
        var chunk: SpooledChunk?
        var ids: PackedIDs
        var metadata: [Int: [String: String]]
        /// Which ids have been reported (or set aside for resubmission), by position.
        var done: PositionFlags
        /// Ids not yet reported.
        var remaining: Int
        /// Whether the ids of the job are known (false when attaching without expectations).
        var knowsIDs: Bool
        /// Ids reported so far, when the ids are not known.
        var seenUnknown: Set<String> = []
        var round: Int

        init(job: BatchJob, chunk: SpooledChunk?, ids: PackedIDs, metadata: [Int: [String: String]], knowsIDs: Bool, round: Int) {
            self.job = job
            self.chunk = chunk
            self.ids = ids
            self.metadata = metadata
            self.done = PositionFlags(count: ids.count)
            self.remaining = ids.count
            self.knowsIDs = knowsIDs
            self.round = round
        }

        /// Requests of the job not yet reported, for progress.
        var pendingCount: Int { knowsIDs ? remaining : job.requestCount }

        /// Positions not yet reported, in id order.
        var pendingPositions: [Int] {
            (0..<ids.count).filter { !done[$0] }.sorted { ids[$0] < ids[$1] }
        }
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

    /// The ids seen so far in a run, as 64-bit fingerprints in a ``FingerprintSet`` (a million ids
    /// in about 6 MB, Elias–Fano coded, never copied whole), with how many requests were read, so a
    /// duplicate can be named by its position. Two distinct ids share a fingerprint with a chance
    /// of about n²/2⁶⁵ (3 in 100 million for a million ids); the later one would then be refused
    /// as a duplicate.
    struct SeenIDs {
        private var fingerprints = FingerprintSet()
        /// Requests read so far (the 1-based position of the last one; ``NativeRun/encode(_:seen:)`` counts them).
        var position = 0

        /// Adds an id; returns whether it was not seen before.
        mutating func insert(_ id: String) -> Bool { fingerprints.insert(id: id) }

        func contains(_ id: String) -> Bool { fingerprints.contains(id: id) }

        mutating func removeAll() { fingerprints.removeAll() }
    }

    func encode(_ request: BatchRequest, seen: inout SeenIDs) -> Result<EncodedBatchItem, BatchError> {
        seen.position += 1
        if request.id.isEmpty { return .failure(.validation("the request id is empty", field: "id")) }
        if !seen.insert(request.id) {
            return .failure(.validation(
                "duplicate id \"\(request.id)\" at request \(seen.position) of the input (an earlier request has it): ids must be unique within a run",
                field: "id"))
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

    /// The storage chunks are spooled to.
    var spoolStorage: SpoolStorage { configuration.spool }

    // MARK: - process

    func process(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable, total: Int?, sink: EventSink) async -> BatchRunOutcome {
        let spoolDirectory = spoolStorage.runDirectory()
        defer { try? FileManager.default.removeItem(at: spoolDirectory) }
        let start = clock.now
        var books = Books(total: total)
        var tracked: [Tracked] = []
        var seen = SeenIDs()
        let chunker = SpoolChunker(limits: limits, storage: spoolStorage, directory: spoolDirectory)
        var iterator = requests.makeAsyncIterator()
        let budget = configuration.maxCost.map { CostBudget(limit: $0) }
        /// Submits `chunk` if its estimate fits what remains of the budget; otherwise fails its items.
        func submitWithinBudget(_ chunk: SpooledChunk) async -> Bool {
            if let budget, !budget.reserve(chunk.estimate) {
                chunk.remove()
                let e = budget.exceededError(estimate: chunk.estimate)
                for (i, id) in chunk.ids.enumerated() {
                    books.totals.failed += 1
                    let r = BatchResult(id: id, outcome: .failure(e), attempts: 0, route: .none, metadata: chunk.metadata[i] ?? [:])
                    if !(await sink.emit(.item(r))) { return false }
                }
                return true
            }
            return await submit(chunk, round: 0, tracked: &tracked, books: &books, sink: sink)
        }

        // 1. Validate, spool, split, submit.
        var spoolFailure: BatchError?
        while let request = await iterator.next(isolation: nil) {
            if Task.isCancelled { return await cancelled(tracked, books: books) }
            var encoded = encode(request, seen: &seen)
            var estimate = 0.0
            if budget != nil, case .success = encoded {
                if let batchEstimate = CostBudget.batchEstimate(of: request, prices: configuration.priceTable ?? .defaults) {
                    estimate = batchEstimate
                } else {
                    encoded = .failure(CostBudget.unpricedError(request))
                }
            }
            switch encoded {
            case .failure(let e):
                books.totals.failed += 1
                if !(await sink.emit(.item(BatchResult(id: request.id, outcome: .failure(e), attempts: 0, route: .none, metadata: request.metadata)))) {
                    return await cancelled(tracked, books: books)
                }
            case .success(let item):
                let full: SpooledChunk?
                do {
                    full = try chunker.add(item, estimate: estimate)
                } catch {
                    spoolFailure = error
                    break
                }
                if let full, !(await submitWithinBudget(full)) {
                    return await cancelled(tracked, books: books)
                }
            }
            if spoolFailure != nil { break }
        }
        if spoolFailure == nil {
            do {
                for chunk in try chunker.drain() {
                    if !(await submitWithinBudget(chunk)) { return await cancelled(tracked, books: books) }
                }
            } catch {
                spoolFailure = error
            }
        }
        // A spool that cannot be written (a full disk) stops submission; the jobs already created
        // are still collected, so nothing that finishes is lost, and the run then fails saying why.
        if spoolFailure != nil { chunker.discardAll() }
        seen.removeAll()
        // 2. Wait and collect.
        let outcome = await collect(&tracked, books: &books, start: start, sink: sink)
        if let spoolFailure, case .completed = outcome { return .failed(spoolFailure) }
        return outcome
    }

    /// Creates one job. If it cannot be created, its items fail and the run goes on.
    ///
    /// - Returns: `false` when the consumer went away.
    func submit(_ chunk: SpooledChunk, round: Int, tracked: inout [Tracked], books: inout Books, sink: EventSink) async -> Bool {
        do {
            let job = try await create(chunk, excluding: Set(books.jobs.keys))
            books.record(job)
            tracked.append(Tracked(job: job, chunk: chunk, ids: chunk.ids, metadata: chunk.metadata, knowsIDs: true, round: round))
            return await sink.emit(.submitted(job))
        } catch {
            chunk.remove()
            let e = Self.submissionError(error)
            for (i, id) in chunk.ids.enumerated() {
                books.totals.failed += 1
                if !(await sink.emit(.item(BatchResult(id: id, outcome: .failure(e), attempts: 0, route: .none, metadata: chunk.metadata[i] ?? [:])))) {
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
    func create(_ chunk: SpooledChunk, excluding: Set<String>) async throws(BatchError) -> BatchJob {
        let intent = JobIntent(provider: backend.provider, groupKey: chunk.groupKey, count: chunk.count, idsHash: JobIntent.hash(chunk.ids))
        let ledger = configuration.ledger
        if let ledger {
            do { try ledger.recordIntent(intent, ids: Array(chunk.ids)) } catch {
                throw BatchError(.io, "cannot record the intent to create a batch job: \(BatchError(wrapping: error).message)", isRetryable: false)
            }
        }
        // The input file of the latest attempt: a job that reads it is this chunk's.
        let uploadedFile = Mutex<String?>(nil)
        var attempt = 0
        var lookFirst = false
        var previous: BatchError?  // the last create's failure
        var lastCreate = clock.now  // when the last create call started
        while true {
            attempt += 1
            if lookFirst {
                // The last create may have made a job that the provider did not list yet (a
                // listing can lag behind creation): before creating another, look again until that
                // call is `JobIntent.listingLag` old (not past the hybrid deadline), as a rerun
                // does. One more look after the back-off alone missed a job listed 3 s late
                // (the independent Anthropic mock's `--list-lag 3`: a second job, 19,615 ids
                // billed twice).
                var sought = intent
                sought.fileID = uploadedFile.withLock { $0 }
                var until = lastCreate.advanced(by: JobIntent.listingLag)
                if let submitsUntil { until = min(until, submitsUntil) }
                let found: BatchJob?
                do {
                    found = try await lookUp(sought, excluding: excluding.union(ledger?.recordedJobIDs ?? []), lookingUntil: until)
                } catch {
                    if error.code == .cancelled || Task.isCancelled { throw error }
                    var lost = previous ?? error
                    lost.message = "the batch job may have been created (\(lost.message)), and the provider's jobs could not be listed to tell (\(error.message)); a rerun looks again"
                    throw lost
                }
                if let found {
                    try await record(found, for: intent)
                    return found
                }
                // Looked until the hybrid deadline: no create attempt starts after it.
                if let previous, submissionTimeIsOver { throw previous }
            }
            let failure: BatchError
            lastCreate = clock.now
            do {
                let job = try await backend.submit(chunk, metadata: configuration.metadata, intent: intent) { fileID in
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
            lookFirst = failure.mayHaveReachedServer
            previous = failure
            let retryAt = clock.now.advanced(by: .seconds(1 << min(attempt, 6)))
            // Past the hybrid deadline no attempt starts: the chunk runs in real time.
            if let submitsUntil, retryAt >= submitsUntil { throw failure }
            try? await clock.sleep(until: retryAt, tolerance: nil)
        }
    }

    /// The provider's job for `intent`, if any; a failed listing is tried a few times. With
    /// `until`, a job not listed yet is looked for again (after 1, 2, 4… s on the clock) until
    /// then: ``BatchBackend/findJob(for:excluding:listingLag:now:clock:)``.
    func lookUp(_ intent: JobIntent, excluding: Set<String>, lookingUntil until: C.Instant? = nil) async throws(BatchError) -> BatchJob? {
        var attempt = 0
        while true {
            attempt += 1
            do {
                guard let until else { return try await backend.findJob(for: intent, excluding: excluding) }
                // The lag left, measured on the run's clock (`now` = the intent's time: age 0).
                let lag = max(clock.now.duration(to: until), .zero)
                return try await backend.findJob(for: intent, excluding: excluding, listingLag: lag, now: intent.createdAt, clock: clock)
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

    func attach(_ jobIDs: [String], expecting: [String: PackedIDs], sink: EventSink) async -> BatchRunOutcome {
        let start = clock.now
        var books = Books(total: nil)
        var tracked: [Tracked] = []
        for id in jobIDs {
            var job: BatchJob?
            var lastError: (any Error)?
            for attempt in 1...configuration.downloadAttempts {
                do {
                    job = try await backend.status(of: id)
                    break
                } catch {
                    if Task.isCancelled { return .failed(.cancelled()) }
                    lastError = error
                    // A provider that cannot answer for now (5xx, 429, network) is asked again
                    // after 1, 2, 4, 8… s on the clock, not at once: an outage of a few seconds
                    // must not leave a job unread (hybrid, right after cancelling its jobs at the
                    // deadline, would then pay in real time for every item they ran). Not past
                    // `maxWait` from the attach; other errors are asked again at once, as before.
                    guard attempt < configuration.downloadAttempts, BatchError(wrapping: error).isRetryable else { continue }
                    let wake = clock.now.advanced(by: .seconds(1 << min(attempt - 1, 6)))
                    if let maxWait = configuration.maxWait, start.duration(to: wake) > maxWait { continue }
                    do {
                        try await clock.sleep(until: wake, tolerance: nil)
                    } catch {
                        return .failed(.cancelled())
                    }
                }
            }
            guard let job else {
                return .failed(BatchError(.notFound, "could not read job \(id): \(BatchError(wrapping: lastError ?? CancellationError()).message)"))
            }
            books.record(job)
            let ids = expecting[id] ?? PackedIDs()
            tracked.append(Tracked(
                job: job, chunk: nil, ids: ids, metadata: [:], knowsIDs: !ids.isEmpty, round: configuration.resubmit.rounds))
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
                    var retry: [Int] = []
                    if let end = await download(&t, books: &books, retry: &retry, sink: sink) { return end }
                    tracked.remove(at: index)
                    if !retry.isEmpty, let chunk = t.chunk {
                        books.totals.retries += retry.count
                        if !(await resubmit(retry, of: chunk, round: t.round + 1, tracked: &tracked, books: &books, sink: sink)) {
                            return await cancelled(tracked, books: books)
                        }
                    }
                    // The job's results are in: its spool file is no longer needed.
                    t.chunk?.remove()
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

    /// Sends the items at `positions` of a finished job's chunk again, as new jobs: read back
    /// from its spool file into new spool chunks. If the spool cannot be read or written, those
    /// items fail with that error.
    ///
    /// - Returns: `false` when the consumer went away.
    func resubmit(
        _ positions: [Int], of chunk: SpooledChunk, round: Int, tracked: inout [Tracked], books: inout Books, sink: EventSink
    ) async -> Bool {
        let wanted = Set(positions)
        let chunker = SpoolChunker(limits: limits, storage: spoolStorage, directory: chunk.file.deletingLastPathComponent())
        var chunks: [SpooledChunk] = []
        do {
            try await chunk.forEachItem { i, data in
                guard wanted.contains(i), i < chunk.ids.count else { return }
                let item = EncodedBatchItem(id: chunk.ids[i], data: Data(data), groupKey: chunk.groupKey, metadata: chunk.metadata[i] ?? [:])
                if let full = try chunker.add(item) { chunks.append(full) }
            }
            chunks += try chunker.drain()
        } catch {
            chunker.discardAll()
            for c in chunks { c.remove() }
            let e = error as? BatchError ?? SpoolStorage.writeError(error, file: chunk.file)
            for i in positions.sorted(by: { chunk.ids[$0] < chunk.ids[$1] }) {
                books.totals.failed += 1
                let r = BatchResult(id: chunk.ids[i], outcome: .failure(e), attempts: 1, route: .batch, metadata: chunk.metadata[i] ?? [:])
                if !(await sink.emit(.item(r))) { return false }
            }
            return true
        }
        for c in chunks {
            if !(await submit(c, round: round, tracked: &tracked, books: &books, sink: sink)) { return false }
        }
        return true
    }

    /// Streams a terminal job's results, then reports what is missing. Returns an outcome only
    /// when the consumer went away.
    ///
    /// - Parameter retry: positions (in the job's chunk) to resubmit.
    func download(_ t: inout Tracked, books: inout Books, retry: inout [Int], sink: EventSink) async -> BatchRunOutcome? {
        var consumerGone = false
        var lastError: (any Error)?
        var lines = BatchResultsSummary()
        let mayResubmit = t.round < configuration.resubmit.rounds && t.chunk != nil
        // What a failed attempt already reported stays reported: it is marked done, so the next
        // attempt skips it instead of reporting it twice.
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
        // Built for this download only (one job's ids at a time).
        let positions = IDPositions(t.knowsIDs ? t.ids : PackedIDs())
        for attempt in 1...configuration.downloadAttempts {
            do {
                lines = try await backend.downloadResults(of: local.job) { downloaded in
                    var result = stamped(downloaded)
                    if local.knowsIDs {
                        guard let i = positions[result.id], !local.done[i] else { return }  // not ours, or reported already
                        local.done[i] = true
                        local.remaining -= 1
                        result.metadata = local.metadata[i] ?? [:]
                        if mayResubmit, !result.isSuccess, result.error?.isRetryable == true {
                            localRetry.append(i)
                            return
                        }
                    } else {
                        guard local.seenUnknown.insert(result.id).inserted else { return }
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
        for i in t.pendingPositions {
            t.done[i] = true
            t.remaining -= 1
            if mayResubmit, missing.isRetryable {
                retry.append(i)
                continue
            }
            let r = stamped(BatchResult(id: t.ids[i], outcome: .failure(missing), attempts: 1, route: .batch, metadata: t.metadata[i] ?? [:]))
            count(r, into: &books)
            if !(await sink.emit(.item(r))) { return .failed(.cancelled()) }
        }
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
            pending += t.pendingCount
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
            let pending = tracked.reduce(0) { $0 + $1.pendingCount }
            return .failed(BatchError(
                .timeout,
                "gave up after \(maxWait) with \(ids.count) job(s) still running (\(pending) request(s) unreported): \(ids.joined(separator: ", "))",
                isRetryable: true))
        }
        for t in tracked where t.knowsIDs {
            let e = BatchError(.timeout, "gave up after \(maxWait) waiting for job \(t.job.id) (still \(t.job.remoteStatus ?? t.job.status.rawValue)); attach to it later to collect the result", isRetryable: false)
            for i in t.pendingPositions {
                books.totals.failed += 1
                var r = BatchResult(id: t.ids[i], outcome: .failure(e), attempts: 1, route: .batch, metadata: t.metadata[i] ?? [:])
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

/// One flag per position of a job, 64 to a word: a million positions take 125 KB, where an
/// array of `Bool` takes 1 MB.
struct PositionFlags {
    private var words: [UInt64]

    /// `count` flags, all clear.
    init(count: Int) { words = Array(repeating: 0, count: (max(0, count) + 63) / 64) }

    subscript(i: Int) -> Bool {
        get { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
        set {
            if newValue { words[i >> 6] |= 1 << UInt64(i & 63) } else { words[i >> 6] &= ~(1 << UInt64(i & 63)) }
        }
    }
}
