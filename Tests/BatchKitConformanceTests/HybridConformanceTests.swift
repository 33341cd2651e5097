import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `HybridProcessor` with each provider on both sides, over every wire: the batch is cancelled at
/// the deadline, what finished there is kept, the rest runs in real time, nothing runs twice.
@Suite(.timeLimit(.minutes(5)))
struct HybridConformanceTests {
    @Test(arguments: Provider.allCases, Wire.allCases)
    func deadlineMovesTheRestToRealTime(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(100))) { h in
            // Time stands still until the job exists, and at the deadline until the cancellation
            // has been answered: over every wire it reaches the emulator at 35 s, when exactly 3
            // of the 10 items have finished (whatever the provider's schedule within the 100 s).
            let deadline = ManualClock.Instant(offset: .seconds(35))
            let cancellations = CancellationLog(clock: h.clock)
            let hybrid = HybridProcessor(
                batch: provider.processor(h, transport: cancellations.wrap(h.transport)),
                realtime: ConcurrentProcessor(client: provider.client(h), configuration: .init(maxConcurrency: 4), clock: h.clock),
                deadline: deadline.offset, cancellationGrace: .seconds(30), clock: h.clock)
            let requests = provider.chats(10, prefix: "hy")
            let driver = ClockDriver(h.clock, startsHeld: true)
            driver.hold(at: deadline, until: { !cancellations.answered.isEmpty })
            let log = await driver.log(hybrid.processAsync(requests))
            #expect(log.summary != nil)
            #expect(log.failure == nil)
            #expect(log.duplicateItems == 0)
            // The cancellation went out at the deadline, not later.
            #expect(!driver.heldTooLong, "time was held at the deadline, but no cancellation came")
            #expect(cancellations.sent.first == deadline)
            #expect(cancellations.answered.first == deadline)
            #expect(log.items.count == 10)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            let viaBatch = log.items.values.filter { $0.route == .batch }
            let viaRealtime = log.items.values.filter { $0.route == .realtime }
            #expect(viaBatch.count == 3, "batch: \(viaBatch.count)")
            #expect(viaRealtime.count == 7)
            // Finished in the batch: sent once. Missed the deadline: sent to the batch, then once in real time.
            for r in viaBatch { #expect(h.emulator.sentCount(customID: r.id) == 1) }
            for r in viaRealtime { #expect(h.emulator.sentCount(customID: r.id) == 2) }
            // The job was cancelled remotely.
            let job = try #require(log.submitted.first)
            #expect(try await provider.backend(h).status(of: job.id).status == .cancelled)
        }
    }
}
