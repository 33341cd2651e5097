import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// A backend that counts, at each download, the spool files still on disk.
final class SpoolWatchingBackend: PassThroughBackend {
    let base: FakeBackend
    let spoolParent: URL
    let filesAtDownload = Mutex<[Int]>([])

    init(base: FakeBackend, spoolParent: URL) {
        self.base = base
        self.spoolParent = spoolParent
    }

    /// Spool files under `spoolParent` (in the run's directory).
    static func spoolFiles(in parent: URL) -> [URL] {
        let fm = FileManager.default
        let runs = (try? fm.contentsOfDirectory(at: parent, includingPropertiesForKeys: nil)) ?? []
        return runs.flatMap { (try? fm.contentsOfDirectory(at: $0, includingPropertiesForKeys: nil)) ?? [] }
    }

    func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        let count = Self.spoolFiles(in: spoolParent).count
        filesAtDownload.withLock { $0.append(count) }
        return try await base.downloadResults(of: job, handler: handler)
    }
}

/// A fresh empty directory for one test.
func scratchDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-test-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite(.timeLimit(.minutes(5)))
struct NativeSpoolTests {
    @Test func eachChunkIsSpooledAndRemovedOnceItsResultsAreIn() async throws {
        let clock = ManualClock()
        let parent = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        let backend = SpoolWatchingBackend(base: FakeBackend(limits: .init(maxRequests: 3, maxBytes: 1 << 20)), spoolParent: parent)
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), spoolDirectory: parent), clock: clock)
        let events = await runNative(processor.processAsync((0..<9).map { chatRequest("s\($0)") }), clock: clock)
        #expect(events.items.count == 9)
        #expect(events.summary?.succeeded == 9)
        // Three chunks were spooled; each download finds one file fewer (the previous job's
        // results are in, its file is gone).
        #expect(backend.filesAtDownload.withLock { $0 } == [3, 2, 1])
        // Nothing is left: not the files, not the run's directory.
        #expect(SpoolWatchingBackend.spoolFiles(in: parent).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? ["?"]).isEmpty)
    }

    @Test func aFullDiskStopsSubmissionWithAClearErrorAndLosesNothingFinished() async throws {
        let clock = ManualClock()
        let parent = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        let backend = FakeBackend(limits: .init(maxRequests: 2, maxBytes: 1 << 20))
        var configuration = NativeBatchProcessor<ManualClock>.Configuration(pollInterval: .seconds(1), spoolDirectory: parent)
        // Each chunk is written at once when it is full; the third write finds the disk full.
        let writes = Mutex(0)
        configuration.spoolWrite = { handle, bytes in
            let n = writes.withLock { w in
                w += 1
                return w
            }
            if n >= 3 { throw POSIXError(.ENOSPC) }
            try handle.write(contentsOf: bytes)
        }
        let processor = NativeBatchProcessor(backend: backend, configuration: configuration, clock: clock)
        let events = await runNative(processor.processAsync((0..<10).map { chatRequest("d\($0)") }), clock: clock)
        // The two jobs created before the failure are collected in full.
        #expect(backend.submitted == [["d0", "d1"], ["d2", "d3"]])
        #expect(events.items.map(\.id).sorted() == ["d0", "d1", "d2", "d3"])
        #expect(events.items.allSatisfy { $0.isSuccess })
        // The run ends failed, saying what happened and what to do.
        let failure = events.compactMap { if case .failed(let e) = $0 { return e } else { return nil } }
        try #require(failure.count == 1)
        #expect(failure[0].code == .io)
        #expect(failure[0].message.contains("disk"))
        #expect(failure[0].message.contains("rerun"))
        #expect(SpoolWatchingBackend.spoolFiles(in: parent).isEmpty)
    }

    @Test func submitTakesAnAsyncSequence() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 4, maxBytes: 1 << 20))
        let processor = NativeBatchProcessor(backend: backend, clock: clock)
        let requests = AsyncStream<BatchRequest> { c in
            for i in 0..<10 { c.yield(chatRequest("q\(i)")) }
            c.yield(chatRequest("q3"))  // a duplicate: rejected, never sent
            c.finish()
        }
        let (jobs, rejected) = try await processor.submit(requests)
        #expect(jobs.count == 3)
        #expect(backend.submitted.map(\.count) == [4, 4, 2])
        #expect(backend.submitted.flatMap { $0 } == (0..<10).map { "q\($0)" })
        try #require(rejected.count == 1)
        #expect(rejected[0].id == "q3" && rejected[0].error?.code == .validation)
    }

    @Test func limitsHoldAtScale() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 1_000, maxBytes: 1 << 20), pollsToFinish: 1)
        // 10,000 requests; at most 700 per job and 4,000 bytes (ids of 5-6 bytes + newline).
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), limits: .init(maxRequests: 700, maxBytes: 4_000)), clock: clock)
        let events = await runNative(processor.processAsync((0..<10_000).map { chatRequest("L\($0)") }), clock: clock)
        let jobs = backend.submitted
        #expect(jobs.allSatisfy { $0.count <= 700 })
        #expect(jobs.allSatisfy { $0.reduce(0) { $0 + $1.utf8.count + 1 } <= 4_000 })
        // Full jobs are filled to the byte limit: no job but the last could have taken the next item.
        for (job, next) in zip(jobs, jobs.dropFirst()) {
            let bytes = job.reduce(0) { $0 + $1.utf8.count + 1 }
            #expect(job.count == 700 || bytes + (next.first?.utf8.count ?? 0) + 1 > 4_000)
        }
        #expect(jobs.flatMap { $0 } == (0..<10_000).map { "L\($0)" })
        #expect(events.items.count == 10_000)
        #expect(events.summary?.succeeded == 10_000)
    }

    @Test func resubmissionReadsTheItemsBackFromTheSpool() async throws {
        let clock = ManualClock()
        let parent = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        // Ids with "x" fail (retryable) in their first job only: the resubmitted job succeeds.
        let firstJobs = Mutex(Set<String>())
        let backend = FakeBackend(limits: .init(maxRequests: 100, maxBytes: 1 << 20), failing: { id in
            firstJobs.withLock { $0.insert(id).inserted } && id.contains("x")
        })
        let processor = NativeBatchProcessor(
            backend: backend,
            configuration: .init(pollInterval: .seconds(1), resubmit: .failedAndExpired(maxRounds: 1), spoolDirectory: parent), clock: clock)
        let requests = ["a", "bx", "c", "dx"].map { chatRequest($0) }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        #expect(backend.submitted == [["a", "bx", "c", "dx"], ["bx", "dx"]])
        #expect(events.items.count == 4)
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(SpoolWatchingBackend.spoolFiles(in: parent).isEmpty)
    }

    @Test func spoolChunkerKeepsGroupsApartAndWithinLimits() throws {
        let parent = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        let c = SpoolChunker(limits: .init(maxRequests: 2, maxBytes: 1000), storage: SpoolStorage(directory: parent), directory: parent)
        var full: [SpooledChunk] = []
        for (id, g) in [("1", "a"), ("2", "b"), ("3", "a"), ("4", "a"), ("5", "b")] {
            if let f = try c.add(EncodedBatchItem(id: id, data: Data("x\(id)".utf8), groupKey: g, metadata: id == "3" ? ["k": "v"] : [:])) {
                full.append(f)
            }
        }
        full += try c.drain()
        #expect(full.map { Array($0.ids) }.sorted { $0[0] < $1[0] } == [["1", "3"], ["2", "5"], ["4"]])
        let first = try #require(full.first { $0.ids.first == "1" })
        let text = try String(contentsOf: first.file, encoding: .utf8)
        #expect(text == "x1\nx3\n")
        #expect(first.bytes == 6)
        #expect(first.metadata == [1: ["k": "v"]])
    }
}
