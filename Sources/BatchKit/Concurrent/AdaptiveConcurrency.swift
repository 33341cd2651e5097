import Synchronization

/// The concurrency limit, and the gate that enforces it: at most ``current`` holders at once.
///
/// The limit adapts to how the server copes: halved on a rate limit or overload (429, 529, 503),
/// grown back by one per success up to the configured maximum. A burst of throttled answers from
/// requests that were all in flight together counts as one signal: after a decrease, further
/// decreases wait until as many requests as the new limit have completed.
public final class AdaptiveConcurrency: Sendable {
    private struct State {
        var current: Int
        var active = 0
        var completionsSinceDecrease: Int
        var waiters = RingBuffer<(Int, CheckedContinuation<Bool, Never>)>(capacity: 8)
        var nextWaiterID = 0
        var cancelledWaiters: Set<Int> = []
    }

    /// The upper bound.
    public let maximum: Int
    /// The lower bound.
    public let minimum: Int
    private let adapts: Bool
    private let state: Mutex<State>

    /// - Parameters:
    ///   - maximum: the configured concurrency.
    ///   - minimum: the floor the limit never goes below.
    ///   - adapts: `false` keeps the limit at `maximum`.
    public init(maximum: Int, minimum: Int = 1, adapts: Bool = true) {
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, maximum))
        self.adapts = adapts
        self.state = Mutex(State(current: max(1, maximum), completionsSinceDecrease: Int.max / 2))
    }

    /// The limit now.
    public var current: Int { state.withLock { $0.current } }

    /// Holders now.
    public var active: Int { state.withLock { $0.active } }

    /// Waits for a slot under the limit.
    ///
    /// - Returns: `false` if the task was cancelled while waiting (no slot is held then).
    public func acquire() async -> Bool {
        let id: Int? = state.withLock { s in
            if s.active < s.current && s.waiters.isEmpty {
                s.active += 1
                return nil
            }
            s.nextWaiterID += 1
            return s.nextWaiterID
        }
        guard let id else { return true }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let immediate: Bool? = state.withLock { s in
                    if s.cancelledWaiters.remove(id) != nil { return false }
                    if s.active < s.current && s.waiters.isEmpty {
                        s.active += 1
                        return true
                    }
                    s.waiters.append((id, c))
                    return nil
                }
                if let immediate { c.resume(returning: immediate) }
            }
        } onCancel: {
            let c: CheckedContinuation<Bool, Never>? = state.withLock { s in
                var found: CheckedContinuation<Bool, Never>?
                var kept = RingBuffer<(Int, CheckedContinuation<Bool, Never>)>(capacity: max(8, s.waiters.count))
                while let w = s.waiters.popFirst() {
                    if w.0 == id { found = w.1 } else { kept.append(w) }
                }
                s.waiters = kept
                if found == nil { s.cancelledWaiters.insert(id) }
                return found
            }
            c?.resume(returning: false)
        }
    }

    /// Gives a slot back.
    public func release() {
        let wake = state.withLock { s in
            s.active -= 1
            return Self.admit(&s)
        }
        for c in wake { c.resume(returning: true) }
    }

    private static func admit(_ s: inout State) -> [CheckedContinuation<Bool, Never>] {
        var wake: [CheckedContinuation<Bool, Never>] = []
        while s.active < s.current, let (_, c) = s.waiters.popFirst() {
            s.active += 1
            wake.append(c)
        }
        return wake
    }

    /// A request succeeded: grow the limit by one (up to the maximum).
    public func recordSuccess() {
        guard adapts else { return }
        let wake = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.completionsSinceDecrease += 1
            guard s.current < maximum else { return [] }
            s.current += 1
            return Self.admit(&s)
        }
        for c in wake { c.resume(returning: true) }
    }

    /// A request completed some other way (failed without throttling).
    public func recordCompletion() {
        guard adapts else { return }
        state.withLock { $0.completionsSinceDecrease += 1 }
    }

    /// The server throttled a request (429) or said it is overloaded: halve the limit.
    public func recordThrottle() {
        guard adapts else { return }
        state.withLock { s in
            s.completionsSinceDecrease += 1
            guard s.completionsSinceDecrease > s.current else { return }
            s.current = max(minimum, s.current / 2)
            s.completionsSinceDecrease = 0
        }
    }
}
