import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// A ``FakeBackend`` whose first result downloads break off after some lines.
final class BreakingDownloadBackend: BatchBackend {
    let base: FakeBackend
    /// Lines delivered before each of the first downloads fails.
    let failures: Mutex<[Int]>
    let downloads = Mutex(0)

    init(base: FakeBackend, failAfter: [Int]) {
        self.base = base
        self.failures = Mutex(failAfter)
    }

    var provider: String { base.provider }
    var limits: BatchLimits { base.limits }
    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem { try base.encode(request) }
    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata)
    }
    func status(of jobID: String) async throws -> BatchJob { try await base.status(of: jobID) }
    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        downloads.withLock { $0 += 1 }
        let cut = failures.withLock { f -> Int? in f.isEmpty ? nil : f.removeFirst() }
        var delivered = 0
        try await base.results(of: job) { r in
            if let cut, delivered >= cut { throw BatchError(.network, "connection reset while reading the results") }
            delivered += 1
            try await handler(r)
        }
        if let cut, delivered >= cut { throw BatchError(.network, "connection reset at the end of the results") }
    }
    func cancel(jobID: String) async throws -> BatchJob { try await base.cancel(jobID: jobID) }
    func list(limit: Int) async throws -> [BatchJob] { try await base.list(limit: limit) }
    func delete(jobID: String) async throws { try await base.delete(jobID: jobID) }
}

@Suite(.timeLimit(.minutes(1)))
struct NativeRecoveryTests {
    /// Issue 11, bug 1: a download that fails part-way is retried without reporting again what the
    /// failed attempt reported (8 requests gave 15 items before the fix).
    @Test func aDownloadRetryReportsNothingTwice() async {
        let clock = ManualClock()
        let backend = BreakingDownloadBackend(base: FakeBackend(), failAfter: [4, 6])
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let requests = (0..<8).map { chatRequest("d\($0)") }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        #expect(backend.downloads.withLock { $0 } == 3)
        #expect(events.items.count == 8)
        #expect(Set(events.items.map(\.id)) == Set(requests.map(\.id)))
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(events.summary?.succeeded == 8)
        #expect(events.summary?.failed == 0)
    }

    /// A download that never completes reports what it got once, and the rest as failures.
    @Test func aDownloadThatKeepsFailingReportsEachIDOnce() async {
        let clock = ManualClock()
        let backend = BreakingDownloadBackend(base: FakeBackend(), failAfter: [3, 3, 3])
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), downloadAttempts: 3), clock: clock)
        let events = await runNative(processor.processAsync((0..<8).map { chatRequest("k\($0)") }), clock: clock)
        #expect(events.items.count == 8)
        #expect(Set(events.items.map(\.id)).count == 8)
        #expect(events.items.filter { $0.isSuccess }.count == 3)
        #expect(events.items.filter { $0.error?.code == .network }.count == 5)
    }
}
