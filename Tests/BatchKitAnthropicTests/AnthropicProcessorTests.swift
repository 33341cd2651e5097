import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitAnthropic

/// Moves a manual clock to each sleeper's deadline as soon as one sleeps, until cancelled: time
/// passes exactly as fast as the code under test waits, and nothing sleeps for real.
func drive(_ clock: ManualClock) -> Task<Void, Never> {
    Task.detached {
        while !Task.isCancelled {
            if !clock.advanceToNextDeadline() { await Task.yield() }
        }
    }
}

/// `AnthropicClient` under `ConcurrentProcessor`: its errors and headers drive pacing and retries.
@Suite(.timeLimit(.minutes(1))) struct AnthropicProcessorTests {
    @Test(arguments: Wire.allCases) func retryAfterFrom429IsHonoured(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 2)) { f in
            let processor = ConcurrentProcessor(
                client: f.client(),
                configuration: .init(maxConcurrency: 1, learnsRateLimits: false, retry: RetryPolicy(maxAttempts: 3, jitter: false)),
                clock: f.clock)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            var retries: [(Duration, BatchError)] = []
            var results: [BatchResult] = []
            for await event in processor.processAsync(requests(3, prefix: "rl")) {
                switch event {
                case .retrying(_, _, let delay, let error): retries.append((delay, error))
                case .item(let r): results.append(r)
                default: break
                }
            }
            #expect(results.count == 3)
            #expect(results.allSatisfy { $0.isSuccess })
            #expect(retries.count == 1)
            let (delay, error) = try #require(retries.first)
            #expect(error.code == .rateLimited)
            let retryAfter = try #require(error.retryAfter)
            #expect(delay >= retryAfter)
            #expect(retryAfter >= .seconds(29))
            #expect(f.emulator.rateLimitedCount == 1)
            #expect(f.clock.now.offset >= retryAfter)
        }
    }

    @Test(arguments: Wire.allCases) func overloadedBacksOffAndRecovers(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.overloaded, on: .provider(.anthropic), firstTimes: 2)])) { f in
            let processor = ConcurrentProcessor(
                client: f.client(),
                configuration: .init(maxConcurrency: 2, retry: RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), jitter: false)),
                clock: f.clock)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            var retried: [BatchError] = []
            var result: BatchResult?
            for await event in processor.processAsync([chat("ov-1")]) {
                switch event {
                case .retrying(_, _, _, let error): retried.append(error)
                case .item(let r): result = r
                default: break
                }
            }
            #expect(retried.map(\.code) == [.overloaded, .overloaded])
            #expect(result?.isSuccess == true)
            #expect(result?.attempts == 3)
            #expect(f.clock.now.offset >= .seconds(3))  // 1 s, then 2 s of backoff
        }
    }

    @Test(arguments: Wire.allCases) func validationFailuresAreItemsNotSends(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let processor = ConcurrentProcessor(client: f.client(), configuration: .init(maxConcurrency: 2), clock: f.clock)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            let response = try await processor.process([
                chat("ok-1"), BatchRequest(id: "emb-1", embedding: EmbeddingRequest(model: "m", input: "x")), chat("seed-1") { $0.seed = 4 },
            ])
            #expect(response["ok-1"]?.isSuccess == true)
            #expect(response["emb-1"]?.error?.field == "body")
            #expect(response["seed-1"]?.error?.field == "seed")
            #expect(f.emulator.sentCounts == ["ok-1": 1])
        }
    }

    @Test(arguments: Wire.allCases) func learnedLimitsAvoid429s(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 3)) { f in
            let processor = ConcurrentProcessor(client: f.client(), configuration: .init(maxConcurrency: 1), clock: f.clock)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            let response = try await processor.process(requests(6, prefix: "lr"))
            #expect(response.results.allSatisfy { $0.isSuccess })
            #expect(f.emulator.rateLimitedCount == 0, "429s: \(f.emulator.rateLimitedCount)")
            // It paced itself: three requests a minute after the first answers told it the limit.
            #expect(f.clock.now.offset >= .seconds(40), "took \(f.clock.now.offset)")
        }
    }
}
