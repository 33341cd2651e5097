import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKit

@Suite(.timeLimit(.minutes(5)))
struct HybridSpoolTests {
    /// A lazily read input (never an array), metadata on some requests, and a deadline: the rest
    /// runs in real time read back from the spool, with its metadata, and the spool is removed.
    @Test func theRealTimeRestStreamsFromTheSpool() async throws {
        let clock = ManualClock()
        let parent = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        let backend = FakeBackend(limits: .init(maxRequests: 4, maxBytes: 1 << 20), pollsToFinish: 10_000)
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            probe.leave()
            return okResponse("realtime \(r.id)")
        }
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(
                backend: backend, configuration: .init(pollInterval: .seconds(60), spoolDirectory: parent), clock: clock),
            realtime: ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 2), clock: clock),
            deadline: .seconds(3600), clock: clock)
        let input = AsyncStream<BatchRequest> { c in
            for i in 0..<8 {
                var r = chatRequest("s\(i)", text: "question \(i)")
                if i % 2 == 1 { r.metadata = ["row": "\(i)"] }
                c.yield(r)
            }
            c.finish()
        }
        let consumer = Task { await collect(hybrid.processAsync(input)) }
        while clock.now.offset < .seconds(3600) {
            await clock.sleepers(atLeast: 2)
            clock.advanceToNextDeadline()
        }
        let events = await consumer.value
        let items = events.items
        try #require(items.count == 8)
        #expect(Set(items.map(\.id)) == Set((0..<8).map { "s\($0)" }))
        // Two jobs of four; the fake keeps the first half of each cancelled job's results.
        #expect(Set(items.filter { $0.route == .batch }.map(\.id)) == ["s0", "s1", "s4", "s5"])
        #expect(Set(probe.ids) == ["s2", "s3", "s6", "s7"])
        // Metadata survives the trip through the spool, on either route.
        for item in items {
            let i = Int(item.id.dropFirst()) ?? -1
            #expect(item.metadata == (i % 2 == 1 ? ["row": "\(i)"] : [:]), "\(item.id)")
        }
        #expect(events.summary?.succeeded == 8)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? ["?"]).isEmpty)
    }
}
