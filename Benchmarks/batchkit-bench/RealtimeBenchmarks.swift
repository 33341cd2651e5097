import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation

/// Scenario `makespan`: 5,000 chat requests through `OpenAIClient` + `ConcurrentProcessor` to the
/// loopback emulator with 100 ms latency, concurrency 100. Ideal time = N × latency / concurrency
/// = 5 s; efficiency = ideal / achieved. The headline figures use `PlainHTTPTransport` (what
/// BatchKit recommends for `http://` servers); the same run over `URLSessionTransport` is
/// reported beside them under `urlsession`. `BENCH_IN_PROCESS=1` measures the emulator's
/// in-process transport instead (no HTTP at all: the executor's own loss).
func runMakespanBenchmark() async throws {
    let n = benchOption("requests", env: "BENCH_REQUESTS").flatMap(Int.init) ?? 5_000
    let concurrency = 100
    let latency = Duration.milliseconds(100)
    let ideal = Double(n) * latency.seconds / Double(concurrency)

    func oneRun(_ transportName: String) async throws -> (seconds: Double, ok: Int, failed: Int) {
        let emulator = ProviderEmulator(configuration: .init(latency: latency))
        let server = try await EmulatorServer.start(emulator: emulator)
        let transport: any HTTPTransport =
            switch transportName {
            case "in-process": emulator.transport
            case "urlsession": URLSessionTransport()
            default: PlainHTTPTransport()
            }
        let client = OpenAIClient(apiKey: "sk-bench", baseURL: server.baseURL.appendingPathComponent("v1"), transport: transport)
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: concurrency))
        let requests = (0..<n).map { i in
            BatchRequest(id: "m\(i)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Classify item \(i)")], maxTokens: 16))
        }
        chatter("makespan (\(transportName)): \(n) requests, concurrency \(concurrency), latency 100 ms")
        let start = ContinuousClock.now
        var ok = 0
        var failed = 0
        for await event in processor.processAsync(requests) {
            if case .item(let r) = event { if r.isSuccess { ok += 1 } else { failed += 1 } }
        }
        let seconds = (ContinuousClock.now - start).seconds
        await server.shutdown()
        return (seconds, ok, failed)
    }

    let inProcess = benchOption("in-process", env: "BENCH_IN_PROCESS") != nil
    let main = try await oneRun(inProcess ? "in-process" : "plain")
    var line: [String: JSONValue] = [
        "scenario": "makespan", "transport": .string(inProcess ? "in-process" : "PlainHTTPTransport"), "requests": .int(n),
        "succeeded": .int(main.ok), "failed": .int(main.failed), "seconds": .double(round3(main.seconds)),
        "ideal_seconds": .double(round3(ideal)), "efficiency": .double(round3(ideal / main.seconds)),
    ]
    if !inProcess {
        let urlSession = try await oneRun("urlsession")
        line["urlsession"] = [
            "seconds": .double(round3(urlSession.seconds)), "efficiency": .double(round3(ideal / urlSession.seconds)),
            "failed": .int(urlSession.failed),
        ]
    }
    printJSONLine(.object(line))
}

/// Scenario `ratelimit`: the emulator enforces 3,000 requests/minute on the key with a strict
/// one-second bucket (50 requests, refilled at 50/s), and each call reaches its limiter after a
/// random 0–20 ms (seeded), as network delay would. Two runs of about 30 s each over
/// `PlainHTTPTransport`: `configured` (the processor is told 3,000 RPM) and `adaptive` (told
/// nothing: it learns from the rate-limit headers and 429s). `achieved_ratio` = successful
/// requests per minute / 3,000. Goals: configured ≥ 0.97 with no 429; adaptive ≥ 0.95 with at
/// most 1 % 429s.
func runRateLimitBenchmark() async throws {
    let seconds = benchOption("seconds", env: "BENCH_SECONDS").flatMap(Double.init) ?? 30
    let rpm = 3_000

    func oneRun(configured: Bool) async throws -> (ratio: Double, rateLimited: Int, share: Double, requests: Int) {
        let emulator = ProviderEmulator(
            configuration: .init(requestsPerMinute: rpm, rateLimitWindow: .seconds(1), latencyJitter: .milliseconds(20)))
        let server = try await EmulatorServer.start(emulator: emulator)
        let client = OpenAIClient(apiKey: "sk-bench", baseURL: server.baseURL.appendingPathComponent("v1"), transport: PlainHTTPTransport())
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 64, requestsPerMinute: configured ? rpm : nil, learnsRateLimits: !configured))
        // More requests than the window allows; the run is cut at `seconds`.
        let n = Int(Double(rpm) / 60 * seconds * 3)
        let requests = (0..<n).map { i in
            BatchRequest(id: "r\(i)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("q\(i)")], maxTokens: 8))
        }
        let start = ContinuousClock.now
        var ok = 0
        for await event in processor.processAsync(requests) {
            if case .item(let r) = event, r.isSuccess { ok += 1 }
            if (ContinuousClock.now - start).seconds >= seconds { break }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        let sent = emulator.modelRequestCount
        let limited = emulator.rateLimitedCount
        await server.shutdown()
        let achievedPerMinute = Double(ok) / elapsed * 60
        chatter("ratelimit \(configured ? "configured" : "adaptive"): \(ok) ok in \(String(format: "%.1f", elapsed)) s, \(limited) 429s of \(sent) requests")
        return (achievedPerMinute / Double(rpm), limited, sent > 0 ? Double(limited) / Double(sent) : 0, sent)
    }

    let c = try await oneRun(configured: true)
    let a = try await oneRun(configured: false)
    printJSONLine([
        "scenario": "ratelimit", "limit_rpm": .int(rpm), "server_bucket_seconds": 1, "jitter_ms": 20,
        "seconds_per_run": .double(seconds),
        "configured": [
            "achieved_ratio": .double(round3(c.ratio)), "rate_limited": .int(c.rateLimited), "requests": .int(c.requests),
        ],
        "adaptive": [
            "achieved_ratio": .double(round3(a.ratio)), "rate_limited": .int(a.rateLimited), "requests": .int(a.requests),
            "rate_limited_share": .double(round3(a.share)),
        ],
    ])
}

