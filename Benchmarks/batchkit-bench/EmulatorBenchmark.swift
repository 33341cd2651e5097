import BatchKit
import BatchKitTesting
import Foundation
import Synchronization

/// Scenario `emulator`: the loopback server in-process, 64 concurrent clients sending chat
/// completions through `URLSessionTransport` with zero latency for ~10 s (`--seconds N` or
/// `BENCH_SECONDS`). Prints `{"scenario":"emulator","requests_per_second":…,"requests":…,"seconds":…}`
/// where `requests` counts 200 answers only. `--sessions N` spreads the clients over N
/// transports (default 1); `--concurrency N` changes the 64; `--transport plain` (or
/// `BENCH_TRANSPORT=plain`) uses `PlainHTTPTransport` instead, which shows what the server
/// itself sustains when the client is not the bound.
func runEmulatorBenchmark() async throws {
    let seconds = benchOption("seconds", env: "BENCH_SECONDS").flatMap(Double.init) ?? 10
    let concurrency = benchOption("concurrency", env: "BENCH_CONCURRENCY").flatMap(Int.init) ?? 64
    let emulator = ProviderEmulator(configuration: .init(latency: .zero))
    let server = try await EmulatorServer.start(emulator: emulator)
    let transportCount = benchOption("sessions", env: "BENCH_SESSIONS").flatMap(Int.init) ?? 1
    let plain = benchOption("transport", env: "BENCH_TRANSPORT") == "plain"
    let transports: [any HTTPTransport] = (0..<max(1, transportCount)).map { _ in
        plain ? PlainHTTPTransport() as any HTTPTransport : URLSessionTransport()
    }
    let url = server.baseURL.appendingPathComponent("v1/chat/completions")
    chatter("emulator benchmark: \(concurrency) clients for \(seconds) s against \(server.baseURL.absoluteString)")

    func request(_ n: Int) -> HTTPRequest {
        let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi \#(n)"}],"max_tokens":16}"#
        return HTTPRequest(
            method: "POST", url: url,
            headers: ["Authorization": "Bearer test", "Content-Type": "application/json"], body: .data(Data(body.utf8)))
    }

    // Warm-up: open the connections before the clock starts.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for n in 0..<concurrency { group.addTask { _ = try await transports[n % transports.count].send(request(n)) } }
        try await group.waitForAll()
    }

    let clock = ContinuousClock()
    let cpuAtStart = cpuSeconds()
    let start = clock.now
    let deadline = start.advanced(by: .seconds(seconds))
    let statuses = try await withThrowingTaskGroup(of: [Int: Int].self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                var counts: [Int: Int] = [:]
                var n = worker
                let transport = transports[worker % transports.count]
                while clock.now < deadline {
                    let response = try await transport.send(request(n))
                    counts[response.status, default: 0] += 1
                    n += concurrency
                }
                return counts
            }
        }
        var total: [Int: Int] = [:]
        for try await counts in group { total.merge(counts, uniquingKeysWith: +) }
        return total
    }
    let elapsedSeconds = (clock.now - start).seconds
    let cpuPerRequest = (cpuSeconds() - cpuAtStart) / Double(max(1, server.requestsServed)) * 1e6
    chatter("server: \(server.connectionsAccepted) connections accepted, \(server.requestsServed) requests served; "
        + "\(Int(cpuPerRequest)) µs CPU per request (client and server)")
    await server.shutdown()

    let ok = statuses[200] ?? 0
    let all = statuses.values.reduce(0, +)
    chatter("statuses: \(statuses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        + String(format: "; all statuses %.0f req/s; peak RSS %.0f MB", Double(all) / elapsedSeconds, peakRSSMegabytes()))
    if ok < all { chatter("warning: \(all - ok) answers were not 200 and are not counted") }
    printJSONLine([
        "scenario": "emulator",
        "transport": .string(plain ? "PlainHTTPTransport" : "URLSessionTransport"),
        "requests_per_second": .double((Double(ok) / elapsedSeconds * 10).rounded() / 10),
        "requests": .int(ok),
        "seconds": .double(round3(elapsedSeconds)),
    ])
}
