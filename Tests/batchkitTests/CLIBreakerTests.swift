import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `--max-consecutive-failures`: a run whose requests all fail the same way stops, says why and
/// how to go on, and leaves the requests it never started for the rerun.
@Suite(.timeLimit(.minutes(5))) struct CLIBreakerTests {
    static let rightKey = "sk-right-key-0001"
    static let wrongKey = "sk-wrong-key-0002"

    @Test func aWrongKeyStopsTheRunAndTheRerunWithTheRightKeyCompletesEveryIDOnce() async throws {
        let dir = try TempDir()
        let count = 300
        try dir.write("in.jsonl", Fixtures.chatLines(count))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: Self.rightKey)) { emulator, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "4"]
            let first = try await CLI.run(arguments, in: dir.url, environment: ["OPENAI_API_KEY": Self.wrongKey])
            #expect(first.status == 5, "\(first.stderr)")
            // One clear message: what failed, an example, the fix, the override.
            #expect(first.stderr.contains("20 requests in a row failed with authentication errors"), "\(first.stderr)")
            #expect(first.stderr.contains("Example, request \"r"))
            #expect(first.stderr.contains("Check the API key"))
            #expect(first.stderr.contains("--max-consecutive-failures 0"))
            #expect(first.stderr.contains("--retry-failed"))
            #expect(!first.stderr.contains(Self.wrongKey) && !first.stdout.contains(Self.wrongKey))
            #expect(!first.stderr.contains("request(s) failed; their errors are in"))  // not a second message

            // Only started requests are recorded (each a 401); the unstarted ones are not.
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.count >= 20 && lines.count <= 23, "\(lines.count) lines")
            #expect(lines.allSatisfy { $0["response"]?["status_code"]?.intValue == 401 })
            #expect(emulator.modelRequestCount <= 23)

            // Fixed key, same command with --retry-failed: every id exactly once, all succeeded.
            let rerun = try await CLI.run(arguments + ["--retry-failed"], in: dir.url, environment: ["OPENAI_API_KEY": Self.rightKey])
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let after = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(after.count == count)
            #expect(Set(after.compactMap { $0["custom_id"]?.stringValue }) == Set((0..<count).map { "r\($0)" }))
            #expect(after.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
        }
    }

    @Test func zeroTurnsTheBreakerOff() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(60))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: Self.rightKey)) { _, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--max-consecutive-failures", "0"], in: dir.url,
                environment: ["OPENAI_API_KEY": Self.wrongKey])
            #expect(result.status == 3, "\(result.stderr)")
            #expect(try Fixtures.outputLines(dir.file("out.jsonl")).count == 60)
        }
    }
}
