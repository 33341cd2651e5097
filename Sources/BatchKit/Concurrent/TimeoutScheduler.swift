import Synchronization

/// Per-request deadlines for one run, served by one sleeping task instead of one timer per
/// request.
///
/// (A cancelled `Task.sleep` on Linux keeps its timer until the original deadline, so a timer per
/// request grows memory with the request rate times the timeout.) Every request of a run has the
/// same timeout, so deadlines arrive in order and a FIFO queue is enough: the scheduler sleeps
/// until the oldest deadline, expires what is due, and sleeps again.
///
/// The logic is ``TimeoutSchedulerStateMachine``; this class holds it in a lock and resumes the
/// continuations it hands out after the lock is released.
final class TimeoutScheduler<C: Clock>: Sendable where C.Duration == Duration {
    private typealias Machine = TimeoutSchedulerStateMachine<C.Instant, CheckedContinuation<Bool, Never>, CheckedContinuation<Void, Never>>

    private let machine = Mutex(Machine())
    private let clock: C
    let timeout: Duration

    init(timeout: Duration, clock: C) {
        self.timeout = timeout
        self.clock = clock
    }

    /// Deadlines pending now.
    var pending: Int { machine.withLock { $0.pending } }

    /// Waits `timeout` (returns `true`), unless the waiting task is cancelled first (returns
    /// `false`, at once).
    func waitForTimeout() async -> Bool {
        let id = machine.withLock { $0.makeID() }
        let expired = await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Bool, Never>) in
                let deadline = clock.now.advanced(by: timeout)
                switch machine.withLock({ $0.enqueue(id: id, deadline: deadline, waiter: waiter) }) {
                case .parked(let loop):
                    loop?.resume()
                case .resumeCancelled(let waiter):
                    waiter.resume(returning: false)
                }
            }
        } onCancel: {
            if case .resume(let waiter) = machine.withLock({ $0.cancel(id: id) }) {
                waiter.resume(returning: false)
            }
        }
        if Task.isCancelled { machine.withLock { $0.forget(id: id) } }
        return expired
    }

    /// The scheduler loop; runs until cancelled or stopped.
    func run() async {
        while !Task.isCancelled {
            let now = clock.now
            switch machine.withLock({ $0.tick(now: now) }) {
            case .stop:
                return
            case .sleep(let deadline, let expired):
                for waiter in expired { waiter.resume(returning: true) }
                try? await clock.sleep(until: deadline, tolerance: nil)
            case .idle(let expired):
                for waiter in expired { waiter.resume(returning: true) }
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (loop: CheckedContinuation<Void, Never>) in
                        if case .resume(let loop) = machine.withLock({ $0.suspendLoop(loop) }) { loop.resume() }
                    }
                } onCancel: {
                    self.stop()
                }
            }
        }
    }

    /// Ends the loop.
    func stop() {
        if case .resume(let loop) = machine.withLock({ $0.stop() }) { loop.resume() }
    }
}
