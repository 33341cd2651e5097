import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `--mode realtime` over an output that a native run left jobs for. Before, a real-time run never
/// looked at `OUT.jsonl.jobs.json`: the requests of a job still running (or completed, its results
/// not yet collected) were sent again in real time and paid twice.
@Suite(.timeLimit(.minutes(5)))
struct CLIRealtimeAfterNativeTests {
    static let native = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms"]
    static let realtime = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "realtime"]

    @Test func aRealtimeRunSendsNothingANativeJobHoldsRunningOrUncollected() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let first = try await CLI.run(Self.native + ["--deadline", "1s", "--base-url", url], in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            #expect(emulator.sentCounts.count == 12)

            // The job is running: nothing is sent in real time.
            let whileRunning = try await CLI.run(Self.realtime + ["--base-url", url], in: dir.url)
            #expect(whileRunning.status == 4, "\(whileRunning.stderr)")
            #expect(whileRunning.stderr.contains("12 request(s) were not sent in real time"), "\(whileRunning.stderr)")
            #expect(whileRunning.stderr.contains("--mode native"), "\(whileRunning.stderr)")
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "\(emulator.sentCounts)")
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).isEmpty)

            // Completed, results not collected: they are paid for; still nothing in real time.
            clock.advance(by: .seconds(3601))
            let uncollected = try await CLI.run(Self.realtime + ["--base-url", url, "--retry-failed"], in: dir.url)
            #expect(uncollected.status == 4, "\(uncollected.stderr)")
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "\(emulator.sentCounts)")

            // A native rerun collects them; a real-time run afterwards has nothing left to send.
            let collect = try await CLI.run(Self.native + ["--base-url", url], in: dir.url)
            #expect(collect.status == 0, "\(collect.stderr)")
            let after = try await CLI.run(Self.realtime + ["--base-url", url], in: dir.url)
            #expect(after.status == 0, "\(after.stderr)")
            let out = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(out.count == 12 && Set(out).count == 12)
            #expect(emulator.sentCounts.count == 12 && emulator.sentCounts.values.allSatisfy { $0 == 1 }, "\(emulator.sentCounts)")
        }
    }

    /// Failures a completed job delivered are in the output: `--mode realtime --retry-failed`
    /// sends those again (a failed request has no result to pay twice for), and only those.
    @Test func failuresACompletedJobDeliveredMayRunAgainInRealTime() async throws {
        let dir = try TempDir()
        let bad = #"{"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"too long"}],"max_tokens":1000000}}"#
        try dir.write("in.jsonl", Fixtures.chatLines(5) + bad + "\n")
        try await withEmulator(EmulatorConfiguration(batchDuration: .zero)) { emulator, url in
            let first = try await CLI.run(Self.native + ["--base-url", url], in: dir.url)
            #expect(first.status == 3, "\(first.stderr)")
            #expect(emulator.sentCount(customID: "bad") == 1)

            let retry = try await CLI.run(Self.realtime + ["--base-url", url, "--retry-failed"], in: dir.url)
            #expect(retry.status == 3, "\(retry.stderr)")
            #expect(!retry.stderr.contains("not sent in real time"), "\(retry.stderr)")
            #expect(emulator.sentCount(customID: "bad") == 2)
            #expect((0..<5).allSatisfy { emulator.sentCount(customID: "r\($0)") == 1 })
        }
    }
}
