/// The state of a ``TimeoutScheduler`` as a value: the deadlines waiting in order, and what its
/// one loop is doing. One method per event, each returning what the caller must do once it has
/// released the lock; the current time is an argument, so tests drive it synchronously with plain
/// instants and labels standing in for the continuations.
///
/// `Waiter` is a request waiting for its deadline; `Loop` is the scheduler loop, parked while
/// there is nothing to time.
struct TimeoutSchedulerStateMachine<Instant: Comparable, Waiter, Loop> {
    enum State {
        /// The loop is running: expiring deadlines or sleeping until the oldest.
        case running
        /// The loop is parked: no deadline is pending. The next one wakes it.
        case idle(Loop)
        /// The loop has ended; waiters stay until their own tasks are cancelled.
        case stopped
    }

    /// The outcome of a waiter parking with its deadline.
    enum EnqueueAction {
        /// It waits; resume the loop, if given, so it sleeps until this deadline.
        case parked(wakeLoop: Loop?)
        /// Its task was cancelled before it parked: resume it with `false`.
        case resumeCancelled(Waiter)
    }

    /// The outcome of a waiter's task being cancelled (its request finished first).
    enum CancelAction {
        /// Resume it with `false`.
        case resume(Waiter)
        case none
    }

    /// What the loop does after looking at the clock.
    enum TickAction {
        /// Resume `expired` with `true`, then sleep until `until`.
        case sleep(until: Instant, expired: [Waiter])
        /// Resume `expired` with `true`, then park: no deadline is pending.
        case idle(expired: [Waiter])
        /// End the loop.
        case stop
    }

    /// The outcome of the loop's parking.
    enum SuspendLoopAction {
        case parked
        /// Resume the loop at once: a deadline arrived, or the scheduler stopped, meanwhile.
        case resume(Loop)
    }

    /// The outcome of `stop`.
    enum StopAction {
        case none
        /// Resume the parked loop so that it ends.
        case resume(Loop)
    }

    fileprivate struct Entry {
        var deadline: Instant
        var waiter: Waiter
    }

    private(set) var state: State = .running
    /// Every request of a run has the same timeout, so deadlines arrive in order: a FIFO is a
    /// priority queue here.
    private var waiters = WaiterQueue<Entry>()

    init() {}

    /// Deadlines pending now.
    var pending: Int { waiters.count }

    /// A fresh id for a waiter about to park.
    mutating func makeID() -> WaiterID { waiters.makeID() }

    /// Waiter `id` parks until `deadline` (no earlier than any deadline already queued).
    mutating func enqueue(id: WaiterID, deadline: Instant, waiter: Waiter) -> EnqueueAction {
        guard waiters.enqueue(Entry(deadline: deadline, waiter: waiter), id: id) else { return .resumeCancelled(waiter) }
        if case .idle(let loop) = state {
            state = .running
            return .parked(wakeLoop: loop)
        }
        return .parked(wakeLoop: nil)
    }

    /// The task of waiter `id` was cancelled.
    mutating func cancel(id: WaiterID) -> CancelAction {
        waiters.cancel(id).map { .resume($0.waiter) } ?? .none
    }

    /// Waiter `id` is done waiting while its task is cancelled: drop any mark its cancellation left.
    mutating func forget(id: WaiterID) { waiters.forget(id) }

    /// The loop looks at the clock: every deadline at or before `now` expires.
    mutating func tick(now: Instant) -> TickAction {
        if case .stopped = state { return .stop }
        var expired: [Waiter] = []
        while let first = waiters.first() {
            if first.deadline > now { return .sleep(until: first.deadline, expired: expired) }
            _ = waiters.popFirst()
            expired.append(first.waiter)
        }
        return .idle(expired: expired)
    }

    /// The loop, told to go idle, is about to park.
    mutating func suspendLoop(_ loop: Loop) -> SuspendLoopAction {
        switch state {
        case .stopped:
            return .resume(loop)
        case .running where !waiters.isEmpty:
            return .resume(loop)
        case .running, .idle:
            state = .idle(loop)
            return .parked
        }
    }

    /// The run is over (or the loop's task was cancelled).
    mutating func stop() -> StopAction {
        let previous = state
        state = .stopped
        if case .idle(let loop) = previous { return .resume(loop) }
        return .none
    }
}

extension TimeoutSchedulerStateMachine: Sendable where Instant: Sendable, Waiter: Sendable, Loop: Sendable {}
extension TimeoutSchedulerStateMachine.Entry: Sendable where Instant: Sendable, Waiter: Sendable {}
extension TimeoutSchedulerStateMachine.State: Sendable where Loop: Sendable {}
extension TimeoutSchedulerStateMachine.EnqueueAction: Sendable where Waiter: Sendable, Loop: Sendable {}
extension TimeoutSchedulerStateMachine.CancelAction: Sendable where Waiter: Sendable {}
extension TimeoutSchedulerStateMachine.TickAction: Sendable where Instant: Sendable, Waiter: Sendable {}
extension TimeoutSchedulerStateMachine.SuspendLoopAction: Sendable where Loop: Sendable {}
extension TimeoutSchedulerStateMachine.StopAction: Sendable where Loop: Sendable {}
extension TimeoutSchedulerStateMachine.EnqueueAction: Equatable where Waiter: Equatable, Loop: Equatable {}
extension TimeoutSchedulerStateMachine.CancelAction: Equatable where Waiter: Equatable {}
extension TimeoutSchedulerStateMachine.TickAction: Equatable where Waiter: Equatable {}
extension TimeoutSchedulerStateMachine.SuspendLoopAction: Equatable where Loop: Equatable {}
extension TimeoutSchedulerStateMachine.StopAction: Equatable where Loop: Equatable {}
