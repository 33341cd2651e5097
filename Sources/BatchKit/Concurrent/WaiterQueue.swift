/// Names one suspended call for as long as it waits: the handle a cancellation handler uses to find
/// its waiter.
struct WaiterID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64
    var description: String { "waiter \(rawValue)" }
}

/// A FIFO queue of suspended callers, for the state machines of the concurrency primitives.
///
/// A wait that honours cancellation has a race at its heart: the task can be cancelled *before*
/// its continuation is stored (the cancellation handler then finds nothing to resume), or after
/// (the handler must take it out of the queue). This type settles both, once:
///
/// 1. ``makeID()`` names the wait before it suspends (under the caller's lock);
/// 2. the cancellation handler calls ``cancel(_:)``: it returns the parked waiter to resume, or, if
///    the waiter is not parked yet, remembers that it was cancelled;
/// 3. the suspension asks ``takeCancellation(_:)`` (or calls ``enqueue(_:id:)``, which refuses a
///    waiter whose cancellation came first), so the caller resumes it at once, as cancelled.
///
/// It holds plain values and resumes nothing: the owner keeps it inside its lock and resumes what
/// it hands out after the lock is released. Cancelled entries leave the dictionary at once and the
/// order ring lazily; the ring is compacted when stale entries outnumber live ones, so memory
/// follows the number of waiters, not the number of cancellations.
struct WaiterQueue<Waiter> {
    private var parked: [UInt64: Waiter] = [:]
    private var order = RingBuffer<UInt64>(capacity: 8)
    /// Waits cancelled before they were enqueued.
    private var cancelledEarly: Set<UInt64> = []
    private var lastID: UInt64 = 0

    init() {}

    /// Waiters parked now.
    var count: Int { parked.count }
    var isEmpty: Bool { parked.isEmpty }

    /// A fresh id for a wait about to begin.
    mutating func makeID() -> WaiterID {
        lastID &+= 1
        return WaiterID(rawValue: lastID)
    }

    /// Parks `waiter` under `id`, last in line.
    ///
    /// - Returns: `false` when the wait was cancelled before it got here: nothing is parked and the
    ///   caller resumes `waiter` as cancelled.
    mutating func enqueue(_ waiter: Waiter, id: WaiterID) -> Bool {
        if takeCancellation(id) { return false }
        parked[id.rawValue] = waiter
        order.append(id.rawValue)
        return true
    }

    /// Whether wait `id` was cancelled before it could park; consumes the mark. State machines
    /// ask this first when a wait is about to park, so that a cancellation that came first wins
    /// over a resource that happens to be free.
    mutating func takeCancellation(_ id: WaiterID) -> Bool {
        if cancelledEarly.isEmpty { return false }
        return cancelledEarly.remove(id.rawValue) != nil
    }

    /// The wait `id` was cancelled.
    ///
    /// - Returns: the parked waiter, now out of the queue, for the caller to resume as cancelled;
    ///   `nil` when it is not parked (not yet, or resumed already), in which case a later
    ///   ``enqueue(_:id:)`` of that id is refused.
    mutating func cancel(_ id: WaiterID) -> Waiter? {
        if let w = parked.removeValue(forKey: id.rawValue) {
            compactIfSparse()
            return w
        }
        cancelledEarly.insert(id.rawValue)
        return nil
    }

    /// Drops what is remembered about wait `id` once it is over. A cancellation that arrives after
    /// a wait was satisfied without parking leaves a mark that nothing consumes; the owner calls
    /// this after the wait when its task is cancelled (a cancellation handler never runs after
    /// `withTaskCancellationHandler` has returned).
    mutating func forget(_ id: WaiterID) {
        if !cancelledEarly.isEmpty { cancelledEarly.remove(id.rawValue) }
    }

    /// The longest-waiting waiter, without removing it.
    mutating func first() -> Waiter? {
        while let id = order.first {
            if let w = parked[id] { return w }
            _ = order.popFirst()
        }
        return nil
    }

    /// Removes and returns the longest-waiting waiter.
    mutating func popFirst() -> Waiter? {
        while let id = order.popFirst() {
            if let w = parked.removeValue(forKey: id) { return w }
        }
        return nil
    }

    /// Removes every waiter, oldest first.
    mutating func removeAll() -> [Waiter] {
        var all: [Waiter] = []
        all.reserveCapacity(parked.count)
        while let w = popFirst() { all.append(w) }
        return all
    }

    private mutating func compactIfSparse() {
        guard order.count > 32, order.count > 2 * parked.count else { return }
        var kept = RingBuffer<UInt64>(capacity: max(8, parked.count))
        while let id = order.popFirst() {
            if parked[id] != nil { kept.append(id) }
        }
        order = kept
    }
}

extension WaiterQueue: Sendable where Waiter: Sendable {}
