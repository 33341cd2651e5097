@testable import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ConcurrentProcessorTests {
    @Test func exactlyOneItemPerRequestAndTerminalLast() async {
        let client = ClosureClient { r in
            if r.id.hasSuffix("7") { throw BatchError(.invalidRequest, "bad", httpStatus: 400) }
            return okResponse()
        }
        let requests = (0..<500).map { chatRequest("id-\($0)") }
        let events = await collect(ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 8)).processAsync(requests))
        guard case .started = events.first else { Issue.record("first event is not .started"); return }
        guard case .completed(let summary) = events.last else { Issue.record("last event is not .completed"); return }
        #expect(events.terminalCount == 1)
        let ids = events.items.map(\.id)
        #expect(ids.count == 500)
        #expect(Set(ids) == Set(requests.map(\.id)))
        #expect(summary.succeeded == 450)
        #expect(summary.failed == 50)
        #expect(summary.usage.inputTokens == 450 * 3)
        #expect(events.items.filter { $0.id.hasSuffix("7") }.allSatisfy { $0.error?.code == .invalidRequest && $0.attempts == 1 })
    }

    @Test func processCollectsInRequestOrder() async throws {
        let client = ClosureClient { r in okResponse(r.id) }
        let requests = (0..<100).map { chatRequest("k\($0)") }
        let response = try await ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 16)).process(requests)
        #expect(response.results.map(\.id) == requests.map(\.id))
        #expect(response.results.map { $0.response?.text } == requests.map { $0.id })
        #expect(response.summary.succeeded == 100)
    }

    @Test func neverMoreThanMaxConcurrencyInFlight() async {
        let probe = Probe()
        let limit = 7
        let opened = Flag()
        let client = ClosureClient { r in
            if probe.enter(r.id) >= limit { opened.set() }
            defer { probe.leave() }
            // Nobody finishes until `limit` calls are in flight at once.
            while !opened.isSet { await Task.yield() }
            return okResponse()
        }
        let events = await collect(
            ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: limit)).processAsync((0..<200).map { chatRequest("c\($0)") }))
        #expect(events.items.count == 200)
        #expect(probe.maxActive == limit)
    }

    @Test func duplicateAndInvalidRequestsBecomeValidationItems() async {
        struct PickyClient: ModelClient {
            func send(_ request: BatchRequest) async throws -> ModelResponse { okResponse() }
            func validate(_ request: BatchRequest) throws(BatchError) {
                if case .embedding = request.body { throw .validation("no embeddings here", field: "body") }
            }
        }
        let requests = [
            chatRequest("a"), chatRequest("b"), chatRequest("a"),
            BatchRequest(id: "e", embedding: EmbeddingRequest(model: "m", input: "x")), chatRequest(""),
        ]
        let events = await collect(ConcurrentProcessor(client: PickyClient()).processAsync(requests))
        let items = events.items
        #expect(items.count == 5)
        #expect(items.filter { $0.id == "a" }.count == 2)
        #expect(items.filter { $0.id == "a" && $0.isSuccess }.count == 1)
        #expect(items.first { $0.id == "a" && !$0.isSuccess }?.error?.code == .validation)
        #expect(items.first { $0.id == "e" }?.error?.field == "body")
        #expect(items.first { $0.id == "" }?.error?.field == "id")
        #expect(items.filter { !$0.isSuccess }.allSatisfy { $0.attempts == 0 && $0.route == .none })
        #expect(events.summary?.succeeded == 2)
    }

    @Test func lazyInputsAreCheckedOnlyWhenAsked() async {
        let client = ClosureClient { _ in okResponse() }
        let dupes = ArrayAsyncSequenceWrapper([chatRequest("x"), chatRequest("x")])
        let trusting = await collect(ConcurrentProcessor(client: client).processAsync(dupes))
        #expect(trusting.items.allSatisfy { $0.isSuccess })
        let checking = await collect(
            ConcurrentProcessor(client: client, configuration: .init(duplicateIDCheck: .always)).processAsync(dupes))
        #expect(checking.items.filter(\.isSuccess).count == 1)
    }

    @Test func pullsLazilyAndStopsAtBreak() async {
        let probe = Probe()
        let client = ClosureClient { _ in okResponse() }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 4, eventBufferSize: 8))
        var items = 0
        for await event in processor.processAsync(CountingRequests(count: 50_000_000, probe: probe)) {
            if case .item = event { items += 1 }
            if items == 100 { break }
        }
        // Read-ahead is bounded by what runs and what waits for the consumer.
        #expect(probe.pulled <= 100 + 4 + 8 + 4)
        let pulledAtBreak = probe.pulled
        // The end signal: the run lets go of the input iterator when it has stopped. A run that
        // ignored the break would go on pulling the 50 million requests instead (bounded here, so
        // that such a run fails the test rather than hanging it).
        await eventually { probe.released == 1 || probe.pulled > pulledAtBreak + 1_000 }
        #expect(probe.released == 1, "the run did not stop: \(probe.pulled - pulledAtBreak) more requests were pulled after the break")
        #expect(probe.pulled <= pulledAtBreak + 4)
    }

    @Test func slowConsumerStopsNewWork() async throws {
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            probe.leave()
            return okResponse()
        }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 4, eventBufferSize: 8))
        let stream = processor.processAsync(CountingRequests(count: 1_000_000, probe: probe))
        var iterator = stream.makeAsyncIterator()
        _ = await iterator.next()  // .started
        // Consume nothing more: the engine fills the buffer, every worker blocks on its item, and
        // no further request starts.
        await eventually { iterator.waitingProducers == 4 }
        #expect(probe.calls <= 8 + 4)
        let stalled = probe.calls
        for _ in 0..<20 { await Task.yield() }
        #expect(probe.calls == stalled)
        // Consuming lets it go on.
        for _ in 0..<50 { _ = await iterator.next() }
        await eventually { probe.calls >= stalled + 40 }
        #expect(probe.calls <= 1 + 50 + 8 + 4)
    }

    @Test(arguments: [true, false])
    func breakingOrDroppingCancelsInFlightWork(keepStreamInVariable: Bool) async {
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            defer { probe.leave() }
            if r.id == "r1" { return okResponse() }
            await waitForCancellation()
            probe.markCancelled()
            throw CancellationError()
        }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 5))
        if keepStreamInVariable {
            let stream = processor.processAsync(CountingRequests(count: 1000, probe: probe))
            for await event in stream {
                if case .item = event { break }
            }
            // `stream` is still alive here: the break alone must have cancelled the run.
            await eventually { probe.active == 0 && probe.calls >= 2 }
            #expect(probe.cancelled == probe.calls - 1)
            _ = stream
        } else {
            for await event in processor.processAsync(CountingRequests(count: 1000, probe: probe)) {
                if case .item = event { break }
            }
            await eventually { probe.active == 0 && probe.calls >= 2 }
            #expect(probe.cancelled == probe.calls - 1)
        }
        #expect(probe.calls <= 6)
    }

    @Test func cancellingTheConsumingTaskCancelsTheRun() async {
        let probe = Probe()
        let client = ClosureClient { r in
            probe.enter(r.id)
            defer { probe.leave() }
            await waitForCancellation()
            probe.markCancelled()
            throw CancellationError()
        }
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 3))
        let consumer = Task {
            var events: [BatchEvent] = []
            for await e in processor.processAsync((0..<10).map { chatRequest("q\($0)") }) { events.append(e) }
            return events
        }
        await eventually { probe.active == 3 }
        consumer.cancel()
        let events = await consumer.value
        await eventually { probe.active == 0 }
        #expect(probe.cancelled == 3)
        #expect(probe.calls == 3)
        #expect(events.items.isEmpty)
    }

    @Test func costIsSummedFromUsage() async {
        let client = ClosureClient { _ in okResponse(input: 1_000_000, output: 1_000_000, model: "m-2025") }
        let prices = PriceTable(["m": .init(inputPerMillion: 1, outputPerMillion: 4)])
        let events = await collect(
            ConcurrentProcessor(client: client, configuration: .init(priceTable: prices)).processAsync([chatRequest("a", model: "m"), chatRequest("b", model: "m")]))
        #expect(events.summary?.cost == 10)
        let unpriced = await collect(ConcurrentProcessor(client: client).processAsync([chatRequest("a")]))
        #expect(unpriced.summary?.cost == nil)
    }
}

/// An `AsyncSequence` over an array that is *not* `ArrayAsyncSequence` (so it counts as lazy).
struct ArrayAsyncSequenceWrapper: AsyncSequence, Sendable {
    typealias Failure = Never
    let elements: [BatchRequest]
    init(_ elements: [BatchRequest]) { self.elements = elements }
    struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[BatchRequest]>
        mutating func next() async -> BatchRequest? { base.next() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? { base.next() }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: elements.makeIterator()) }
}
