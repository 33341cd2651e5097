import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// A ``FakeBackend`` whose create calls can lose their answer after the job was created, and
/// whose jobs carry their tag (like OpenAI metadata) or only a creation time and count (like
/// Anthropic).
final class LossyCreateBackend: PassThroughBackend {
    struct State {
        var tags: [String: String] = [:]
        var created: [String: Date] = [:]
        var lostAnswers: Int
        var failedLists: Int
        /// List calls still to answer without the jobs (a listing that lags behind creation).
        var laggingLists = 0
        var creates = 0
        var lists = 0
        var events: [String] = []
    }

    let base: FakeBackend
    let tagsJobs: Bool
    let state: Mutex<State>

    let lostAnswer: BatchError

    init(
        base: FakeBackend = FakeBackend(), tags: Bool, lostAnswers: Int, failedLists: Int = 0, laggingLists: Int = 0,
        lostAnswer: BatchError = BatchError(.network, "connection reset before the answer")
    ) {
        self.base = base
        self.lostAnswer = lostAnswer
        self.tagsJobs = tags
        self.state = Mutex(State(lostAnswers: lostAnswers, failedLists: failedLists, laggingLists: laggingLists))
    }

    var creates: Int { state.withLock { $0.creates } }
    var events: [String] { state.withLock { $0.events } }

    func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent, uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await uploaded("file-\(intent.tag)")
        state.withLock { $0.events.append("create \(intent.tag)") }
        var job = try await base.submit(items, metadata: metadata)
        let lose = state.withLock { s -> Bool in
            s.creates += 1
            if tagsJobs { s.tags[job.id] = intent.tag }
            s.created[job.id] = Date()
            guard s.lostAnswers > 0 else { return false }
            s.lostAnswers -= 1
            return true
        }
        if lose { throw lostAnswer }
        job.metadata[JobIntent.metadataKey] = tagsJobs ? intent.tag : nil
        return job
    }
    func list(limit: Int) async throws -> [BatchJob] {
        let lagging = try state.withLock { s -> Bool in
            s.lists += 1
            if s.failedLists > 0 {
                s.failedLists -= 1
                throw BatchError(.server, "list failed", httpStatus: 500)
            }
            guard s.laggingLists > 0 else { return false }
            s.laggingLists -= 1
            return true
        }
        if lagging { return [] }
        let (tags, created) = state.withLock { ($0.tags, $0.created) }
        return try await base.list(limit: limit).map { job in
            var j = job
            j.metadata[JobIntent.metadataKey] = tags[job.id]
            j.createdAt = created[job.id]
            // A tagged job is listed as OpenAI lists one it still validates: 0 requests.
            if tagsJobs { j.requestCount = 0 }
            return j
        }
    }
}

/// A backend (untagged, like Anthropic) that lists the given jobs, newest first.
struct ListedJobsBackend: PassThroughBackend {
    let base = FakeBackend()
    let jobs: [BatchJob]
    func list(limit: Int) async throws -> [BatchJob] {
        Array(jobs.sorted { ($0.createdAt ?? .distantPast) > ($1.createdAt ?? .distantPast) }.prefix(limit))
    }
}

/// A ledger in memory that logs the order of calls.
final class MemoryLedger: JobLedger {
    let log = Mutex<[String]>([])
    let jobs = Mutex<[String: String]>([:])  // tag → job id

    func recordIntent(_ intent: JobIntent, ids: [String]) throws {
        log.withLock { $0.append("intent \(intent.tag) \(ids.count)") }
    }
    func recordUpload(_ fileID: String, for intent: JobIntent) throws {
        log.withLock { $0.append("upload \(intent.tag) \(fileID)") }
    }
    func recordJob(_ job: BatchJob, for intent: JobIntent) throws {
        log.withLock { $0.append("job \(intent.tag) \(job.id)") }
        jobs.withLock { $0[intent.tag] = job.id }
    }
    var recordedJobIDs: Set<String> { Set(jobs.withLock { $0.values }) }
}

@Suite(.timeLimit(.minutes(5)))
struct JobAdoptionTests {
    /// Issue 11, job creation is never blindly retried: a create call whose answer was lost after
    /// the job was created is followed by a look at the provider's jobs, and the job is adopted,
    /// by its tag (OpenAI, Gemini) or by creation time and count (Anthropic). Before the fix the
    /// chunk's items failed ("could not be created") while the job ran unseen, and a rerun paid
    /// again.
    @Test(arguments: [
        (true, BatchError(.network, "connection reset before the answer")),
        (false, BatchError(.network, "connection reset before the answer")),
        (true, BatchError(.invalidResponse, "answered 200 with a body that is not JSON", httpStatus: 200)),
        (true, BatchError(.server, "internal error", httpStatus: 500)),
    ])
    func aLostCreateAnswerAdoptsTheJob(tags: Bool, lostAnswer: BatchError) async {
        let clock = ManualClock()
        let backend = LossyCreateBackend(tags: tags, lostAnswers: 1, lostAnswer: lostAnswer)
        let ledger = MemoryLedger()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1)).withLedger(ledger), clock: clock)
        let requests = (0..<6).map { chatRequest("t\($0)") }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        #expect(backend.creates == 1, "the job was created once")
        #expect(backend.base.submitted.count == 1)
        #expect(events.items.count == 6)
        #expect(events.items.allSatisfy { $0.isSuccess })
        let submitted = events.compactMap { if case .submitted(let j) = $0 { return j } else { return nil } }
        #expect(submitted.map(\.id) == ["job-1"])
        #expect(submitted.map(\.requestCount) == [6], "an adopted job counts its chunk's requests")
        // The intent, then the upload, were recorded before the create call; then the job.
        let log = ledger.log.withLock { $0 }
        #expect(log.count == 3)
        #expect(log.first?.hasPrefix("intent batchkit-") == true && log.first?.hasSuffix(" 6") == true)
        #expect(log.dropFirst().first?.hasPrefix("upload ") == true)
        #expect(log.last?.hasSuffix(" job-1") == true)
    }

    /// A create that failed where nothing could have been created (a 400) is not looked up nor
    /// retried; one that may have reached the server and matches no job is created again, once.
    @Test(arguments: [(502, 1, 3), (400, 0, 0)])
    func noMatchCreatesAgainAndARejectionIsNotRetried(status: Int, jobs: Int, succeeded: Int) async {
        let clock = ManualClock()
        let backend = FailingCreateBackend(status: status)
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let events = await runNative(processor.processAsync((0..<3).map { chatRequest("n\($0)") }), clock: clock)
        #expect(backend.base.submitted.count == jobs)
        #expect(backend.calls.withLock { $0 } == (status == 400 ? 1 : 2))
        #expect(events.items.count == 3 && events.items.filter { $0.isSuccess }.count == succeeded)
    }

    /// A listing that lags behind creation does not show the job right after its create answer
    /// was lost: the look is repeated after the back-off, before another create, and finds it
    /// (found with the independent Gemini mock's `--list-lag 1`: 2 jobs, every id billed twice).
    @Test(arguments: [true, false])
    func aJobNotListedYetIsLookedForAgainBeforeASecondCreate(tags: Bool) async {
        let clock = ManualClock()
        let backend = LossyCreateBackend(tags: tags, lostAnswers: 1, laggingLists: 1)
        let ledger = MemoryLedger()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1)).withLedger(ledger), clock: clock)
        let events = await runNative(processor.processAsync((0..<5).map { chatRequest("l\($0)") }), clock: clock)
        #expect(backend.creates == 1, "the job was created once")
        #expect(events.items.count == 5 && events.items.allSatisfy { $0.isSuccess })
        #expect(ledger.log.withLock { $0 }.last?.hasSuffix(" job-1") == true)
    }

    /// A listing that shows the job later than the back-off (a look right after the lost answer,
    /// one after the 2 s back-off and one more miss it): the run keeps looking until the create
    /// is `JobIntent.listingLag` old and adopts the job. Before, it created a second job after the
    /// second look (the independent Anthropic mock's `--list-lag 3 --lose-first-create`, seed 20:
    /// 2 jobs, 19,615 ids billed twice). A job never listed is created again only after the lag:
    /// six looks (at 0, 2, 3, 5, 9 and 15 s), where there were two.
    @Test(arguments: [(true, 3, 1, 4), (false, 3, 1, 4), (true, 100, 2, 6), (false, 100, 2, 6)])
    func aJobListedLaterThanTheBackOffIsAdoptedNotCreatedAgain(tags: Bool, laggingLists: Int, creates: Int, lists: Int) async {
        let clock = ManualClock()
        let backend = LossyCreateBackend(tags: tags, lostAnswers: 1, laggingLists: laggingLists)
        let ledger = MemoryLedger()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1)).withLedger(ledger), clock: clock)
        let events = await runNative(processor.processAsync((0..<5).map { chatRequest("s\($0)") }), clock: clock)
        #expect(backend.creates == creates)
        #expect(backend.state.withLock { $0.lists } == lists, "looks at the listing")
        #expect(events.items.count == 5 && events.items.allSatisfy { $0.isSuccess })
    }

    /// Jobs matched only by time and size (Anthropic has no tags): another client's job of the
    /// same size (a shard of the same input) created two minutes before the intent, the intent's
    /// own job a second after it, and the other client's next job ten seconds after. The one
    /// nearest the intent is taken. Before, the oldest match was: the neighbour's job, while the
    /// run's own ran, paid for, its results never collected (the independent Anthropic mock's
    /// `--neighbour-count 2000 --lose-first-create`: 2,000 ids paid and never delivered).
    @Test(arguments: [-120.0, -2.0])
    func anUntaggedMatchIsTheJobCreatedNearestTheIntent(neighbourOffset: Double) async throws {
        let intentTime = Date()
        let intent = JobIntent(provider: "fake", groupKey: "", count: 50, idsHash: "0", createdAt: intentTime)
        func job(_ id: String, _ offset: Double, count: Int = 50) -> BatchJob {
            BatchJob(id: id, provider: "fake", status: .inProgress, requestCount: count, createdAt: intentTime.addingTimeInterval(offset))
        }
        let backend = ListedJobsBackend(jobs: [
            job("neighbour-before", neighbourOffset), job("ours", 1), job("neighbour-after", 10), job("other-size", 0.5, count: 49),
        ])
        #expect(try await backend.findJob(for: intent, excluding: [])?.id == "ours")
        #expect(try await backend.findJob(for: intent, excluding: ["ours"])?.id == (neighbourOffset == -2 ? "neighbour-before" : "neighbour-after"))
    }

    /// When the jobs cannot be listed after a create that may have reached the server, the chunk
    /// fails and no second job is created; the intent stays open for a rerun.
    /// A rerun right after a kill finds an intent whose job was created seconds ago but is not
    /// listed yet (a listing that lags behind creation): it looks again, on the clock, until the
    /// intent is `listingLag` old, and adopts the job instead of taking it for never created (the
    /// independent Anthropic mock's `--list-lag 1`: a rerun created the job again, 4,398 ids billed
    /// twice). An intent already older than the lag is looked up once.
    @Test(arguments: [(0, 2, true, 3), (0, 9, false, 5), (60, 1, false, 1)] as [(Double, Int, Bool, Int)])
    func aRerunLooksAgainForTheJobOfAnIntentOfSecondsAgo(ageSeconds: Double, laggingLists: Int, found: Bool, lists: Int) async throws {
        let clock = ManualClock()
        let backend = LossyCreateBackend(tags: false, lostAnswers: 0, laggingLists: laggingLists)
        let items = try (0..<4).map { try backend.encode(chatRequest("lag\($0)")) }
        let now = Date()
        let intent = JobIntent(provider: backend.provider, items: items, createdAt: now.addingTimeInterval(-ageSeconds))
        let created = try await backend.submit(items, metadata: [:], intent: intent) { _ in }
        let driver = driveClock(clock)
        let job = try await backend.findJob(for: intent, excluding: [], listingLag: .seconds(15), now: now, clock: clock)
        driver.cancel()
        await driver.value
        #expect((job?.id == created.id) == found, "found \(job?.id ?? "nothing")")
        #expect(backend.state.withLock { $0.lists } == lists, "looks at the listing")
        #expect(backend.creates == 1)
    }

    @Test func unlistableJobsNeverLeadToASecondCreate() async {
        let clock = ManualClock()
        let backend = LossyCreateBackend(tags: true, lostAnswers: 1, failedLists: 100)
        let ledger = MemoryLedger()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1)).withLedger(ledger), clock: clock)
        let events = await runNative(processor.processAsync((0..<4).map { chatRequest("u\($0)") }), clock: clock)
        #expect(backend.creates == 1)
        #expect(events.items.count == 4)
        #expect(events.items.allSatisfy { $0.error?.message.contains("may have been created") == true })
        #expect(ledger.log.withLock { $0 }.allSatisfy { !$0.hasPrefix("job ") })
    }

    @Test func fingerprintAndMatching() {
        let items = ["a", "b"].map { EncodedBatchItem(id: $0, data: Data($0.utf8), groupKey: "/v1/chat/completions m") }
        let intent = JobIntent(provider: "openai", items: items, createdAt: Date(timeIntervalSince1970: 1_000_000))
        #expect(intent.count == 2 && intent.groupKey == "/v1/chat/completions m")
        #expect(intent.idsHash == JobIntent.hash(["a", "b"]) && intent.idsHash != JobIntent.hash(["b", "a"]))
        #expect(intent.tag.hasPrefix("batchkit-") && intent.tag.count == 25)
        var tagged = BatchJob(id: "x", provider: "openai", status: .validating, requestCount: 0)
        tagged.metadata[JobIntent.metadataKey] = intent.tag
        #expect(intent.matches(tagged, tagsJobs: true))
        let later = BatchJob(id: "y", provider: "anthropic", status: .inProgress, requestCount: 2, createdAt: Date(timeIntervalSince1970: 1_000_010))
        #expect(intent.matches(later, tagsJobs: false))
        #expect(!intent.matches(later, tagsJobs: true))
        let earlier = BatchJob(id: "z", provider: "anthropic", status: .inProgress, requestCount: 2, createdAt: Date(timeIntervalSince1970: 990_000))
        #expect(!intent.matches(earlier, tagsJobs: false))
        let otherCount = BatchJob(id: "w", provider: "anthropic", status: .inProgress, requestCount: 3, createdAt: Date(timeIntervalSince1970: 1_000_010))
        #expect(!intent.matches(otherCount, tagsJobs: false))
        #expect(BatchError(.server, "x", httpStatus: 503).mayHaveReachedServer)
        #expect(BatchError(.network, "reset").mayHaveReachedServer)
        #expect(!BatchError(.rateLimited, "slow down", httpStatus: 429).mayHaveReachedServer)
        #expect(!BatchError(.invalidRequest, "bad", httpStatus: 400).mayHaveReachedServer)
        // A cut or unreadable answer under a 200: the call took effect (found by the chaos suite:
        // openai/hybrid/110 created a second batch after a cut create answer).
        #expect(BatchError(.invalidResponse, "answered 200 with a body that is not JSON", httpStatus: 200).mayHaveReachedServer)
    }
}

/// A backend whose first create call fails with `status` (before anything is created).
final class FailingCreateBackend: PassThroughBackend {
    let base = FakeBackend()
    let status: Int
    let calls = Mutex(0)

    init(status: Int) { self.status = status }

    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        let n = calls.withLock { n -> Int in
            n += 1
            return n
        }
        if n == 1 { throw BatchError(BatchError.code(forHTTPStatus: status), "refused", httpStatus: status) }
        return try await base.submit(items, metadata: metadata)
    }
    func delete(jobID: String) async throws {}
}
