import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// Starts a loopback emulator for the body and shuts it down afterwards.
func withEmulator<T>(
    _ configuration: EmulatorConfiguration = .init(), clock: ManualClock? = nil,
    _ body: (ProviderEmulator, String) async throws -> T
) async throws -> T {
    let emulator = clock.map { ProviderEmulator(configuration: configuration, clock: $0) } ?? ProviderEmulator(configuration: configuration)
    let server = try await EmulatorServer.start(emulator: emulator)
    do {
        let result = try await body(emulator, server.baseURL.absoluteString)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// `batchkit run` and the job commands, end to end: the built executable as a child process
/// against a loopback `EmulatorServer` in the test process.
@Suite(.timeLimit(.minutes(5))) struct CLIRunTests {
    static let key = "sk-cli-test-key-0001"

    @Test func realtimeRunWritesEveryIDOnceAndNeverPrintsTheKey() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(40))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url], in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 40)
            #expect(Set(ids) == Set((0..<40).map { "r\($0)" }))
            #expect(emulator.sentCounts.count == 40)
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 })
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
            #expect(result.stdout.contains("succeeded") && result.stdout.contains("40"))
            #expect(!result.stdout.contains(Self.key) && !result.stderr.contains(Self.key))

            // A rerun of the same command sends nothing.
            let again = try await CLI.run(["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url], in: dir.url)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("skipped"))
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 40)
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    @Test func failedRequestsExitThreeAndRetryFailedRunsOnlyThem() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        // The first three chat calls are rejected with a non-retryable 400.
        let faults = [EmulatorFault(.status(400), on: .endpoint("/v1/chat/completions"), firstTimes: 3)]
        try await withEmulator(EmulatorConfiguration(faults: faults)) { emulator, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "1"]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 3, "\(first.stderr)")
            #expect(first.stderr.contains("3 request(s) failed"))
            let failed = try Fixtures.outputLines(dir.file("out.jsonl"))
                .filter { $0["response"]?["status_code"]?.intValue == 400 }.compactMap { $0["custom_id"]?.stringValue }
            #expect(failed.count == 3)
            let succeeded = Set((0..<20).map { "r\($0)" }).subtracting(failed)

            // A plain rerun keeps the failures (nothing is sent), and says so with exit 3: exit 0
            // means every request succeeded (it said 0, found by Scripts/proxy-check.py, where a
            // rerun after an exit 1 ended "successfully" with 24 failed lines).
            let calls = emulator.modelRequestCount
            let plain = try await CLI.run(arguments, in: dir.url)
            #expect(plain.status == 3, "\(plain.stderr)")
            #expect(plain.stderr.contains("3 request(s) failed in an earlier run"))
            #expect(emulator.modelRequestCount == calls)

            // --retry-failed sends only the failed ids, and leaves one line per id.
            let retry = try await CLI.run(arguments + ["--retry-failed"], in: dir.url)
            #expect(retry.status == 0, "\(retry.stderr)")
            #expect(emulator.modelRequestCount == calls + 3)
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.count == 20)
            #expect(Set(lines.compactMap { $0["custom_id"]?.stringValue }).count == 20)
            #expect(lines.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
            for id in succeeded { #expect(emulator.sentCount(customID: id) == 1, "\(id)") }
        }
    }

    @Test(arguments: [
        ("anthropic", "realtime", "claude-haiku-4-5"), ("anthropic", "native", "claude-haiku-4-5"),
        ("gemini", "realtime", "gemini-2.5-flash"), ("gemini", "native", "gemini-2.5-flash"),
    ])
    func otherProvidersTranslateTheOpenAILines(_ provider: String, _ mode: String, _ model: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                [
                    "run", "in.jsonl", "--output", "out.jsonl", "--provider", provider, "--mode", mode, "--model", model,
                    "--poll-interval", "50ms", "--base-url", url,
                ],
                in: dir.url, environment: ["ANTHROPIC_API_KEY": "ak-test-0001", "GEMINI_API_KEY": "gk-test-0001"])
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 12 && Set(ids).count == 12)
            #expect(emulator.sentCounts.count == 12 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
            #expect(!result.stdout.contains("ak-test-0001") && !result.stderr.contains("gk-test-0001"))
        }
    }

    @Test func modelOverrideReachesTheServer() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(3))
        try await withEmulator { _, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--model", "gpt-4.1-nano"], in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            let models = try Fixtures.outputLines(dir.file("out.jsonl")).compactMap { $0["response"]?["body"]?["model"]?.stringValue }
            #expect(models.count == 3)
            #expect(models.allSatisfy { $0.hasPrefix("gpt-4.1-nano") })
        }
    }

    @Test func nativeRunSubmitsOnceAndKeepsTheJobIDs() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(30))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url],
                in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 30 && Set(ids).count == 30)
            #expect(emulator.sentCounts.count == 30 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
            let jobs = try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))
            let job = try #require(jobs["native_jobs"]?[0])
            #expect(job["id"]?.stringValue?.hasPrefix("batch_") == true)
            #expect(job["count"]?.intValue == 30 && job["custom_ids"] == nil)
            #expect(jobs["provider"]?.stringValue == "openai" && jobs["format"]?.intValue == 3)
            // The job ended with every result in: its ids file is gone, the job stays, collected.
            #expect(job["ids_file"]?.stringValue?.hasSuffix(".ids") == true && job["collected"]?.boolValue == true)
            #expect(!FileManager.default.fileExists(atPath: dir.file("out.jsonl.jobs").path))
            // Batch lines carry the batch route, so the cost is the discounted one.
            let first = try #require(try Fixtures.outputLines(dir.file("out.jsonl")).first)
            #expect(first["batchkit"]?["route"]?.stringValue == "batch")
        }
    }

    @Test func runKilledWithSIGKILLResumesWithoutResendingFinishedIDs() async throws {
        let dir = try TempDir()
        let total = 120
        try dir.write("in.jsonl", Fixtures.chatLines(total))
        // Every answer waits 10 s on a manual clock: the test lets a dozen through, then holds the
        // rest, so the kill always lands mid-run however slowly this process is scheduled (with a
        // real 40 ms latency, a starved test process once saw the run finish before its kill).
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(latency: .seconds(10)), clock: clock) { emulator, url in
            let arguments = [
                "run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "2", "--progress-interval", "1ms",
            ]
            let child = try CLI.start(arguments, in: dir.url)
            for _ in 0..<12 {
                await clock.sleepers(atLeast: 1)
                clock.advance(by: .seconds(10))
            }
            // Progress lines read "progress: N/120 (…)": wait until at least 10 are done.
            let reached = await child.waitForStderrLine { line in
                guard line.hasPrefix("progress: "), let n = Int(line.dropFirst(10).prefix { $0.isNumber }) else { return false }
                return n >= 10
            }
            #expect(reached, "the run never reported 10 finished requests")
            child.kill9()
            let killed = await child.finish()
            #expect(killed.status != 0)

            let before = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(before.count >= 10)
            #expect(before.count < total, "the run finished before it was killed; nothing to resume")
            let finished = Set(before)
            #expect(finished.allSatisfy { emulator.sentCount(customID: $0) == 1 })

            let driver = clock.drive()  // the rerun's answers come as soon as they are asked for
            let rerun = try await CLI.run(arguments, in: dir.url)
            driver.cancel()
            #expect(rerun.status == 0, "\(rerun.stderr)")
            let after = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(after.count == total, "every id exactly once")
            #expect(Set(after) == Set((0..<total).map { "r\($0)" }))
            // Finished ids were not sent again; the others were sent at least once.
            for id in finished { #expect(emulator.sentCount(customID: id) == 1, "\(id) was sent again") }
            #expect(emulator.sentCounts.count == total)
        }
    }

    @Test func nativeRerunReattachesInsteadOfResubmitting() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(25))
        let clock = ManualClock()
        // Batches take an hour of the emulator's (manual) clock: the first run cannot finish.
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url]
            let child = try CLI.start(arguments, in: dir.url)
            let submitted = await child.waitForStderrLine { $0.contains("submitted job batch_") }
            #expect(submitted)
            child.kill9()
            _ = await child.finish()
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).isEmpty)
            #expect(emulator.sentCounts.count == 25)

            clock.advance(by: .seconds(3601))
            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("re-attaching to 1 job"))
            #expect(!rerun.stderr.contains("submitted job"))
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 25 && Set(ids).count == 25)
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "no id was submitted twice")
        }
    }

    @Test func hybridRunKeepsBatchResultsAndRunsTheRestInRealTime() async throws {
        let dir = try TempDir()
        let total = 40
        try dir.write("in.jsonl", Fixtures.chatLines(total))
        // The job is cancelled at 50 s of the emulator's clock with 22 of its 40 items finished;
        // the other 18 run in real time (see startHybridEmulator).
        let (emulator, server) = try await startHybridEmulator()
        do {
            let url = server.baseURL.absoluteString
            let child = try CLI.start(
                ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "hybrid", "--deadline", "2s", "--poll-interval", "100ms", "--base-url", url],
                in: dir.url)
            let submitted = await child.waitForStderrLine { $0.contains("submitted job batch_") }
            let result = await child.finish()
            #expect(result.status == 0, "\(result.stderr)")
            #expect(submitted, "the job was not reported as submitted: \(result.stderr)")
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            let ids = lines.compactMap { $0["custom_id"]?.stringValue }
            #expect(ids.count == total && Set(ids).count == total)
            let batchIDs = lines.filter { $0["batchkit"]?["route"]?.stringValue == "batch" }.compactMap { $0["custom_id"]?.stringValue }
            let realtimeIDs = lines.filter { $0["batchkit"]?["route"]?.stringValue == "realtime" }.compactMap { $0["custom_id"]?.stringValue }
            #expect(batchIDs.count == 22, "\(batchIDs.count) in the batch")
            #expect(realtimeIDs.count == 18, "\(realtimeIDs.count) in real time")
            // Finished in the batch: never sent in real time. The rest: once in the batch, once in real time.
            for id in batchIDs { #expect(emulator.sentCount(customID: id) == 1, "\(id)") }
            for id in realtimeIDs { #expect(emulator.sentCount(customID: id) == 2, "\(id)") }
            // One job, cancelled 50 s after it was created (on the emulator's clock).
            let listed = try await URLSessionTransport().send(HTTPRequest(
                url: server.baseURL.appendingPathComponent("v1/batches"), headers: ["Authorization": "Bearer \(Self.key)"]))
            let batches = try #require(try JSONValue(parsing: listed.body)["data"]?.arrayValue)
            #expect(batches.count == 1)
            let job = try #require(batches.first)
            #expect(job["status"]?.stringValue == "cancelled")
            let created = try #require(job["created_at"]?.intValue)
            #expect(job["cancelling_at"]?.intValue == created + 50)
        }
        await server.shutdown()
    }

    @Test func shardsSplitDeterministicallyAndCoverTheInput() async throws {
        let dir = try TempDir()
        let total = 60
        try dir.write("in.jsonl", Fixtures.chatLines(total))
        try await withEmulator { emulator, url in
            var union: [String] = []
            for i in 0..<3 {
                let result = try await CLI.run(
                    ["run", "in.jsonl", "--output", "out\(i).jsonl", "--shard", "\(i)/3", "--rpm", "60000", "--base-url", url],
                    in: dir.url)
                #expect(result.status == 0, "\(result.stderr)")
                let ids = try Fixtures.outputIDs(dir.file("out\(i).jsonl"))
                let shard = try BatchShard(index: i, count: 3)
                #expect(Set(ids) == Set((0..<total).map { "r\($0)" }.filter { shard.contains($0) }))
                #expect(!ids.isEmpty)
                union += ids
            }
            #expect(union.count == total)
            #expect(Set(union) == Set((0..<total).map { "r\($0)" }))
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
        // The hash is FNV-1a, stable across processes and releases.
        #expect(BatchShard.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(BatchShard.fnv1a("") == 0xcbf2_9ce4_8422_2325)
    }

    @Test func jobCommandsSubmitStatusResultsListCancel() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(60)), clock: clock) { emulator, url in
            let submit = try await CLI.run(["submit", "in.jsonl", "--base-url", url], in: dir.url)
            #expect(submit.status == 0, "\(submit.stderr)")
            let jobID = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(jobID.hasPrefix("batch_"))
            #expect(emulator.sentCounts.count == 12)

            let running = try await CLI.run(["status", jobID, "--base-url", url], in: dir.url)
            #expect(running.status == 0)
            #expect(running.stdout.contains(jobID) && running.stdout.contains("inProgress"))

            let early = try await CLI.run(["results", jobID, "--output", "res.jsonl", "--base-url", url], in: dir.url)
            #expect(early.status == 1)
            #expect(early.stderr.contains("not finished yet"))

            clock.advance(by: .seconds(61))
            let results = try await CLI.run(["results", jobID, "--output", "res.jsonl", "--base-url", url], in: dir.url)
            #expect(results.status == 0, "\(results.stderr)")
            #expect(Set(try Fixtures.outputIDs(dir.file("res.jsonl"))) == Set((0..<12).map { "r\($0)" }))

            let list = try await CLI.run(["list", "--base-url", url], in: dir.url)
            #expect(list.status == 0 && list.stdout.contains(jobID))

            let second = try await CLI.run(["submit", "in.jsonl", "--base-url", url], in: dir.url)
            let secondID = second.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let cancel = try await CLI.run(["cancel", secondID, "--base-url", url], in: dir.url)
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.stdout.contains(secondID) && (cancel.stdout.contains("cancel")))
        }
    }

    @Test func estimatePricesRealtimeAndBatch() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        let result = try await CLI.run(["estimate", "in.jsonl"], in: dir.url, environment: [:])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("gpt-4o-mini"))
        #expect(result.stdout.contains("batch saves $"))
    }

    @Test func demoRunsAgainstTheInProcessEmulator() async throws {
        let dir = try TempDir()
        let result = try await CLI.run(["demo", "--requests", "200", "--batch-seconds", "0.2"], in: dir.url, environment: [:])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("1. real time"))
        #expect(result.stdout.contains("2. native batch"))
        #expect(result.stdout.contains("succeeded     200") || result.stdout.contains("succeeded  200"))
        #expect(result.stdout.contains("50% less"))
    }
}
