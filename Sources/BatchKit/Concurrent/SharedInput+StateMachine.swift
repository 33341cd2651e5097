/// What a caller waiting for its turn at a ``SharedInput`` is resumed with.
enum SharedInputTurn: Hashable, Sendable {
    /// The caller pulls next.
    case granted
    /// The input ended while it waited.
    case exhausted
    /// Its task was cancelled while it waited: it does not pull.
    case cancelled
}

/// The state of a ``SharedInput``'s turn-taking as a value: who pulls from the input, who waits
/// for a turn, and whether the input has ended. One method per event, each returning what the
/// caller must do once it has released the lock; tests drive it synchronously with labels standing
/// in for the continuations.
struct SharedInputStateMachine<Waiter> {
    enum State: Hashable, Sendable {
        /// Nobody is pulling: the next caller pulls at once.
        case idle
        /// One caller pulls; others wait their turn, in order.
        case pulling
        /// The input has ended: every caller gets `nil` at once.
        case exhausted
    }

    typealias Turn = SharedInputTurn

    /// The outcome of asking for a turn.
    enum AcquireAction: Hashable, Sendable {
        /// Pull now, then call ``finishPull(exhausted:)``.
        case pull
        /// The input has ended.
        case exhausted
        /// Another caller pulls: suspend, then call ``suspend(id:waiter:)`` with this id.
        case suspend(WaiterID)
    }

    /// The outcome of a caller's suspension, re-checked under the lock that parks it.
    enum SuspendAction {
        case parked
        /// Resume the caller at once with this turn.
        case resume(Waiter, Turn)
    }

    /// The outcome of a waiting caller's task being cancelled.
    enum CancelAction {
        /// Resume it with ``Turn/cancelled``.
        case resume(Waiter)
        case none
    }

    /// The outcome of a pull ending.
    enum FinishPullAction {
        /// Nobody waits; the input is idle (or has ended).
        case none
        /// Resume this caller with ``Turn/granted``: the turn passes straight to it.
        case handOver(Waiter)
        /// The input has ended: resume all of them with ``Turn/exhausted``.
        case resumeExhausted([Waiter])
    }

    private(set) var state: State = .idle
    /// Callers waiting for a turn; empty unless `state` is `.pulling`.
    private var waiters = WaiterQueue<Waiter>()

    init() {}

    /// Callers waiting now.
    var waiting: Int { waiters.count }

    /// A caller wants to pull.
    mutating func acquire() -> AcquireAction {
        switch state {
        case .idle:
            state = .pulling
            return .pull
        case .pulling:
            return .suspend(waiters.makeID())
        case .exhausted:
            return .exhausted
        }
    }

    /// The caller told to suspend as `id` is about to park.
    mutating func suspend(id: WaiterID, waiter: Waiter) -> SuspendAction {
        if waiters.takeCancellation(id) { return .resume(waiter, .cancelled) }
        switch state {
        case .idle:
            state = .pulling
            return .resume(waiter, .granted)
        case .pulling:
            return waiters.enqueue(waiter, id: id) ? .parked : .resume(waiter, .cancelled)
        case .exhausted:
            return .resume(waiter, .exhausted)
        }
    }

    /// The task of waiting caller `id` was cancelled.
    mutating func cancel(id: WaiterID) -> CancelAction {
        waiters.cancel(id).map(CancelAction.resume) ?? .none
    }

    /// Caller `id` is done waiting while its task is cancelled: drop any mark its cancellation left.
    mutating func forget(id: WaiterID) { waiters.forget(id) }

    /// The puller is done; `exhausted` when the input returned `nil`.
    mutating func finishPull(exhausted: Bool) -> FinishPullAction {
        precondition(state == .pulling, "SharedInput.finishPull without a pull")
        if exhausted {
            state = .exhausted
            let all = waiters.removeAll()
            return all.isEmpty ? .none : .resumeExhausted(all)
        }
        if let next = waiters.popFirst() { return .handOver(next) }
        state = .idle
        return .none
    }
}

extension SharedInputStateMachine: Sendable where Waiter: Sendable {}
extension SharedInputStateMachine.SuspendAction: Sendable where Waiter: Sendable {}
extension SharedInputStateMachine.CancelAction: Sendable where Waiter: Sendable {}
extension SharedInputStateMachine.FinishPullAction: Sendable where Waiter: Sendable {}
extension SharedInputStateMachine.SuspendAction: Equatable where Waiter: Equatable {}
extension SharedInputStateMachine.CancelAction: Equatable where Waiter: Equatable {}
extension SharedInputStateMachine.FinishPullAction: Equatable where Waiter: Equatable {}
