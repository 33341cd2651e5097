import BatchKit
import Foundation

/// A lazily generated sequence of chat requests: nothing is held in memory.
struct GeneratedRequests: AsyncSequence, Sendable {
    typealias Failure = Never
    let count: Int

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        var i = 0
        mutating func next() async -> BatchRequest? { next(isolationless: ()) }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? { next(isolationless: ()) }
        mutating func next(isolationless: Void) -> BatchRequest? {
            guard i < count else { return nil }
            i += 1
            return BatchRequest(id: "req-\(i)", chat: ChatRequest(model: "bench-model", messages: [.user("Question \(i)")], maxTokens: 16))
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count) }
}

/// A client that answers at once.
let instantClient = ClosureClient { request in
    ModelResponse(text: "ok", finishReason: .stop, usage: Usage(inputTokens: 5, outputTokens: 1), model: "bench-model")
}

/// Runs `count` requests through `ConcurrentProcessor`, consuming every event.
func runExecutor(count: Int, concurrency: Int) async -> (seconds: Double, items: Int, cpu: Double) {
    let processor = ConcurrentProcessor(client: instantClient, configuration: .init(maxConcurrency: concurrency))
    let cpuStart = cpuSeconds()
    let start = ContinuousClock.now
    var items = 0
    for await event in processor.processAsync(GeneratedRequests(count: count)) {
        if case .item = event { items += 1 }
    }
    let seconds = (ContinuousClock.now - start).seconds
    return (seconds, items, cpuSeconds() - cpuStart)
}

func runExecutorBenchmark() async {
    let n = 200_000
    _ = await runExecutor(count: 10_000, concurrency: 64)  // warm up
    let r = await runExecutor(count: n, concurrency: 64)
    precondition(r.items == n, "lost items: \(r.items) of \(n)")
    printJSONLine([
        "scenario": "executor", "requests": .int(n), "seconds": .double(round3(r.seconds)),
        "requests_per_second": .double(round3(Double(n) / r.seconds)),
        "cpu_us_per_request": .double(round3(r.cpu / Double(n) * 1e6)), "peak_rss_mb": .double(round3(peakRSSMegabytes())),
    ])
}

func runMemoryBenchmark() async {
    let small = await runExecutor(count: 100_000, concurrency: 64)
    precondition(small.items == 100_000)
    let rssSmall = peakRSSMegabytes()
    let large = await runExecutor(count: 1_000_000, concurrency: 64)
    precondition(large.items == 1_000_000)
    let rssLarge = peakRSSMegabytes()
    printJSONLine([
        "scenario": "memory", "peak_rss_mb": .double(round3(rssLarge)), "peak_rss_100k_mb": .double(round3(rssSmall)),
        "rss_ratio_1m_vs_100k": .double(round3(rssLarge / rssSmall)),
        "seconds_1m": .double(round3(large.seconds)),
    ])
}
