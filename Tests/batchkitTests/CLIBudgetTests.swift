import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run --max-cost`: requests that could take spending over the budget are not sent and
/// fail as `budget_exceeded`; a rerun with a larger budget and `--retry-failed` runs them.
@Suite(.timeLimit(.minutes(5))) struct CLIBudgetTests {
    @Test func aBudgetStopsSendingAndARerunWithMoreRunsTheRest() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        try await withEmulator { emulator, url in
            // gpt-4o-mini: one request is estimated at a few micro-dollars; $0.00002 pays for a few.
            let first = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "1", "--max-cost", "0.00002"],
                in: dir.url)
            #expect(first.status == 3, "\(first.stderr)")
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.count == 20)
            let refused = lines.filter { $0["error"]?["code"]?.stringValue == "budget_exceeded" }
            let succeeded = lines.filter { $0["response"]?["status_code"]?.intValue == 200 }
            #expect(!refused.isEmpty && !succeeded.isEmpty)
            #expect(refused.count + succeeded.count == 20)
            #expect(emulator.sentCounts.count == succeeded.count, "a refused request is never sent")
            #expect(first.stdout.contains("budget") && first.stdout.contains("of $0.00002"), "\(first.stdout)")
            #expect(first.stdout.contains("not sent"), "\(first.stdout)")

            let second = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--max-cost", "1", "--retry-failed"], in: dir.url)
            #expect(second.status == 0, "\(second.stderr)")
            let after = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(after.count == 20)
            #expect(after.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
            #expect(emulator.sentCounts.count == 20 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    @Test func aBudgetWithAModelOfUnknownPriceIsAnErrorBeforeAnythingIsSent() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(3, model: "house-model-7"))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--max-cost", "5"], in: dir.url)
            #expect(result.status == 1)
            #expect(result.stderr.contains("house-model-7") && result.stderr.contains("--prices"), "\(result.stderr)")
            #expect(emulator.modelRequestCount == 0)
        }
    }
}
