import BatchKit
import BatchKitOpenAI
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Scenario `makespan-tls`: `makespan` over `https://`. 5,000 chat requests through `OpenAIClient`
/// + `ConcurrentProcessor` (concurrency 100) to `batchkit emulator --tls-cert --tls-key` with
/// 100 ms latency, run as a separate process so that the client's CPU time is the benchmark's
/// own (`getrusage`). Ideal time = N × latency / concurrency = 5 s; efficiency = ideal / achieved.
///
/// The headline figures use `PlainHTTPTransport` (its own TLS through the system's OpenSSL),
/// trusting the committed test CA (`Tests/Fixtures/tls/ca.pem`, as `--ca-bundle` does). The same
/// run over `URLSessionTransport` is reported beside them under `urlsession`; URLSession on Linux
/// trusts only the system store, so for that figure run the benchmark where the test CA is in it
/// (Docs/Benchmarks.md shows a private mount namespace doing that); otherwise its requests fail
/// with the readable untrusted-issuer error, which the line reports.
/// `connections` is what the emulator accepted (it prints the count when it exits). A run still
/// going after 60 s is cut short and says so in `first_error`. `BENCH_SKIP_URLSESSION=1` /
/// `BENCH_ONLY_URLSESSION=1` run one half.
func runTLSMakespanBenchmark() async throws {
    let n = benchOption("requests", env: "BENCH_REQUESTS").flatMap(Int.init) ?? 5_000
    let concurrency = 100
    let latencyMs = 100
    let ideal = Double(n) * Double(latencyMs) / 1000 / Double(concurrency)
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures/tls")
    let tool = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("batchkit")

    struct Run {
        var seconds: Double
        var ok: Int
        var failed: Int
        var cpuMsPerRequest: Double
        var connections: Int?
        var firstError: String?
    }

    func oneRun(_ name: String) async throws -> Run {
        let emulator = Process()
        emulator.executableURL = tool
        emulator.arguments = [
            "emulator", "--port", "0", "--latency-ms", String(latencyMs),
            "--tls-cert", fixtures.appendingPathComponent("good.pem").path,
            "--tls-key", fixtures.appendingPathComponent("good.key").path,
        ]
        let out = Pipe()
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-bench-emulator-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        emulator.standardOutput = out
        emulator.standardError = try FileHandle(forWritingTo: errFile)
        try emulator.run()
        defer { if emulator.isRunning { emulator.terminate() } }
        // "BatchKit emulator listening on https://127.0.0.1:PORT"
        var text = ""
        while !text.contains("\n") {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { throw BatchError(.network, "batchkit emulator did not start (is \(tool.path) built?)") }
            text += String(decoding: data, as: UTF8.self)
        }
        guard let word = text.split(whereSeparator: \.isWhitespace).first(where: { $0.hasPrefix("https://") }),
            let root = URL(string: String(word))
        else { throw BatchError(.invalidResponse, "unexpected emulator banner: \(text)") }

        let transport: any HTTPTransport =
            name == "urlsession"
            ? URLSessionTransport()
            : PlainHTTPTransport(
                configuration: .init(tls: TLSConfiguration(trustRoots: [.file(fixtures.appendingPathComponent("ca.pem").path)])))
        let client = OpenAIClient(apiKey: "sk-bench", baseURL: root.appendingPathComponent("v1"), transport: transport)
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: concurrency))
        let requests = (0..<n).map { i in
            BatchRequest(id: "t\(i)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Classify item \(i)")], maxTokens: 16))
        }
        chatter("makespan-tls (\(name)): \(n) requests, concurrency \(concurrency), latency \(latencyMs) ms, \(root.absoluteString)")
        let cpuAtStart = cpuSeconds()
        let start = ContinuousClock.now
        var run = Run(seconds: 0, ok: 0, failed: 0, cpuMsPerRequest: 0)
        // A run that has not finished in a minute is cut short and reported as such.
        for await event in processor.processAsync(requests) {
            if (ContinuousClock.now - start) > .seconds(60) { break }
            if case .item(let r) = event {
                if r.isSuccess {
                    run.ok += 1
                } else {
                    run.failed += 1
                    if run.firstError == nil { run.firstError = r.error.map { String(describing: $0) } }
                }
            }
        }
        run.seconds = (ContinuousClock.now - start).seconds
        if run.ok + run.failed < n { run.firstError = (run.firstError ?? "") + " [cut short after 60 s: \(run.ok + run.failed) of \(n) finished]" }
        run.cpuMsPerRequest = (cpuSeconds() - cpuAtStart) * 1000 / Double(n)
        kill(emulator.processIdentifier, SIGTERM)
        emulator.waitUntilExit()
        // "batchkit emulator: served R requests over C connections"
        let said = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        if let range = said.range(of: #"over (\d+) connections"#, options: .regularExpression) {
            run.connections = Int(said[range].split(separator: " ")[1])
        }
        return run
    }

    func fields(_ run: Run) -> [String: JSONValue] {
        var line: [String: JSONValue] = [
            "succeeded": .int(run.ok), "failed": .int(run.failed), "seconds": .double(round3(run.seconds)),
            "efficiency": .double(round3(ideal / run.seconds)), "client_cpu_ms_per_request": .double(round3(run.cpuMsPerRequest)),
        ]
        if let connections = run.connections { line["connections"] = .int(connections) }
        if let error = run.firstError { line["first_error"] = .string(error) }
        return line
    }

    var line: [String: JSONValue] = [
        "scenario": "makespan-tls", "transport": .string("PlainHTTPTransport"), "requests": .int(n), "concurrency": .int(concurrency),
        "ideal_seconds": .double(round3(ideal)),
    ]
    if benchOption("only-urlsession", env: "BENCH_ONLY_URLSESSION") == nil {
        line.merge(fields(try await oneRun("plain"))) { $1 }
    }
    if benchOption("skip-urlsession", env: "BENCH_SKIP_URLSESSION") == nil {
        line["urlsession"] = .object(fields(try await oneRun("urlsession")))
    }
    printJSONLine(.object(line))
}
