import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `--provider azure` end to end: the built executable against the loopback emulator's Azure
/// OpenAI routes (`/openai/deployments/{deployment}/...`, `/openai/files`, `/openai/batches`,
/// the `api-key` header and a required `api-version`).
@Suite(.timeLimit(.minutes(5))) struct CLIAzureTests {
    static let key = "azure-cli-test-key-0001"

    @Test func realtimeUsesEachLinesModelAsTheDeployment() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: Self.key)) { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--provider", "azure", "--base-url", url, "--api-version", "2024-10-21"],
                in: dir.url, environment: ["AZURE_OPENAI_API_KEY": Self.key])
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 12 && Set(ids).count == 12)
            // The emulator serves nothing at the bare resource root: only the Azure paths answer.
            #expect(emulator.sentCounts.count == 12 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
            let models = try Fixtures.outputLines(dir.file("out.jsonl")).compactMap { $0["response"]?["body"]?["model"]?.stringValue }
            #expect(models.count == 12 && models.allSatisfy { $0.hasPrefix("gpt-4o-mini") })
            #expect(!result.stdout.contains(Self.key) && !result.stderr.contains(Self.key))
        }
    }

    @Test func modelOptionNamesTheDeployment() async throws {
        let dir = try TempDir()
        // The lines name a model the emulator does not know: only --model makes the run work.
        try dir.write("in.jsonl", Fixtures.chatLines(3, model: "deployment-does-not-exist"))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: Self.key)) { _, url in
            let arguments = ["run", "in.jsonl", "--provider", "azure", "--base-url", url + "/", "--api-version", "2024-10-21"]
            let wrong = try await CLI.run(
                arguments + ["--output", "wrong.jsonl", "--max-consecutive-failures", "0"], in: dir.url,
                environment: ["AZURE_OPENAI_API_KEY": Self.key])
            #expect(wrong.status == 3, "\(wrong.stderr)")
            let right = try await CLI.run(
                arguments + ["--output", "out.jsonl", "--model", "gpt-4.1-nano"], in: dir.url, environment: ["AZURE_OPENAI_API_KEY": Self.key])
            #expect(right.status == 0, "\(right.stderr)")
            let models = try Fixtures.outputLines(dir.file("out.jsonl")).compactMap { $0["response"]?["body"]?["model"]?.stringValue }
            #expect(models.count == 3 && models.allSatisfy { $0.hasPrefix("gpt-4.1-nano") })
        }
    }

    @Test func nativeRunGoesThroughAzureBatches() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        try await withEmulator(EmulatorConfiguration(requiredAPIKey: Self.key)) { emulator, url in
            let result = try await CLI.run(
                [
                    "run", "in.jsonl", "--output", "out.jsonl", "--provider", "azure", "--mode", "native", "--base-url", url,
                    "--api-version", "2024-10-21", "--model", "gpt-4o-mini", "--poll-interval", "50ms",
                ],
                in: dir.url, environment: ["AZURE_OPENAI_API_KEY": Self.key])
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 20 && Set(ids).count == 20)
            #expect(emulator.sentCounts.count == 20 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
            let jobs = try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))
            #expect(jobs["provider"]?.stringValue == "azure")
            let job = try #require(jobs["native_jobs"]?[0])
            #expect(job["id"]?.stringValue?.hasPrefix("batch_") == true)
            let first = try #require(try Fixtures.outputLines(dir.file("out.jsonl")).first)
            #expect(first["batchkit"]?["route"]?.stringValue == "batch")
            #expect(!result.stdout.contains(Self.key) && !result.stderr.contains(Self.key))
        }
    }

    @Test(arguments: [
        (["--api-version", "2024-10-21"], "--base-url"),
        (["--base-url", "https://example.openai.azure.com"], "--api-version"),
    ])
    func missingAzureOptionIsAUsageError(_ extra: [String], _ named: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--provider", "azure"] + extra, in: dir.url,
            environment: ["AZURE_OPENAI_API_KEY": Self.key])
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.errorLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("--provider azure needs \(named)"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.jsonl").path))
    }

    @Test func missingKeyNamesTheAzureVariable() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let result = try await CLI.run(
            [
                "run", "in.jsonl", "--output", "out.jsonl", "--provider", "azure", "--base-url", "https://example.openai.azure.com",
                "--api-version", "2024-10-21",
            ], in: dir.url, environment: ["OPENAI_API_KEY": "sk-not-this-one"])
        // Like every provider's missing key: an error (1), not a usage mistake.
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.errorLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains("no API key: set AZURE_OPENAI_API_KEY"))
        #expect(!result.stderr.contains("sk-not-this-one"))
    }

    @Test func apiVersionNeedsAzure() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl", "--api-version", "2024-10-21"], in: dir.url)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.errorLines.count == 1)
        #expect(result.stderr.contains("--api-version applies to --provider azure"))
    }
}
