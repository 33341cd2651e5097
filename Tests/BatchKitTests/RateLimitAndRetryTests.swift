import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

@Suite(.timeLimit(.minutes(1)))
struct RateLimitAndRetryTests {
    @Test func requestsPerMinuteBucketPacesStarts() async {
        let clock = ManualClock()
        let client = ClosureClient { _ in okResponse() }
        // 60 RPM = one per second; a one-second burst holds a single request.
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 4, requestsPerMinute: 60, learnsRateLimits: false), clock: clock)
        var it = processor.processAsync((0..<5).map { chatRequest("p\($0)") }).makeAsyncIterator()
        _ = await it.nextSkippingProgress()  // started
        guard case .item = await it.nextSkippingProgress() else { Issue.record("the burst should admit one request at once"); return }
        for second in 1...4 {
            await clock.sleepers(atLeast: 1)
            #expect(clock.now.offset == .seconds(second - 1))
            clock.advance(by: .seconds(1))
            guard case .item = await it.nextSkippingProgress() else { Issue.record("expected an item after \(second)s"); return }
        }
        guard case .completed = await it.nextSkippingProgress() else { Issue.record("expected completion"); return }
        #expect(clock.now.offset == .seconds(4))
    }

    @Test func tokensPerMinuteBucketUsesEstimateAndIsCorrectedByUsage() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(limits: .init(tokensPerMinute: 6000), burst: .seconds(1), learnsFromServer: false, clock: clock)
        // Capacity: 100 tokens. A 100-token request goes at once; the next must wait a second.
        try await limiter.acquire(.init(inputTokens: 50, outputTokens: 50))
        #expect(clock.now.offset == .zero)
        #expect(clock.totalSleeps == 0, "the first request had the whole burst and should not have waited")
        let waiter = Task { () throws -> Duration in
            try await limiter.acquire(.init(inputTokens: 50, outputTokens: 50))
            return clock.now.offset
        }
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .seconds(1))
        clock.advance(by: .seconds(1))
        #expect(try await waiter.value == .seconds(1))
        // The real usage was 10 tokens, not 100: 90 come back, so the next one waits only 0.1 s.
        limiter.settle(estimated: .init(inputTokens: 50, outputTokens: 50), actualInput: 5, actualOutput: 5)
        let next = Task { () throws -> Duration in
            try await limiter.acquire(.init(inputTokens: 50, outputTokens: 50))
            return clock.now.offset
        }
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .milliseconds(1100))
        clock.advance(by: .milliseconds(100))
        #expect(try await next.value == .milliseconds(1100))
    }

    @Test func pauseHoldsEveryStartAndNeverShrinks() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(limits: .init(), learnsFromServer: false, clock: clock)
        limiter.pause(for: .seconds(5))
        limiter.pause(for: .seconds(2))
        let started = Flag()
        let t = Task { () throws -> Duration in
            try await limiter.acquire(.init())
            started.set()
            return clock.now.offset
        }
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .seconds(5))
        #expect(!started.isSet)
        clock.advance(by: .seconds(5))
        #expect(try await t.value == .seconds(5))
        #expect(started.isSet)
    }

    @Test func serverHeadersTeachAndTightenTheBuckets() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(limits: .init(), learnsFromServer: true, clock: clock)
        #expect(limiter.limits.requestsPerMinute == nil)
        limiter.observe(RateLimitInfo(requests: .init(limit: 120, remaining: 0)))
        #expect(limiter.limits.requestsPerMinute == 120)
        // Remaining 0: the next start waits for one request's refill (0.5 s at 120/min).
        let t = Task { () throws -> Duration in
            try await limiter.acquire(.init())
            return clock.now.offset
        }
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .milliseconds(500))
        clock.advance(by: .milliseconds(500))
        #expect(try await t.value == .milliseconds(500))
        // A configured limit is never loosened by the server.
        let strict = RateLimiter(limits: .init(requestsPerMinute: 60), learnsFromServer: true, clock: clock)
        strict.observe(RateLimitInfo(requests: .init(limit: 10_000, remaining: 9_999)))
        #expect(strict.limits.requestsPerMinute == 60)
    }

    @Test func rateLimitedAnswerPausesRetriesAfterRetryAfterAndAdaptsConcurrency() async {
        let clock = ManualClock()
        let probe = Probe()
        let client = ClosureClient { r in
            let n = probe.enter(r.id)
            probe.leave()
            _ = n
            if r.id == "a", probe.ids.filter({ $0 == "a" }).count == 1 {
                throw BatchError(.rateLimited, "slow down", httpStatus: 429, retryAfter: .seconds(7))
            }
            return okResponse()
        }
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 1, retry: RetryPolicy(maxAttempts: 3, jitter: false)), clock: clock)
        var it = processor.processAsync([chatRequest("a"), chatRequest("b")]).makeAsyncIterator()
        _ = await it.nextSkippingProgress()
        guard case .retrying(let id, let attempt, let delay, let error) = await it.nextSkippingProgress() else {
            Issue.record("expected .retrying")
            return
        }
        #expect(id == "a" && attempt == 1 && error.code == .rateLimited)
        #expect(delay == .seconds(7))  // the retry-after is a floor over the 0.5 s backoff
        await clock.sleepers(atLeast: 1)
        #expect(probe.calls == 1)
        clock.advance(by: .seconds(7))
        var items: [BatchResult] = []
        var summary: BatchSummary?
        while let e = await it.nextSkippingProgress() {
            if case .item(let r) = e { items.append(r) }
            if case .completed(let s) = e { summary = s }
        }
        #expect(items.map(\.id) == ["a", "b"])
        #expect(items[0].attempts == 2)
        #expect(summary?.retries == 1)
        #expect(summary?.rateLimited == 1)
    }

    @Test func retriesOnlyRetryableErrorsUpToMaxAttempts() async {
        let clock = ManualClock()
        let client = ClosureClient { r in
            switch r.id {
            case "flaky": throw BatchError(.server, "boom", httpStatus: 500)
            case "bad": throw BatchError(.invalidRequest, "no", httpStatus: 400)
            default: throw URLError(.networkConnectionLost)
            }
        }
        let processor = ConcurrentProcessor(
            client: client,
            configuration: .init(maxConcurrency: 3, retry: RetryPolicy(maxAttempts: 4, baseDelay: .seconds(1), maxDelay: .seconds(3), jitter: false)),
            clock: clock)
        let done = Flag()
        let driver = Task { await driveClock(clock, until: done) }
        let events = await collect(processor.processAsync([chatRequest("flaky"), chatRequest("bad"), chatRequest("net")]))
        done.set()
        await driver.value
        let byID = Dictionary(uniqueKeysWithValues: events.items.map { ($0.id, $0) })
        #expect(byID["flaky"]?.attempts == 4)
        #expect(byID["flaky"]?.error?.code == .server)
        #expect(byID["bad"]?.attempts == 1)
        #expect(byID["net"]?.attempts == 4)
        #expect(byID["net"]?.error?.code == .network)
        let delays = events.retryEvents.filter { $0.0 == "flaky" }.map(\.2)
        #expect(delays == [.seconds(1), .seconds(2), .seconds(3)])  // capped exponential
    }

    @Test func fullJitterStaysWithinTheCap() {
        let policy = RetryPolicy(maxAttempts: 10, baseDelay: .seconds(1), maxDelay: .seconds(8))
        let e = BatchError(.server, "x")
        for attempt in 1...9 {
            for r in [0.0, 0.3, 0.999] {
                let d = policy.delay(afterAttempt: attempt, error: e, random: { r })!
                let cap = min(Duration.seconds(8), .seconds(1) * (1 << (attempt - 1)))
                #expect(d >= .zero && d <= cap)
            }
        }
        #expect(policy.delay(afterAttempt: 10, error: e, random: { 0.5 }) == nil)
        #expect(policy.delay(afterAttempt: 1, error: BatchError(.invalidRequest, "x"), random: { 0.5 }) == nil)
        #expect(policy.delay(afterAttempt: 1, error: BatchError(.rateLimited, "x", retryAfter: .seconds(3600)), random: { 0.5 }) == nil)
    }

    @Test func timeoutEndsAHungAttempt() async {
        let clock = ManualClock()
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            defer { probe.leave() }
            await waitForCancellation()
            probe.markCancelled()
            throw CancellationError()
        }
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 2, retry: RetryPolicy(maxAttempts: 2, jitter: false), timeout: .seconds(30)),
            clock: clock)
        let done = Flag()
        let driver = Task { await driveClock(clock, until: done) }
        let events = await collect(processor.processAsync([chatRequest("hang")]))
        done.set()
        await driver.value
        let r = events.items.first
        #expect(r?.error?.code == .timeout)
        #expect(r?.attempts == 2)
        #expect(probe.cancelled == 2)
        #expect(probe.active == 0)
    }

    @Test func adaptiveConcurrencyHalvesOncePerBurstAndGrowsBack() {
        let a = AdaptiveConcurrency(maximum: 64)
        a.recordThrottle()
        #expect(a.current == 32)
        for _ in 0..<10 { a.recordThrottle() }  // same burst
        #expect(a.current == 32)
        for _ in 0..<40 { a.recordCompletion() }
        a.recordThrottle()
        #expect(a.current == 16)
        for _ in 0..<100 { a.recordSuccess() }
        #expect(a.current == 64)
        let fixed = AdaptiveConcurrency(maximum: 8, adapts: false)
        fixed.recordThrottle()
        #expect(fixed.current == 8)
    }

    @Test func learnedLimitFromResponsesPacesTheRun() async {
        let clock = ManualClock()
        let info = RateLimitInfo(requests: .init(limit: 60, remaining: 0))
        let client = ClosureClient { _ in ModelResponse(text: "ok", usage: Usage(inputTokens: 1, outputTokens: 1), rateLimit: info) }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 1), clock: clock)
        var it = processor.processAsync((0..<3).map { chatRequest("l\($0)") }).makeAsyncIterator()
        _ = await it.nextSkippingProgress()
        guard case .item = await it.nextSkippingProgress() else { Issue.record("expected the first item"); return }
        // The first answer said: 60/min and nothing left. The second start waits a second.
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .seconds(1))
        clock.advance(by: .seconds(1))
        guard case .item = await it.nextSkippingProgress() else { Issue.record("expected the second item"); return }
    }
}
