import Synchronization

/// How a run ended: the stream turns it into the last event.
package enum BatchRunOutcome: Sendable {
    case completed(BatchSummary)
    case failed(BatchError)
}

/// The events of one run, as returned by ``Processor/processAsync(_:)-([BatchRequest])``.
///
/// It is an `AsyncSequence` rather than an `AsyncStream` because of one guarantee `AsyncStream`
/// cannot give: the run must be cancelled when the consumer stops, *however* it stops. An
/// `AsyncStream` only learns about a `break` when the stream value itself is released, which
/// does not happen while the caller keeps the stream in a variable. Here the run belongs to the
/// **iterator**: breaking out of `for await`, dropping the iterator, or cancelling the consuming
/// task all cancel the run promptly, and a run that is never iterated never starts.
///
/// Iterate it once. Each call to `makeAsyncIterator()` starts a separate run.
///
/// Inside the package, a processor gives the stream a body that does the work, sends `.item`
/// events through the ``EventSink``, and returns the outcome; the stream sends `.started` before
/// the body runs and the outcome's event last, exactly once.
public struct BatchEventStream: AsyncSequence, Sendable {
    public typealias Element = BatchEvent
    public typealias Failure = Never
    /// The work of one run.
    package typealias Body = @Sendable (EventSink) async -> BatchRunOutcome

    let bufferSize: Int
    let body: Body

    /// - Parameters:
    ///   - bufferSize: how many events may wait for the consumer before the run's `emit` calls
    ///     suspend (the backpressure bound).
    ///   - body: the run.
    package init(bufferSize: Int = 64, _ body: @escaping Body) {
        self.bufferSize = bufferSize
        self.body = body
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(run: Run(bufferSize: bufferSize, body: body)) }

    /// Pulls events; dropping it cancels the run.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let run: Run

        public mutating func next() async -> BatchEvent? { await run.next() }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchEvent? {
            await run.next()
        }

        /// Producers currently suspended because the consumer is behind (for tests of backpressure).
        var waitingProducers: Int { run.channel.waitingSenders }
    }

    /// One run: owns the task doing the work and the channel feeding the consumer.
    final class Run: Sendable {
        let channel: BoundedChannel<BatchEvent>
        let body: Body
        let task = Mutex<Task<Void, Never>?>(nil)
        let started = Atomic<Bool>(false)

        init(bufferSize: Int, body: @escaping Body) {
            self.channel = BoundedChannel(capacity: bufferSize)
            self.body = body
        }

        deinit { cancel() }

        func next() async -> BatchEvent? {
            if !started.exchange(true, ordering: .relaxed) { start() }
            return await withTaskCancellationHandler {
                await channel.receive()
            } onCancel: {
                self.cancel()
            }
        }

        private func start() {
            let channel = self.channel
            let body = self.body
            let t = Task {
                await channel.send(.started)
                let outcome = await body(EventSink(channel: channel))
                switch outcome {
                case .completed(let s): await channel.send(.completed(s))
                case .failed(let e): await channel.send(.failed(e))
                }
                channel.finish()
            }
            let cancelledAlready = task.withLock { slot -> Bool in
                slot = t
                return channel.isCancelled
            }
            if cancelledAlready { t.cancel() }
        }

        func cancel() {
            channel.cancel()
            task.withLock { $0 }?.cancel()
        }
    }
}

/// Where a processor's run sends its events.
package struct EventSink: Sendable {
    let channel: BoundedChannel<BatchEvent>

    /// Sends an event, suspending while the consumer is behind (backpressure). Use for events
    /// that must not be lost (`.item`, `.submitted`, `.retrying`).
    ///
    /// - Returns: `false` when the consumer has gone away; the run should then stop.
    @discardableResult
    package func emit(_ event: BatchEvent) async -> Bool { await channel.send(event) }

    /// Sends an event only if the consumer has room: for `.progress`, which may be coalesced.
    @discardableResult
    package func offer(_ event: BatchEvent) -> Bool { channel.offer(event) }

    /// Whether the consumer has gone away.
    package var isCancelled: Bool { channel.isCancelled }
}
