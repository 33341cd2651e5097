import Foundation

/// Runs another processor through a ``Journal``: requests the journal already finished are
/// skipped, and every new result is appended to the journal **before** its `.item` event is
/// reported. Works with every processor.
///
/// ```swift
/// let journal = try Journal(url: output)
/// let processor = ConcurrentProcessor(client: client).journaled(journal)
/// for await event in processor.processAsync(requests) { ... }   // rerun after a crash: resumes
/// ```
///
/// - Input is filtered lazily as the base processor pulls it; it is never materialised.
/// - Skipped requests get no `.item` unless `replayFinished` is set, in which case their recorded
///   result is read back from the journal and reported (so each request still has exactly one
///   item, e.g. for ``Processor/process(_:)``).
/// - The ``BatchSummary`` (and ``BatchProgress``) counts only this run's work, as the base
///   processor reports it. ``Journal/skippedCount`` tells how many requests were skipped and
///   ``Journal/totals`` what the journal holds over every run.
/// - If a line cannot be written (disk full), the run ends with `.failed` (code
///   ``BatchError/Code/io``) and the base run is cancelled: a result that is not journaled is never
///   reported.
/// - When the consumer stops (break, cancellation, crash), results the base processor finished but
///   had not yet handed over (at most its event buffer) are not journaled and run again next
///   time; everything that was reported is journaled.
/// - Rerun with the same journal and the same input: each request ends with exactly one line in
///   the journal's view (the last line per id); ``Journal/compact()`` makes that true of the file.
public struct JournaledProcessor<Base: Processor>: Processor {
    /// The processor doing the work.
    package let base: Base
    /// Where results are recorded.
    package let journal: Journal
    /// Whether already finished requests are reported again from the journal.
    package let replayFinished: Bool

    /// - Parameters:
    ///   - base: the processor doing the work.
    ///   - journal: where results are recorded and looked up.
    ///   - replayFinished: report already finished requests from the journal (default `false`).
    package init(base: Base, journal: Journal, replayFinished: Bool = false) {
        self.base = base
        self.journal = journal
        self.replayFinished = replayFinished
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let base = self.base
        let journal = self.journal
        let replay = replayFinished
        return BatchEventStream { sink in
            let filtered = JournalFilterSequence(base: requests, journal: journal, replayTo: replay ? sink : nil)
            return await sink.relay(base.processAsync(filtered)) { event in
                guard case .item(let result) = event else { return .pass }
                do throws(BatchError) {
                    try journal.append(result)
                } catch {
                    return .end(.failed(error))  // leaving the loop cancels the base run
                }
                return .pass
            }
        }
    }
}

extension Processor {
    /// This processor, skipping requests `journal` already finished and recording each result in
    /// it before reporting it. See ``JournaledProcessor``.
    public func journaled(_ journal: Journal, replayFinished: Bool = false) -> JournaledProcessor<Self> {
        JournaledProcessor(base: self, journal: journal, replayFinished: replayFinished)
    }
}

/// The input of the base processor: the caller's requests minus those the journal finished,
/// filtered as they are pulled.
struct JournalFilterSequence<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable
where Base.Element == BatchRequest, Base.Failure == Never {
    typealias Element = BatchRequest
    typealias Failure = Never

    let base: Base
    let journal: Journal
    /// Where replayed items go, when finished requests are replayed.
    let replayTo: EventSink?

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let journal: Journal
        let replayTo: EventSink?

        mutating func next() async -> BatchRequest? { await next(isolation: nil) }

        mutating func next(isolation actor: isolated (any Actor)?) async -> BatchRequest? {
            while let request = await base.next(isolation: actor) {
                guard journal.isFinished(request.id) else { return request }
                journal.noteSkipped(request.id)
                if let sink = replayTo {
                    let recorded: BatchResult
                    do {
                        guard let r = try journal.result(for: request.id) else { return request }
                        recorded = r
                    } catch {
                        // The recorded line cannot be read back: run the request again rather
                        // than lose its item.
                        return request
                    }
                    // The consumer has gone away: end the input so the run winds down.
                    guard await sink.emit(.item(recorded)) else { return nil }
                }
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), journal: journal, replayTo: replayTo)
    }
}
