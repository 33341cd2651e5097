import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKit

/// Issue 12: a hybrid run keeps its pending ids in ``PendingIDs`` (exact even when keys collide)
/// and does not read a job again after the deadline when all of its items already arrived.
@Suite(.timeLimit(.minutes(5)))
struct HybridPendingTests {

    func run(_ stream: BatchEventStream, clock: ManualClock, until: Duration) async -> [BatchEvent] {
        let consumer = Task { await collect(stream) }
        while clock.now.offset < until {
            await clock.sleepers(atLeast: 2)
            clock.advanceToNextDeadline()
        }
        return await consumer.value
    }

    /// Hashes that make every id share one key, or a few keys: with a book that took one id for
    /// another, a result would be dropped or a request sent in real time after its batch result.
    static let collidingHashes: [@Sendable (String) -> UInt64] = [
        { _ in 0 },
        { id in UInt64(id.utf8.count % 3) << 40 },
        FingerprintSet.fingerprint,
    ]

    @Test(arguments: 0..<3)
    func collidingKeysLoseNothingAndSendNothingTwice(hashIndex: Int) async throws {
        let clock = ManualClock()
        // Never finishes on its own: at the deadline each job is cancelled and keeps the first
        // half of its results.
        let backend = FakeBackend(limits: .init(maxRequests: 4, maxBytes: 1 << 20), pollsToFinish: 10_000)
        let probe = Probe()
        var hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        hybrid.idHash = Self.collidingHashes[hashIndex]
        let ids = PendingIDsTests.ids(16, seed: 40 + UInt64(hashIndex))
        let events = await run(hybrid.processAsync(ids.map { chatRequest($0) }), clock: clock, until: .seconds(3600))
        let items = events.items
        try #require(items.count == ids.count)
        #expect(Set(items.map(\.id)) == Set(ids))
        let jobs = backend.submitted
        try #require(jobs.count == 4)
        let fromBatch = Set(jobs.flatMap { $0.prefix(2) })
        #expect(Set(items.filter { $0.route == .batch }.map(\.id)) == fromBatch)
        // Exactly the rest ran in real time, each once.
        #expect(probe.ids.sorted() == Set(ids).subtracting(fromBatch).sorted())
        #expect(probe.calls == ids.count - fromBatch.count)
        #expect(items.allSatisfy { $0.isSuccess })
        #expect(events.summary?.succeeded == ids.count)
    }

    /// Before the change the grace collector read every job again, job-1's 4 results included
    /// (3 downloads, and a `Set<String>` of its ids).
    @Test func aJobWhoseItemsAllArrivedIsNotReadAgainAfterTheDeadline() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(
            limits: .init(maxRequests: 4, maxBytes: 1 << 20), pollsToFinish: 3, ending: { $0 == "job-1" ? .completed : .inProgress })
        let probe = Probe()
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: realtime(probe, clock: clock), deadline: .seconds(3600), clock: clock)
        let requests = (0..<8).map { chatRequest("d\($0)") }
        let events = await run(hybrid.processAsync(requests), clock: clock, until: .seconds(3600))
        #expect(events.items.count == 8)
        #expect(Set(events.items.map(\.id)) == Set(requests.map(\.id)))
        // job-1 completed and was read in the batch phase; job-2 was cancelled at the deadline
        // and read once after it, keeping d4 and d5.
        #expect(backend.state.withLock { $0.downloads } == 2)
        #expect(Set(events.items.filter { $0.route == .batch }.map(\.id)) == ["d0", "d1", "d2", "d3", "d4", "d5"])
        #expect(Set(probe.ids) == ["d6", "d7"])
        #expect(probe.calls == 2)
    }

    /// The real-time phase reads only accepted (unique) ids from the spool: it is told not to
    /// check them again, so it keeps no set of ids, even when the caller asked for `.always`.
    @Test func theRealTimePhaseKeepsNoIDs() {
        let clock = ManualClock()
        let client = ClosureClient { _ in okResponse() }
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: FakeBackend(), clock: clock),
            realtime: ConcurrentProcessor(client: client, configuration: .init(duplicateIDCheck: .always), clock: clock),
            deadline: .seconds(60), clock: clock)
        #expect(hybrid.realtime(within: nil).configuration.duplicateIDCheck == .never)
        let budgeted = hybrid.realtime(within: HybridBudget(limit: 5, prices: .defaults))
        #expect(budgeted.configuration.duplicateIDCheck == .never)
        #expect(budgeted.configuration.maxCost == 5)
    }

    /// The accepted ids go to their own file and come back in order (lengths over one LEB128
    /// byte, an id longer than a read piece); a file cut inside an id throws.
    @Test func theIDsFileGivesBackEveryAcceptedIDInOrder() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try RequestSpoolWriter(storage: SpoolStorage(directory: dir), directory: dir)
        let ids = PendingIDsTests.ids(20_000, seed: 5) + [String(repeating: "x", count: 300), "ü", String(repeating: "y", count: 70_000), "z"]
        for id in ids { try writer.append(chatRequest(id)) }
        try writer.finish()
        var back: [String] = []
        let n = try RequestSpoolWriter.forEachID(in: writer.idsFile) { back.append($0) }
        #expect(n == ids.count)
        #expect(back == ids)
        let data = try Data(contentsOf: writer.idsFile)
        try data.prefix(data.count - 1).write(to: writer.idsFile)
        #expect(throws: BatchError.self) { _ = try RequestSpoolWriter.forEachID(in: writer.idsFile) { _ in } }
    }

    /// Whether the ids file reads back (pending ids, every key colliding) or not (cut: the book
    /// records reported ids as strings), each accepted id is pending until its first result, which
    /// alone is reported.
    @Test(arguments: [false, true])
    func theBookReportsEachAcceptedIDOnce(idsFileCut: Bool) async throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try RequestSpoolWriter(storage: SpoolStorage(directory: dir), directory: dir)
        let book = HybridBook(priceTable: nil, hash: { _ in 0 })
        let ids = PendingIDsTests.ids(50, seed: 8)
        for id in ids {
            let r = chatRequest(id)
            try writer.append(r)
            book.accept(r)
        }
        try writer.finish()
        if idsFileCut {
            let data = try Data(contentsOf: writer.idsFile)
            try data.prefix(data.count - 1).write(to: writer.idsFile)
        }
        book.loadPending(fromIDsFile: writer.idsFile)
        #expect(book.pendingCount == 50)
        #expect(!ids.contains { book.isFinished($0) }, "nothing is finished before a result")
        let results = (ids.prefix(30) + ids.prefix(10)).map { BatchResult(id: $0, outcome: .success(okResponse()), attempts: 1, route: .batch) }
        let events = await collect(BatchEventStream(bufferSize: 8) { sink in
            for r in results { _ = await book.report(r, sink: sink) }
            return .completed(book.summary(duration: .zero))
        })
        #expect(events.items.map(\.id) == Array(ids.prefix(30)))
        #expect(book.pendingCount == 20)
        #expect(ids.prefix(30).allSatisfy { book.isFinished($0) })
        #expect(!ids.dropFirst(30).contains { book.isFinished($0) })
    }
}
