/// The state of a ``BoundedChannel`` as a value: one method per event, each returning what the
/// caller must do once it has released the lock.
///
/// It resumes nothing itself and never touches a task, so it can be driven synchronously in tests,
/// with any values standing in for the continuations (`Receiver` and `Sender` are the parked
/// consumer and producers: `CheckedContinuation`s in the channel, labels in tests).
///
/// ```
///           send / receive                finish()
///   open ───────────────────▶ open ───────────────▶ finished ──(drained)──▶ receive returns nil
///     │                                                  │
///     └──────────────── cancel() ───────────────────────┴──▶ cancelled
/// ```
struct BoundedChannelStateMachine<Element, Receiver, Sender> {
    /// What an open channel holds.
    struct Open {
        var buffer: RingBuffer<Element>
        /// Producers suspended because the buffer is full, each with the element it brings.
        var senders = WaiterQueue<(element: Element, sender: Sender)>()
        /// The consumer, suspended because the buffer is empty.
        var receiver: Receiver?
    }

    enum State {
        /// Elements flow; producers park while the buffer is full, the consumer while it is empty.
        case open(Open)
        /// No more sends: the consumer drains the buffer, then gets `nil`.
        case finished(RingBuffer<Element>)
        /// The consumer went away: everything is discarded, every call returns at once.
        case cancelled
        /// Transient, while a method mutates the open state in place (so that its buffers are
        /// uniquely referenced and not copied).
        case modifying
    }

    /// The outcome of `send` before suspending.
    enum SendAction {
        /// The element is in the buffer.
        case buffered
        /// Resume the suspended consumer with the element.
        case resumeReceiver(Receiver)
        /// The channel is finished or cancelled: the element is discarded, `send` returns `false`.
        case discard
        /// The buffer is full: suspend, then call ``suspendSend(_:id:sender:)`` with this id.
        case suspend(WaiterID)
    }

    /// The outcome of `offer`, which never waits.
    enum OfferAction {
        case buffered
        case resumeReceiver(Receiver)
        /// Full, finished or cancelled: the element is not taken.
        case reject
    }

    /// The outcome of a producer's suspension, re-checked under the lock that parks it.
    enum SuspendSendAction {
        /// The producer waits for room.
        case parked
        /// Resume the producer at once with this result (`true`: buffered after all; `false`: the
        /// channel closed, or the producer's task was cancelled, while it got ready to wait).
        case resumeSender(Sender, Bool)
        /// The consumer was waiting after all: resume it with the element, and the producer with `true`.
        case resumeReceiverAndSender(Receiver, Sender)
    }

    /// The outcome of a producer's task being cancelled.
    enum CancelSendAction {
        /// Resume the producer with `false`: its element is discarded.
        case resumeSender(Sender)
        /// It was not parked (yet, or any more): nothing to do now.
        case none
    }

    /// The outcome of `receive` before suspending.
    enum ReceiveAction {
        /// Return the element; a producer whose element took the freed slot is resumed with `true`.
        case element(Element, resumeSender: Sender?)
        /// Finished and drained, or cancelled: return `nil`.
        case end
        /// Empty: suspend, then call ``suspendReceive(_:)``.
        case suspend
    }

    /// The outcome of the consumer's suspension.
    enum SuspendReceiveAction {
        case parked
        /// Resume the consumer at once with this element (or `nil` at the end), and the producer, if any, with `true`.
        case resumeReceiver(Receiver, Element?, resumeSender: Sender?)
    }

    /// The outcome of `finish` or `cancel`: what to release.
    enum CloseAction {
        case none
        /// Resume the consumer with `nil` (if given), and the producers with `true` after `finish`
        /// (their elements stay deliverable) or `false` after `cancel` (their elements are dropped).
        case resume(receiver: Receiver?, senders: [Sender])
    }

    private(set) var state: State
    /// The most elements the buffer holds before producers wait.
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        self.state = .open(Open(buffer: RingBuffer(capacity: min(capacity, 64))))
    }

    /// Producers parked now.
    var waitingSenders: Int {
        if case .open(let open) = state { return open.senders.count }
        return 0
    }

    var isCancelled: Bool {
        if case .cancelled = state { return true }
        return false
    }

    // MARK: producers

    private enum Delivery { case buffered, handOff(Receiver), full }

    private static func deliver(_ element: Element, into open: inout Open, capacity: Int) -> Delivery {
        if let r = open.receiver {
            open.receiver = nil
            return .handOff(r)
        }
        if open.buffer.count < capacity {
            open.buffer.append(element)
            return .buffered
        }
        return .full
    }

    /// A producer brings `element`.
    mutating func send(_ element: Element) -> SendAction {
        let delivery = withOpen { open, capacity -> (Delivery, WaiterID?) in
            let d = Self.deliver(element, into: &open, capacity: capacity)
            if case .full = d { return (d, open.senders.makeID()) }
            return (d, nil)
        }
        switch delivery {
        case nil: return .discard
        case (.buffered, _)?: return .buffered
        case (.handOff(let r), _)?: return .resumeReceiver(r)
        case (.full, let id?)?: return .suspend(id)
        case (.full, nil)?: return .discard
        }
    }

    /// A producer offers `element`, which may be dropped.
    mutating func offer(_ element: Element) -> OfferAction {
        switch withOpen({ open, capacity in Self.deliver(element, into: &open, capacity: capacity) }) {
        case .buffered?: return .buffered
        case .handOff(let r)?: return .resumeReceiver(r)
        case .full?, nil: return .reject
        }
    }

    /// The producer told to suspend as `id` is about to park.
    mutating func suspendSend(_ element: Element, id: WaiterID, sender: Sender) -> SuspendSendAction {
        let action = withOpen { open, capacity -> SuspendSendAction in
            // The producer's task may have been cancelled while it got ready to wait: that wins,
            // the element is not delivered. Otherwise room may have appeared meanwhile.
            if open.senders.takeCancellation(id) { return .resumeSender(sender, false) }
            switch Self.deliver(element, into: &open, capacity: capacity) {
            case .handOff(let r): return .resumeReceiverAndSender(r, sender)
            case .buffered: return .resumeSender(sender, true)
            case .full:
                return open.senders.enqueue((element, sender), id: id) ? .parked : .resumeSender(sender, false)
            }
        }
        return action ?? .resumeSender(sender, false)
    }

    /// The task of producer `id` was cancelled.
    mutating func cancelSend(_ id: WaiterID) -> CancelSendAction {
        if let parked = withOpen({ open, _ in open.senders.cancel(id) }) ?? nil { return .resumeSender(parked.sender) }
        return .none
    }

    /// Producer `id` is done waiting while its task is cancelled: drop any mark its cancellation left.
    mutating func forgetSend(_ id: WaiterID) {
        _ = withOpen { open, _ in open.senders.forget(id) }
    }

    // MARK: the consumer

    private static func take(from open: inout Open) -> (Element, Sender?)? {
        guard let e = open.buffer.popFirst() else { return nil }
        // The freed slot goes to the longest-waiting producer.
        if let (pending, sender) = open.senders.popFirst() {
            open.buffer.append(pending)
            return (e, sender)
        }
        return (e, nil)
    }

    /// The consumer asks for the next element.
    mutating func receive() -> ReceiveAction {
        // Not a `switch state` around `withOpen`: the switch would keep a second reference to the
        // buffer alive while it is mutated, copying it on every call.
        if let taken = withOpen({ open, _ in Self.take(from: &open) }) {
            guard let (e, sender) = taken else { return .suspend }
            return .element(e, resumeSender: sender)
        }
        guard case .finished(var buffer) = state else { return .end }
        state = .modifying
        defer { state = .finished(buffer) }
        if let e = buffer.popFirst() { return .element(e, resumeSender: nil) }
        return .end
    }

    /// The consumer told to suspend is about to park.
    mutating func suspendReceive(_ receiver: Receiver) -> SuspendReceiveAction {
        switch receive() {
        case .element(let e, let sender):
            return .resumeReceiver(receiver, e, resumeSender: sender)
        case .end:
            return .resumeReceiver(receiver, nil, resumeSender: nil)
        case .suspend:
            _ = withOpen { open, _ in
                precondition(open.receiver == nil, "a BoundedChannel has one consumer: receive() was called concurrently")
                open.receiver = receiver
            }
            return .parked
        }
    }

    // MARK: closing

    /// No more elements will be sent.
    mutating func finish() -> CloseAction {
        guard case .open(var open) = state else { return .none }
        state = .modifying
        // Parked producers' elements stay deliverable: they move into the buffer.
        var senders: [Sender] = []
        for (element, sender) in open.senders.removeAll() {
            open.buffer.append(element)
            senders.append(sender)
        }
        let receiver = open.buffer.isEmpty ? open.receiver : nil
        state = .finished(open.buffer)
        return .resume(receiver: receiver, senders: senders)
    }

    /// The consumer went away.
    mutating func cancel() -> CloseAction {
        if case .open(var open) = state {
            state = .cancelled
            return .resume(receiver: open.receiver, senders: open.senders.removeAll().map(\.sender))
        }
        if case .modifying = state { preconditionFailure("BoundedChannelStateMachine is mid-update") }
        state = .cancelled
        return .none
    }

    /// Runs `body` on the open state, mutated in place; `nil` when the channel is not open.
    private mutating func withOpen<R>(_ body: (inout Open, Int) -> R) -> R? {
        guard case .open(var open) = state else { return nil }
        state = .modifying
        defer { state = .open(open) }
        return body(&open, capacity)
    }
}

extension BoundedChannelStateMachine: Sendable where Element: Sendable, Receiver: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.Open: Sendable where Element: Sendable, Receiver: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.State: Sendable where Element: Sendable, Receiver: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.SendAction: Sendable where Receiver: Sendable {}
extension BoundedChannelStateMachine.OfferAction: Sendable where Receiver: Sendable {}
extension BoundedChannelStateMachine.SuspendSendAction: Sendable where Receiver: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.CancelSendAction: Sendable where Sender: Sendable {}
extension BoundedChannelStateMachine.ReceiveAction: Sendable where Element: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.SuspendReceiveAction: Sendable where Element: Sendable, Receiver: Sendable, Sender: Sendable {}
extension BoundedChannelStateMachine.CloseAction: Sendable where Receiver: Sendable, Sender: Sendable {}

extension BoundedChannelStateMachine.SendAction: Equatable where Receiver: Equatable {}
extension BoundedChannelStateMachine.OfferAction: Equatable where Receiver: Equatable {}
extension BoundedChannelStateMachine.SuspendSendAction: Equatable where Receiver: Equatable, Sender: Equatable {}
extension BoundedChannelStateMachine.CancelSendAction: Equatable where Sender: Equatable {}
extension BoundedChannelStateMachine.ReceiveAction: Equatable where Element: Equatable, Sender: Equatable {}
extension BoundedChannelStateMachine.SuspendReceiveAction: Equatable where Element: Equatable, Receiver: Equatable, Sender: Equatable {}
extension BoundedChannelStateMachine.CloseAction: Equatable where Receiver: Equatable, Sender: Equatable {}
