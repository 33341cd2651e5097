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
    enum State: Sendable, Equatable {
        /// Elements flow; producers park while the buffer is full, the consumer while it is empty.
        case open
        /// No more sends: the consumer drains the buffer, then gets `nil`.
        case finished
        /// The consumer went away: everything is discarded, every call returns at once.
        case cancelled
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

    private(set) var state: State = .open
    /// The most elements the buffer holds before producers wait.
    let capacity: Int
    // What the channel holds, kept beside `state` rather than as its payloads: an update then
    // mutates them in place, without copying them out of an enum and back on every call (every
    // event of a run passes through here). Outside `.open`, `senders` is empty and `receiver` nil;
    // once `.cancelled`, `buffer` is empty too.
    private var buffer: RingBuffer<Element>
    /// Producers suspended because the buffer is full, each with the element it brings.
    private var senders = WaiterQueue<(element: Element, sender: Sender)>()
    /// The consumer, suspended because the buffer is empty.
    private var receiver: Receiver?

    init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        self.buffer = RingBuffer(capacity: min(capacity, 64))
    }

    /// Producers parked now.
    var waitingSenders: Int { senders.count }

    var isCancelled: Bool { state == .cancelled }

    // MARK: producers

    private enum Delivery { case buffered, handOff(Receiver), full }

    /// Hands `element` to the parked consumer or buffers it, if the channel is open and has room.
    private mutating func deliver(_ element: Element) -> Delivery {
        if let r = receiver {
            receiver = nil
            return .handOff(r)
        }
        if buffer.count < capacity {
            buffer.append(element)
            return .buffered
        }
        return .full
    }

    /// A producer brings `element`.
    mutating func send(_ element: Element) -> SendAction {
        guard state == .open else { return .discard }
        switch deliver(element) {
        case .buffered: return .buffered
        case .handOff(let r): return .resumeReceiver(r)
        case .full: return .suspend(senders.makeID())
        }
    }

    /// A producer offers `element`, which may be dropped.
    mutating func offer(_ element: Element) -> OfferAction {
        guard state == .open else { return .reject }
        switch deliver(element) {
        case .buffered: return .buffered
        case .handOff(let r): return .resumeReceiver(r)
        case .full: return .reject
        }
    }

    /// The producer told to suspend as `id` is about to park.
    mutating func suspendSend(_ element: Element, id: WaiterID, sender: Sender) -> SuspendSendAction {
        guard state == .open else { return .resumeSender(sender, false) }
        // The producer's task may have been cancelled while it got ready to wait: that wins,
        // the element is not delivered. Otherwise room may have appeared meanwhile.
        if senders.takeCancellation(id) { return .resumeSender(sender, false) }
        switch deliver(element) {
        case .handOff(let r): return .resumeReceiverAndSender(r, sender)
        case .buffered: return .resumeSender(sender, true)
        case .full: return senders.enqueue((element, sender), id: id) ? .parked : .resumeSender(sender, false)
        }
    }

    /// The task of producer `id` was cancelled.
    mutating func cancelSend(_ id: WaiterID) -> CancelSendAction {
        guard state == .open, let parked = senders.cancel(id) else { return .none }
        return .resumeSender(parked.sender)
    }

    /// Producer `id` is done waiting while its task is cancelled: drop any mark its cancellation left.
    mutating func forgetSend(_ id: WaiterID) {
        senders.forget(id)
    }

    // MARK: the consumer

    /// The consumer asks for the next element.
    mutating func receive() -> ReceiveAction {
        if let e = buffer.popFirst() {
            // The freed slot goes to the longest-waiting producer.
            if let (pending, sender) = senders.popFirst() {
                buffer.append(pending)
                return .element(e, resumeSender: sender)
            }
            return .element(e, resumeSender: nil)
        }
        return state == .open ? .suspend : .end
    }

    /// The consumer told to suspend is about to park.
    mutating func suspendReceive(_ receiver: Receiver) -> SuspendReceiveAction {
        switch receive() {
        case .element(let e, let sender):
            return .resumeReceiver(receiver, e, resumeSender: sender)
        case .end:
            return .resumeReceiver(receiver, nil, resumeSender: nil)
        case .suspend:
            precondition(self.receiver == nil, "a BoundedChannel has one consumer: receive() was called concurrently")
            self.receiver = receiver
            return .parked
        }
    }

    // MARK: closing

    /// No more elements will be sent.
    mutating func finish() -> CloseAction {
        guard state == .open else { return .none }
        state = .finished
        // Parked producers' elements stay deliverable: they move into the buffer.
        var released: [Sender] = []
        for (element, sender) in senders.removeAll() {
            buffer.append(element)
            released.append(sender)
        }
        let r = buffer.isEmpty ? receiver : nil
        receiver = nil
        return .resume(receiver: r, senders: released)
    }

    /// The consumer went away.
    mutating func cancel() -> CloseAction {
        let wasOpen = state == .open
        state = .cancelled
        buffer.removeAll()
        guard wasOpen else { return .none }
        let r = receiver
        receiver = nil
        return .resume(receiver: r, senders: senders.removeAll().map(\.sender))
    }
}

extension BoundedChannelStateMachine: Sendable where Element: Sendable, Receiver: Sendable, Sender: Sendable {}
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
