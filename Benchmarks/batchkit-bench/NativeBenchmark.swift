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

/// One measured run: seconds, peak RSS (MiB) and item counts.
struct NativeBenchRun {
    var requests: Int
    var seconds: Double
    var peakRSS: Double
    var succeeded = 0
    var failed = 0
    var jobs = 0
    var realtime = 0

    var json: JSONValue {
        [
            "requests": .int(requests), "succeeded": .int(succeeded), "failed": .int(failed), "jobs": .int(jobs),
            "realtime": .int(realtime), "seconds": .double(round3(seconds)), "peak_rss_mb": .double(round3(peakRSS)),
        ]
    }
}

/// Runs `body` for `n` requests with the peak RSS reset first.
func measured(_ n: Int, _ body: (Int, inout NativeBenchRun) async throws -> Void) async rethrows -> NativeBenchRun {
    resetPeakRSS()
    var run = NativeBenchRun(requests: n, seconds: 0, peakRSS: 0)
    let start = ContinuousClock.now
    try await body(n, &run)
    run.seconds = (ContinuousClock.now - start).seconds
    run.peakRSS = peakRSSMegabytes()
    return run
}

/// Scenario `native`: chat requests (`--requests N`, default 50,000) through the OpenAI native
/// batch path (spooled chunks, Files upload, batch create, poll, output download, streamed join)
/// against the in-process emulator, whose batches complete at once, end to end. The input is
/// generated as it is pulled. When N is over 100,000, a 100,000-request run comes first and the
/// line gives `rss_ratio` (peak RSS of N over that of 100,000; the peak is reset between runs).
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
    if n > 100_000 {
        chatter("native: 100000 requests (reference)")
        let reference = await measured(100_000, one)
        line["reference"] = reference.json
        chatter("native: \(n) requests")
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
        line["rss_ratio"] = .double(round3(main.peakRSS / max(1, reference.peakRSS)))
    } else {
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
    }
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
/// no latency). Same `reference` and `rss_ratio` as `native` when N is over 100,000.
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
    if n > 100_000 {
        chatter("hybrid: 100000 requests (reference)")
        let reference = await measured(100_000, one)
        line["reference"] = reference.json
        chatter("hybrid: \(n) requests")
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
        line["rss_ratio"] = .double(round3(main.peakRSS / max(1, reference.peakRSS)))
    } else {
        let main = await measured(n, one)
        for (k, v) in main.json.objectValue ?? [:] { line[k] = v }
    }
    printJSONLine(.object(line))
}
