import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// A one-way flag shared with the clock driver.
final class OpenAIFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// Consumes a stream while moving the manual clock to each sleeper's deadline. Time stands still
/// until the first `.submitted` event, so a deadline cannot pass while the upload is still on the
/// wire.
func consumeHoldingTime(_ stream: BatchEventStream, clock: ManualClock) async -> [BatchEvent] {
    let done = OpenAIFlag()
    let submitted = OpenAIFlag()
    let driver = Task {
        while !done.isSet {
            if clock.sleeperCount > 0, submitted.isSet { _ = clock.advanceToNextDeadline() }
            await Task.yield()
        }
    }
    var events: [BatchEvent] = []
    for await e in stream {
        if case .submitted = e { submitted.set() }
        events.append(e)
    }
    done.set()
    await driver.value
    return events
}

/// `HybridProcessor` with OpenAI on both sides: the batch is cancelled at the deadline, what
/// finished is kept, the rest runs through `OpenAIClient`.
@Suite struct OpenAIHybridTests {
    @Test(arguments: Wire.allCases)
    func deadlineMovesTheRestToRealTime(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            let hybrid = HybridProcessor(
                batch: NativeBatchProcessor(backend: h.backend(), configuration: .init(pollInterval: .seconds(5), maxPollInterval: .seconds(5)), clock: h.clock),
                realtime: ConcurrentProcessor(client: h.client(), configuration: .init(maxConcurrency: 4), clock: h.clock),
                deadline: .seconds(35), cancellationGrace: .seconds(30), clock: h.clock)
            let requests = (0..<10).map { chat("hy-\($0)", "question \($0)") }
            let events = await consumeHoldingTime(hybrid.processAsync(requests), clock: h.clock)
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
            #expect(items.count == 10)
            #expect(items.values.allSatisfy { $0.isSuccess })
            let viaBatch = items.values.filter { $0.route == .batch }
            let viaRealtime = items.values.filter { $0.route == .realtime }
            // 3 of 10 have finished at the 35 s deadline; over a socket the cancel may land a
            // little later on the manual clock, so a few more can finish in the batch.
            #expect(viaBatch.count >= 3 && viaBatch.count < 10)
            #expect(viaBatch.count + viaRealtime.count == 10)
            for r in viaBatch { #expect(h.emulator.sentCount(customID: r.id) == 1) }
            for r in viaRealtime { #expect(h.emulator.sentCount(customID: r.id) == 2) }
            let job = try #require(jobs.first)
            #expect(try await h.backend().status(of: job.id).status == .cancelled)
        }
    }
}
