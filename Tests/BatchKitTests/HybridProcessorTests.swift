import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

@Suite(.timeLimit(.minutes(5)))
struct HybridProcessorTests {

    /// Runs the stream in a task while the test moves time: whenever `sleepers` tasks sleep (the
    /// deadline timer and the poll timer), it jumps to the next deadline, until `until`.
    func run(_ stream: BatchEventStream, clock: ManualClock, sleepers: Int, until: Duration) async -> [BatchEvent] {
        let consumer = Task { await collect(stream) }
        while clock.now.offset < until {
            await clock.sleepers(atLeast: sleepers)
            clock.advanceToNextDeadline()
        }
        return await consumer.value
    }

    @Test func deadlineCancelsTheBatchKeepsFinishedResultsAndRunsTheRestInRealTime() async {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 10_000)  // never finishes on its own
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        let requests = (0..<8).map { chatRequest("h\($0)") }
        let events = await run(hybrid.processAsync(requests), clock: clock, sleepers: 2, until: .seconds(3600))
        #expect(clock.now.offset == .seconds(3600))
        #expect(backend.cancelledJobs.contains("job-1"))
        let items = events.items
        #expect(items.count == 8)
        #expect(Set(items.map(\.id)) == Set(requests.map(\.id)))
        // The fake keeps the first half of a cancelled job's results: those came from the batch...
        let fromBatch = Set(items.filter { $0.route == .batch }.map(\.id))
        #expect(fromBatch == ["h0", "h1", "h2", "h3"])
        // ...and only the rest was sent in real time.
        #expect(Set(probe.ids) == ["h4", "h5", "h6", "h7"])
        #expect(probe.calls == 4)
        #expect(items.allSatisfy { $0.isSuccess })
        #expect(events.summary?.succeeded == 8)
        #expect(events.summary?.jobs.map(\.id) == ["job-1"])
        #expect(events.terminalCount == 1)
    }

    /// Found by Scripts/proxy-check.py (openai/hybrid over PlainHTTPTransport, truncated answers,
    /// seed 11): a chunk whose upload kept failing was tried again past a 2 s hybrid deadline,
    /// for 40 s, before its requests ran in real time. No create attempt starts after the
    /// deadline now: the failing chunk goes to real time by then.
    @Test func aChunkWhoseJobCannotBeCreatedByTheDeadlineRunsInRealTime() async {
        let clock = ManualClock()
        let backend = FailingUploadBackend()
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(5), clock: clock)
        let requests = (0..<4).map { chatRequest("u\($0)") }
        let events = await runNative(hybrid.processAsync(requests), clock: clock)
        // An attempt at 0 s; after the 2 s back-off the job it may have made is looked for until
        // the deadline (a listing can lag behind creation), and no attempt starts after it
        // (before the fix: all 4 attempts, the last at 14 s; before the listing-lag wait of
        // NativeRun.create: a second attempt at 2 s).
        #expect(backend.attempts == 1)
        #expect(clock.now.offset <= .seconds(5))
        #expect(Set(probe.ids) == Set(requests.map(\.id)))
        #expect(events.items.count == 4)
        #expect(events.items.allSatisfy { $0.isSuccess && $0.route == .realtime })
        #expect(events.terminalCount == 1)
    }

    /// The provider does not answer status reads for 10 s after the cancel at the deadline. Before,
    /// the collector read each job 5 times at once, gave up, and every request of the job ran in
    /// real time: h0–h3, which the cancelled job had run, were paid twice (8 real-time calls).
    /// Now the reads back off on the clock (1, 2, 4, 8 s) and the fifth, 15 s after the cancel,
    /// finds the job: only h4–h7 run in real time.
    @Test func aStatusOutageRightAfterTheCancelDoesNotSendWhatTheJobRanToRealTime() async {
        let clock = ManualClock()
        let backend = OutageAfterCancelBackend(clock: clock, outage: .seconds(10))
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        let requests = (0..<8).map { chatRequest("h\($0)") }
        let events = await runNative(hybrid.processAsync(requests), clock: clock)
        #expect(Set(backend.base.cancelledJobs) == ["job-1"])
        #expect(backend.failedReads == 4, "reads at 0, 1, 3 and 7 s after the cancel fail; the one at 15 s is answered")
        #expect(clock.now.offset >= .seconds(3615) && clock.now.offset < .seconds(3630))
        #expect(Set(events.items.filter { $0.route == .batch }.map(\.id)) == ["h0", "h1", "h2", "h3"])
        #expect(Set(probe.ids) == ["h4", "h5", "h6", "h7"])
        #expect(probe.calls == 4)
        #expect(events.items.count == 8)
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(events.terminalCount == 1)
    }

    /// The provider does not answer status reads at all after the cancel: the job may have run
    /// any of its requests (h0–h3 here), so none is sent in real time (before: all 8 were, and
    /// h0–h3 paid twice). Each fails, saying why and that the job can be read later; the run
    /// still ends, 15 s after the deadline.
    @Test func aJobThatCannotBeReadAfterTheCancelSendsNothingToRealTime() async throws {
        let clock = ManualClock()
        let backend = OutageAfterCancelBackend(clock: clock, outage: .seconds(86_400))
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        let requests = (0..<8).map { chatRequest("h\($0)") }
        let events = await runNative(hybrid.processAsync(requests), clock: clock)
        #expect(probe.calls == 0)
        #expect(backend.failedReads == 5)
        #expect(clock.now.offset < .seconds(3630))
        let items = events.items
        try #require(items.count == 8)
        #expect(Set(items.map(\.id)) == Set(requests.map(\.id)))
        #expect(items.allSatisfy { !$0.isSuccess && $0.jobID == "job-1" && $0.error?.isRetryable == false })
        #expect(items.allSatisfy { $0.error?.message.contains("it may have run this request") == true })
        #expect(events.terminalCount == 1)
    }

    @Test func finishedBatchNeedsNoRealTime() async {
        let clock = ManualClock()
        // Attaching reads the job once, the first poll is the second read: the third ends it.
        let backend = FakeBackend(pollsToFinish: 3)
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        // One poll interval: the job ends at its second poll, long before the deadline.
        let events = await run(hybrid.processAsync((0..<5).map { chatRequest("f\($0)") }), clock: clock, sleepers: 2, until: .seconds(60))
        #expect(events.items.count == 5)
        #expect(events.items.allSatisfy { $0.route == .batch })
        #expect(probe.calls == 0)
        #expect(backend.cancelledJobs.isEmpty)
        #expect(clock.now.offset == .seconds(60))
    }

    @Test func expiredItemsRunInRealTimeWithoutWaitingForTheDeadline() async {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 3, ending: { _ in .expired }, failing: { $0 == "x1" })
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(86_400), clock: clock)
        let events = await run(hybrid.processAsync((0..<6).map { chatRequest("x\($0)") }), clock: clock, sleepers: 2, until: .seconds(60))
        #expect(events.items.count == 6)
        // x0 and x2 finished in the batch; x1 failed there with a retryable error; x3–x5 expired.
        #expect(Set(probe.ids) == ["x1", "x3", "x4", "x5"])
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(clock.now.offset == .seconds(60))
    }
}

@Suite(.timeLimit(.minutes(5)))
struct HybridFallbackTests {
    /// Issue 11, bug 3: the items of a job the provider ended `failed` run in real time, once
    /// (before the fix they were final failures).
    @Test(arguments: [BatchJob.Status.failed, .expired, .cancelled])
    func itemsOfAJobThatEndedBadlyRunInRealTimeOnce(ending: BatchJob.Status) async {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 3, ending: { _ in ending })
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            probe.leave()
            return okResponse("realtime \(r.id)")
        }
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 4), clock: clock),
            deadline: .seconds(86_400), clock: clock)
        let requests = (0..<6).map { chatRequest("b\($0)") }
        let consumer = Task { await collect(hybrid.processAsync(requests)) }
        while clock.now.offset < .seconds(60) {
            await clock.sleepers(atLeast: 2)
            clock.advanceToNextDeadline()
        }
        let events = await consumer.value
        #expect(events.items.count == 6)
        #expect(Set(events.items.map(\.id)) == Set(requests.map(\.id)))
        #expect(events.items.allSatisfy { $0.isSuccess })
        // The fake keeps the first half of a job that did not complete: b0–b2 came from the batch.
        #expect(Set(probe.ids) == ["b3", "b4", "b5"])
        #expect(probe.calls == 3)
    }
}

/// A backend whose every job creation fails at the upload, retryably, before anything exists.
final class FailingUploadBackend: PassThroughBackend {
    let base = FakeBackend()
    private let count = Mutex(0)
    var attempts: Int { count.withLock { $0 } }

    func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent, uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        count.withLock { $0 += 1 }
        throw BatchError(.network, "the upload stalled")
    }
}

/// A backend whose status reads fail with a 503 from the first cancel until `outage` later on
/// the clock (a provider briefly unavailable right after the hybrid deadline).
final class OutageAfterCancelBackend: PassThroughBackend {
    let base = FakeBackend(pollsToFinish: 10_000)  // never finishes on its own
    let clock: ManualClock
    let outage: Duration
    private let state = Mutex<(end: ManualClock.Instant?, failedReads: Int)>((nil, 0))
    var failedReads: Int { state.withLock { $0.failedReads } }

    init(clock: ManualClock, outage: Duration) {
        self.clock = clock
        self.outage = outage
    }

    func cancel(jobID: String) async throws -> BatchJob {
        let end = clock.now.advanced(by: outage)
        state.withLock { if $0.end == nil { $0.end = end } }
        return try await base.cancel(jobID: jobID)
    }

    func status(of jobID: String) async throws -> BatchJob {
        let now = clock.now
        let failing = state.withLock { s -> Bool in
            guard let end = s.end, now < end else { return false }
            s.failedReads += 1
            return true
        }
        if failing { throw BatchError(.server, "the service is unavailable", httpStatus: 503) }
        return try await base.status(of: jobID)
    }
}
