import Synchronization

/// The concurrency limit, and the gate that enforces it: at most ``current`` holders at once.
///
/// The limit adapts to how the server copes (AIMD): halved on a rate limit or overload (429, 529,
/// 503), grown back by one per window of successes (as many successes as the limit) up to the
/// configured maximum. A burst of throttled answers from
/// requests that were all in flight together counts as one signal: after a decrease, further
/// decreases wait until as many requests as the new limit have completed.
///
/// The logic is ``AdaptiveConcurrencyStateMachine``; this class holds it in a lock and resumes
/// the continuations it hands out after the lock is released.
package final class AdaptiveConcurrency: Sendable {
    private typealias Machine = AdaptiveConcurrencyStateMachine<CheckedContinuation<Bool, Never>>

    /// The upper bound.
    package let maximum: Int
    /// The lower bound.
    package let minimum: Int
    private let machine: Mutex<Machine>

    /// - Parameters:
    ///   - maximum: the configured concurrency.
    ///   - minimum: the floor the limit never goes below.
    ///   - adapts: `false` keeps the limit at `maximum`.
    package init(maximum: Int, minimum: Int = 1, adapts: Bool = true) {
        let machine = Machine(maximum: maximum, minimum: minimum, adapts: adapts)
        self.maximum = machine.maximum
        self.minimum = machine.minimum
        self.machine = Mutex(machine)
    }

    /// The limit now.
    package var current: Int { machine.withLock { $0.current } }

    /// Holders now.
    package var active: Int { machine.withLock { $0.active } }

    /// Callers waiting for a slot now.
    var waiting: Int { machine.withLock { $0.waiting } }

    /// Waits for a slot under the limit.
    ///
    /// - Returns: `false` if the task was cancelled while waiting (no slot is held then).
    package func acquire() async -> Bool {
        guard case .suspend(let id) = machine.withLock({ $0.acquire() }) else { return true }
        let granted = await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Bool, Never>) in
                if case .resume(let waiter, let granted) = machine.withLock({ $0.suspendAcquire(id: id, waiter: waiter) }) {
                    waiter.resume(returning: granted)
                }
            }
        } onCancel: {
            if case .resume(let waiter) = machine.withLock({ $0.cancelAcquire(id: id) }) {
                waiter.resume(returning: false)
            }
        }
        if Task.isCancelled { machine.withLock { $0.forget(id: id) } }
        return granted
    }

    /// Gives a slot back.
    package func release() {
        Self.perform(machine.withLock { $0.release() })
    }

    /// A request succeeded: a window of successes grows the limit by one (up to the maximum).
    package func recordSuccess() {
        Self.perform(machine.withLock { $0.recordSuccess() })
    }

    /// A request completed some other way (failed without throttling).
    package func recordCompletion() {
        machine.withLock { $0.recordCompletion() }
    }

    /// The server throttled a request (429) or said it is overloaded: halve the limit.
    package func recordThrottle() {
        _ = machine.withLock { $0.recordThrottle() }
    }

    private static func perform(_ action: Machine.AdmitAction) {
        guard case .resume(let waiters) = action else { return }
        for waiter in waiters { waiter.resume(returning: true) }
    }
}
