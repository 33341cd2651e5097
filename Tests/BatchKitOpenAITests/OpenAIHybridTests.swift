import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// `HybridProcessor` with OpenAI on both sides: the batch is cancelled at the deadline, what
/// finished is kept, the rest runs through `OpenAIClient`.
@Suite(.timeLimit(.minutes(1))) struct OpenAIHybridTests {
    @Test(arguments: Wire.allCases)
    func deadlineMovesTheRestToRealTime(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            // Time stands still until the job exists, and at the deadline until the cancellation
            // has been answered: over every wire it reaches the emulator at 35 s, when 3 of the 10
            // items have finished (items finish evenly over the first 90 s).
            let deadline = ManualClock.Instant(offset: .seconds(35))
            let cancellations = CancellationLog(clock: h.clock)
            let backend = OpenAIBatchBackend(apiKey: "sk-test-key-123456", baseURL: h.baseURL, transport: cancellations.wrap(h.transport))
            let hybrid = HybridProcessor(
                batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(5), maxPollInterval: .seconds(5)), clock: h.clock),
                realtime: ConcurrentProcessor(client: h.client(), configuration: .init(maxConcurrency: 4), clock: h.clock),
                deadline: deadline.offset, cancellationGrace: .seconds(30), clock: h.clock)
            let requests = (0..<10).map { chat("hy-\($0)", "question \($0)") }
            let driver = ClockDriver(h.clock, startsHeld: true)
            driver.hold(at: deadline, until: { !cancellations.answered.isEmpty })
            let events = await driver.consume(hybrid.processAsync(requests))
            var items: [String: BatchResult] = [:]
            var jobs: [BatchJob] = []
            var completed = false
            for e in events {
                switch e {
                case .item(let r):
                    #expect(items[r.id] == nil, "\(r.id) reported twice")
                    items[r.id] = r
                case .submitted(let j): jobs.append(j)
                case .completed: completed = true
                default: break
                }
            }
            #expect(completed)
            // The cancellation went out at the deadline, not later.
            #expect(!driver.heldTooLong, "time was held at the deadline, but no cancellation came")
            #expect(cancellations.sent.first == deadline)
            #expect(cancellations.answered.first == deadline)
            #expect(items.count == 10)
            #expect(items.values.allSatisfy { $0.isSuccess })
            let viaBatch = items.values.filter { $0.route == .batch }
            let viaRealtime = items.values.filter { $0.route == .realtime }
            #expect(viaBatch.count == 3)
            #expect(viaRealtime.count == 7)
            for r in viaBatch { #expect(h.emulator.sentCount(customID: r.id) == 1) }
            for r in viaRealtime { #expect(h.emulator.sentCount(customID: r.id) == 2) }
            let job = try #require(jobs.first)
            #expect(try await h.backend().status(of: job.id).status == .cancelled)
        }
    }
}
