import Synchronization

/// A single-consumer, multi-producer channel with a bounded buffer: the backpressure behind every
/// event stream.
///
/// `send` suspends while the buffer is full and resumes when the consumer takes an element;
/// `receive` suspends while it is empty. `cancel()` (the consumer went away) resumes every waiter:
/// pending sends return `false`, and the buffer is discarded. Continuations are always resumed
/// outside the lock.
public final class BoundedChannel<Element: Sendable>: Sendable {
    private struct State {
        var buffer = RingBuffer<Element>(capacity: 64)
        var senders = RingBuffer<(Element, CheckedContinuation<Bool, Never>)>(capacity: 4)
        var receiver: CheckedContinuation<Element?, Never>?
        var finished = false
        var cancelled = false
    }

    private enum SendAction { case done(Bool), handOff(CheckedContinuation<Element?, Never>), wait }
    private enum ReceiveAction { case value(Element?, CheckedContinuation<Bool, Never>?), wait }

    private let state = Mutex(State())
    /// The most elements the buffer holds before `send` suspends.
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
    }

    /// Enqueues `element`, suspending while the buffer is full.
    ///
    /// - Returns: `false` when the channel was cancelled or finished and the element discarded.
    @discardableResult
    public func send(_ element: Element) async -> Bool {
        if let done = deliver(element) { return done }
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            // Try again under the lock that parks us: the consumer may have drained the buffer
            // while we were getting ready to wait.
            if let done = deliver(element, orPark: c) { c.resume(returning: done) }
        }
    }

    /// Enqueues `element` only if the buffer has room: for events that may be coalesced.
    ///
    /// - Returns: whether the element was accepted.
    @discardableResult
    public func offer(_ element: Element) -> Bool { deliver(element) ?? false }

    /// Hands `element` to a waiting consumer or buffers it. Returns the outcome, or `nil` when the
    /// buffer is full — after parking `sender`, if one is given.
    private func deliver(_ element: Element, orPark sender: CheckedContinuation<Bool, Never>? = nil) -> Bool? {
        let action: SendAction = state.withLock { s in
            if s.cancelled || s.finished { return .done(false) }
            if let r = s.receiver {
                s.receiver = nil
                return .handOff(r)
            }
            if s.buffer.count < capacity {
                s.buffer.append(element)
                return .done(true)
            }
            if let sender { s.senders.append((element, sender)) }
            return .wait
        }
        switch action {
        case .done(let ok): return ok
        case .handOff(let r):
            r.resume(returning: element)
            return true
        case .wait: return nil
        }
    }

    /// Takes the next element, suspending while the buffer is empty.
    ///
    /// - Returns: `nil` once the channel is finished and drained, or cancelled. If the calling task
    ///   is cancelled while waiting, the channel is cancelled and `nil` returned.
    public func receive() async -> Element? {
        let action: ReceiveAction = state.withLock { s in
            if let e = s.buffer.popFirst() {
                var resumed: CheckedContinuation<Bool, Never>?
                if let (pending, c) = s.senders.popFirst() {
                    s.buffer.append(pending)
                    resumed = c
                }
                return .value(e, resumed)
            }
            if s.cancelled || s.finished { return .value(nil, nil) }
            return .wait
        }
        switch action {
        case .value(let e, let c):
            c?.resume(returning: true)
            return e
        case .wait:
            return await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Element?, Never>) in
                    let then: ReceiveAction = state.withLock { s in
                        if let e = s.buffer.popFirst() {
                            var resumed: CheckedContinuation<Bool, Never>?
                            if let (pending, sc) = s.senders.popFirst() {
                                s.buffer.append(pending)
                                resumed = sc
                            }
                            return .value(e, resumed)
                        }
                        if s.cancelled || s.finished { return .value(nil, nil) }
                        s.receiver = c
                        return .wait
                    }
                    if case .value(let e, let sc) = then {
                        sc?.resume(returning: true)
                        c.resume(returning: e)
                    }
                }
            } onCancel: {
                self.cancel()
            }
        }
    }

    /// No more elements will be sent; the consumer drains what is buffered, then gets `nil`.
    /// Senders still waiting are released with `false`.
    public func finish() {
        let (receiver, senders) = state.withLock { s -> (CheckedContinuation<Element?, Never>?, [CheckedContinuation<Bool, Never>]) in
            s.finished = true
            var released: [CheckedContinuation<Bool, Never>] = []
            // Waiting senders' elements stay deliverable: move them into the buffer.
            while let (e, c) = s.senders.popFirst() {
                s.buffer.append(e)
                released.append(c)
            }
            let r = s.buffer.isEmpty ? s.receiver : nil
            if r != nil { s.receiver = nil }
            return (r, released)
        }
        for c in senders { c.resume(returning: true) }
        receiver?.resume(returning: nil)
    }

    /// The consumer is gone: discard the buffer and release every waiter.
    public func cancel() {
        let (receiver, senders) = state.withLock { s -> (CheckedContinuation<Element?, Never>?, [CheckedContinuation<Bool, Never>]) in
            s.cancelled = true
            s.buffer.removeAll()
            var released: [CheckedContinuation<Bool, Never>] = []
            while let (_, c) = s.senders.popFirst() { released.append(c) }
            let r = s.receiver
            s.receiver = nil
            return (r, released)
        }
        for c in senders { c.resume(returning: false) }
        receiver?.resume(returning: nil)
    }

    /// Senders suspended because the buffer is full.
    var waitingSenders: Int { state.withLock { $0.senders.count } }

    /// Whether the consumer cancelled.
    public var isCancelled: Bool { state.withLock { $0.cancelled } }
}
