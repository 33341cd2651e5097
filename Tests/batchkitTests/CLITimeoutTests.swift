import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// `--timeout`: a request the server never answers fails at the deadline and is retried, instead
/// of holding its slot for the providers' ten minutes (found by Scripts/proxy-check.py, whose
/// fault proxy black-holes connections).
@Suite(.timeLimit(.minutes(5))) struct CLITimeoutTests {
    /// A server whose first chat call is never answered (held until the test ends); every other
    /// call goes to the emulator.
    final class StallingFront: Sendable {
        let emulator = ProviderEmulator()
        let chatCalls = Atomic<Int>(0)
        let gate: AsyncStream<Void>
        let release: AsyncStream<Void>.Continuation

        init() {
            (gate, release) = AsyncStream<Void>.makeStream()
        }

        func handle(_ request: EmulatorRequest) async -> EmulatorResponse {
            if request.path.hasSuffix("/chat/completions"), chatCalls.add(1, ordering: .sequentiallyConsistent).newValue == 1 {
                // Held until the test ends (or the server cancels it at shutdown).
                for await _ in gate {}
                return .json(503, ["error": .string("released")])
            }
            return await emulator.handle(request)
        }
    }

    @Test func aRequestTheServerNeverAnswersIsRetriedAfterTheTimeout() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let front = StallingFront()
        let server = try await EmulatorServer.start { await front.handle($0) }
        defer { front.release.finish() }
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", server.baseURL.absoluteString, "--timeout", "1s"],
            in: dir.url, timeout: .seconds(120))
        front.release.finish()
        await server.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
        try #require(lines.count == 1)
        #expect(lines[0]["response"]?["status_code"]?.intValue == 200)
        #expect(front.chatCalls.load(ordering: .sequentiallyConsistent) == 2)
    }

    @Test func aTimeoutThatIsNotADurationIsAUsageError() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", "http://127.0.0.1:9", "--timeout", "soon"], in: dir.url)
        #expect(result.status == 2)
        #expect(result.stderr.contains("--timeout"))
    }
}
