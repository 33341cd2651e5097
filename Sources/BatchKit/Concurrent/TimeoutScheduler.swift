import Synchronization

/// Per-request deadlines for one run, served by one sleeping task instead of one timer per
/// request.
///
/// (A cancelled `Task.sleep` on Linux keeps its timer until the original deadline, so a timer per
/// request grows memory with the request rate times the timeout.) Every request of a run has the
/// same timeout, so deadlines arrive in order and a FIFO queue is enough: the scheduler sleeps
/// until the oldest deadline, expires what is due, and sleeps again.
final class TimeoutScheduler<C: Clock>: Sendable where C.Duration == Duration {
    private struct Entry {
        var id: Int
        var deadline: C.Instant
    }

    private struct State {
        var nextID = 0
        var queue = RingBuffer<Entry>(capacity: 64)
        /// Waiters by id; an id missing here was resolved already.
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var cancelledEarly: Set<Int> = []
        var idle: CheckedContinuation<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())
    private let clock: C
    let timeout: Duration

    init(timeout: Duration, clock: C) {
        self.timeout = timeout
        self.clock = clock
    }

    /// Waits `timeout` (returns `true`), unless the waiting task is cancelled first (returns
    /// `false`, at once).
    func waitForTimeout() async -> Bool {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let deadline = clock.now.advanced(by: timeout)
                let (early, idle) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
                    if s.cancelledEarly.remove(id) != nil { return (true, nil) }
                    s.waiters[id] = c
                    s.queue.append(Entry(id: id, deadline: deadline))
                    let idle = s.idle
                    s.idle = nil
                    return (false, idle)
                }
                idle?.resume()
                if early { c.resume(returning: false) }
            }
        } onCancel: {
            let c = state.withLock { s -> CheckedContinuation<Bool, Never>? in
                if let c = s.waiters.removeValue(forKey: id) { return c }
                s.cancelledEarly.insert(id)
                return nil
            }
            c?.resume(returning: false)
        }
    }

    /// The scheduler loop; runs until cancelled or stopped.
    private enum Next { case sleep(C.Instant), idle, stop }

    func run() async {
        while !Task.isCancelled {
            var due: [CheckedContinuation<Bool, Never>] = []
            let next: Next = state.withLock { s in
                if s.stopped { return .stop }
                let now = clock.now
                while let first = s.queue.first {
                    guard s.waiters[first.id] != nil else {
                        _ = s.queue.popFirst()  // its request finished first
                        continue
                    }
                    if first.deadline > now { return .sleep(first.deadline) }
                    _ = s.queue.popFirst()
                    due.append(s.waiters.removeValue(forKey: first.id)!)
                }
                return .idle
            }
            for c in due { c.resume(returning: true) }
            switch next {
            case .stop: return
            case .sleep(let deadline):
                try? await clock.sleep(until: deadline, tolerance: nil)
            case .idle:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                        let ready = state.withLock { s -> Bool in
                            if !s.queue.isEmpty || s.stopped { return true }
                            s.idle = c
                            return false
                        }
                        if ready { c.resume() }
                    }
                } onCancel: {
                    self.stop()
                }
            }
        }
    }

    /// Ends the loop.
    func stop() {
        let idle = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.stopped = true
            let i = s.idle
            s.idle = nil
            return i
        }
        idle?.resume()
    }
}
