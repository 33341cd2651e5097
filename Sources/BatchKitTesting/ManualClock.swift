import BatchKit
import Synchronization

/// A `Clock` that moves only when told: time-dependent code under test (rate limits, backoff,
/// polling, deadlines) runs without real sleeping.
///
/// ```swift
/// let clock = ManualClock()
/// let processor = ConcurrentProcessor(client: client, configuration: config, clock: clock)
/// // ... start the run, then:
/// await clock.sleepers(atLeast: 1)     // the processor is waiting for its bucket
/// clock.advance(by: .seconds(1))        // and now it may go on
/// ```
public final class ManualClock: Clock, Sendable {
    public struct Instant: InstantProtocol, Sendable, Hashable, Comparable, CustomStringConvertible {
        /// Time since the clock was created.
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
        public var description: String { "ManualClock.Instant(\(offset))" }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Waiter {
        var id: Int
        var count: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID = 0
        var sleepers: [Int: Sleeper] = [:]
        var cancelledBeforeEnqueue: Set<Int> = []
        var waiters: [Waiter] = []
        var waitersCancelledBeforeEnqueue: Set<Int> = []
        var totalSleeps = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    /// The number of tasks currently sleeping on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The number of `sleep` calls so far (including ones that returned at once).
    public var totalSleeps: Int { state.withLock { $0.totalSleeps } }

    /// The earliest deadline among current sleepers.
    public var nextDeadline: Instant? { state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id: Int = state.withLock { s in
            s.nextID += 1
            s.totalSleeps += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                enum Then { case resume, cancelled, parked([CheckedContinuation<Void, Never>]) }
                let then: Then = state.withLock { s in
                    if s.cancelledBeforeEnqueue.remove(id) != nil { return .cancelled }
                    if deadline <= s.now { return .resume }
                    s.sleepers[id] = Sleeper(deadline: deadline, continuation: c)
                    return .parked(Self.readyWaiters(&s))
                }
                switch then {
                case .resume: c.resume()
                case .cancelled: c.resume(throwing: CancellationError())
                case .parked(let ready): for w in ready { w.resume() }
                }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, any Error>? = state.withLock { s in
                if let sleeper = s.sleepers.removeValue(forKey: id) { return sleeper.continuation }
                s.cancelledBeforeEnqueue.insert(id)
                return nil
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come, earliest first.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "time only moves forward")
        let due: [CheckedContinuation<Void, any Error>] = state.withLock { s in
            s.now = s.now.advanced(by: duration)
            let ready = s.sleepers.filter { $0.value.deadline <= s.now }.sorted { $0.value.deadline < $1.value.deadline }
            for (id, _) in ready { s.sleepers.removeValue(forKey: id) }
            return ready.map(\.value.continuation)
        }
        for c in due { c.resume() }
    }

    /// Moves time to `instant` (no-op if it has passed).
    public func advance(to instant: Instant) {
        let d = state.withLock { $0.now.duration(to: instant) }
        if d > .zero { advance(by: d) }
    }

    /// Moves time to the earliest sleeper's deadline and wakes it. Returns `false` if nobody sleeps.
    @discardableResult
    public func advanceToNextDeadline() -> Bool {
        guard let d = nextDeadline else { return false }
        advance(to: d)
        return true
    }

    /// Suspends until at least `count` tasks are sleeping on this clock: the awaitable "the code
    /// under test is now waiting for time to pass" signal. Returns early if the calling task is
    /// cancelled (check `Task.isCancelled` where that matters).
    public func sleepers(atLeast count: Int) async {
        let id: Int = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready: Bool = state.withLock { s in
                    if s.waitersCancelledBeforeEnqueue.remove(id) != nil { return true }
                    if s.sleepers.count >= count { return true }
                    s.waiters.append(Waiter(id: id, count: count, continuation: c))
                    return false
                }
                if ready { c.resume() }
            }
        } onCancel: {
            let c: CheckedContinuation<Void, Never>? = state.withLock { s in
                if let index = s.waiters.firstIndex(where: { $0.id == id }) {
                    return s.waiters.remove(at: index).continuation
                }
                s.waitersCancelledBeforeEnqueue.insert(id)
                return nil
            }
            c?.resume()
        }
    }

    private static func readyWaiters(_ s: inout State) -> [CheckedContinuation<Void, Never>] {
        var ready: [CheckedContinuation<Void, Never>] = []
        s.waiters.removeAll { w in
            if s.sleepers.count >= w.count {
                ready.append(w.continuation)
                return true
            }
            return false
        }
        return ready
    }
}

extension ManualClock {
    /// Starts a task that moves this clock to each sleeper's deadline as soon as one sleeps, until
    /// the task is cancelled: time passes exactly as fast as the code under test waits, and
    /// nothing sleeps for real. While nothing sleeps the task parks (no CPU), so hundreds of
    /// drivers in a parallel test run do not starve the work they wait for.
    ///
    /// ```swift
    /// let driver = clock.drive()
    /// defer { driver.cancel() }
    /// ```
    public func drive() -> Task<Void, Never> {
        Task.detached { [self] in
            while !Task.isCancelled {
                if advanceToNextDeadline() {
                    await Task.yield()  // let the woken task run before looking again
                } else {
                    await sleepers(atLeast: 1)
                }
            }
        }
    }
}
