import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// A ``FakeBackend`` whose first result downloads break off after some lines.
final class BreakingDownloadBackend: PassThroughBackend {
    let base: FakeBackend
    /// Lines delivered before each of the first downloads fails.
    let failures: Mutex<[Int]>
    let downloads = Mutex(0)

    init(base: FakeBackend, failAfter: [Int]) {
        self.base = base
        self.failures = Mutex(failAfter)
    }

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
}

@Suite(.timeLimit(.minutes(5)))
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

/// A POST is never sent twice by the transport: a create call the server processed before the
/// connection dropped would otherwise create a second job (found by the chaos suite,
/// openai/hybrid/110: two batches from one create call).
@Suite(.timeLimit(.minutes(5)))
struct NoBlindResendTests {
    @Test func aPOSTThatMeetsAClosedPooledConnectionFailsInsteadOfBeingSentAgain() async throws {
        // Each connection answers one request and drops the next unanswered.
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8), answersPerConnection: 1)
        defer { server.stop() }
        let transport = PlainHTTPTransport()
        let first = try await transport.send(HTTPRequest(method: "POST", url: server.url, body: .data(Data("a".utf8))))
        #expect(String(decoding: first.body, as: UTF8.self) == "ok")
        await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(method: "POST", url: server.url, body: .data(Data("b".utf8))))
        }
        #expect(server.requestsRead == 2, "the second POST was read once, never sent again")
        // With an Idempotency-Key the caller says it is safe: it is sent again on a fresh connection.
        var keyed = HTTPRequest(method: "POST", url: server.url, body: .data(Data("c".utf8)))
        keyed.headers["Idempotency-Key"] = "k-1"
        _ = try await transport.send(keyed)
        let again = try await transport.send(keyed)
        #expect(String(decoding: again.body, as: UTF8.self) == "ok")
    }
}
