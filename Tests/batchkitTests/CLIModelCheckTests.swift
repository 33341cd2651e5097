import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run --mode native|hybrid` asks the provider's models endpoint about the first
/// request's model before it creates a job: a wrong key or an unknown model ends the run at once
/// (exit status 5, nothing submitted); a check that cannot be made never blocks the run.
@Suite(.timeLimit(.minutes(5))) struct CLIModelCheckTests {
    static let key = "sk-cli-test-key-0001"

    @Test(arguments: ["native", "hybrid"])
    func anUnknownModelEndsTheRunBeforeAnyJobIsCreated(_ mode: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(50))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", mode, "--poll-interval", "50ms", "--base-url", url,
                 "--model", "gpt-4o-does-not-exist"], in: dir.url)
            #expect(result.status == 5, "\(result.stderr)")
            #expect(result.stderr.contains("refused the model \"gpt-4o-does-not-exist\" of the first request before any batch job was created"), "\(result.stderr)")
            #expect(result.stderr.contains("Check the model name"))
            #expect(result.stderr.contains("nothing was submitted"))
            #expect(result.stderr.contains("--max-consecutive-failures 0"))
            #expect(emulator.billing.jobs.isEmpty)
            #expect(emulator.modelRequestCount == 0)
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).isEmpty)
        }
    }

    @Test func aWrongKeyEndsTheRunBeforeAnyJobIsCreatedAndIsNeverPrinted() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(50))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: "sk-the-right-key-0001")) { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url], in: dir.url,
                environment: ["OPENAI_API_KEY": "sk-the-wrong-key-0002"])
            #expect(result.status == 5, "\(result.stderr)")
            #expect(result.stderr.contains("Check the API key"), "\(result.stderr)")
            #expect(!result.stderr.contains("sk-the-wrong-key-0002") && !result.stdout.contains("sk-the-wrong-key-0002"))
            #expect(emulator.billing.jobs.isEmpty)
        }
    }

    @Test func aServerErrorFromTheCheckIsAWarningAndTheRunGoesOn() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        let faults = [EmulatorFault(.status(503), on: .endpoint("/v1/models/"))]
        try await withEmulator(EmulatorConfiguration(faults: faults)) { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url], in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("warning: could not check the model \"gpt-4o-mini\""), "\(result.stderr)")
            #expect(emulator.billing.jobs.count == 1)
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 20)
        }
    }

    @Test func aNetworkErrorFromTheCheckIsAWarningAndTheRunGoesOn() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        let faults = [EmulatorFault(.resetConnection, on: .endpoint("/v1/models/"))]
        try await withEmulator(EmulatorConfiguration(faults: faults)) { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url], in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stderr.contains("warning: could not check the model"), "\(result.stderr)")
            #expect(emulator.billing.jobs.count == 1)
        }
    }

    @Test func zeroTurnsTheCheckOffWithTheBreaker() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url,
                 "--model", "gpt-4o-does-not-exist", "--max-consecutive-failures", "0"], in: dir.url)
            // The job is created and every line fails inside it.
            #expect(result.status == 3, "\(result.stderr)")
            #expect(emulator.billing.jobs.count == 1)
            #expect(!result.stderr.contains("refused the model"))
        }
    }
}
