import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// Moves the manual clock to each sleeper's deadline as soon as one sleeps, until cancelled: time
/// passes exactly as fast as the code under test waits, and nothing sleeps for real.
func driveClock(_ clock: ManualClock) -> Task<Void, Never> { clock.drive() }

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

/// `NativeBatchProcessor.openAI(...)` (``NativeBatchProcessor`` over ``OpenAIBatchBackend``) end to end
/// against the emulator.
@Suite(.timeLimit(.minutes(5))) struct OpenAIProcessorTests {
    static let config = NativeBatchProcessor<ManualClock>.Configuration(pollInterval: .seconds(5), maxPollInterval: .seconds(20))

    func processor(_ h: Harness, limits: BatchLimits = OpenAIBatchBackend.defaultLimits,
                   configuration: NativeBatchProcessor<ManualClock>.Configuration = config) -> NativeBatchProcessor<ManualClock> {
        NativeBatchProcessor(backend: h.backend(limits: limits), configuration: configuration, clock: h.clock)
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
            let submittedFirst = try #require(log.submitted.first)
            let first = try await h.backend().status(of: submittedFirst.id)
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
