import Synchronization

/// A single-consumer, multi-producer channel with a bounded buffer: the backpressure behind every
/// event stream.
///
/// `send` suspends while the buffer is full and resumes when the consumer takes an element;
/// `receive` suspends while it is empty. `cancel()` (the consumer went away) resumes every waiter:
/// pending sends return `false`, and the buffer is discarded. A producer whose own task is
/// cancelled while it waits returns `false` at once, its element discarded; the consumer's task
/// being cancelled cancels the channel.
///
/// The logic is ``BoundedChannelStateMachine``; this class holds it in a lock and resumes the
/// continuations it hands out after the lock is released.
package final class BoundedChannel<Element: Sendable>: Sendable {
    private typealias Machine = BoundedChannelStateMachine<Element, CheckedContinuation<Element?, Never>, CheckedContinuation<Bool, Never>>

    private let machine: Mutex<Machine>
    /// The most elements the buffer holds before `send` suspends.
    package let capacity: Int

    package init(capacity: Int) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        self.machine = Mutex(Machine(capacity: capacity))
    }

    /// Enqueues `element`, suspending while the buffer is full.
    ///
    /// - Returns: `false` when the element was discarded: the channel was cancelled or finished,
    ///   or the calling task was cancelled while waiting for room.
    @discardableResult
    package func send(_ element: Element) async -> Bool {
        switch machine.withLock({ $0.send(element) }) {
        case .buffered:
            return true
        case .resumeReceiver(let receiver):
            receiver.resume(returning: element)
            return true
        case .discard:
            return false
        case .suspend(let id):
            let sent = await withTaskCancellationHandler {
                await withCheckedContinuation { (sender: CheckedContinuation<Bool, Never>) in
                    switch machine.withLock({ $0.suspendSend(element, id: id, sender: sender) }) {
                    case .parked:
                        break
                    case .resumeSender(let sender, let sent):
                        sender.resume(returning: sent)
                    case .resumeReceiverAndSender(let receiver, let sender):
                        receiver.resume(returning: element)
                        sender.resume(returning: true)
                    }
                }
            } onCancel: {
                if case .resumeSender(let sender) = machine.withLock({ $0.cancelSend(id) }) {
                    sender.resume(returning: false)
                }
            }
            if Task.isCancelled { machine.withLock { $0.forgetSend(id) } }
            return sent
        }
    }

    /// Enqueues `element` only if the buffer has room: for events that may be coalesced.
    ///
    /// - Returns: whether the element was accepted.
    @discardableResult
    package func offer(_ element: Element) -> Bool {
        switch machine.withLock({ $0.offer(element) }) {
        case .buffered:
            return true
        case .resumeReceiver(let receiver):
            receiver.resume(returning: element)
            return true
        case .reject:
            return false
        }
    }

    /// Takes the next element, suspending while the buffer is empty.
    ///
    /// - Returns: `nil` once the channel is finished and drained, or cancelled. If the calling task
    ///   is cancelled while waiting, the channel is cancelled and `nil` returned.
    package func receive() async -> Element? {
        switch machine.withLock({ $0.receive() }) {
        case .element(let element, let sender):
            sender?.resume(returning: true)
            return element
        case .end:
            return nil
        case .suspend:
            // Cancellation is a state transition of the whole channel (the consumer is gone),
            // so a cancellation that comes before the consumer parks is seen when it parks.
            return await withTaskCancellationHandler {
                await withCheckedContinuation { (receiver: CheckedContinuation<Element?, Never>) in
                    if case .resumeReceiver(let receiver, let element, let sender) = machine.withLock({ $0.suspendReceive(receiver) }) {
                        sender?.resume(returning: true)
                        receiver.resume(returning: element)
                    }
                }
            } onCancel: {
                self.cancel()
            }
        }
    }

    /// No more elements will be sent; the consumer drains what is buffered, then gets `nil`.
    /// Senders still waiting have their elements buffered and return `true`.
    package func finish() {
        Self.perform(machine.withLock { $0.finish() }, sendersGet: true)
    }

    /// The consumer is gone: discard the buffer and release every waiter.
    package func cancel() {
        Self.perform(machine.withLock { $0.cancel() }, sendersGet: false)
    }

    private static func perform(_ action: Machine.CloseAction, sendersGet result: Bool) {
        guard case .resume(let receiver, let senders) = action else { return }
        for sender in senders { sender.resume(returning: result) }
        receiver?.resume(returning: nil)
    }

    /// Senders suspended because the buffer is full.
    var waitingSenders: Int { machine.withLock { $0.waitingSenders } }

    /// Whether the consumer cancelled.
    package var isCancelled: Bool { machine.withLock { $0.isCancelled } }
}
