public import BatchKit
import Synchronization

/// Moves a ``ManualClock`` for code under test that waits on it: whenever something sleeps, time
/// jumps to the earliest sleeper's deadline (polls, backoffs, deadlines), so a run that would take
/// hours of real time takes as long as its work.
///
/// Two holds keep time still where a test needs it to:
/// - `startsHeld`: nothing moves until ``release()``, e.g. until the batch job exists, so that a
///   deadline cannot pass while the job is still being submitted;
/// - ``hold(at:until:)``: time does not pass an instant until a condition holds, e.g. until the
///   cancellation a hybrid run sends at its deadline has been answered, so that it reaches the
///   emulator at the deadline over every wire (over a socket, the request is in flight while the
///   run's other tasks go to sleep, and moving time then would let the batch run on).
///
/// ```swift
/// let driver = ClockDriver(clock, startsHeld: true)
/// driver.hold(at: .init(offset: .seconds(35)), until: { !cancellations.answered.isEmpty })
/// let events = await driver.consume(hybrid.processAsync(requests))
/// #expect(!driver.heldTooLong)
/// ```
public final class ClockDriver: Sendable {
    /// The clock being driven.
    public let clock: ManualClock
    /// How long (real time) a hold may keep time still before it is given up and
    /// ``heldTooLong`` is set: a safety net for code that waits for time that never comes.
    public let holdLimit: Duration

    private struct Hold {
        var instant: ManualClock.Instant
        var condition: @Sendable () -> Bool
        var since: ContinuousClock.Instant?
    }

    private struct State {
        var released: Bool
        var hold: Hold?
        var heldTooLong = false
        var stopped = false
        /// The wait ``run()`` parks in while nothing sleeps; ``stop()`` cancels it.
        var parked: Task<Void, Never>?
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - clock: the clock to move.
    ///   - startsHeld: keep time still until ``release()``.
    ///   - holdLimit: real time a hold may last before it is given up (a failure to report).
    public init(_ clock: ManualClock, startsHeld: Bool = false, holdLimit: Duration = .seconds(120)) {
        self.clock = clock
        self.holdLimit = holdLimit
        self.state = Mutex(State(released: !startsHeld))
    }

    /// Lets time move (ends the `startsHeld` hold).
    public func release() { state.withLock { $0.released = true } }

    /// Keeps time from passing `instant` until `condition` returns `true`.
    public func hold(at instant: ManualClock.Instant, until condition: @escaping @Sendable () -> Bool) {
        state.withLock { $0.hold = Hold(instant: instant, condition: condition, since: nil) }
    }

    /// Whether a hold had to be given up after ``holdLimit`` because its condition never came
    /// true: the code under test waited for time to pass where it should not have.
    public var heldTooLong: Bool { state.withLock { $0.heldTooLong } }

    /// Ends ``run()``.
    public func stop() {
        let parked = state.withLock { s -> Task<Void, Never>? in
            s.stopped = true
            return s.parked
        }
        parked?.cancel()
    }

    /// Drives the clock until ``stop()`` or until its task is cancelled: yields between steps,
    /// never sleeps. While nothing sleeps on the clock it parks until something does, so a
    /// driver waiting on work in flight (a request over a socket, a subprocess) costs no CPU; on
    /// a machine running hundreds of tests at once, spinning drivers starved the tests they drove.
    public func run() async {
        while !state.withLock({ $0.stopped }), !Task.isCancelled {
            if clock.sleeperCount == 0 {
                await parkUntilSomethingSleeps()
                continue
            }
            step()
            await Task.yield()
        }
    }

    private func parkUntilSomethingSleeps() async {
        let clock = self.clock
        let wait = Task { await clock.sleepers(atLeast: 1) }
        let stopped = state.withLock { s -> Bool in
            if s.stopped { return true }
            s.parked = wait
            return false
        }
        if stopped {
            wait.cancel()
            return
        }
        await withTaskCancellationHandler { await wait.value } onCancel: { wait.cancel() }
        state.withLock { $0.parked = nil }
    }

    /// One step: moves time to the earliest sleeper's deadline if nothing holds it.
    func step() {
        guard clock.sleeperCount > 0, let next = clock.nextDeadline else { return }
        let mayMove: Bool = state.withLock { s in
            guard s.released else { return false }
            guard var hold = s.hold, next > hold.instant else { return true }
            if hold.condition() {
                s.hold = nil
                return true
            }
            let now = ContinuousClock.now
            if let since = hold.since {
                if since.duration(to: now) > holdLimit {
                    s.heldTooLong = true
                    s.hold = nil
                    return true
                }
            } else {
                hold.since = now
                s.hold = hold
            }
            return false
        }
        // `advance(to:)` rather than "to the next deadline": the sleeper seen may have gone
        // meanwhile, and a later one must not be reached past a hold.
        if mayMove { clock.advance(to: next) }
    }

    /// Runs `stream` to its end while driving the clock, releasing the start hold at the first
    /// `.submitted` event; returns every event.
    public func consume(_ stream: BatchEventStream) async -> [BatchEvent] {
        let driver = Task { await self.run() }
        var events: [BatchEvent] = []
        for await event in stream {
            if case .submitted = event { release() }
            events.append(event)
        }
        stop()
        await driver.value
        return events
    }
}

/// Passes requests on to another transport and notes, on a manual clock, when batch
/// cancellations (`POST …/cancel`, `POST …:cancel`) were sent and when they were answered.
public final class CancellationLog: Sendable {
    private struct State {
        var sent: [ManualClock.Instant] = []
        var answered: [ManualClock.Instant] = []
    }

    private let clock: ManualClock
    private let state = Mutex(State())

    public init(clock: ManualClock) { self.clock = clock }

    /// When each cancellation request was sent, in order.
    public var sent: [ManualClock.Instant] { state.withLock { $0.sent } }
    /// When each cancellation request was answered, in order.
    public var answered: [ManualClock.Instant] { state.withLock { $0.answered } }

    /// `transport`, logging the cancellations it carries here.
    public func wrap(_ transport: any HTTPTransport) -> any HTTPTransport {
        ClosureTransport { request in
            let path = request.url.path
            guard request.method == "POST", path.hasSuffix("/cancel") || path.hasSuffix(":cancel") else {
                return try await transport.send(request)
            }
            self.state.withLock { $0.sent.append(self.clock.now) }
            let response = try await transport.send(request)
            self.state.withLock { $0.answered.append(self.clock.now) }
            return response
        }
    }
}
