import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run --cache DIR`: a rerun into another output file is answered entirely from the
/// cache — no request reaches the emulator, nothing is spent, every line says route `cache`.
@Suite(.timeLimit(.minutes(5))) struct CLICacheTests {
    @Test(arguments: ["realtime", "native"])
    func aRerunIsAnsweredFromTheCache(_ mode: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(15))
        try await withEmulator { emulator, url in
            let arguments = ["run", "in.jsonl", "--mode", mode, "--base-url", url, "--poll-interval", "50ms", "--cache", "cache"]
            let first = try await CLI.run(arguments + ["--output", "first.jsonl"], in: dir.url)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(emulator.sentCounts.count == 15)
            let sent = emulator.sentCounts
            let calls = emulator.modelRequestCount

            let second = try await CLI.run(arguments + ["--output", "second.jsonl"], in: dir.url)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(emulator.sentCounts == sent, "a request reached the emulator")
            #expect(emulator.modelRequestCount == calls)
            #expect(!second.stderr.contains("submitted job"))
            let lines = try Fixtures.outputLines(dir.file("second.jsonl"))
            #expect(lines.count == 15)
            #expect(lines.allSatisfy { $0["batchkit"]?["route"]?.stringValue == "cache" })
            #expect(lines.allSatisfy { $0["batchkit"]?["cost"]?.doubleValue == 0 })
            #expect(lines.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
            let firstBodies = Dictionary(uniqueKeysWithValues: try Fixtures.outputLines(dir.file("first.jsonl")).map {
                ($0["custom_id"]?.stringValue ?? "", $0["response"]?["body"]?["choices"]?[0]?["message"]?["content"]?.stringValue)
            })
            for line in lines {
                let id = try #require(line["custom_id"]?.stringValue)
                #expect(line["response"]?["body"]?["choices"]?[0]?["message"]?["content"]?.stringValue == firstBodies[id] ?? nil)
            }
            // The report counts them as the cache route, at no cost.
            let report = try await CLI.run(["report", "second.jsonl"], in: dir.url)
            #expect(report.status == 0, "\(report.stderr)")
            #expect(report.stdout.contains("cache 15"), "\(report.stdout)")
        }
    }

    @Test func withoutTheOptionNothingIsCachedAndNoCacheWins() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(4))
        try await withEmulator { emulator, url in
            let base = ["run", "in.jsonl", "--base-url", url]
            let a = try await CLI.run(base + ["--output", "a.jsonl"], in: dir.url)
            #expect(a.status == 0, "\(a.stderr)")
            let b = try await CLI.run(base + ["--output", "b.jsonl"], in: dir.url)
            #expect(b.status == 0)
            #expect(emulator.modelRequestCount == 8)
            // BATCHKIT_CACHE_DIR turns it on; --no-cache off again.
            let env = ["OPENAI_API_KEY": "sk-cli-test-key-0001", "BATCHKIT_CACHE_DIR": dir.file("env-cache").path]
            let c = try await CLI.run(base + ["--output", "c.jsonl"], in: dir.url, environment: env)
            #expect(c.status == 0)
            let d = try await CLI.run(base + ["--output", "d.jsonl"], in: dir.url, environment: env)
            #expect(d.status == 0)
            #expect(emulator.modelRequestCount == 12)
            let e = try await CLI.run(base + ["--output", "e.jsonl", "--no-cache"], in: dir.url, environment: env)
            #expect(e.status == 0)
            #expect(emulator.modelRequestCount == 16)
        }
    }

    @Test func cacheAndNoCacheTogetherIsAUsageError() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(1))
        let result = try await CLI.run(["run", "in.jsonl", "--output", "o.jsonl", "--cache", "c", "--no-cache"], in: dir.url)
        #expect(result.status == 2)
        #expect(result.errorLines.count == 1)
        #expect(result.stderr.contains("--cache and --no-cache exclude each other"))
    }
}
