import Synchronization

/// Token buckets for requests per minute and tokens per minute (optionally input and output
/// tokens apart), plus a pause that a 429 imposes on every new start.
///
/// Admission reserves: a caller takes what it needs at once, possibly driving a bucket below
/// zero, and sleeps (on the injected clock) for exactly the time the bucket needs to refill that
/// deficit. Callers are therefore served in arrival order with one sleep each, and no thundering
/// herd wakes to compete for the same tokens. A cancelled sleeper gives its reservation back.
///
/// Buckets refill continuously at `limit / 60` per second and hold at most `burst` seconds'
/// worth, so a run starts with a small burst rather than a whole minute's quota.
public final class RateLimiter<C: Clock>: Sendable where C.Duration == Duration {
    /// What one request needs.
    public struct Cost: Sendable, Hashable {
        public var requests: Int
        public var inputTokens: Int
        public var outputTokens: Int
        public var totalTokens: Int { inputTokens + outputTokens }

        public init(requests: Int = 1, inputTokens: Int = 0, outputTokens: Int = 0) {
            self.requests = requests
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
        }
    }

    /// The four limits (per minute). `nil` means unlimited (unless learned from the server).
    public struct Limits: Sendable, Hashable {
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        public var inputTokensPerMinute: Int?
        public var outputTokensPerMinute: Int?

        public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, inputTokensPerMinute: Int? = nil, outputTokensPerMinute: Int? = nil) {
            self.requestsPerMinute = requestsPerMinute
            self.tokensPerMinute = tokensPerMinute
            self.inputTokensPerMinute = inputTokensPerMinute
            self.outputTokensPerMinute = outputTokensPerMinute
        }
    }

    struct Bucket {
        var perMinute: Double
        var capacity: Double
        var available: Double
        var last: C.Instant
        /// Set by the user (never loosened by what the server says) or learned.
        var configured: Bool

        mutating func refill(_ now: C.Instant) {
            let dt = last.duration(to: now)
            if dt > .zero {
                available = min(capacity, available + dt.seconds * perMinute / 60)
                last = now
            }
        }

        /// Time until `available` is back to zero from a deficit.
        var deficitWait: Duration { available >= 0 ? .zero : .seconds(-available / (perMinute / 60)) }
    }

    enum Kind: Int, CaseIterable { case requests, tokens, input, output }

    struct State {
        var buckets: [Bucket?] = [nil, nil, nil, nil]
        var pausedUntil: C.Instant?
    }

    let clock: C
    let burst: Duration
    let learns: Bool
    let state: Mutex<State>

    /// - Parameters:
    ///   - limits: configured limits.
    ///   - burst: how many seconds' worth each bucket holds (and starts with).
    ///   - learnsFromServer: whether limits the server reports create buckets that were not configured.
    public init(limits: Limits, burst: Duration = .seconds(1), learnsFromServer: Bool = true, clock: C) {
        self.clock = clock
        self.burst = burst
        self.learns = learnsFromServer
        let now = clock.now
        var s = State()
        let configured: [Int?] = [limits.requestsPerMinute, limits.tokensPerMinute, limits.inputTokensPerMinute, limits.outputTokensPerMinute]
        for (i, l) in configured.enumerated() {
            if let l, l > 0 { s.buckets[i] = Self.makeBucket(perMinute: Double(l), burst: burst, now: now, configured: true) }
        }
        self.state = Mutex(s)
    }

    static func makeBucket(perMinute: Double, burst: Duration, now: C.Instant, configured: Bool) -> Bucket {
        let cap = max(1, perMinute / 60 * burst.seconds)
        return Bucket(perMinute: perMinute, capacity: cap, available: cap, last: now, configured: configured)
    }

    /// The current per-minute limits (configured or learned).
    public var limits: Limits {
        state.withLock { s in
            Limits(
                requestsPerMinute: s.buckets[0].map { Int($0.perMinute) }, tokensPerMinute: s.buckets[1].map { Int($0.perMinute) },
                inputTokensPerMinute: s.buckets[2].map { Int($0.perMinute) }, outputTokensPerMinute: s.buckets[3].map { Int($0.perMinute) })
        }
    }

    /// Whether no limit applies and nothing is paused (admission is then free).
    var isUnlimited: Bool { state.withLock { s in s.pausedUntil == nil && s.buckets.allSatisfy { $0 == nil } } }

    private static func amounts(_ cost: Cost) -> [Double] {
        [Double(cost.requests), Double(cost.totalTokens), Double(cost.inputTokens), Double(cost.outputTokens)]
    }

    /// Waits until `cost` may start, honouring any pause. Throws `CancellationError` if the task is
    /// cancelled while waiting (and returns the reservation).
    public func acquire(_ cost: Cost) async throws {
        try await waitOutPause()
        let amounts = Self.amounts(cost)
        let wait: Duration = state.withLock { s in
            if s.buckets[0] == nil && s.buckets[1] == nil && s.buckets[2] == nil && s.buckets[3] == nil { return .zero }
            let now = clock.now
            var wait = Duration.zero
            for i in 0..<4 {
                guard var b = s.buckets[i] else { continue }
                b.refill(now)
                b.available -= amounts[i]
                wait = max(wait, b.deficitWait)
                s.buckets[i] = b
            }
            return wait
        }
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
        while true {
            let until: C.Instant? = state.withLock { s in
                guard let p = s.pausedUntil else { return nil }
                if p <= clock.now {
                    s.pausedUntil = nil
                    return nil
                }
                return p
            }
            guard let until else { return }
            try await clock.sleep(until: until, tolerance: nil)
        }
    }

    /// Gives back a reservation that was not used (the request never reached the server).
    public func refund(_ cost: Cost) {
        let amounts = Self.amounts(cost)
        state.withLock { s in
            for i in 0..<4 where s.buckets[i] != nil {
                s.buckets[i]!.available = min(s.buckets[i]!.capacity, s.buckets[i]!.available + amounts[i])
            }
        }
    }

    /// Corrects the token reservation with the real usage once the answer is known.
    public func settle(estimated: Cost, actualInput: Int, actualOutput: Int) {
        let dIn = Double(actualInput - estimated.inputTokens)
        let dOut = Double(actualOutput - estimated.outputTokens)
        guard dIn != 0 || dOut != 0 else { return }
        state.withLock { s in
            if s.buckets[1] == nil && s.buckets[2] == nil && s.buckets[3] == nil { return }
            let now = clock.now
            let deltas = [0, dIn + dOut, dIn, dOut]
            for i in 1..<4 where s.buckets[i] != nil {
                s.buckets[i]!.refill(now)
                s.buckets[i]!.available = min(s.buckets[i]!.capacity, s.buckets[i]!.available - deltas[i])
            }
        }
    }

    /// Stops every new start until `duration` from now (a 429's retry-after). A pause never
    /// shortens an existing one.
    public func pause(for duration: Duration) {
        state.withLock { s in
            let until = clock.now.advanced(by: duration)
            if let p = s.pausedUntil, p >= until { return }
            s.pausedUntil = until
        }
    }

    /// Tightens the buckets to what the server reports: never more available than the server's
    /// `remaining`; and, when learning, adopts limits that were not configured.
    public func observe(_ info: RateLimitInfo) {
        let budgets = [info.requests, info.tokens, info.inputTokens, info.outputTokens]
        state.withLock { s in
            let now = clock.now
            for i in 0..<4 {
                let budget = budgets[i]
                if let limit = budget.limit, limit > 0 {
                    if s.buckets[i] == nil {
                        if learns {
                            s.buckets[i] = Self.makeBucket(perMinute: Double(limit), burst: burst, now: now, configured: false)
                        }
                    } else if !s.buckets[i]!.configured, Double(limit) != s.buckets[i]!.perMinute {
                        let old = s.buckets[i]!
                        var b = Self.makeBucket(perMinute: Double(limit), burst: burst, now: now, configured: false)
                        b.available = min(b.capacity, old.available)
                        s.buckets[i] = b
                    }
                }
                if let remaining = budget.remaining, s.buckets[i] != nil {
                    s.buckets[i]!.refill(now)
                    s.buckets[i]!.available = min(s.buckets[i]!.available, Double(remaining))
                }
            }
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
