import Foundation
import Synchronization

/// Runs another processor behind a ``ResponseCache``: a request whose answer is cached is answered
/// at once, at no cost, and never reaches the processor; the others go to it, and each of their
/// successes is stored as it arrives. Works with every processor (real time, native, hybrid).
///
/// ```swift
/// let cache = try FileResponseCache(directory: URL(fileURLWithPath: ".batchkit-cache"))
/// let processor = NativeBatchProcessor.openAI(apiKey: key).cached(cache, provider: "openai")
/// ```
///
/// - A hit's result is the stored answer with route ``BatchResult/Route/cache``, no attempts, zero
///   usage and a cost of 0 (what was consumed was paid for by the run that stored it), and the
///   request's own id and metadata.
/// - Only successes are stored; a failure is never cached, so a rerun asks again.
/// - Which requests are the same is ``ResponseCacheKey``'s rule; `provider` is part of the key.
/// - Input is looked up lazily, as the processor pulls it; hits are reported as they are found.
/// - The summary and progress counts include hits as successes.
public struct CachingProcessor<Base: Processor>: Processor {
    /// The processor that runs the misses.
    package let base: Base
    /// Where answers are looked up and stored.
    package let cache: any ResponseCache
    /// The name of who answers, part of every key (see ``ResponseCacheKey``).
    package let provider: String

    /// - Parameters:
    ///   - base: the processor that runs the misses.
    ///   - cache: where answers are looked up and stored.
    ///   - provider: the name of who answers: the provider and, where servers differ, its base URL
    ///     (`"openai https://api.openai.com/v1"`). Requests sent to different names never share
    ///     answers.
    package init(base: Base, cache: any ResponseCache, provider: String) {
        self.base = base
        self.cache = cache
        self.provider = provider
    }

    public func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let base = self.base
        let cache = self.cache
        let provider = self.provider
        return BatchEventStream { sink in
            let misses = CacheMisses()
            let filtered = CacheLookupSequence(base: requests, cache: cache, provider: provider, misses: misses, sink: sink)
            return await sink.relay(base.processAsync(filtered)) { event in
                switch event {
                case .item(let result):
                    if let key = misses.take(result.id), case .success(let response) = result.outcome {
                        await cache.store(response, for: key)
                    }
                case .progress(var p):
                    let hits = misses.hits
                    p.succeeded += hits
                    p.total = p.total.map { $0 + hits }
                    event = .progress(p)
                case .completed(var summary):
                    summary.succeeded += misses.hits
                    event = .completed(summary)
                case .started, .submitted, .retrying, .failed:
                    break
                }
                return .pass
            }
        }
    }
}

extension Processor {
    /// This processor behind `cache`: cached answers are reported without running, the rest run
    /// here and their successes are stored. See ``CachingProcessor``.
    ///
    /// - Parameter provider: the name of who answers, part of every key (see
    ///   ``ResponseCacheKey``): the provider and, where servers differ, its base URL
    ///   (`"openai https://api.openai.com/v1"`). Requests sent to different names never share
    ///   answers.
    public func cached(_ cache: any ResponseCache, provider: String) -> CachingProcessor<Self> {
        CachingProcessor(base: self, cache: cache, provider: provider)
    }
}

/// The keys of requests handed to the base processor, until their result comes back, and the
/// number of hits so far.
final class CacheMisses: Sendable {
    private struct State {
        var keys: [String: ResponseCacheKey] = [:]
        var hits = 0
    }
    private let state = Mutex(State())

    func add(_ id: String, _ key: ResponseCacheKey) { state.withLock { $0.keys[id] = key } }
    func take(_ id: String) -> ResponseCacheKey? { state.withLock { $0.keys.removeValue(forKey: id) } }
    func hit() { state.withLock { $0.hits += 1 } }
    var hits: Int { state.withLock { $0.hits } }
}

/// The base processor's input: the caller's requests minus the cached ones, whose results are
/// reported as they are pulled.
struct CacheLookupSequence<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable
where Base.Element == BatchRequest, Base.Failure == Never {
    typealias Element = BatchRequest
    typealias Failure = Never

    let base: Base
    let cache: any ResponseCache
    let provider: String
    let misses: CacheMisses
    let sink: EventSink

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let cache: any ResponseCache
        let provider: String
        let misses: CacheMisses
        let sink: EventSink

        mutating func next() async -> BatchRequest? { await next(isolation: nil) }

        mutating func next(isolation actor: isolated (any Actor)?) async -> BatchRequest? {
            while let request = await base.next(isolation: actor) {
                let key = ResponseCacheKey(provider: provider, request: request)
                guard let response = await cache.lookup(key) else {
                    misses.add(request.id, key)
                    return request
                }
                var result = BatchResult(
                    id: request.id, outcome: .success(response), attempts: 0, usage: .zero, route: .cache,
                    metadata: request.metadata)
                result.cost = 0
                let now = Date()
                result.startedAt = now
                result.endedAt = now
                misses.hit()
                // The consumer has gone away: end the input so the run winds down.
                guard await sink.emit(.item(result)) else { return nil }
            }
            return nil
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), cache: cache, provider: provider, misses: misses, sink: sink)
    }
}
