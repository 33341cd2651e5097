import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// `OpenAIClient` under `ConcurrentProcessor`: its errors and rate-limit headers drive pacing and
/// retries.
@Suite(.timeLimit(.minutes(1))) struct OpenAIRealtimeProcessorTests {
    @Test(arguments: Wire.allCases)
    func retryAfterFrom429IsHonoured(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requestsPerMinute: 2)) { h in
            let processor = ConcurrentProcessor(
                client: h.client(),
                configuration: .init(maxConcurrency: 1, learnsRateLimits: false, retry: RetryPolicy(maxAttempts: 3, jitter: false)),
                clock: h.clock)
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            var retries: [(Duration, BatchError)] = []
            var results: [BatchResult] = []
            for await event in processor.processAsync((0..<3).map { chat("rl-\($0)", "q\($0)") }) {
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
            #expect(retryAfter >= .seconds(29))
            #expect(delay >= retryAfter)
            #expect(h.emulator.rateLimitedCount == 1)
            #expect(h.emulator.sentCount(customID: results.first { $0.attempts == 2 }?.id ?? "") == 2)
        }
    }

    @Test func overloadedBacksOffAndRecovers() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(faults: [EmulatorFault(.overloaded, on: .provider(.openAI), firstTimes: 2)])) { h in
            let processor = ConcurrentProcessor(
                client: h.client(),
                configuration: .init(maxConcurrency: 2, retry: RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), jitter: false)),
                clock: h.clock)
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let response = try await processor.process([chat("ov-1", "x")])
            #expect(response["ov-1"]?.isSuccess == true)
            #expect(response["ov-1"]?.attempts == 3)
            #expect(h.clock.now.offset >= .seconds(3))
        }
    }

    @Test func learnedLimitsAvoid429s() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(requestsPerMinute: 3)) { h in
            let processor = ConcurrentProcessor(client: h.client(), configuration: .init(maxConcurrency: 1), clock: h.clock)
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let response = try await processor.process((0..<6).map { chat("lr-\($0)", "q\($0)") })
            #expect(response.results.allSatisfy { $0.isSuccess })
            #expect(h.emulator.rateLimitedCount <= 1)
        }
    }

    @Test func validationAndPermanentErrorsAreItems() async throws {
        try await withHarness { h in
            let processor = ConcurrentProcessor(client: h.client(), configuration: .init(maxConcurrency: 2), clock: h.clock)
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let response = try await processor.process([
                chat("ok", "x"), BatchRequest(id: "empty", chat: ChatRequest(model: "", messages: [.user("x")])),
                chat("unknown", "x", model: "gpt-nonexistent"),
            ])
            #expect(response["ok"]?.isSuccess == true)
            #expect(response["empty"]?.error?.code == .validation)
            #expect(response["empty"]?.error?.field == "model")
            #expect(response["unknown"]?.error?.code == .notFound)
            #expect(response["unknown"]?.attempts == 1)
            #expect(h.emulator.sentCount(customID: "empty") == 0)
            #expect(h.emulator.sentCount(customID: "unknown") == 1)
        }
    }
}
