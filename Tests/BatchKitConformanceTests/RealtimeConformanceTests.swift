import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// Each provider's client under `ConcurrentProcessor`, over every wire: its 429s, overload answers
/// and rate-limit headers drive pacing and retries the same way.
@Suite(.timeLimit(.minutes(5)))
struct RealtimeConformanceTests {
    /// At `rpm` requests a minute, request number `rpm` (0-based) is refused with a 429 whose
    /// retry-after (OpenAI, Anthropic: header; Gemini: `RetryInfo`) the retry honours.
    @Test(arguments: Provider.allCases, Wire.allCases)
    func retryAfterFrom429IsHonoured(_ provider: Provider, _ wire: Wire) async throws {
        for rpm in [1, 2] { try await checkRetryAfter(provider, wire, rpm: rpm) }
    }

    func checkRetryAfter(_ provider: Provider, _ wire: Wire, rpm: Int) async throws {
        try await withEmulatorHarness(wire, .init(requestsPerMinute: rpm)) { h in
            let processor = ConcurrentProcessor(
                client: provider.client(h),
                configuration: .init(maxConcurrency: 1, learnsRateLimits: false, retry: RetryPolicy(maxAttempts: 3, jitter: false)),
                clock: h.clock)
            let requests = provider.chats(rpm + 1, prefix: "rl")
            let log = await ClockDriver(h.clock).log(processor.processAsync(requests))
            #expect(log.summary != nil)
            #expect(log.items.count == rpm + 1)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            #expect(log.retries.count == 1)
            let retry = try #require(log.retries.first)
            #expect(retry.id == "rl-\(rpm)")
            #expect(retry.error.code == .rateLimited)
            let retryAfter = try #require(retry.error.retryAfter)
            #expect(retryAfter >= .seconds(60 / rpm - 1))
            #expect(retry.delay >= retryAfter)  // a floor over the 0.5 s backoff
            #expect(log.items["rl-\(rpm)"]?.attempts == 2)
            #expect(h.emulator.rateLimitedCount == 1)
            #expect(h.emulator.sentCount(customID: "rl-\(rpm)") == 2)
            #expect(h.clock.now.offset >= retryAfter)
        }
    }

    /// Two overload answers (529 for Anthropic, 503 for the others) are retried with backoff.
    @Test(arguments: Provider.allCases, Wire.allCases)
    func overloadedBacksOffAndRecovers(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(faults: [EmulatorFault(.overloaded, on: .provider(provider.emulated), firstTimes: 2)])) { h in
            let processor = ConcurrentProcessor(
                client: provider.client(h),
                configuration: .init(maxConcurrency: 2, retry: RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), jitter: false)),
                clock: h.clock)
            let log = await ClockDriver(h.clock).log(processor.processAsync([provider.chat("ov-1")]))
            #expect(log.retries.map { $0.error.code } == [.overloaded, .overloaded])
            #expect(log.retries.map { $0.delay } == [.seconds(1), .seconds(2)])
            #expect(log.items["ov-1"]?.isSuccess == true)
            #expect(log.items["ov-1"]?.attempts == 3)
            #expect(h.clock.now.offset >= .seconds(3))  // 1 s, then 2 s of backoff
        }
    }

    /// Limits learned from the first answers' headers pace the run: no 429.
    @Test(arguments: Provider.allCases.filter(\.sendsRateLimitHeaders), Wire.allCases)
    func learnedLimitsAvoid429s(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(requestsPerMinute: 3)) { h in
            let processor = ConcurrentProcessor(client: provider.client(h), configuration: .init(maxConcurrency: 1), clock: h.clock)
            let log = await ClockDriver(h.clock).log(processor.processAsync(provider.chats(6, prefix: "lr")))
            #expect(log.items.count == 6)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            #expect(h.emulator.rateLimitedCount == 0, "429s: \(h.emulator.rateLimitedCount)")
            // It paced itself: three requests a minute once the first answers told it the limit.
            #expect(h.clock.now.offset >= .seconds(40), "took \(h.clock.now.offset)")
        }
    }
}
