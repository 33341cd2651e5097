import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Synchronization

/// `n` chat requests made one at a time as they are pulled (the benchmark's input is never an
/// array, as a file read line by line would not be).
struct BatchBenchRequests: AsyncSequence, Sendable {
    typealias Failure = Never
    let count: Int
    let prefix: String

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        let prefix: String
        var i = 0
        mutating func next() async -> BatchRequest? { nextRequest() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? { nextRequest() }
        mutating func nextRequest() -> BatchRequest? {
            guard i < count else { return nil }
            defer { i += 1 }
            return BatchRequest(
                id: "\(prefix)\(i)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Summarise document \(i) in one line.")], maxTokens: 32))
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, prefix: prefix) }
}

/// Resets the peak resident set size (VmHWM) of this process, so each run is measured alone
/// (`echo 5 > /proc/self/clear_refs`, Linux 4.0+). Returns whether it worked.
@discardableResult
func resetPeakRSS() -> Bool {
    guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
    defer { try? handle.close() }
    return (try? handle.write(contentsOf: Data("5".utf8))) != nil
}

/// Current resident set size (VmRSS), in MiB.
func currentRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
    }
    return 0
}

/// One measured run: seconds, CPU seconds (user + system, all threads), peak RSS (MiB) and item
/// counts.
struct NativeBenchRun {
    var requests: Int
    var seconds: Double
    var cpuSeconds = 0.0
    var peakRSS: Double
    var succeeded = 0
    var failed = 0
    var jobs = 0
    var realtime = 0

    var json: JSONValue {
        [
            "requests": .int(requests), "succeeded": .int(succeeded), "failed": .int(failed), "jobs": .int(jobs),
            "realtime": .int(realtime), "seconds": .double(round3(seconds)), "cpu_seconds": .double(round3(cpuSeconds)), "peak_rss_mb": .double(round3(peakRSS)),
        ]
    }
}

/// Runs `body` for `n` requests with the peak RSS reset first.
func measured(_ n: Int, _ body: (Int, inout NativeBenchRun) async throws -> Void) async rethrows -> NativeBenchRun {
    resetPeakRSS()
    var run = NativeBenchRun(requests: n, seconds: 0, peakRSS: 0)
    let start = ContinuousClock.now
    let cpuAtStart = cpuSeconds()
    try await body(n, &run)
    run.seconds = (ContinuousClock.now - start).seconds
    run.cpuSeconds = cpuSeconds() - cpuAtStart
    run.peakRSS = peakRSSMegabytes()
    return run
}

/// Scenario `native`: chat requests (`--requests N`, default 50,000) through the OpenAI native
/// batch path (spooled chunks, Files upload, batch create, poll, output download, streamed join)
/// against the in-process emulator, whose batches complete at once, end to end. The input is
/// generated as it is pulled. When N is over 100,000 the line also gives `rss_ratio` and
/// `rss_ratio_same_process` (see ``measureWithRatio(scenario:_:_:extraArguments:into:)``).
func runNativeBenchmark() async throws {
    let n = benchOption("requests", env: "BENCH_REQUESTS").flatMap(Int.init) ?? 50_000
    func one(_ n: Int, _ run: inout NativeBenchRun) async {
        let emulator = ProviderEmulator(configuration: .init(batchDuration: .zero))
        let backend = OpenAIBatchBackend(apiKey: "sk-bench", baseURL: URL(string: "http://emulator.invalid/v1")!, transport: emulator.transport)
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .milliseconds(10)))
        for await event in processor.processAsync(BatchBenchRequests(count: n, prefix: "n")) {
            switch event {
            case .item(let r): if r.isSuccess { run.succeeded += 1 } else { run.failed += 1 }
            case .submitted: run.jobs += 1
            default: break
            }
        }
    }
    var line: [String: JSONValue] = ["scenario": "native"]
    try await measureWithRatio(scenario: "native", n, one, into: &line)
    printJSONLine(.object(line))
}

/// A transport that, after `completing` batches were created, makes the emulator's later batches
/// take an hour: those miss the hybrid deadline and run in real time.
final class SlowLaterBatches: HTTPTransport {
    let base: any HTTPTransport
    let emulator: ProviderEmulator
    let completing: Int
    let created = Mutex(0)

    init(base: any HTTPTransport, emulator: ProviderEmulator, completing: Int) {
        self.base = base
        self.emulator = emulator
        self.completing = completing
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let response = try await base.send(request)
        if request.method == "POST", request.url.path.hasSuffix("/batches") {
            let n = created.withLock { c in
                c += 1
                return c
            }
            if n == completing { emulator.update { $0.batchDuration = .seconds(3600) } }
        }
        return response
    }
}

/// Scenario `hybrid`: `--requests N` (default 100,000) through `HybridProcessor` (OpenAI native
/// batch + real time, in-process emulator). Jobs of 50,000 requests; all but the last tenth of the
/// jobs complete at once, the rest would take an hour, so at the deadline (`--deadline S`, default
/// 5 s) they are cancelled and their requests (about a tenth) run in real time (concurrency 256,
/// no latency). Same `reference`, `rss_ratio` and `same_process` keys as `native` when N is over
/// 100,000.
func runHybridBenchmark() async throws {
    let n = benchOption("requests", env: "BENCH_REQUESTS").flatMap(Int.init) ?? 100_000
    let deadline = benchOption("deadline", env: "BENCH_DEADLINE").flatMap(Double.init) ?? 5
    func one(_ n: Int, _ run: inout NativeBenchRun) async {
        let emulator = ProviderEmulator(configuration: .init(batchDuration: .zero))
        let jobs = (n + 49_999) / 50_000
        let transport = SlowLaterBatches(base: emulator.transport, emulator: emulator, completing: max(1, jobs - max(1, jobs / 10)))
        let baseURL = URL(string: "http://emulator.invalid/v1")!
        let backend = OpenAIBatchBackend(apiKey: "sk-bench", baseURL: baseURL, transport: transport)
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .milliseconds(10))),
            realtime: ConcurrentProcessor(
                client: OpenAIClient(apiKey: "sk-bench", baseURL: baseURL, transport: emulator.transport), configuration: .init(maxConcurrency: 256)),
            deadline: .seconds(deadline), cancellationGrace: .seconds(1))
        for await event in hybrid.processAsync(BatchBenchRequests(count: n, prefix: "h")) {
            switch event {
            case .item(let r):
                if r.isSuccess { run.succeeded += 1 } else { run.failed += 1 }
                if r.route == .realtime { run.realtime += 1 }
            case .submitted: run.jobs += 1
            default: break
            }
        }
    }
    var line: [String: JSONValue] = ["scenario": "hybrid", "deadline_seconds": .double(deadline)]
    try await measureWithRatio(scenario: "hybrid", n, one, extraArguments: ["--deadline", "\(deadline)"], into: &line)
    printJSONLine(.object(line))
}

/// The size every ratio is taken against.
let referenceRequests = 100_000

/// Measures `n` requests with `one` into `line`; when `n` is over ``referenceRequests``, also the
/// ratio of peak RSS to that of a 100,000-request run, two ways:
///
/// - `rss_ratio`: each size in a fresh process. The 100,000-request `reference` runs in a child
///   process (this executable, `SCENARIO --requests 100000`; its JSON line is read), then `n` runs
///   here, in a process that has run nothing else. Neither figure includes memory the allocator
///   kept from the other run.
/// - `rss_ratio_same_process`: both sizes in one process, 100,000 first, the peak reset between
///   them (`/proc/self/clear_refs`), as this benchmark measured before. glibc keeps the first run's
///   arena resident (≈ 5–6 MB after 100,000 native requests), so the larger run's peak includes
///   it. It runs in a second child (`--same-process`), whose line is `same_process`. Left out with
///   `--no-same-process`.
///
/// With `--same-process` this process runs both sizes itself and gives `rss_ratio` (that child's
/// own line).
func measureWithRatio(
    scenario: String, _ n: Int, _ one: (Int, inout NativeBenchRun) async -> Void, extraArguments: [String] = [],
    into line: inout [String: JSONValue]
) async throws {
    let arguments = CommandLine.arguments
    guard n > referenceRequests else {
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
        return
    }
    if arguments.contains("--same-process") {
        chatter("\(scenario): \(referenceRequests) requests (reference, same process)")
        let reference = await measured(referenceRequests, one)
        line["reference"] = reference.json
        chatter("\(scenario): \(n) requests (same process)")
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
        line["rss_ratio"] = .double(round3(main.peakRSS / max(1, reference.peakRSS)))
        return
    }
    chatter("\(scenario): \(referenceRequests) requests (reference, child process)")
    var reference = try runChild([scenario, "--requests", "\(referenceRequests)"] + extraArguments)
    for k in ["scenario", "deadline_seconds"] { reference[k] = nil }
    line["reference"] = .object(reference)
    chatter("\(scenario): \(n) requests")
    let main = await measured(n, one)
    for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
    let referencePeak = reference["peak_rss_mb"]?.doubleValue ?? 0
    line["rss_ratio"] = .double(round3(main.peakRSS / max(1, referencePeak)))
    if !arguments.contains("--no-same-process") {
        chatter("\(scenario): \(referenceRequests) then \(n) requests in one child process")
        var same = try runChild([scenario, "--requests", "\(n)", "--same-process"] + extraArguments)
        line["rss_ratio_same_process"] = same["rss_ratio"]
        for k in ["scenario", "deadline_seconds", "rss_ratio"] { same[k] = nil }
        line["same_process"] = .object(same)
    }
}

/// Runs this executable with `arguments` in a child process (its stderr passed through) and
/// returns the members of the JSON line it prints on stdout.
func runChild(_ arguments: [String]) throws -> [String: JSONValue] {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    guard process.terminationStatus == 0, let last = lines.last, let object = (try? JSONValue(parsing: String(last)))?.objectValue else {
        throw BenchChildError(arguments: arguments, status: process.terminationStatus, output: String(decoding: data.prefix(500), as: UTF8.self))
    }
    return object
}

/// A child benchmark process failed or printed no JSON line.
struct BenchChildError: Error, CustomStringConvertible {
    let arguments: [String]
    let status: Int32
    let output: String
    var description: String { "batchkit-bench \(arguments.joined(separator: " ")) exited with status \(status), output: \(output)" }
}
