import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

@Suite(.timeLimit(.minutes(5)))
struct RateLimitAndRetryTests {
    @Test func requestsPerMinuteBucketPacesStarts() async {
        let clock = ManualClock()
        let client = ClosureClient { _ in okResponse() }
        // 60 RPM = one per second; a one-second burst holds a single request.
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 4, requestsPerMinute: 60, rateLimitHeadroom: 0, learnsRateLimits: false),
            clock: clock)
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

    @Test func aLearntLimitStartsEmptyAndPacesUnderTheHeadroom() async throws {
        let clock = ManualClock()
        let limiter = RateLimiter(limits: .init(), headroom: 0.5, learnsFromServer: true, clock: clock)
        // The server says 100 of 120 are left, but requests in flight were counted after that:
        // the learnt bucket starts empty, and refills at 60/min (half of 120): one a second.
        limiter.observe(RateLimitInfo(requests: .init(limit: 120, remaining: 100)))
        #expect(limiter.limits.requestsPerMinute == 120, "the limit reported is the server's, not the pace")
        let t = Task { () throws -> Duration in
            try await limiter.acquire(.init())
            return clock.now.offset
        }
        await clock.sleepers(atLeast: 1)
        #expect(clock.nextDeadline?.offset == .seconds(1))
        clock.advance(by: .seconds(1))
        #expect(try await t.value == .seconds(1))
    }

    /// The issue's measurement as an invariant: a server that enforces exactly the limit with a
    /// strict one-second bucket, each request reaching it 0–20 ms after it left. The processor's
    /// default bucket (half a second, 2 % under the limit) draws no 429 and keeps ≥ 0.97 of the
    /// limit; a bucket identical to the server's (one second, at the limit) draws 429s.
    @Test func theDefaultPaceDrawsNoRejectionFromAStrictOneSecondServerBucket() {
        let limit = 3_000.0
        let defaults = ConcurrentProcessor<ManualClock>.Configuration()
        /// When each of `count` back-to-back requests leaves, as `RateLimiter.acquire` schedules them.
        func departures(burst: Duration, headroom: Double, count: Int) -> [Double] {
            var now = Duration.zero
            var bucket = TokenBucket(perMinute: limit, headroom: headroom, burst: burst, now: now, configured: true)
            var out: [Double] = []
            for _ in 0..<count {
                bucket.refill(now)
                bucket.available -= 1
                now += bucket.deficitWait
                out.append(now.seconds)
            }
            return out
        }
        /// How many the server refuses when each departure arrives 0–20 ms later.
        func refusals(_ departures: [Double], seed: UInt64) -> Int {
            var state = seed
            func uniform() -> Double {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Double(state >> 11) / Double(1 << 53)
            }
            let arrivals = departures.map { $0 + 0.020 * uniform() }.sorted()
            let capacity = limit / 60
            var tokens = capacity
            var last = 0.0
            var refused = 0
            for a in arrivals {
                tokens = min(capacity, tokens + (a - last) * limit / 60)
                last = a
                if tokens >= 1 { tokens -= 1 } else { refused += 1 }
            }
            return refused
        }
        let n = 2_000
        var refusedIdentical = 0
        for seed in UInt64(1)...20 {
            let paced = departures(burst: defaults.rateLimitBurst, headroom: defaults.rateLimitHeadroom, count: n)
            #expect(refusals(paced, seed: seed) == 0, "seed \(seed)")
            let throughput = Double(n) / paced.last! / (limit / 60)
            #expect(throughput >= 0.97, "seed \(seed): \(throughput) of the limit")
            refusedIdentical += refusals(departures(burst: .seconds(1), headroom: 0, count: n), seed: seed)
        }
        #expect(refusedIdentical > 0, "a bucket identical to the server's should draw 429s under jitter")
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
        let driver = driveClock(clock)
        let events = await collect(processor.processAsync([chatRequest("flaky"), chatRequest("bad"), chatRequest("net")]))
        driver.cancel()
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
        let driver = driveClock(clock)
        let events = await collect(processor.processAsync([chatRequest("hang")]))
        driver.cancel()
        await driver.value
        let r = events.items.first
        #expect(r?.error?.code == .timeout)
        #expect(r?.attempts == 2)
        #expect(probe.cancelled == 2)
        #expect(probe.active == 0)
    }

    @Test func adaptiveConcurrencyHalvesOncePerBurstAndGrowsBackByOnePerWindow() {
        let a = AdaptiveConcurrency(maximum: 64)
        a.recordThrottle()
        #expect(a.current == 32)
        for _ in 0..<10 { a.recordThrottle() }  // same burst
        #expect(a.current == 32)
        for _ in 0..<40 { a.recordCompletion() }
        a.recordThrottle()
        #expect(a.current == 16)
        // Additive increase: one slot per window of successes at the current limit.
        for _ in 0..<15 { a.recordSuccess() }
        #expect(a.current == 16)
        a.recordSuccess()
        #expect(a.current == 17)
        for _ in 0..<16 { a.recordSuccess() }
        #expect(a.current == 17)
        a.recordSuccess()
        #expect(a.current == 18)
        // Back to 64 takes the sum of the windows from 18 to 63.
        for _ in 0..<((18...63).reduce(0, +) - 1) { a.recordSuccess() }
        #expect(a.current == 63)
        a.recordSuccess()
        #expect(a.current == 64)
        for _ in 0..<200 { a.recordSuccess() }
        #expect(a.current == 64)
        let fixed = AdaptiveConcurrency(maximum: 8, adapts: false)
        fixed.recordThrottle()
        #expect(fixed.current == 8)
    }

    /// AIMD through the processor: a burst of 429s halves the in-flight count (once per burst of
    /// answers from requests that were in flight together), then each window of successes adds
    /// one request in flight, not one per success.
    @Test func inFlightFallsAfterABurstOf429sThenRecoversByOnePerWindow() async {
        let clock = ManualClock()
        let probe = Probe()
        let calls = Mutex(0)
        let client = ClosureClient { r in
            let n = calls.withLock { c in
                c += 1
                return c
            }
            // The first eight calls (all in flight together) are throttled.
            if n <= 8 { throw BatchError(.rateLimited, "slow down", httpStatus: 429, retryAfter: .zero) }
            probe.enter(r.id)
            defer { probe.leave() }
            try await clock.sleep(until: clock.now.advanced(by: .seconds(1)), tolerance: nil)
            return okResponse()
        }
        let processor = ConcurrentProcessor(
            client: client,
            configuration: .init(maxConcurrency: 8, learnsRateLimits: false, retry: RetryPolicy(maxAttempts: 1)),
            clock: clock)
        let consumer = Task { await collect(processor.processAsync((0..<80).map { chatRequest("q\($0)") })) }
        // After the burst: 8 → 4 → 2 (eight throttles are more than one window of four).
        // Then every second the requests in flight all succeed together: a window each.
        var seen: [Int] = []
        for expected in [2, 3, 4, 5, 6, 7, 8, 8] {
            await clock.sleepers(atLeast: expected)
            for _ in 0..<50 { await Task.yield() }
            seen.append(clock.sleeperCount)
            #expect(probe.active == clock.sleeperCount)
            clock.advance(by: .seconds(1))
        }
        #expect(seen == [2, 3, 4, 5, 6, 7, 8, 8])
        let driver = driveClock(clock)
        let events = await consumer.value
        driver.cancel()
        await driver.value
        #expect(events.items.count == 80)
        #expect(events.items.filter { $0.error?.code == .rateLimited }.count == 8)
        #expect(probe.maxActive == 8)
    }

    @Test func learnedLimitFromResponsesPacesTheRun() async {
        let clock = ManualClock()
        let info = RateLimitInfo(requests: .init(limit: 60, remaining: 0))
        let client = ClosureClient { _ in ModelResponse(text: "ok", usage: Usage(inputTokens: 1, outputTokens: 1), rateLimit: info) }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 1, rateLimitHeadroom: 0), clock: clock)
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
