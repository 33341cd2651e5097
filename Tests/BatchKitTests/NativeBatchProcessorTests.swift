import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// An in-memory batch provider whose jobs finish after a number of polls.
final class FakeBackend: BatchBackend {
    struct Job {
        var items: [EncodedBatchItem]
        var polls = 0
        var status: BatchJob.Status = .inProgress
    }

    struct State {
        var jobs: [String: Job] = [:]
        var order: [String] = []
        var submitted: [[String]] = []
        var cancelled: [String] = []
        var pollFailuresLeft = 0
        var downloads = 0
    }

    let provider = "fake"
    let limits: BatchLimits
    let pollsToFinish: Int
    /// How a finished job ends, given its id.
    let ending: @Sendable (String) -> BatchJob.Status
    /// Which ids are left out of the results.
    let dropped: @Sendable (String) -> Bool
    /// Which ids fail (with a retryable server error).
    let failing: @Sendable (String) -> Bool
    /// Which ids' result lines are unreadable and name no id: left out, and counted in
    /// ``downloadResults(of:handler:)``'s summary.
    let garbled: @Sendable (String) -> Bool
    /// The usage of each id's answer (billed at the batch discount).
    let usage: @Sendable (String) -> Usage
    let state = Mutex(State())

    init(
        limits: BatchLimits = .init(maxRequests: 1000, maxBytes: 1 << 20), pollsToFinish: Int = 2,
        ending: @escaping @Sendable (String) -> BatchJob.Status = { _ in .completed },
        dropped: @escaping @Sendable (String) -> Bool = { _ in false },
        failing: @escaping @Sendable (String) -> Bool = { _ in false }, garbled: @escaping @Sendable (String) -> Bool = { _ in false },
        pollFailures: Int = 0, usage: @escaping @Sendable (String) -> Usage = { _ in Usage(inputTokens: 10, outputTokens: 5) }
    ) {
        self.garbled = garbled
        self.usage = usage
        self.limits = limits
        self.pollsToFinish = pollsToFinish
        self.ending = ending
        self.dropped = dropped
        self.failing = failing
        state.withLock { $0.pollFailuresLeft = pollFailures }
    }

    var submitted: [[String]] { state.withLock { $0.submitted } }

    /// The ids the jobs answered (or will answer) successfully, and so bill, in job order: every
    /// item of a job that completed or is still running, the first half of one that ended
    /// otherwise (the rule of `results(of:handler:)`).
    var billedIDs: [String] {
        state.withLock { s in
            s.order.flatMap { id -> [String] in
                guard let job = s.jobs[id] else { return [] }
                return job.items.enumerated().compactMap { i, item in
                    if dropped(item.id) || failing(item.id) { return nil }  // a garbled line still ran
                    if job.status.isTerminal, job.status != .completed, i >= job.items.count / 2 { return nil }
                    return item.id
                }
            }
        }
    }
    var cancelledJobs: [String] { state.withLock { $0.cancelled } }

    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem {
        if request.id.contains(" ") { throw .validation("custom_id must not contain spaces", field: "custom_id") }
        return EncodedBatchItem(id: request.id, data: Data(request.id.utf8), groupKey: request.model ?? "")
    }

    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        let id = state.withLock { s -> String in
            let id = "job-\(s.order.count + 1)"
            s.jobs[id] = Job(items: items)
            s.order.append(id)
            s.submitted.append(items.map(\.id))
            return id
        }
        return BatchJob(id: id, provider: provider, status: .inProgress, requestCount: items.count)
    }

    func status(of jobID: String) async throws -> BatchJob {
        try state.withLock { s in
            if s.pollFailuresLeft > 0 {
                s.pollFailuresLeft -= 1
                throw BatchError(.server, "poll failed", httpStatus: 500)
            }
            guard var job = s.jobs[jobID] else { throw BatchError(.notFound, "no job \(jobID)", httpStatus: 404) }
            if !job.status.isTerminal {
                job.polls += 1
                if job.polls >= pollsToFinish { job.status = ending(jobID) }
            }
            s.jobs[jobID] = job
            return BatchJob(id: jobID, provider: provider, status: job.status, requestCount: job.items.count)
        }
    }

    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        let (items, status) = try state.withLock { s -> ([EncodedBatchItem], BatchJob.Status) in
            guard let j = s.jobs[job.id] else { throw BatchError(.notFound, "no job") }
            s.downloads += 1
            return (j.items, j.status)
        }
        for (i, item) in items.enumerated() {
            if dropped(item.id) || garbled(item.id) { continue }
            // Expired and cancelled jobs keep the first half of their results.
            if status != .completed, i >= items.count / 2 { continue }
            let outcome: Result<ModelResponse, BatchError> =
                failing(item.id)
                ? .failure(BatchError(.server, "internal error", httpStatus: 500))
                : .success(ModelResponse(text: "answer \(item.id)", usage: usage(item.id).asBatch, model: "m"))
            try await handler(BatchResult(id: item.id, outcome: outcome, attempts: 1, route: .batch))
        }
    }

    func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        var summary = BatchResultsSummary()
        try await results(of: job) { result in
            summary.results += 1
            try await handler(result)
        }
        let items = state.withLock { $0.jobs[job.id]?.items ?? [] }
        for (i, item) in items.enumerated() where garbled(item.id) { summary.skip(at: "\(job.id).jsonl:\(i + 1)") }
        return summary
    }

    func cancel(jobID: String) async throws -> BatchJob {
        state.withLock { s in
            s.cancelled.append(jobID)
            s.jobs[jobID]?.status = .cancelled
        }
        return BatchJob(id: jobID, provider: provider, status: .cancelling, requestCount: 0)
    }

    func list(limit: Int) async throws -> [BatchJob] {
        state.withLock { s in
            s.order.reversed().prefix(limit).map { BatchJob(id: $0, provider: provider, status: s.jobs[$0]!.status, requestCount: s.jobs[$0]!.items.count) }
        }
    }

    func delete(jobID: String) async throws { state.withLock { _ = $0.jobs.removeValue(forKey: jobID) } }
}

/// Runs a native stream to the end while driving the manual clock.
func runNative(_ stream: BatchEventStream, clock: ManualClock) async -> [BatchEvent] {
    let driver = driveClock(clock)
    let events = await collect(stream)
    driver.cancel()
    await driver.value
    return events
}

@Suite(.timeLimit(.minutes(5)))
struct NativeBatchProcessorTests {
    @Test func splitsSubmitsPollsAndJoins() async {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 4, maxBytes: 1 << 20))
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(10)), clock: clock)
        let requests = (0..<10).map { chatRequest("n\($0)", model: $0 < 7 ? "m" : "other") }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        // 7 for "m" → 4 + 3; 3 for "other" → 1 job.
        #expect(backend.submitted.map(\.count).sorted() == [3, 3, 4])
        let modelOf = Dictionary(uniqueKeysWithValues: requests.map { ($0.id, $0.model ?? "") })
        #expect(backend.submitted.allSatisfy { ids in Set(ids.map { modelOf[$0] ?? "" }).count == 1 })
        let submittedEvents = events.compactMap { if case .submitted(let j) = $0 { return j.id } else { return nil } }
        #expect(submittedEvents.count == 3)
        #expect(Set(events.items.map(\.id)) == Set(requests.map(\.id)))
        #expect(events.items.count == 10)
        #expect(events.items.allSatisfy { $0.route == .batch && $0.isSuccess })
        let s = events.summary
        #expect(s?.succeeded == 10)
        #expect(s?.jobs.count == 3)
        #expect(s?.usage.batchInputTokens == 100)
        #expect(events.contains { if case .progress = $0 { return true } else { return false } })
    }

    @Test func splitsByBytes() async {
        let clock = ManualClock()
        let backend = FakeBackend()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), limits: .init(maxRequests: 100, maxBytes: 20)), clock: clock)
        // Each encoded item is 6 bytes + newline: two fit in 20 bytes, not three.
        let events = await runNative(processor.processAsync((0..<5).map { chatRequest("abc-\($0)x") }), clock: clock)
        #expect(backend.submitted.map(\.count) == [2, 2, 1])
        #expect(events.items.count == 5)
    }

    @Test func validationFailuresNeverSent() async {
        let clock = ManualClock()
        let backend = FakeBackend()
        let processor = NativeBatchProcessor(backend: backend, clock: clock)
        let events = await runNative(processor.processAsync([chatRequest("a"), chatRequest("a"), chatRequest("b c"), chatRequest("d")]), clock: clock)
        #expect(backend.submitted.flatMap { $0 }.sorted() == ["a", "d"])
        let failed = events.items.filter { !$0.isSuccess }
        #expect(failed.count == 2)
        #expect(failed.allSatisfy { $0.error?.code == .validation && $0.route == .none })
        #expect(failed.contains { $0.error?.field == "custom_id" })
    }

    @Test func failedPollsAreRetriedNotFatal() async {
        let clock = ManualClock()
        let backend = FakeBackend(pollFailures: 3)
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(5)), clock: clock)
        let events = await runNative(processor.processAsync((0..<3).map { chatRequest("p\($0)") }), clock: clock)
        #expect(events.summary?.succeeded == 3)
    }

    @Test func missingAndFailedResultsBecomeErrorItems() async {
        let clock = ManualClock()
        let backend = FakeBackend(dropped: { $0 == "x2" }, failing: { $0 == "x3" })
        let processor = NativeBatchProcessor(backend: backend, clock: clock)
        let events = await runNative(processor.processAsync((0..<5).map { chatRequest("x\($0)") }), clock: clock)
        let byID = Dictionary(uniqueKeysWithValues: events.items.map { ($0.id, $0) })
        #expect(byID.count == 5)
        #expect(byID["x2"]?.error?.code == .invalidResponse)
        #expect(byID["x3"]?.error?.code == .server)
        #expect(events.summary?.succeeded == 3)
    }

    @Test func resultLinesThatNamedNoIDAreNamedInTheMissingItemsErrors() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(dropped: { $0 == "g1" }, garbled: { $0 == "g3" })
        let processor = NativeBatchProcessor(backend: backend, clock: clock)
        let events = await runNative(processor.processAsync((0..<5).map { chatRequest("g\($0)") }), clock: clock)
        let byID = Dictionary(uniqueKeysWithValues: events.items.map { ($0.id, $0) })
        #expect(byID.count == 5)
        for id in ["g1", "g3"] {
            let error = try #require(byID[id]?.error)
            #expect(error.code == .invalidResponse)
            #expect(error.message.contains("1 result line(s) could not be read and named no id (job-1.jsonl:4)"), "\(error.message)")
        }
        #expect(events.summary?.succeeded == 3)
    }

    @Test func expiredJobKeepsPartialResultsAndResubmitsTheRest() async {
        let clock = ManualClock()
        let backend = FakeBackend(ending: { $0 == "job-1" ? .expired : .completed })
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(resubmit: .failedAndExpired(maxRounds: 1)), clock: clock)
        let requests = (0..<6).map { chatRequest("e\($0)") }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        #expect(backend.submitted.count == 2)
        #expect(backend.submitted[1].sorted() == ["e3", "e4", "e5"])
        #expect(events.items.count == 6)
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(events.summary?.retries == 3)

        let clock2 = ManualClock()
        let noRetry = NativeBatchProcessor(backend: FakeBackend(ending: { _ in .expired }), clock: clock2)
        let events2 = await runNative(noRetry.processAsync(requests), clock: clock2)
        #expect(events2.items.filter { $0.error?.code == .expired }.count == 3)
        #expect(events2.items.filter { $0.isSuccess }.count == 3)
    }

    @Test func maxWaitGivesUpNamingTheJobs() async {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 1_000)
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(60), maxWait: .seconds(600)), clock: clock)
        let events = await runNative(processor.processAsync((0..<3).map { chatRequest("w\($0)") }), clock: clock)
        guard case .failed(let error) = events.last else { Issue.record("expected .failed"); return }
        #expect(error.code == .timeout)
        #expect(error.message.contains("job-1"))
        #expect(events.items.count == 3)
        #expect(events.items.allSatisfy { $0.error?.code == .timeout })
        #expect(backend.cancelledJobs.isEmpty)
        #expect(clock.now.offset == .seconds(600))
    }

    @Test(arguments: [true, false])
    func cancellingTheConsumerCancelsRemoteJobsUnlessToldNot(cancels: Bool) async {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 1_000)
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(cancelsRemoteJobsOnCancellation: cancels), clock: clock)
        let end = RunEnd()
        let stream = end.observe(processor.processAsync((0..<3).map { chatRequest("c\($0)") }))
        let consumer = Task {
            for await e in stream { if case .submitted = e { return } }
        }
        await consumer.value  // breaking out of the loop ends the run
        // Wait for the run itself to end (what it does on the way out is the point), then look.
        guard case .failed(let error) = await end.wait() else {
            Issue.record("a run stopped by its consumer should end as failed (cancelled)")
            return
        }
        #expect(error.code == .cancelled)
        #expect(error.message.contains(cancels ? "cancelled jobs: job-1" : "left running jobs: job-1"), "\(error.message)")
        #expect(backend.cancelledJobs == (cancels ? ["job-1"] : []))
    }

    @Test func attachCollectsWithoutResubmitting() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 3, dropped: { $0 == "a2" })
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let (jobs, rejected) = try await processor.submit((0..<4).map { chatRequest("a\($0)") })
        try #require(jobs.count == 1 && rejected.isEmpty)
        let fresh = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let events = await runNative(fresh.attach(jobs.map(\.id), expecting: [jobs[0].id: ["a0", "a1", "a2", "a3"]]), clock: clock)
        #expect(backend.submitted.count == 1)
        #expect(events.items.count == 4)
        #expect(events.items.first { $0.id == "a2" }?.error?.code == .invalidResponse)
        #expect(events.summary?.succeeded == 3)
        let listed = try await fresh.list()
        #expect(listed.map(\.id) == [jobs[0].id])
    }
}
