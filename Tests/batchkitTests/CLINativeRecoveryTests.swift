import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// Issue 11: native runs that meet a deadline, a lost create answer or a crash between creating
/// a job and recording it: each id is paid for by one job and ends with one line.
@Suite(.timeLimit(.minutes(5)))
struct CLINativeRecoveryTests {
    static let environment = ["OPENAI_API_KEY": "sk-cli-test-key-0001", "ANTHROPIC_API_KEY": "ak-test-0001", "GEMINI_API_KEY": "gk-test-0001"]

    /// The create call of each provider.
    static func isCreate(_ r: EmulatorRequest) -> Bool {
        r.method == "POST"
            && (r.path.hasSuffix("/v1/batches") || r.path.hasSuffix("/v1/messages/batches") || r.path.hasSuffix(":batchGenerateContent"))
    }

    /// Bug 2: at the deadline the running job stays pending (no `timeout` lines), the exit says
    /// how many jobs run and that a rerun collects them; `--retry-failed` submits nothing while
    /// the job runs; a rerun after it ended collects it. Before the fix the first run wrote 25
    /// failed `timeout` lines and exited 1, and `--retry-failed` submitted all 25 again.
    @Test func nativeDeadlineLeavesTheJobPendingAndARerunCollectsIt() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(25))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let arguments = [
                "run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--deadline", "1s", "--poll-interval", "50ms",
                "--base-url", url,
            ]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).isEmpty, "no timeout lines")
            #expect(first.stderr.contains("1 job(s) still running"), "\(first.stderr)")
            #expect(first.stderr.contains("Run the same command again"))
            #expect(emulator.sentCounts.count == 25)

            let retry = try await CLI.run(arguments + ["--retry-failed"], in: dir.url)
            #expect(retry.status == 4, "\(retry.stderr)")
            #expect(!retry.stderr.contains("submitted job"), "\(retry.stderr)")
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "nothing was submitted twice")

            clock.advance(by: .seconds(3601))
            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("re-attaching to 1 job"))
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 25 && Set(ids).count == 25)
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    /// Bug 4 / blind retries: the server creates the job and the answer is lost (the connection
    /// is reset). The run looks at the provider's jobs, adopts the one it created and never
    /// creates a second. Before the fix the chunk's requests failed as "could not be created"
    /// while the job ran, and `--retry-failed` paid for them again.
    @Test(arguments: [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")])
    func aLostCreateAnswerIsAdoptedNotRepeated(_ provider: String, _ model: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let emulator = ProviderEmulator(configuration: EmulatorConfiguration(batchDuration: .milliseconds(200)))
        let lost = Mutex(0)
        let server = try await EmulatorServer.start { request in
            let response = await emulator.handle(request)
            if Self.isCreate(request), response.status == 200, lost.withLock({ n in defer { n += 1 }; return n == 0 }) {
                return EmulatorResponse(status: 500, fault: .resetConnection)
            }
            return response
        }
        emulator.update { $0.publicBaseURL = server.baseURL }
        do {
            let result = try await CLI.run(
                [
                    "run", "in.jsonl", "--output", "out.jsonl", "--provider", provider, "--model", model, "--mode", "native",
                    "--poll-interval", "50ms", "--base-url", server.baseURL.absoluteString,
                ],
                in: dir.url, environment: Self.environment)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(lost.withLock { $0 } >= 1)
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 12 && Set(ids).count == 12)
            #expect(emulator.sentCounts.count == 12 && emulator.sentCounts.values.allSatisfy { $0 == 1 }, "one job")
        }
        await server.shutdown()
    }

    /// Bug 4: the run is killed after the server created the job and before the job was
    /// recorded. The rerun finds the intent without a job, adopts the job and collects it. Before
    /// the fix the rerun submitted every request again.
    @Test(arguments: [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")])
    func aCrashBetweenCreateAndRecordIsAdoptedOnRerun(_ provider: String, _ model: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        let emulator = ProviderEmulator(configuration: EmulatorConfiguration(batchDuration: .milliseconds(200)))
        let child = Mutex<RunningCLI?>(nil)
        let killed = Mutex(false)
        let server = try await EmulatorServer.start { request in
            let response = await emulator.handle(request)
            if Self.isCreate(request), response.status == 200, let c = child.withLock({ $0 }), !killed.withLock({ $0 }) {
                // The job exists; the process dies before it reads the answer.
                killed.withLock { $0 = true }
                c.kill9()
                return EmulatorResponse(status: 500, fault: .resetConnection)
            }
            return response
        }
        emulator.update { $0.publicBaseURL = server.baseURL }
        do {
            let arguments = [
                "run", "in.jsonl", "--output", "out.jsonl", "--provider", provider, "--model", model, "--mode", "native",
                "--poll-interval", "50ms", "--base-url", server.baseURL.absoluteString,
            ]
            let first = try CLI.start(arguments, in: dir.url, environment: Self.environment, liveStderr: false)
            child.withLock { $0 = first }
            _ = await first.finish()
            #expect(killed.withLock { $0 })
            #expect(emulator.sentCounts.count == 10)

            let rerun = try await CLI.run(arguments, in: dir.url, environment: Self.environment)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("adopted job"), "\(rerun.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 10 && Set(ids).count == 10)
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "no request was submitted twice")
        }
        await server.shutdown()
    }

    /// Uploads an OpenAI batch input file of `ids` to the emulator, in process; returns its id.
    static func upload(_ emulator: ProviderEmulator, ids: [String]) async throws -> String {
        let lines = ids.map {
            #"{"custom_id":"\#($0)","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}"#
        }.joined(separator: "\n")
        let boundary = "b0undary"
        var body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
        body += "Content-Type: application/jsonl\r\n\r\n\(lines)\n\r\n--\(boundary)--\r\n"
        let response = await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/files",
            headers: ["Authorization": "Bearer sk-test", "Content-Type": "multipart/form-data; boundary=\(boundary)"],
            body: Data(body.utf8)))
        try #require(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        return try #require(try JSONValue(parsing: response.body)["id"]?.stringValue)
    }

    /// Creates an OpenAI batch of `file` in the emulator, in process, with `metadata`; returns its id.
    static func createBatch(_ emulator: ProviderEmulator, file: String, metadata: [String: String] = [:]) async throws -> String {
        let body: JSONValue = [
            "input_file_id": .string(file), "endpoint": "/v1/chat/completions", "completion_window": "24h",
            "metadata": .object(metadata.mapValues { .string($0) }),
        ]
        let response = await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/batches", headers: ["Authorization": "Bearer sk-test", "Content-Type": "application/json"],
            body: body.serialized()))
        try #require(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        return try #require(try JSONValue(parsing: response.body)["id"]?.stringValue)
    }

    /// A duplicate job (tagged with the run's intent, not the recorded job: a create repeated
    /// after its answer was lost) behind 150 newer jobs of the account is found and cancelled by
    /// the rerun: the search for duplicates looks as far back as the search for an intent's job.
    /// Before, it listed only the newest 100 jobs, and the duplicate ran on, paid for.
    @Test func aDuplicateJobBehindMoreThanAHundredNewerJobsIsCancelled() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(5))
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: ManualClock()) { emulator, url in
            let arguments = [
                "run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--deadline", "1s", "--poll-interval", "50ms",
                "--base-url", url,
            ]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            let jobs = try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))
            let tag = try #require(jobs["intents"]?[0]?["tag"]?.stringValue)
            let recorded = try #require(jobs["native_jobs"]?[0]?["id"]?.stringValue)

            let duplicate = try await Self.createBatch(
                emulator, file: try await Self.upload(emulator, ids: (0..<5).map { "r\($0)" }),
                metadata: [JobIntent.metadataKey: tag])
            let others = try await Self.upload(emulator, ids: ["someone-else"])
            for _ in 0..<150 { _ = try await Self.createBatch(emulator, file: others) }

            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 4, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("cancelled job \(duplicate): its requests are covered (by \(recorded))"), "\(rerun.stderr)")
            let status = await emulator.handle(EmulatorRequest(
                method: "GET", path: "/v1/batches/\(duplicate)", headers: ["Authorization": "Bearer sk-test"]))
            let state = try JSONValue(parsing: status.body)["status"]?.stringValue
            #expect(state == "cancelling" || state == "cancelled", "\(state ?? "none")")
        }
    }
}
