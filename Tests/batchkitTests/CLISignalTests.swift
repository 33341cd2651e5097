import BatchKit
import BatchKitTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `batchkit run` under SIGINT and SIGTERM, as a child process against a loopback emulator on a
/// `ManualClock`: the test decides when answers come, so a signal always lands while requests
/// are in flight or a job runs (no timing guesses), and every wait is bounded.
@Suite("batchkit run: signals", .serialized, .timeLimit(.minutes(5)))
struct CLISignalTests {
    static let environment = ["OPENAI_API_KEY": "sk-cli-test-key-0001"]

    @Test func sigintCancelsRequestsInFlightRecordsNoneOfThemAndExits130() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(latency: .seconds(10)), clock: clock) { emulator, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "4"]
            let child = try CLI.start(arguments, in: dir.url, environment: Self.environment)
            // Four answers come, then four more requests are in flight and never answered.
            await clock.sleepers(atLeast: 4)
            clock.advance(by: .seconds(10))
            await clock.sleepers(atLeast: 4)
            _ = kill(child.pid, SIGINT)
            let result = await child.finish(timeout: .seconds(180))
            #expect(result.status == 130, "\(result.stderr)")
            #expect(result.stderr.contains("stopped by SIGINT"))
            #expect(result.stderr.contains("to resume, run the same command again: batchkit run in.jsonl --output out.jsonl"))
            // What was recorded is whole and successful: no `cancelled` line for the requests cut short.
            let text = String(decoding: try Data(contentsOf: dir.file("out.jsonl")), as: UTF8.self)
            #expect(text.isEmpty || text.hasSuffix("\n"))
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.count <= 4)
            #expect(lines.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 }, "\(text)")

            // The rerun sends the rest and ends with one successful line per id.
            emulator.update { $0.latency = .zero }
            let rerun = try await CLI.run(arguments, in: dir.url, environment: Self.environment)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 12 && Set(ids).count == 12)
            for line in lines {
                let id = try #require(line["custom_id"]?.stringValue)
                #expect(emulator.sentCount(customID: id) == 1, "\(id) was recorded, then sent again")
            }
        }
    }

    @Test(arguments: ["native", "hybrid"])
    func sigtermLeavesTheBatchJobRunningRecordedAndExits143(_ mode: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", mode, "--poll-interval", "50ms", "--base-url", url]
            let child = try CLI.start(arguments, in: dir.url, environment: Self.environment)
            #expect(await child.waitForStderrLine { $0.contains("submitted job") })
            _ = kill(child.pid, SIGTERM)
            let result = await child.finish(timeout: .seconds(180))
            #expect(result.status == 143, "\(result.stderr)")
            let job = try #require(emulator.billing.jobs.first)
            #expect(emulator.billing.jobs.count == 1)
            #expect(!job.cancelled, "a signal must leave the job running")
            #expect(result.stderr.contains("1 batch job(s) left running"))
            #expect(result.stderr.contains(job.id))
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).isEmpty)

            // The rerun re-attaches to the job and creates none.
            clock.advance(by: .seconds(3600))
            let rerun = try await CLI.run(arguments, in: dir.url, environment: Self.environment)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 12)
            #expect(emulator.billing.jobs.count == 1)
            #expect(emulator.billing.paidTwice.isEmpty)
        }
    }

    /// The first signal asks for a graceful stop, which here cannot happen (the run is blocked
    /// reading its input from a FIFO nobody writes); the second ends the process at once with
    /// its own status: 143 for a SIGTERM after a SIGINT (130 would mean the first signal had
    /// exited at once; death by signal, that no handler was installed).
    @Test func aSecondSignalExitsAtOnce() async throws {
        let dir = try TempDir()
        let fifo = dir.file("in.jsonl")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let child = try CLI.start(
            ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", "http://127.0.0.1:9"], in: dir.url,
            environment: Self.environment)
        // Opening the write end returns once the child has opened the FIFO to read it: by then
        // its handlers are installed and it is blocked in the read.
        let path = fifo.path
        let writer = await withCheckedContinuation { (c: CheckedContinuation<Int32, Never>) in
            Thread { c.resume(returning: open(path, O_WRONLY)) }.start()
        }
        #expect(writer >= 0)
        _ = kill(child.pid, SIGINT)
        // The first signal is taken as a request to stop, and the child goes on (blocked).
        #expect(await child.waitForStderrLine { $0.contains("SIGINT received; stopping") })
        _ = kill(child.pid, SIGTERM)
        let result = await child.finish(timeout: .seconds(180))
        if writer >= 0 { _ = close(writer) }
        #expect(result.status == 143, "\(result.stderr)")
        #expect(result.stderr.contains("SIGTERM received again; exiting at once"))
    }
}
