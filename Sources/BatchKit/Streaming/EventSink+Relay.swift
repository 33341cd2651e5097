/// What a wrapping processor does with one event of the run it wraps (see
/// ``EventSink/relay(_:_:)``).
package enum RelayDecision: Sendable {
    /// Pass the event on (as the handler may have changed it).
    case pass
    /// Leave the event out.
    case drop
    /// End this run now with `outcome`; leaving the loop cancels the wrapped run.
    case end(BatchRunOutcome)
}

extension EventSink {
    /// Passes the events of a wrapped processor's run on through this sink, the way every wrapper
    /// (journal, cache, the CLI's signal handling) does: the wrapped `.started` is left out (this
    /// stream sends its own), `.item`, `.submitted` and `.retrying` are emitted with backpressure,
    /// `.progress` is offered, and the wrapped run's `.completed` or `.failed` becomes this run's
    /// outcome. `handle` sees each event first and may change it, drop it or end the run.
    ///
    /// - Returns: the outcome for this stream's body; `.failed(.cancelled())` when the consumer has
    ///   gone away or the wrapped run ended without a terminal event.
    package func relay(
        _ events: BatchEventStream, _ handle: (inout BatchEvent) async -> RelayDecision
    ) async -> BatchRunOutcome {
        for await original in events {
            if case .started = original { continue }
            var event = original
            switch await handle(&event) {
            case .drop: continue
            case .end(let outcome): return outcome
            case .pass: break
            }
            switch event {
            case .started:
                continue
            case .progress:
                offer(event)
            case .completed(let summary):
                return .completed(summary)
            case .failed(let error):
                return .failed(error)
            case .item, .submitted, .retrying:
                guard await emit(event) else { return .failed(.cancelled()) }
            }
        }
        return .failed(.cancelled())
    }
}
