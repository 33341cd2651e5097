@testable import BatchKit
import BatchKitTesting
import Foundation
import Synchronization

/// Thread-safe counters shared between a test and the clients it builds.
final class Probe: Sendable {
    private struct State {
        var calls = 0
        var active = 0
        var maxActive = 0
        var cancelled = 0
        var pulled = 0
        var released = 0
        var ids: [String] = []
    }

    private let state = Mutex(State())

    var calls: Int { state.withLock { $0.calls } }
    var maxActive: Int { state.withLock { $0.maxActive } }
    var active: Int { state.withLock { $0.active } }
    var cancelled: Int { state.withLock { $0.cancelled } }
    var pulled: Int { state.withLock { $0.pulled } }
    /// How many input iterators were released (their run ended and let go of the input).
    var released: Int { state.withLock { $0.released } }
    var ids: [String] { state.withLock { $0.ids } }

    @discardableResult
    func enter(_ id: String) -> Int {
        state.withLock { s in
            s.calls += 1
            s.active += 1
            s.maxActive = max(s.maxActive, s.active)
            s.ids.append(id)
            return s.active
        }
    }

    func leave() { state.withLock { $0.active -= 1 } }
    func markCancelled() { state.withLock { $0.cancelled += 1 } }
    func markPulled() { state.withLock { $0.pulled += 1 } }
    func markReleased() { state.withLock { $0.released += 1 } }
}

/// Tells a ``Probe`` when the iterator holding it is released.
final class ReleaseSignal: Sendable {
    let probe: Probe
    init(_ probe: Probe) { self.probe = probe }
    deinit { probe.markReleased() }
}

/// Spins (yielding, never sleeping) until `condition` holds.
func eventually(_ condition: () -> Bool) async {
    while !condition() { await Task.yield() }
}

/// The end signal of a run: wraps a stream so that the run's outcome is recorded when its body
/// returns, i.e. when the run has really stopped (not merely when the consumer stopped listening).
final class RunEnd: Sendable {
    private let recorded = Mutex<BatchRunOutcome?>(nil)

    /// How the run ended; `nil` while it is still going.
    var outcome: BatchRunOutcome? { recorded.withLock { $0 } }

    /// `stream`, recording its run's outcome here.
    func observe(_ stream: BatchEventStream) -> BatchEventStream {
        let body = stream.body
        return BatchEventStream(bufferSize: stream.bufferSize) { sink in
            let outcome = await body(sink)
            self.recorded.withLock { $0 = outcome }
            return outcome
        }
    }

    /// Waits (yielding, never sleeping) until the run has ended, and returns how.
    func wait() async -> BatchRunOutcome {
        while true {
            if let outcome { return outcome }
            await Task.yield()
        }
    }
}

/// A processor whose runs report their end to a ``RunEnd``.
struct EndObservedProcessor<Base: Processor>: Processor {
    let base: Base
    let end: RunEnd

    func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        end.observe(base.processAsync(requests))
    }
}

/// Suspends until cancelled.
func waitForCancellation() async {
    let stream = AsyncStream<Never> { _ in }
    for await _ in stream {}
}

/// A lazily generated input that counts how far it was read.
struct CountingRequests: AsyncSequence, Sendable {
    typealias Failure = Never
    let count: Int
    let probe: Probe

    struct AsyncIterator: AsyncIteratorProtocol {
        let count: Int
        let probe: Probe
        /// Marks the probe when the last copy of this iterator goes away.
        let release: ReleaseSignal
        var i = 0
        mutating func next() async -> BatchRequest? { step() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? { step() }
        mutating func step() -> BatchRequest? {
            guard i < count else { return nil }
            i += 1
            probe.markPulled()
            return chatRequest("r\(i)")
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(count: count, probe: probe, release: ReleaseSignal(probe)) }
}

func chatRequest(_ id: String, text: String = "hello", maxTokens: Int? = 10, model: String = "test-model") -> BatchRequest {
    BatchRequest(id: id, chat: ChatRequest(model: model, messages: [.user(text)], maxTokens: maxTokens))
}

func okResponse(_ text: String = "ok", input: Int = 3, output: Int = 2, model: String = "test-model") -> ModelResponse {
    ModelResponse(text: text, finishReason: .stop, usage: Usage(inputTokens: input, outputTokens: output), model: model)
}

/// Collects every event of a stream.
func collect(_ stream: BatchEventStream) async -> [BatchEvent] {
    var events: [BatchEvent] = []
    for await e in stream { events.append(e) }
    return events
}

extension Array where Element == BatchEvent {
    var items: [BatchResult] { compactMap { if case .item(let r) = $0 { return r } else { return nil } } }
    var summary: BatchSummary? {
        for e in self { if case .completed(let s) = e { return s } }
        return nil
    }
    var retryEvents: [(String, Int, Duration, BatchError)] {
        compactMap { if case .retrying(let id, let a, let d, let e) = $0 { return (id, a, d, e) } else { return nil } }
    }
    var terminalCount: Int {
        filter {
            switch $0 {
            case .completed, .failed: return true
            default: return false
            }
        }.count
    }
}

/// A thread-safe Boolean.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Drives a `ManualClock` until the returned task is cancelled: whenever someone sleeps, jump to
/// the next deadline (``ManualClock/drive()``).
func driveClock(_ clock: ManualClock) -> Task<Void, Never> { clock.drive() }

extension BatchEventStream.AsyncIterator {
    /// The next event that is not `.progress`.
    mutating func nextSkippingProgress() async -> BatchEvent? {
        while let e = await next() {
            if case .progress = e { continue }
            return e
        }
        return nil
    }
}

/// A test backend around a ``FakeBackend``: every call it does not implement itself goes to
/// `base`, so a fixture writes only what it changes (a broken download, a refused create, a
/// cancel that never ends…). `downloadResults`, `tagsJobs` and the tagged `submit` are not
/// forwarded: they keep `BatchBackend`'s defaults, which call back into the wrapper, so an
/// override of `results` or `submit` is what the processor reaches.
protocol PassThroughBackend: BatchBackend {
    var base: FakeBackend { get }
}

extension PassThroughBackend {
    var provider: String { base.provider }
    var limits: BatchLimits { base.limits }
    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem { try base.encode(request) }
    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata)
    }
    func status(of jobID: String) async throws -> BatchJob { try await base.status(of: jobID) }
    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        try await base.results(of: job, handler: handler)
    }
    func cancel(jobID: String) async throws -> BatchJob { try await base.cancel(jobID: jobID) }
    func list(limit: Int) async throws -> [BatchJob] { try await base.list(limit: limit) }
    func delete(jobID: String) async throws { try await base.delete(jobID: jobID) }
}

/// A real-time processor (4 at a time) whose client answers every request at once with
/// "realtime <id>", entering and leaving `probe`: the real-time side of the hybrid tests.
func realtime(_ probe: Probe, clock: ManualClock) -> ConcurrentProcessor<ManualClock> {
    let client = ClosureClient { r in
        probe.enter(r.id)
        probe.leave()
        return okResponse("realtime \(r.id)")
    }
    return ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 4), clock: clock)
}
