import Synchronization

/// An input sequence shared by the workers of a run: one worker at a time pulls from it.
///
/// The iterator is not `Sendable` and its `next()` may suspend, so a `Mutex` cannot guard it;
/// turns are taken instead (``SharedInputStateMachine``, in a `Mutex`): waiters park as
/// continuations, resumed outside the lock, and one whose task is cancelled leaves the line at
/// once with `nil`.
// @unchecked Sendable: the one mutable field, `iterator`, is only touched by the caller holding
// the turn that `machine` grants (`.pull` or `.granted`, until `finishPull`); `machine` is a Mutex.
final class SharedInput<Base: AsyncSequence & Sendable>: @unchecked Sendable where Base.Element == BatchRequest, Base.Failure == Never {
    private typealias Machine = SharedInputStateMachine<CheckedContinuation<SharedInputTurn, Never>>

    private var iterator: Base.AsyncIterator
    private let machine = Mutex(Machine())

    init(_ base: Base) { iterator = base.makeAsyncIterator() }

    /// Whether a caller is pulling now.
    var isPulling: Bool { machine.withLock { $0.state == .pulling } }

    /// Callers waiting for their turn now.
    var waiting: Int { machine.withLock { $0.waiting } }

    /// The next request, or `nil` when the input is exhausted or the calling task was cancelled
    /// while it waited for its turn.
    func next() async -> BatchRequest? {
        switch machine.withLock({ $0.acquire() }) {
        case .exhausted:
            return nil
        case .pull:
            break
        case .suspend(let id):
            let turn = await withTaskCancellationHandler {
                await withCheckedContinuation { (waiter: CheckedContinuation<SharedInputTurn, Never>) in
                    if case .resume(let waiter, let turn) = machine.withLock({ $0.suspend(id: id, waiter: waiter) }) {
                        waiter.resume(returning: turn)
                    }
                }
            } onCancel: {
                if case .resume(let waiter) = machine.withLock({ $0.cancel(id: id) }) {
                    waiter.resume(returning: .cancelled)
                }
            }
            if Task.isCancelled { machine.withLock { $0.forget(id: id) } }
            guard turn == .granted else { return nil }
        }
        let request = await iterator.next(isolation: nil)
        switch machine.withLock({ $0.finishPull(exhausted: request == nil) }) {
        case .none:
            break
        case .handOver(let next):
            next.resume(returning: .granted)
        case .resumeExhausted(let waiters):
            for w in waiters { w.resume(returning: .exhausted) }
        }
        return request
    }
}
