import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// Moves the manual clock to each sleeper's deadline as soon as one sleeps, until cancelled: time
/// passes exactly as fast as the code under test waits, and nothing sleeps for real.
func driveClock(_ clock: ManualClock) -> Task<Void, Never> {
    Task.detached {
        while !Task.isCancelled {
            if !clock.advanceToNextDeadline() { await Task.yield() }
        }
    }
}

/// Everything one run reported.
struct RunLog {
    var started = 0
    var submitted: [BatchJob] = []
    var items: [String: BatchResult] = [:]
    var duplicateItems = 0
    var progress: [BatchProgress] = []
    var summary: BatchSummary?
    var failure: BatchError?
    var eventsAfterTerminal = 0
}

func run(_ processor: NativeBatchProcessor<ManualClock>, _ requests: [BatchRequest], onSubmitted: (BatchJob) -> Void = { _ in }) async -> RunLog {
    var log = RunLog()
    for await event in processor.processAsync(requests) {
        if log.summary != nil || log.failure != nil { log.eventsAfterTerminal += 1 }
        switch event {
        case .started: log.started += 1
        case .submitted(let job):
            log.submitted.append(job)
            onSubmitted(job)
        case .item(let r):
            if log.items[r.id] != nil { log.duplicateItems += 1 }
            log.items[r.id] = r
        case .progress(let p): log.progress.append(p)
        case .completed(let s): log.summary = s
        case .failed(let e): log.failure = e
        case .retrying: break
        }
    }
    return log
}

/// `OpenAIBatchProcessor` (``NativeBatchProcessor`` over ``OpenAIBatchBackend``) end to end
/// against the emulator.
@Suite(.timeLimit(.minutes(1))) struct OpenAIProcessorTests {
    static let config = NativeBatchProcessor<ManualClock>.Configuration(pollInterval: .seconds(5), maxPollInterval: .seconds(20))

    func processor(_ h: Harness, limits: BatchLimits = OpenAIBatchBackend.defaultLimits,
                   configuration: NativeBatchProcessor<ManualClock>.Configuration = config) -> NativeBatchProcessor<ManualClock> {
        NativeBatchProcessor(backend: h.backend(limits: limits), configuration: configuration, clock: h.clock)
    }

    @Test(arguments: Wire.allCases)
    func fullLifecycle(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(60))) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let requests = (0..<30).map { chat("life-\($0)", "question \($0)") }
            let log = await run(processor(h), requests)
            #expect(log.started == 1)
            #expect(log.submitted.count == 1)
            #expect(log.submitted.first?.id.hasPrefix("batch_") == true)
            #expect(log.items.count == 30)
            #expect(log.duplicateItems == 0)
            #expect(log.items.values.allSatisfy { $0.isSuccess && $0.route == .batch && $0.usage.batchInputTokens > 0 })
            #expect(log.progress.contains { $0.remoteStatus == "in_progress" })
            #expect(log.summary?.succeeded == 30)
            #expect(log.summary?.failed == 0)
            #expect((log.summary?.usage.batchOutputTokens ?? 0) > 0)
            #expect(log.failure == nil)
            #expect(log.eventsAfterTerminal == 0)
            #expect(requests.allSatisfy { h.emulator.sentCount(customID: $0.id) == 1 })
            #expect(h.clock.now.offset >= .seconds(60))
        }
    }

    @Test func splitsOverLimitsAndModels() async throws {
        try await withHarness { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let requests = (0..<10).map { chat("a-\($0)", "q\($0)") } + (0..<3).map { chat("b-\($0)", "q\($0)", model: "gpt-4o") }
            let log = await run(processor(h, limits: BatchLimits(maxRequests: 4, maxBytes: 1_000_000)), requests)
            #expect(log.submitted.count == 4)  // 4 + 4 + 2 of one model, 3 of the other
            #expect(log.items.count == 13)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            let batches = try await h.backend().list(limit: 100)
            #expect(batches.count == 4)
            #expect(batches.allSatisfy { $0.requestCount <= 4 })
            #expect(Set(batches.compactMap { $0.metadata["model"] }) == ["gpt-4o-mini", "gpt-4o"])

            // A byte limit splits too.
            let one = try h.backend().encode(chat("x-0", "q0")).data.count
            let byBytes = await run(processor(h, limits: BatchLimits(maxRequests: 100, maxBytes: one * 2 + 2)), (0..<6).map { chat("x-\($0)", "q\($0)") })
            #expect(byBytes.submitted.count == 3)
            #expect(byBytes.items.count == 6)
        }
    }

    @Test(arguments: Wire.allCases)
    func mixOfSuccessesAndFailures(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let requests = [chat("ok-1", "a"), chat("big", "b", maxTokens: 1_000_000), chat("ok-2", "c"),
                            BatchRequest(id: "raw-bad", body: .raw(RawRequest(endpoint: "/v1/fine_tuning/jobs", body: ["model": "m"])))]
            let log = await run(processor(h), requests)
            #expect(log.items.count == 4)
            #expect(log.items["ok-1"]?.isSuccess == true)
            #expect(log.items["big"]?.error?.code == .invalidRequest)
            #expect(log.items["big"]?.error?.field == "max_completion_tokens")
            #expect(log.items["raw-bad"]?.error?.code == .validation)
            #expect(log.items["raw-bad"]?.route == BatchResult.Route.none)
            #expect(h.emulator.sentCount(customID: "raw-bad") == 0)
            #expect(log.summary?.succeeded == 2)
            #expect(log.summary?.failed == 2)
        }
    }

    @Test func expiryWithResubmission() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(batchDuration: .seconds(100), batchExpiry: .seconds(45))) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            var configuration = Self.config
            configuration.resubmit = .failedAndExpired(maxRounds: 2)
            let requests = (0..<10).map { chat("exp-\($0)", "q\($0)") }
            // The first job expires half done; the resubmitted one runs without an expiry.
            let log = await run(processor(h, configuration: configuration), requests) { _ in
                h.emulator.update { $0.batchExpiry = nil }
            }
            #expect(log.submitted.count == 2)
            #expect(log.items.count == 10)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            #expect(log.summary?.succeeded == 10)
            let counts = requests.map { h.emulator.sentCount(customID: $0.id) }
            #expect(counts.filter { $0 == 1 }.count == 5)  // finished before expiry: sent once
            #expect(counts.filter { $0 == 2 }.count == 5)  // expired: sent again
            let first = try await h.backend().status(of: log.submitted[0].id)
            #expect(first.status == .expired)
        }
    }

    @Test func expiryWithoutResubmissionReportsExpiredItems() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(batchDuration: .seconds(100), batchExpiry: .seconds(45))) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let log = await run(processor(h), (0..<10).map { chat("ex-\($0)", "q\($0)") })
            #expect(log.items.values.filter { $0.isSuccess }.count == 5)
            #expect(log.items.values.compactMap { $0.error }.filter { $0.code == .expired }.count == 5)
        }
    }

    @Test func cancellingTheConsumerCancelsTheRemoteJob() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(batchDuration: .seconds(1000))) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let p = processor(h)
            let (jobs, stream) = AsyncStream.makeStream(of: String.self)
            let consumer = Task {
                for await event in p.processAsync((0..<5).map { chat("cx-\($0)", "q\($0)") }) {
                    if case .submitted(let job) = event { stream.yield(job.id) }
                }
            }
            var iterator = jobs.makeAsyncIterator()
            let jobID = try #require(await iterator.next())
            consumer.cancel()
            await consumer.value
            var status = try await h.backend().status(of: jobID).status
            for _ in 0..<10_000 where status != .cancelling && status != .cancelled {
                await Task.yield()
                status = try await h.backend().status(of: jobID).status
            }
            #expect(status == .cancelling || status == .cancelled)
        }
    }

    @Test(arguments: Wire.allCases)
    func attachFromAFreshProcessorDoesNotResubmit(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(60))) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let requests = (0..<8).map { chat("att-\($0)", "q\($0)") }
            let (jobs, rejected) = try await processor(h, limits: BatchLimits(maxRequests: 5, maxBytes: 1_000_000)).submit(requests)
            #expect(jobs.count == 2)
            #expect(rejected.isEmpty)
            // A new processor, as after a restart: only the job ids are known.
            let fresh = processor(h)
            var items: [String: BatchResult] = [:]
            var summary: BatchSummary?
            for await event in fresh.attach(jobs.map(\.id)) {
                if case .item(let r) = event { items[r.id] = r }
                if case .completed(let s) = event { summary = s }
            }
            #expect(items.count == 8)
            #expect(items.values.allSatisfy { $0.isSuccess })
            #expect(summary?.succeeded == 8)
            #expect(requests.allSatisfy { h.emulator.sentCount(customID: $0.id) == 1 })
            #expect(try await h.backend().list(limit: 100).count == 2)
        }
    }

    @Test(arguments: Wire.allCases)
    func failingPollsRecover(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(30), faults: [EmulatorFault(.status(500), on: .batchPoll(.openAI), firstTimes: 3)])) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let log = await run(processor(h), (0..<4).map { chat("poll-\($0)", "q\($0)") })
            #expect(log.failure == nil)
            #expect(log.items.count == 4)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
        }
    }

    @Test func resultFileMissingIDs() async throws {
        try await withHarness(.inProcess, EmulatorConfiguration(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.openAI))])) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let log = await run(processor(h), (0..<6).map { chat("mis-\($0)", "q\($0)") })
            #expect(log.items.count == 6)
            #expect(log.items.values.filter { $0.isSuccess }.count == 4)
            let missing = log.items.values.compactMap { $0.error }
            #expect(missing.count == 2)
            #expect(missing.allSatisfy { $0.code == .invalidResponse })
        }
    }

    @Test(arguments: Wire.allCases)
    func errorFileOnlyBatch(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.errorFileOnly)])) { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let log = await run(processor(h), (0..<5).map { chat("efo-\($0)", "q\($0)") })
            #expect(log.items.count == 5)
            #expect(log.items.values.allSatisfy { $0.error?.code == .server && $0.error?.httpStatus == 500 })
            #expect(log.summary?.failed == 5)
        }
    }

    @Test func validationFailedJob() async throws {
        try await withHarness { h in
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            // Too many embedding inputs for one batch: the emulator fails the job while validating.
            let inputs = (0..<50_001).map { "t\($0)" }
            let log = await run(processor(h), [BatchRequest(id: "huge", embedding: EmbeddingRequest(model: "text-embedding-3-small", inputs: inputs))])
            let error = try #require(log.items["huge"]?.error)
            #expect(error.code == .invalidRequest)
            #expect(error.message.contains("too_many_tasks"))
        }
    }
}
