/// The state of an ``AdaptiveConcurrency`` gate as a value: the limit, the holders, the parked
/// callers, and where the limit is in its adaptation. One method per event, each returning what
/// the caller must do once it has released the lock; nothing here resumes or suspends, so tests
/// drive it synchronously with labels standing in for the continuations.
struct AdaptiveConcurrencyStateMachine<Waiter> {
    /// Where the limit is in its adaptation.
    enum Adaptation: Hashable, Sendable {
        /// The limit never moves (adaptation is off).
        case fixed
        /// No decrease is recent: the next throttle halves the limit.
        case settled
        /// The limit was decreased and `completions` requests have completed since. Throttles
        /// are answers to requests that were in flight together, one signal: they do not
        /// decrease the limit again until more requests than the limit have completed.
        case recovering(completions: Int)
    }

    /// The outcome of asking for a slot.
    enum AcquireAction {
        /// A slot is held: go on.
        case proceed
        /// No slot: suspend, then call ``suspendAcquire(id:waiter:)`` with this id.
        case suspend(WaiterID)
    }

    /// The outcome of a caller's suspension, re-checked under the lock that parks it.
    enum SuspendAcquireAction {
        case parked
        /// Resume the caller at once: `true` with a slot, `false` when its task was cancelled.
        case resume(Waiter, Bool)
    }

    /// The outcome of a waiting caller's task being cancelled.
    enum CancelAcquireAction {
        /// Resume it with `false` (it holds no slot).
        case resume(Waiter)
        case none
    }

    /// The outcome of an event that may free slots.
    enum AdmitAction {
        case none
        /// Resume these callers with `true`: each now holds a slot.
        case resume([Waiter])
    }

    /// The outcome of a throttled answer.
    enum ThrottleAction: Hashable, Sendable {
        case decreased(to: Int)
        /// Part of a burst already answered (or adaptation is off).
        case unchanged
    }

    let maximum: Int
    let minimum: Int
    /// The limit now.
    private(set) var current: Int
    /// Slots held now.
    private(set) var active = 0
    private(set) var adaptation: Adaptation
    /// Successes since the limit last moved: when a whole window's worth (the limit) has
    /// succeeded, the limit grows by one (additive increase).
    private(set) var successesTowardIncrease = 0
    private var waiters = WaiterQueue<Waiter>()

    /// - Parameters:
    ///   - maximum: the configured concurrency (at least 1).
    ///   - minimum: the floor of the limit (between 1 and `maximum`).
    ///   - adapts: `false` keeps the limit at `maximum`.
    init(maximum: Int, minimum: Int = 1, adapts: Bool = true) {
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, maximum))
        self.current = self.maximum
        self.adaptation = adapts ? .settled : .fixed
    }

    /// Callers parked now.
    var waiting: Int { waiters.count }

    // MARK: slots

    /// A caller asks for a slot. Parked callers go first: a newcomer never overtakes them.
    mutating func acquire() -> AcquireAction {
        if active < current && waiters.isEmpty {
            active += 1
            return .proceed
        }
        return .suspend(waiters.makeID())
    }

    /// The caller told to suspend as `id` is about to park.
    mutating func suspendAcquire(id: WaiterID, waiter: Waiter) -> SuspendAcquireAction {
        if waiters.takeCancellation(id) { return .resume(waiter, false) }
        if active < current && waiters.isEmpty {
            active += 1
            return .resume(waiter, true)
        }
        return waiters.enqueue(waiter, id: id) ? .parked : .resume(waiter, false)
    }

    /// The task of waiting caller `id` was cancelled.
    mutating func cancelAcquire(id: WaiterID) -> CancelAcquireAction {
        waiters.cancel(id).map(CancelAcquireAction.resume) ?? .none
    }

    /// Caller `id` is done waiting while its task is cancelled: drop any mark its cancellation left.
    mutating func forget(id: WaiterID) { waiters.forget(id) }

    /// A holder gives its slot back.
    mutating func release() -> AdmitAction {
        precondition(active > 0, "AdaptiveConcurrency.release() without a slot held")
        active -= 1
        return admit()
    }

    private mutating func admit() -> AdmitAction {
        guard active < current, !waiters.isEmpty else { return .none }
        var wake: [Waiter] = []
        while active < current, let w = waiters.popFirst() {
            active += 1
            wake.append(w)
        }
        return .resume(wake)
    }

    // MARK: adaptation

    /// Counts a completion towards the end of a burst.
    private mutating func countCompletion() {
        if case .recovering(let n) = adaptation {
            // Once more requests than the limit have completed, the burst is over for good: the
            // gap between completions and the limit only grows until the next decrease.
            adaptation = n + 1 > current ? .settled : .recovering(completions: n + 1)
        }
    }

    /// A request succeeded: once as many have succeeded as the limit (one window), the limit
    /// grows by one, up to the maximum. From half of `L` back to `L` thus takes about `L²/8`
    /// successes — a slow climb back to the rate that was throttled, not a doubling.
    mutating func recordSuccess() -> AdmitAction {
        if case .fixed = adaptation { return .none }
        countCompletion()
        guard current < maximum else { return .none }
        successesTowardIncrease += 1
        guard successesTowardIncrease >= current else { return .none }
        successesTowardIncrease = 0
        current += 1
        return admit()
    }

    /// A request completed without a sign of throttling.
    mutating func recordCompletion() {
        countCompletion()
    }

    /// The server throttled a request (429) or said it is overloaded: halve the limit, once per burst.
    mutating func recordThrottle() -> ThrottleAction {
        switch adaptation {
        case .fixed:
            return .unchanged
        case .recovering(let n) where n + 1 <= current:
            adaptation = .recovering(completions: n + 1)
            return .unchanged
        case .settled, .recovering:
            current = max(minimum, current / 2)
            successesTowardIncrease = 0
            adaptation = .recovering(completions: 0)
            return .decreased(to: current)
        }
    }
}

extension AdaptiveConcurrencyStateMachine: Sendable where Waiter: Sendable {}
extension AdaptiveConcurrencyStateMachine.AcquireAction: Sendable, Hashable {}
extension AdaptiveConcurrencyStateMachine.SuspendAcquireAction: Sendable where Waiter: Sendable {}
extension AdaptiveConcurrencyStateMachine.CancelAcquireAction: Sendable where Waiter: Sendable {}
extension AdaptiveConcurrencyStateMachine.AdmitAction: Sendable where Waiter: Sendable {}
extension AdaptiveConcurrencyStateMachine.SuspendAcquireAction: Equatable where Waiter: Equatable {}
extension AdaptiveConcurrencyStateMachine.CancelAcquireAction: Equatable where Waiter: Equatable {}
extension AdaptiveConcurrencyStateMachine.AdmitAction: Equatable where Waiter: Equatable {}
