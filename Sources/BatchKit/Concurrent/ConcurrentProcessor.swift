import Foundation
import Synchronization

/// Runs requests against a real-time ``ModelClient`` with bounded concurrency, token-bucket rate
/// limits, retries and backpressure.
///
/// ```swift
/// let processor = ConcurrentProcessor(
///     client: OpenAIClient(apiKey: key),
///     configuration: .init(maxConcurrency: 64, requestsPerMinute: 3_000, tokensPerMinute: 1_000_000))
/// for await event in processor.processAsync(requests) { ... }
/// ```
///
/// - Requests are pulled lazily: a million-line input is never in memory, and the input is never
///   read much further ahead than what runs.
/// - At most `maxConcurrency` requests are in flight; with adaptive concurrency (the default) the
///   limit halves on 429/529/503 and grows back by one per window of successes (AIMD).
/// - Each start is admitted through the ``RateLimiter``: requests/minute and tokens/minute, the
///   token estimate being prompt size + max output tokens, corrected by the real usage, paced a
///   little under each limit (``Configuration/rateLimitHeadroom``). Rate-limit
///   headers the server sends tighten the buckets, and teach them limits that were not configured.
/// - A 429 pauses every new start until its retry-after; retryable failures are retried with capped
///   exponential backoff and full jitter (``RetryPolicy``), each retry announced by `.retrying`.
/// - Time comes from the injected clock: tests use `ManualClock` and never sleep.
public struct ConcurrentProcessor<C: Clock>: Processor where C.Duration == Duration {
    /// How the processor runs.
    public struct Configuration: Sendable {
        /// Most requests in flight at once.
        public var maxConcurrency: Int
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        /// Input-token limit, for providers that meter input and output apart (Anthropic).
        public var inputTokensPerMinute: Int?
        public var outputTokensPerMinute: Int?
        /// How many seconds' worth of budget a bucket holds (and starts with). Half a second by
        /// default: with the headroom, that stays inside a server bucket of one second at the
        /// limit however requests up to half a second apart bunch up on the way.
        public var rateLimitBurst: Duration
        /// The share of every rate limit left unused, for jitter between leaving here and
        /// arriving there (0.02: pace at 98 % of the limit; at most 0.5).
        public var rateLimitHeadroom: Double
        /// Whether limits the server reports in its headers are adopted when none were configured.
        public var learnsRateLimits: Bool
        /// Halve concurrency on throttling, grow back on success.
        public var adaptiveConcurrency: Bool
        public var retry: RetryPolicy
        /// Time allowed for one attempt; `nil` (the default) for none. The provider clients have
        /// their own transport timeout; set this for clients that might hang.
        public var timeout: Duration?
        /// Output tokens assumed for a chat request without `maxTokens`, for the token estimate.
        public var defaultMaxOutputTokens: Int
        /// Events that may wait for the consumer before new work stops starting.
        public var eventBufferSize: Int
        /// How often `.progress` is sent.
        public var progressInterval: Duration
        /// Prices for cost in progress and summary; `nil` for no cost.
        public var priceTable: PriceTable?
        /// Turns errors the client throws that are not ``BatchError``s into ones.
        public var classifyError: (@Sendable (any Error) -> BatchError)?
        /// When a request whose id was already seen in this run fails validation instead of running.
        public var duplicateIDCheck: DuplicateIDCheck
        /// Stop starting requests once this many results in a row failed the same systematic way
        /// (``BatchError/systematicClass``: a wrong key, a missing model, an untrusted certificate,
        /// the same refusal every time); `nil` or `0` (the default) never stops. A success, or a
        /// failure of another kind, starts the count again. A tripped run ends with `.failed`
        /// (code ``BatchError/Code/systematicFailure``, naming an example and the fix); requests
        /// in flight finish and get their items, requests never started get none (over a
        /// ``Journal`` a rerun sends them).
        public var maxConsecutiveFailures: Int?
        /// A spending limit in dollars for each run; `nil` for none. Each request reserves its
        /// estimated real-time cost (prompt estimate + `maxTokens`, priced by ``priceTable`` or
        /// ``PriceTable/defaults``) before it is sent and settles on the usage its answer reports; a
        /// request that could take spending over the limit is not started and fails with
        /// ``BatchError/Code/budgetExceeded``. A request of a model without a price fails
        /// validation. What an answer without usage cost is taken to be its estimate, and so is a
        /// request that failed without an HTTP answer (a timeout may still be billed).
        public var maxCost: Double?

        public init(
            maxConcurrency: Int = 16, requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
            inputTokensPerMinute: Int? = nil, outputTokensPerMinute: Int? = nil, rateLimitBurst: Duration = .milliseconds(500),
            rateLimitHeadroom: Double = 0.02, learnsRateLimits: Bool = true, adaptiveConcurrency: Bool = true, retry: RetryPolicy = RetryPolicy(),
            timeout: Duration? = nil, defaultMaxOutputTokens: Int = 256, eventBufferSize: Int = 64,
            progressInterval: Duration = .milliseconds(500), priceTable: PriceTable? = nil,
            classifyError: (@Sendable (any Error) -> BatchError)? = nil, duplicateIDCheck: DuplicateIDCheck = .automatic,
            maxConsecutiveFailures: Int? = nil, maxCost: Double? = nil
        ) {
            self.maxConcurrency = max(1, maxConcurrency)
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
            self.inputTokensPerMinute = inputTokensPerMinute
            self.outputTokensPerMinute = outputTokensPerMinute
            self.rateLimitBurst = rateLimitBurst
            self.rateLimitHeadroom = rateLimitHeadroom
            self.learnsRateLimits = learnsRateLimits
            self.adaptiveConcurrency = adaptiveConcurrency
            self.retry = retry
            self.timeout = timeout
            self.defaultMaxOutputTokens = defaultMaxOutputTokens
            self.eventBufferSize = max(1, eventBufferSize)
            self.progressInterval = progressInterval
            self.priceTable = priceTable
            self.classifyError = classifyError
            self.duplicateIDCheck = duplicateIDCheck
            self.maxConsecutiveFailures = maxConsecutiveFailures
            self.maxCost = maxCost
        }
    }

    package let client: any ModelClient
    package let configuration: Configuration
    let clock: C

    /// A processor on a given clock (tests pass a `ManualClock`).
    public init(client: any ModelClient, configuration: Configuration = Configuration(), clock: C) {
        self.client = client
        self.configuration = configuration
        self.clock = clock
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let run = ConcurrentRun(client: client, configuration: configuration, clock: clock)
        let total = (requests as? ArrayAsyncSequence<BatchRequest>)?.count
        let checksIDs: Bool
        switch configuration.duplicateIDCheck {
        case .always: checksIDs = true
        case .never: checksIDs = false
        case .automatic: checksIDs = total != nil
        }
        return BatchEventStream(bufferSize: configuration.eventBufferSize) { sink in
            await run.run(requests, total: total, checksIDs: checksIDs, sink: sink)
        }
    }
}

extension ConcurrentProcessor where C == ContinuousClock {
    /// A processor on the continuous clock.
    public init(client: any ModelClient, configuration: Configuration = Configuration()) {
        self.init(client: client, configuration: configuration, clock: ContinuousClock())
    }
}

/// When ``ConcurrentProcessor`` checks request ids for duplicates.
///
/// Remembering every id costs memory in proportion to the run (about 16 bytes per request for
/// the 64-bit fingerprints kept). An array input is in memory anyway, so it is always checked; a
/// lazily pulled sequence is how unbounded streams run in constant memory, so by default it is
/// not — ask for `.always` if yours may repeat ids.
public enum DuplicateIDCheck: Sendable, Hashable {
    /// Check array inputs; trust lazily pulled sequences (the default).
    case automatic
    /// Check every input.
    case always
    /// Check nothing.
    case never
}

/// What running one request (with its retries) reports to its worker.
struct RequestOutcome: Sendable {
    var result: BatchResult
    var model: String?
    var retries: Int
    var rateLimited: Int
}

/// The state of one run, shared by its workers: the counters are in the ``RunBook`` (behind its
/// lock), the budgets behind the rate limiter's and the concurrency gate's own locks.
final class ConcurrentRun<C: Clock>: Sendable where C.Duration == Duration {
    let client: any ModelClient
    let configuration: ConcurrentProcessor<C>.Configuration
    let clock: C
    let limiter: RateLimiter<C>
    let adaptive: AdaptiveConcurrency
    let rng: Mutex<UInt64>
    /// Deadlines of attempts, when a timeout is configured.
    let timeouts: TimeoutScheduler<C>?
    /// Stops new starts after a run of identical systematic failures, when configured.
    let breaker: FailureBreaker?
    /// The run's spending limit, when `maxCost` is set.
    let budget: CostBudget?

    init(client: any ModelClient, configuration: ConcurrentProcessor<C>.Configuration, clock: C) {
        self.client = client
        self.configuration = configuration
        self.clock = clock
        self.limiter = RateLimiter(
            limits: .init(
                requestsPerMinute: configuration.requestsPerMinute, tokensPerMinute: configuration.tokensPerMinute,
                inputTokensPerMinute: configuration.inputTokensPerMinute, outputTokensPerMinute: configuration.outputTokensPerMinute),
            burst: configuration.rateLimitBurst, headroom: configuration.rateLimitHeadroom, learnsFromServer: configuration.learnsRateLimits, clock: clock)
        self.adaptive = AdaptiveConcurrency(maximum: configuration.maxConcurrency, adapts: configuration.adaptiveConcurrency)
        self.rng = Mutex(UInt64.random(in: 1...UInt64.max))
        self.timeouts = configuration.timeout.map { TimeoutScheduler(timeout: $0, clock: clock) }
        self.breaker = configuration.maxConsecutiveFailures.flatMap { $0 > 0 ? FailureBreaker(threshold: $0) : nil }
        self.budget = configuration.maxCost.map { CostBudget(limit: $0) }
    }

    func random() -> Double {
        rng.withLock { s in
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
    }

    /// The run: `maxConcurrency` workers in a task group, each pulling the next request from the
    /// shared input when the concurrency gate lets it, running it (with retries), and emitting its
    /// item. A worker holds its slot until its item is accepted by the event stream, so a slow
    /// consumer stops new work from starting (backpressure). Workers rather than a task per
    /// request: the executor's own cost per request is what the throughput benchmark measures.
    func run<S: AsyncSequence & Sendable>(_ requests: S, total: Int?, checksIDs: Bool, sink: EventSink) async -> BatchRunOutcome
    where S.Element == BatchRequest, S.Failure == Never {
        let start = clock.now
        let input = SharedInput(requests)
        let book = RunBook(
            total: total, firstProgress: configuration.progressInterval, prices: configuration.priceTable, checksIDs: checksIDs)
        let workers = configuration.maxConcurrency
        await withTaskGroup(of: ChildTaskResult.self) { group in
            if let timeouts {
                group.addTask {
                    await timeouts.run()
                    return .timeoutSchedulerEnded
                }
            }
            for _ in 0..<workers {
                group.addTask {
                    await self.work(input: input, book: book, sink: sink, start: start)
                    return .workerFinished
                }
            }
            // The run is over when the last worker is: the timeout scheduler serves them and has
            // no end of its own, so it is stopped then.
            var running = workers
            while let result = await group.next() {
                switch result {
                case .workerFinished:
                    running -= 1
                    if running == 0 {
                        timeouts?.stop()
                        group.cancelAll()
                    }
                case .timeoutSchedulerEnded:
                    break
                }
            }
        }
        if let tripped = breaker?.error { return .failed(tripped) }
        if book.isStopped || Task.isCancelled { return .failed(.cancelled("the run was cancelled")) }
        return .completed(book.summary(duration: start.duration(to: clock.now)))
    }

    /// One worker's loop.
    func work<S: AsyncSequence & Sendable>(input: SharedInput<S>, book: RunBook, sink: EventSink, start: C.Instant) async
    where S.Element == BatchRequest, S.Failure == Never {
        while true {
            guard await adaptive.acquire() else { return }
            defer { adaptive.release() }
            if book.isStopped || breaker?.isTripped == true || Task.isCancelled { return }
            guard let request = await input.next() else { return }
            // Tripped while this worker waited for input: the request is left unstarted.
            if breaker?.isTripped == true { return }
            let result: BatchResult
            if let invalid = validate(request, book: book) {
                result = invalid
            } else {
                book.started()
                let outcome = await execute(request, sink: sink)
                result = outcome.result
                book.retried(outcome.retries, rateLimited: outcome.rateLimited)
            }
            breaker?.record(result)
            let progress = book.finished(
                result, model: request.model, elapsed: start.duration(to: clock.now), interval: configuration.progressInterval)
            if let progress { sink.offer(.progress(progress)) }
            if !(await sink.emit(.item(result))) {
                book.stop()
                return
            }
        }
    }

    /// Duplicate ids and what the client cannot express fail before anything is sent.
    func validate(_ request: BatchRequest, book: RunBook) -> BatchResult? {
        if request.id.isEmpty {
            return BatchResult(
                id: request.id, outcome: .failure(.validation("the request id is empty", field: "id")), attempts: 0, route: .none,
                metadata: request.metadata)
        }
        if !book.firstSight(of: request.id) {
            return BatchResult(
                id: request.id, outcome: .failure(.validation("duplicate id \"\(request.id)\": ids must be unique within a run", field: "id")),
                attempts: 0, route: .none, metadata: request.metadata)
        }
        do {
            try client.validate(request)
        } catch {
            return BatchResult(id: request.id, outcome: .failure(error), attempts: 0, route: .none, metadata: request.metadata)
        }
        return nil
    }

    /// One request, with its retries.
    func execute(_ request: BatchRequest, sink: EventSink) async -> RequestOutcome {
        let input = TokenEstimator.inputTokens(request)
        let cost = RateLimitCost(
            requests: 1, inputTokens: input, outputTokens: TokenEstimator.outputTokens(request, default: configuration.defaultMaxOutputTokens))
        let started = clock.now
        var attempt = 0
        var rateLimited = 0
        // The budget's price and estimate for this request (real-time prices).
        var spending: (price: PriceTable.Price, estimate: Double)?
        if budget != nil {
            let prices = configuration.priceTable ?? .defaults
            guard let model = request.model, let price = prices.price(for: model) else {
                let error = BatchError.validation(
                    "no price for model \(request.model ?? "(none)"): a budget (maxCost) needs the price of every model; add it to the price table",
                    field: "model")
                return finish(request, .failure(error), attempt: 0, started: started, rateLimited: 0)
            }
            spending = (price, price.cost(of: Usage(inputTokens: cost.inputTokens, outputTokens: cost.outputTokens)))
        }
        while true {
            attempt += 1
            if let budget, let spending, !budget.reserve(spending.estimate) {
                return finish(
                    request, .failure(budget.exceededError(estimate: spending.estimate)), attempt: attempt - 1, started: started,
                    rateLimited: rateLimited)
            }
            do {
                try await limiter.acquire(cost)
            } catch {
                if let spending { budget?.settle(reserved: spending.estimate, actual: 0) }
                return finish(request, .failure(.cancelled()), attempt: attempt - 1, started: started, rateLimited: rateLimited)
            }
            let error: BatchError
            do {
                let response = try await send(request)
                // Usage corrects the estimate. An answer without usage keeps its estimate as
                // spent: refunding it would let a client that never reports usage run past a
                // tokens-per-minute limit.
                if response.usage.totalTokens > 0 {
                    limiter.settle(estimated: cost, actualInput: response.usage.inputTokens, actualOutput: response.usage.outputTokens)
                }
                if let info = response.rateLimit { limiter.observe(info) }
                if let spending {
                    // An answer without usage keeps its estimate as spent.
                    let actual = response.usage.totalTokens > 0 ? spending.price.cost(of: response.usage) : spending.estimate
                    budget?.settle(reserved: spending.estimate, actual: actual)
                }
                adaptive.recordSuccess()
                return finish(request, .success(response), attempt: attempt, started: started, rateLimited: rateLimited)
            } catch let e {
                error = classify(e)
                // An HTTP error answer is not billed; a failure without an answer (a timeout, a
                // dropped connection) may have been: its estimate stays spent.
                if let spending { budget?.settle(reserved: spending.estimate, actual: error.httpStatus == nil && error.code != .cancelled ? spending.estimate : 0) }
            }
            if error.code == .cancelled || Task.isCancelled {
                limiter.refund(cost)
                return finish(request, .failure(.cancelled()), attempt: attempt, started: started, rateLimited: rateLimited)
            }
            if let info = error.rateLimit { limiter.observe(info) }
            switch error.code {
            case .rateLimited:
                rateLimited += 1
                // The server did no work: the tokens were not spent.
                limiter.settle(estimated: cost, actualInput: 0, actualOutput: 0)
                limiter.pause(for: error.retryAfter ?? configuration.retry.baseDelay)
                adaptive.recordThrottle()
            case .overloaded:
                adaptive.recordThrottle()
            default:
                adaptive.recordCompletion()
            }
            guard let delay = configuration.retry.delay(afterAttempt: attempt, error: error, random: random) else {
                return finish(request, .failure(error), attempt: attempt, started: started, rateLimited: rateLimited)
            }
            await sink.emit(.retrying(id: request.id, attempt: attempt, delay: delay, error: error))
            do {
                try await clock.sleep(until: clock.now.advanced(by: delay), tolerance: nil)
            } catch {
                return finish(request, .failure(.cancelled()), attempt: attempt, started: started, rateLimited: rateLimited)
            }
        }
    }

    func finish(_ request: BatchRequest, _ outcome: Result<ModelResponse, BatchError>, attempt: Int, started: C.Instant, rateLimited: Int) -> RequestOutcome {
        var result = BatchResult(
            id: request.id, outcome: outcome, attempts: attempt, latency: started.duration(to: clock.now), route: attempt > 0 ? .realtime : .none,
            metadata: request.metadata)
        // Wall-clock stamps for the record (the report's time axis); the latency, measured on the
        // injected clock, places the start.
        let ended = Date()
        result.endedAt = ended
        if attempt > 0 { result.startedAt = ended.addingTimeInterval(-result.latency.seconds) }
        result.rateLimitedAttempts = rateLimited
        if let prices = configuration.priceTable, result.usage != .zero { result.cost = prices.cost(of: result, model: request.model) }
        return RequestOutcome(result: result, model: request.model, retries: max(0, attempt - 1), rateLimited: rateLimited)
    }

    /// One attempt, bounded by the timeout.
    func send(_ request: BatchRequest) async throws -> ModelResponse {
        guard let timeouts else { return try await client.send(request) }
        let client = self.client
        return try await withThrowingTaskGroup(of: AttemptResult.self) { group in
            group.addTask { .answered(try await client.send(request)) }
            group.addTask {
                // `false` means this wait was cancelled: the answer came first and the group is
                // being torn down, so what is returned here is never read.
                await timeouts.waitForTimeout() ? .timedOut : .abandoned
            }
            defer { group.cancelAll() }
            switch try await group.next() {
            case .answered(let response)?:
                return response
            case .timedOut?, .abandoned?, nil:
                throw BatchError(.timeout, "no answer within \(timeouts.timeout)")
            }
        }
    }

    /// What a child task of the run's task group reports when it ends.
    private enum ChildTaskResult: Sendable {
        /// A worker found the input exhausted, or the run stopped.
        case workerFinished
        /// The timeout scheduler's loop ended.
        case timeoutSchedulerEnded
    }

    /// What a child task of one timed attempt reports when it ends.
    private enum AttemptResult: Sendable {
        case answered(ModelResponse)
        /// The attempt's deadline passed.
        case timedOut
        /// The deadline wait was cancelled before it passed.
        case abandoned
    }

    func classify(_ error: any Error) -> BatchError {
        if let e = error as? BatchError { return e }
        if error is CancellationError { return .cancelled() }
        if let c = configuration.classifyError { return c(error) }
        return BatchError(wrapping: error)
    }
}

/// The shared books of a run: totals, ids seen, progress timing.
final class RunBook: Sendable {
    private struct State {
        var total: Int?
        var totals = RunTotals()
        var inFlight = 0
        /// 64-bit fingerprints (per-process seeded SipHash) of the ids seen: a quarter of the
        /// memory of the strings; two different ids collide with odds of about 1 in 10^7 per
        /// million-request run... squared: n²/2^65, 2.7e-8 for a million ids.
        var seen = Set<Int>()
        var nextProgress: Duration
        var stopped = false
    }

    private let state: Mutex<State>
    private let prices: PriceTable?
    private let checksIDs: Bool

    init(total: Int?, firstProgress: Duration, prices: PriceTable?, checksIDs: Bool) {
        state = Mutex(State(total: total, nextProgress: firstProgress))
        self.prices = prices
        self.checksIDs = checksIDs
    }

    /// Whether the consumer went away.
    var isStopped: Bool { state.withLock { $0.stopped } }
    func stop() { state.withLock { $0.stopped = true } }

    /// `true` the first time an id is seen in this run.
    func firstSight(of id: String) -> Bool {
        guard checksIDs else { return true }
        let fingerprint = id.hashValue
        return state.withLock { $0.seen.insert(fingerprint).inserted }
    }

    func started() { state.withLock { $0.inFlight += 1 } }

    func retried(_ retries: Int, rateLimited: Int) {
        guard retries > 0 || rateLimited > 0 else { return }
        state.withLock { s in
            s.totals.retries += retries
            s.totals.rateLimited += rateLimited
        }
    }

    /// Counts a finished request of `model`; returns a progress report when one is due at `elapsed`.
    func finished(_ r: BatchResult, model: String?, elapsed: Duration, interval: Duration) -> BatchProgress? {
        state.withLock { s -> BatchProgress? in
            if r.attempts > 0 { s.inFlight -= 1 }
            s.totals.add(r, model: model, prices: prices)
            guard elapsed >= s.nextProgress else { return nil }
            s.nextProgress = elapsed + interval
            let done = s.totals.succeeded + s.totals.failed
            let rate = elapsed > .zero ? Double(done) / elapsed.seconds : 0
            var eta: Duration?
            if let total = s.total, rate > 0 { eta = .seconds(Double(max(0, total - done)) / rate) }
            return BatchProgress(
                succeeded: s.totals.succeeded, failed: s.totals.failed, inFlight: s.inFlight, total: s.total,
                usage: s.totals.usage, cost: s.totals.cost(priced: prices != nil), requestsPerSecond: rate, eta: eta,
                elapsed: elapsed)
        }
    }

    func summary(duration: Duration) -> BatchSummary {
        state.withLock { $0.totals.summary(duration: duration, priced: prices != nil) }
    }
}
