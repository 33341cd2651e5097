import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitAnthropic

extension AnthropicFixture {
    func processor(
        _ configuration: NativeBatchProcessor<ManualClock>.Configuration = .init(), backend: AnthropicBatchBackend? = nil
    ) -> NativeBatchProcessor<ManualClock> {
        NativeBatchProcessor(backend: backend ?? self.backend(), configuration: configuration, clock: clock)
    }
}

/// Everything one run reported.
struct RunRecord {
    var results: [String: BatchResult] = [:]
    var submitted: [BatchJob] = []
    var progress: [BatchProgress] = []
    var summary: BatchSummary?
    var failure: BatchError?
    var duplicates = 0
}

/// Runs `requests` with the clock driven, and records the events.
func record(_ processor: NativeBatchProcessor<ManualClock>, _ clock: ManualClock, _ requests: [BatchRequest]) async -> RunRecord {
    let driver = drive(clock)
    defer { driver.cancel() }
    return await record(processor.processAsync(requests))
}

func record(_ stream: BatchEventStream) async -> RunRecord {
    var r = RunRecord()
    for await event in stream {
        switch event {
        case .item(let item):
            if r.results[item.id] != nil { r.duplicates += 1 }
            r.results[item.id] = item
        case .submitted(let job): r.submitted.append(job)
        case .progress(let p): r.progress.append(p)
        case .completed(let s): r.summary = s
        case .failed(let e): r.failure = e
        default: break
        }
    }
    return r
}

/// A transport that removes the result line of one custom id from results downloads.
struct DroppingTransport: HTTPTransport {
    let inner: any HTTPTransport
    let customID: String

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        var response = try await inner.send(request)
        guard request.url.path.hasSuffix("/results"), response.isSuccess else { return response }
        let data = try response.bodyData()
        if let file = response.bodyFile { try? FileManager.default.removeItem(at: file) }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { !$0.contains("\"custom_id\":\"\(customID)\"") }
        response.body = Data((kept.joined(separator: "\n") + "\n").utf8)
        response.bodyFile = nil
        return response
    }
}

/// `NativeBatchProcessor.anthropic(...)` (NativeBatchProcessor + AnthropicBatchBackend) end to end, in
/// process and over the loopback server.
@Suite(.timeLimit(.minutes(5))) struct AnthropicBatchProcessorTests {

    @Test(arguments: Wire.allCases) func mixOfSucceededAndFailed(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            var reqs = requests(5)
            reqs.append(chat("bad id"))                                       // Anthropic's id pattern
            reqs.append(chat("q-0"))                                          // duplicate id
            reqs.append(BatchRequest(id: "emb-1", embedding: EmbeddingRequest(model: "m", input: "x")))
            reqs.append(chat("seed-1") { $0.seed = 9 })
            reqs.append(chat("lazy-1") { $0.extra = ["max_tokens": nil] })  // rejected by Anthropic when processed
            let run = await record(f.processor(), f.clock, reqs)
            #expect(run.submitted.count == 1)
            #expect(run.submitted.first?.requestCount == 6)
            #expect(run.results["bad id"]?.error?.field == "custom_id")
            #expect(run.results["bad id"]?.route == BatchResult.Route.none)
            #expect(run.results["emb-1"]?.error?.field == "body")
            #expect(run.results["seed-1"]?.error?.field == "seed")
            #expect(run.results["lazy-1"]?.error?.code == .invalidRequest)
            #expect(run.results["lazy-1"]?.error?.field == "max_tokens")
            #expect((0..<5).allSatisfy { run.results["q-\($0)"]?.isSuccess == true })
            #expect(run.summary?.succeeded == 5)
            #expect(run.summary?.failed == 5)
            #expect(f.emulator.sentCount(customID: "bad id") == 0)
            #expect(f.emulator.sentCount(customID: "emb-1") == 0)
            #expect(f.emulator.sentCount(customID: "q-0") == 1)
        }
    }

    @Test(arguments: Wire.allCases) func expiryWithResubmission(_ wire: Wire) async throws {
        // 100 s to process, expiry at 60 s: 6 of 10 finish; the 4 expired are resubmitted; of
        // those, 2 finish and 2 expire again, which is the last round.
        try await withFixture(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(60))) { f in
            let reqs = requests(10)
            let run = await record(f.processor(.init(resubmit: .failedAndExpired(maxRounds: 1))), f.clock, reqs)
            #expect(run.submitted.count == 2)
            #expect(run.submitted.last?.requestCount == 4)
            #expect(run.results.count == 10)
            #expect(run.results.values.filter(\.isSuccess).count == 8)
            let expired = run.results.values.compactMap(\.error)
            #expect(expired.count == 2)
            #expect(expired.allSatisfy { $0.code == .expired })
            let sentTwice = reqs.filter { f.emulator.sentCount(customID: $0.id) == 2 }
            #expect(sentTwice.count == 4)
            #expect(reqs.allSatisfy { (1...2).contains(f.emulator.sentCount(customID: $0.id)) })
        }
    }

    @Test(arguments: Wire.allCases) func cancelMidRunKeepsPartialResults(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(100))) { f in
            let processor = f.processor()
            var iterator = processor.processAsync(requests(10)).makeAsyncIterator()
            var job: BatchJob?
            while job == nil, let e = await iterator.next() { if case .submitted(let j) = e { job = j } }
            let id = try #require(job?.id)
            await f.clock.sleepers(atLeast: 1)         // the processor waits for its next poll
            f.clock.advance(by: .seconds(30))          // 3 of 10 done
            let cancelling = try await processor.cancel(id)
            #expect(cancelling.status == .cancelling)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            var results: [String: BatchResult] = [:]
            var summary: BatchSummary?
            while let e = await iterator.next() {
                if case .item(let r) = e { results[r.id] = r }
                if case .completed(let s) = e { summary = s }
            }
            #expect(results.count == 10)
            #expect(results.values.filter(\.isSuccess).count == 3)
            #expect(results.values.compactMap(\.error).filter { $0.code == .cancelled }.count == 7)
            #expect(summary?.jobs.first?.status == .cancelled)
        }
    }

    @Test(arguments: Wire.allCases) func resultFileMissingAnID(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let backend = AnthropicBatchBackend(apiKey: secretKey, baseURL: f.baseURL, transport: DroppingTransport(inner: f.transport, customID: "q-2"))
            let run = await record(f.processor(backend: backend), f.clock, requests(5))
            #expect(run.results.count == 5)
            let missing = try #require(run.results["q-2"]?.error)
            #expect(missing.code == .invalidResponse)
            #expect(run.results.values.filter(\.isSuccess).count == 4)
        }
    }

    @Test func factoryDefaults() {
        let p = NativeBatchProcessor.anthropic(apiKey: "k", baseURL: emulatorURL, transport: ClosureTransport { _ in HTTPResponse(status: 500) })
        #expect(p.limits == AnthropicBatchBackend.defaultLimits)
        #expect(p.backend.provider == "anthropic")
    }
}
