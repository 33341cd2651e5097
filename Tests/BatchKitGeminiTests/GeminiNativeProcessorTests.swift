import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitGemini

/// A thread-safe Boolean.
final class GeminiFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Runs a stream to its end while a driver moves the manual clock to each sleeper's deadline
/// (polls, progress ticks): batches age only as fast as the processor waits for them.
///
/// `holdUntilSubmitted` keeps time still until the consumer has seen a `.submitted` event, so a
/// deadline cannot pass while the batch is still being created.
func drive(
    _ stream: BatchEventStream, clock: ManualClock, holdUntilSubmitted: Bool = false,
    beforeAdvance: @escaping @Sendable () -> Void = {}
) async -> [BatchEvent] {
    let submitted = GeminiFlag()
    let driver = Task {
        while !Task.isCancelled {
            if clock.sleeperCount == 0 {
                await clock.sleepers(atLeast: 1)  // parks, no CPU, until something sleeps
                continue
            }
            beforeAdvance()
            if clock.sleeperCount > 0, !holdUntilSubmitted || submitted.isSet { _ = clock.advanceToNextDeadline() }
            await Task.yield()
        }
    }
    var events: [BatchEvent] = []
    for await e in stream {
        if case .submitted = e { submitted.set() }
        events.append(e)
    }
    driver.cancel()
    await driver.value
    return events
}

extension Array where Element == BatchEvent {
    var items: [BatchResult] { compactMap { if case .item(let r) = $0 { return r } else { return nil } } }
    var submittedJobs: [BatchJob] { compactMap { if case .submitted(let j) = $0 { return j } else { return nil } } }
    var summary: BatchSummary? {
        for e in self { if case .completed(let s) = e { return s } }
        return nil
    }
    /// Items by id; fails the test when an id is reported twice.
    var itemsByID: [String: BatchResult] {
        var out: [String: BatchResult] = [:]
        for r in items {
            #expect(out[r.id] == nil, "\(r.id) reported twice")
            out[r.id] = r
        }
        return out
    }
}

func pollingConfiguration(
    limits: BatchLimits? = nil, resubmit: ResubmitPolicy = .none
) -> NativeBatchProcessor<ManualClock>.Configuration {
    .init(pollInterval: .seconds(5), maxPollInterval: .seconds(5), pollBackoff: 1, resubmit: resubmit, limits: limits)
}

@Suite(.timeLimit(.minutes(5))) struct GeminiNativeProcessorTests {
    @Test(arguments: Wire.allCases)
    func fullLifecycleWithMixedOutcomes(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(30))) { f in
            let processor = NativeBatchProcessor(backend: f.backend, configuration: pollingConfiguration(), clock: f.clock)
            var requests = chats(12)
            // Passes BatchKit's checks, rejected by Gemini per item (a message with no parts).
            requests.append(BatchRequest(id: "empty-parts", chat: ChatRequest(model: "gemini-2.5-flash", messages: [Message(role: .user, content: .parts([]))])))
            requests.append(BatchRequest(id: "emb-1", embedding: EmbeddingRequest(model: "gemini-embedding-001", input: "one", dimensions: 4)))
            requests.append(BatchRequest(id: "emb-2", embedding: EmbeddingRequest(model: "gemini-embedding-001", input: "two", dimensions: 4)))
            requests.append(BatchRequest(id: "raw", body: .raw(RawRequest(endpoint: "/v1/responses", body: ["model": "x"]))))

            let events = await drive(processor.processAsync(requests), clock: f.clock)
            guard case .started? = events.first else {
                Issue.record("the first event must be .started")
                return
            }
            let jobs = events.submittedJobs
            #expect(jobs.count == 2)  // one chat batch, one embedding batch
            #expect(jobs.allSatisfy { $0.id.hasPrefix("batches/") && $0.provider == "gemini" })
            let items = events.itemsByID
            #expect(items.count == requests.count)
            #expect(items["raw"]?.error?.code == .validation)
            #expect(items["raw"]?.route == BatchResult.Route.none)
            #expect(items["empty-parts"]?.error?.code == .invalidRequest)
            #expect(items["empty-parts"]?.route == .batch)
            for i in 0..<12 { #expect(items["req-\(i)"]?.isSuccess == true) }
            #expect(items["emb-1"]?.response?.embeddings?.first?.count == 4)
            #expect(items["emb-1"]?.response?.embeddings != items["emb-2"]?.response?.embeddings)
            let summary = try #require(events.summary)
            #expect(summary.succeeded == 14 && summary.failed == 2)
            #expect(summary.usage.batchInputTokens > 0 && summary.usage.batchInputTokens == summary.usage.inputTokens)
            // Nothing was sent twice; the raw request was never sent.
            #expect(f.emulator.sentCounts.values.allSatisfy { $0 == 1 })
            #expect(f.emulator.sentCount(customID: "raw") == 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func expiryWithResubmission(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(50))) { f in
            let processor = NativeBatchProcessor(
                backend: f.backend, configuration: pollingConfiguration(resubmit: .failedAndExpired(maxRounds: 1)), clock: f.clock)
            let emulator = f.emulator
            // Once the expired items have been sent again, let batches run to completion.
            let events = await drive(processor.processAsync(chats(6)), clock: f.clock, beforeAdvance: {
                if emulator.sentCount(customID: "req-0") >= 2 { emulator.update { $0.batchExpiry = nil } }
            })
            let jobs = events.submittedJobs
            try #require(jobs.count == 2)
            let first = try await f.backend.status(of: jobs[0].id)
            #expect(first.status == .expired)
            let items = events.itemsByID
            #expect(items.count == 6)
            #expect(items.values.allSatisfy { $0.isSuccess })
            for i in 0..<6 { #expect(f.emulator.sentCount(customID: "req-\(i)") == 2) }
        }
    }

    @Test(arguments: Wire.allCases)
    func expiryWithoutResubmissionReportsExpiredItems(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(20))) { f in
            let processor = NativeBatchProcessor(backend: f.backend, configuration: pollingConfiguration(), clock: f.clock)
            let events = await drive(processor.processAsync(chats(3)), clock: f.clock)
            let items = events.itemsByID
            #expect(items.count == 3)
            #expect(items.values.allSatisfy { $0.error?.code == .expired })
            #expect(events.summary?.failed == 3)
        }
    }

    @Test(arguments: Wire.allCases)
    func malformedResultLinesAndErrorOnlyBatches(_ wire: Wire) async throws {
        try await withBatch(wire, .init(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.gemini))]), inlineByteLimit: 10) { f in
            let processor = NativeBatchProcessor(backend: f.backend, configuration: pollingConfiguration(), clock: f.clock)
            let items = await drive(processor.processAsync(chats(5)), clock: f.clock).itemsByID
            #expect(items.count == 5)
            #expect(items.values.filter { $0.error?.code == .invalidResponse }.count == 2)
            #expect(items.values.filter(\.isSuccess).count == 3)
        }
        try await withBatch(wire, .init(faults: [EmulatorFault(.errorFileOnly, on: .provider(.gemini))])) { f in
            let processor = NativeBatchProcessor(backend: f.backend, configuration: pollingConfiguration(), clock: f.clock)
            let events = await drive(processor.processAsync(chats(3)), clock: f.clock)
            #expect(events.itemsByID.count == 3)
            #expect(events.items.allSatisfy { $0.error?.code == .server })
            #expect(events.summary?.failed == 3)
        }
    }
}
