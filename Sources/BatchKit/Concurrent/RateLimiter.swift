import Synchronization

/// Token buckets for requests per minute and tokens per minute (optionally input and output
/// tokens apart), plus a pause that a 429 imposes on every new start.
///
/// Admission reserves: a caller takes what it needs at once, possibly driving a bucket below
/// zero, and sleeps (on the injected clock) for exactly the time the bucket needs to refill that
/// deficit. Callers are therefore served in arrival order with one sleep each, and no thundering
/// herd wakes to compete for the same tokens. A cancelled sleeper gives its reservation back.
///
/// Buckets refill continuously at `limit × (1 − headroom) / 60` per second and hold at most
/// `burst` seconds' worth, so a run starts with a small burst rather than a whole minute's quota.
///
/// Headroom, because a server's bucket counts arrivals, not departures: requests paced exactly at
/// the limit reach the server with network jitter, and a bucket that matches the server's to the
/// request turns that jitter into 429s. A client bucket of `burst` seconds at a pace `headroom`
/// under the limit never overruns a server bucket of one second at the limit as long as
/// `burst + jitter ≤ 1 s` (a (σ, ρ)-bounded flow delayed by at most `J` is (σ + ρJ, ρ)-bounded).
/// A limit learnt from the server starts with nothing available: requests already in flight were
/// counted by the server after the `remaining` the first answer reports.
package final class RateLimiter<C: Clock>: Sendable where C.Duration == Duration {
    package typealias Cost = RateLimitCost
    package typealias Limits = RateLimits
    typealias Kind = RateLimitBucket

    let clock: C
    /// The instant the limiter's state counts from: its buckets and pause keep durations since
    /// then, so that the state is not generic over the clock (a generic state would cost a
    /// metadata lookup on every admission).
    let origin: C.Instant
    let state: Mutex<RateLimiterState>

    /// - Parameters:
    ///   - limits: configured limits.
    ///   - burst: how many seconds' worth each bucket holds (and starts with).
    ///   - headroom: the share of each limit left unused (0.02 paces at 98 %), between 0 and 0.5.
    ///   - learnsFromServer: whether limits the server reports create buckets that were not configured.
    package init(limits: Limits, burst: Duration = .seconds(1), headroom: Double = 0, learnsFromServer: Bool = true, clock: C) {
        self.clock = clock
        self.origin = clock.now
        self.state = Mutex(RateLimiterState(limits: limits, burst: burst, headroom: headroom, learnsFromServer: learnsFromServer))
    }

    /// Now, as the state counts time.
    private var elapsed: Duration { origin.duration(to: clock.now) }

    /// The current per-minute limits (configured or learned).
    package var limits: Limits { state.withLock { $0.limits } }

    /// Whether no limit applies and nothing is paused (admission is then free).
    var isUnlimited: Bool { state.withLock { $0.isUnlimited } }

    /// Waits until `cost` may start, honouring any pause. Throws `CancellationError` if the task is
    /// cancelled while waiting (and returns the reservation).
    package func acquire(_ cost: Cost) async throws {
        // No limit and no pause, the common case without rate limits: one lock, no clock read.
        if state.withLock({ $0.isUnlimited }) { return }
        try await waitOutPause()
        let wait = state.withLock { $0.reserve(cost, at: elapsed) }
        if wait > .zero {
            do {
                try await clock.sleep(until: clock.now.advanced(by: wait), tolerance: nil)
            } catch {
                refund(cost)
                throw error
            }
        }
        try await waitOutPause()
    }

    private func waitOutPause() async throws {
        while let remaining = state.withLock({ $0.pauseRemaining(at: elapsed) }) {
            try await clock.sleep(until: clock.now.advanced(by: remaining), tolerance: nil)
        }
    }

    /// Gives back a reservation that was not used (the request never reached the server).
    package func refund(_ cost: Cost) {
        state.withLock { $0.refund(cost) }
    }

    /// Corrects the token reservation with the real usage once the answer is known.
    ///
    /// Only for answers that report their usage: an answer without usage keeps its estimate as
    /// spent (pass nothing here), or a tokens-per-minute limit would not hold for such clients.
    package func settle(estimated: Cost, actualInput: Int, actualOutput: Int) {
        let actual = Cost(requests: estimated.requests, inputTokens: actualInput, outputTokens: actualOutput)
        guard actual != estimated else { return }
        state.withLock { s in
            guard s.buckets.hasTokenBuckets else { return }
            s.settle(estimated: estimated, actual: actual, at: elapsed)
        }
    }

    /// Stops every new start until `duration` from now (a 429's retry-after). A pause never
    /// shortens an existing one.
    package func pause(for duration: Duration) {
        state.withLock { $0.pause(until: elapsed + duration) }
    }

    /// Tightens the buckets to what the server reports: never more available than the server's
    /// `remaining`; and, when learning, adopts limits that were not configured.
    package func observe(_ info: RateLimitInfo) {
        state.withLock { $0.observe(info, at: elapsed) }
    }
}

/// What one request needs from a ``RateLimiter``.
package struct RateLimitCost: Sendable, Hashable {
    package var requests: Int
    package var inputTokens: Int
    package var outputTokens: Int
    package var totalTokens: Int { inputTokens + outputTokens }

    package init(requests: Int = 1, inputTokens: Int = 0, outputTokens: Int = 0) {
        self.requests = requests
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// The four limits of a ``RateLimiter`` (per minute). `nil` means unlimited (unless learned from
/// the server).
package struct RateLimits: Sendable, Hashable {
    package var requestsPerMinute: Int?
    package var tokensPerMinute: Int?
    package var inputTokensPerMinute: Int?
    package var outputTokensPerMinute: Int?

    package init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, inputTokensPerMinute: Int? = nil, outputTokensPerMinute: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.inputTokensPerMinute = inputTokensPerMinute
        self.outputTokensPerMinute = outputTokensPerMinute
    }
}

/// One token bucket, its time kept as a duration since the limiter's origin.
struct TokenBucket: Sendable {
    /// The limit (configured or reported), the pace (the limit less the headroom), both per
    /// minute, and the most the bucket holds.
    let perMinute, pacePerMinute, capacity: Double
    /// Set by the user (never loosened by what the server says) or learned.
    let configured: Bool
    /// What is left to take (below zero while a deficit refills), as of `last`.
    var available: Double
    var last: Duration

    /// A full bucket for `perMinute`, paced `headroom` under it, holding `burst` seconds' worth.
    init(perMinute: Double, headroom: Double, burst: Duration, now: Duration, configured: Bool) {
        let pace = perMinute * (1 - headroom)
        let cap = max(1, pace / 60 * burst.seconds)
        self.perMinute = perMinute
        self.pacePerMinute = pace
        self.capacity = cap
        self.available = cap
        self.last = now
        self.configured = configured
    }

    mutating func refill(_ now: Duration) {
        let dt = now - last
        if dt > .zero {
            available = min(capacity, available + dt.seconds * pacePerMinute / 60)
            last = now
        }
    }

    /// Time until `available` is back to zero from a deficit.
    var deficitWait: Duration { available >= 0 ? .zero : .seconds(-available / (pacePerMinute / 60)) }
}

/// The buckets by name; `nil` where no limit applies.
struct RateBuckets: Sendable {
    var requests: TokenBucket?
    var tokens: TokenBucket?
    var inputTokens: TokenBucket?
    var outputTokens: TokenBucket?

    subscript(kind: RateLimitBucket) -> TokenBucket? {
        get {
            switch kind {
            case .requests: requests
            case .tokens: tokens
            case .inputTokens: inputTokens
            case .outputTokens: outputTokens
            }
        }
        set {
            switch kind {
            case .requests: requests = newValue
            case .tokens: tokens = newValue
            case .inputTokens: inputTokens = newValue
            case .outputTokens: outputTokens = newValue
            }
        }
    }

    var isEmpty: Bool { requests == nil && tokens == nil && inputTokens == nil && outputTokens == nil }
    var hasTokenBuckets: Bool { tokens != nil || inputTokens != nil || outputTokens != nil }
}

/// The state of a ``RateLimiter`` as a value, time given as durations since the limiter's origin:
/// driven under the limiter's lock, and synchronously in tests.
struct RateLimiterState: Sendable {
    var buckets = RateBuckets()
    /// Until when every new start waits (a 429's retry-after).
    var pausedUntil: Duration?
    let burst: Duration
    let headroom: Double
    let learns: Bool

    init(limits: RateLimits, burst: Duration, headroom: Double, learnsFromServer: Bool) {
        self.burst = burst
        self.headroom = min(0.5, max(0, headroom))
        self.learns = learnsFromServer
        for kind in RateLimitBucket.allCases {
            if let l = limits[kind], l > 0 {
                buckets[kind] = TokenBucket(perMinute: Double(l), headroom: self.headroom, burst: burst, now: .zero, configured: true)
            }
        }
    }

    /// Whether no limit applies and nothing is paused.
    var isUnlimited: Bool { pausedUntil == nil && buckets.isEmpty }

    /// The current per-minute limits (configured or learned).
    var limits: RateLimits {
        var limits = RateLimits()
        for kind in RateLimitBucket.allCases { limits[kind] = buckets[kind].map { Int($0.perMinute) } }
        return limits
    }

    /// How long a start at `now` still waits for a pause; `nil` (and the pause cleared) when none.
    mutating func pauseRemaining(at now: Duration) -> Duration? {
        guard let p = pausedUntil else { return nil }
        if p <= now {
            pausedUntil = nil
            return nil
        }
        return p - now
    }

    /// Takes `cost` from every bucket at `now`; returns how long the caller sleeps for the deficit.
    mutating func reserve(_ cost: RateLimitCost, at now: Duration) -> Duration {
        if buckets.isEmpty { return .zero }
        var wait = Duration.zero
        for kind in RateLimitBucket.allCases {
            guard var b = buckets[kind] else { continue }
            b.refill(now)
            b.available -= cost[kind]
            wait = max(wait, b.deficitWait)
            buckets[kind] = b
        }
        return wait
    }

    /// Gives back a reservation that was not used.
    mutating func refund(_ cost: RateLimitCost) {
        for kind in RateLimitBucket.allCases {
            guard var b = buckets[kind] else { continue }
            b.available = min(b.capacity, b.available + cost[kind])
            buckets[kind] = b
        }
    }

    /// Corrects the token buckets from the estimate to the real usage.
    mutating func settle(estimated: RateLimitCost, actual: RateLimitCost, at now: Duration) {
        for kind in RateLimitBucket.allCases where kind != .requests {
            guard var b = buckets[kind] else { continue }
            b.refill(now)
            b.available = min(b.capacity, b.available - (actual[kind] - estimated[kind]))
            buckets[kind] = b
        }
    }

    /// Every new start waits until `until`; a pause never shortens an existing one.
    mutating func pause(until: Duration) {
        if let p = pausedUntil, p >= until { return }
        pausedUntil = until
    }

    /// Tightens the buckets to what the server reports at `now`.
    mutating func observe(_ info: RateLimitInfo, at now: Duration) {
        for kind in RateLimitBucket.allCases {
            let budget = info[kind]
            if let limit = budget.limit, limit > 0 {
                if let old = buckets[kind] {
                    if !old.configured, Double(limit) != old.perMinute {
                        var b = TokenBucket(perMinute: Double(limit), headroom: headroom, burst: burst, now: now, configured: false)
                        b.available = min(b.capacity, old.available)
                        buckets[kind] = b
                    }
                } else if learns {
                    // Empty: the requests in flight when this answer came back were counted
                    // by the server after the `remaining` it carries.
                    var b = TokenBucket(perMinute: Double(limit), headroom: headroom, burst: burst, now: now, configured: false)
                    b.available = 0
                    buckets[kind] = b
                }
            }
            if let remaining = budget.remaining, var b = buckets[kind] {
                b.refill(now)
                b.available = min(b.available, Double(remaining))
                buckets[kind] = b
            }
        }
    }
}

/// The budgets a ``RateLimiter`` meters, one token bucket each.
enum RateLimitBucket: CaseIterable, Sendable {
    /// Requests per minute.
    case requests
    /// Input plus output tokens per minute.
    case tokens
    /// Input tokens per minute (providers that meter input and output apart).
    case inputTokens
    /// Output tokens per minute.
    case outputTokens
}

extension RateLimitCost {
    /// What this cost takes from the bucket of `kind`.
    subscript(kind: RateLimitBucket) -> Double {
        switch kind {
        case .requests: Double(requests)
        case .tokens: Double(totalTokens)
        case .inputTokens: Double(inputTokens)
        case .outputTokens: Double(outputTokens)
        }
    }
}

extension RateLimits {
    /// The per-minute limit of the bucket of `kind`.
    /// (Read when the limiter starts and by ``RateLimiter/limits``, never per request.)
    subscript(kind: RateLimitBucket) -> Int? {
        get { self[keyPath: Self.field(of: kind)] }
        set { self[keyPath: Self.field(of: kind)] = newValue }
    }

    /// The stored property that holds the limit of `kind`.
    private static func field(of kind: RateLimitBucket) -> WritableKeyPath<Self, Int?> {
        switch kind {
        case .requests: \.requestsPerMinute
        case .tokens: \.tokensPerMinute
        case .inputTokens: \.inputTokensPerMinute
        case .outputTokens: \.outputTokensPerMinute
        }
    }
}

extension RateLimitInfo {
    /// The server's budget for the bucket of `kind`.
    subscript(kind: RateLimitBucket) -> Budget {
        switch kind {
        case .requests: requests
        case .tokens: tokens
        case .inputTokens: inputTokens
        case .outputTokens: outputTokens
        }
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}
