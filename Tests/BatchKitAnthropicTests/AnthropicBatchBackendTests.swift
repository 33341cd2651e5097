import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitAnthropic

func collect(_ backend: AnthropicBatchBackend, _ job: BatchJob) async throws -> [String: BatchResult] {
    var out: [String: BatchResult] = [:]
    try await backend.results(of: job) { r in
        #expect(out[r.id] == nil, "duplicate result for \(r.id)")
        out[r.id] = r
    }
    return out
}

func requests(_ n: Int, prefix: String = "q") -> [BatchRequest] {
    (0..<n).map { chat("\(prefix)-\($0)", "Question number \($0)") }
}

@Suite(.timeLimit(.minutes(5))) struct AnthropicBatchBackendTests {
    @Test func encodeShape() throws {
        let f = AnthropicFixture()
        let item = try f.backend().encode(chat("q-1", "Hi") { $0.system = "Answer in French."; $0.maxTokens = 256 })
        #expect(item.id == "q-1")
        let json = try JSONValue(parsing: item.data)
        #expect(json == [
            "custom_id": "q-1",
            "params": ["model": "claude-sonnet-4-5", "max_tokens": 256, "system": "Answer in French.", "messages": [["role": "user", "content": "Hi"]]],
        ])
    }

    @Test func invalidCustomIDsAndEmbeddingsAreRejectedBeforeSending() throws {
        let f = AnthropicFixture()
        let backend = f.backend()
        for bad in ["has space", "", String(repeating: "x", count: 65), "a/b", "ünïcode"] {
            do { _ = try backend.encode(chat(bad)); Issue.record("\(bad) was accepted") } catch {
                #expect(error.code == .validation)
                #expect(error.field == "custom_id")
            }
        }
        do { _ = try backend.encode(BatchRequest(id: "e-1", embedding: EmbeddingRequest(model: "m", input: "x"))); Issue.record("accepted") } catch {
            #expect(error.field == "body")
        }
        do { _ = try backend.encode(chat("s-1") { $0.seed = 1 }); Issue.record("accepted") } catch {
            #expect(error.field == "seed")
        }
        #expect(f.recorder.all.isEmpty)
        #expect(f.emulator.sentCounts.isEmpty)
    }

    @Test(arguments: Wire.allCases) func lifecycleWithManualClock(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(100))) { f in
            let backend = f.backend()
            let reqs = requests(10)
            let job = try await backend.submit(try reqs.map { try backend.encode($0) }, metadata: ["run": "test"])
            #expect(job.id.hasPrefix("msgbatch_"))
            #expect(job.status == .inProgress)
            #expect(job.requestCount == 10)
            #expect(job.expiresAt.map { $0.timeIntervalSince(job.createdAt!) } == 86_400)
            for r in reqs { #expect(f.emulator.sentCount(customID: r.id) == 1) }
            // One create request carrying all items.
            let create = try #require(f.recorder.all.last)
            #expect(create.url.path == "/v1/messages/batches")
            guard case .data(let body)? = create.body else { Issue.record("no body"); return }
            #expect(try JSONValue(parsing: body)["requests"]?.arrayValue?.count == 10)

            f.clock.advance(by: .seconds(50))
            let half = try await backend.status(of: job.id)
            #expect(half.status == .inProgress)
            #expect(half.metadata["processing"] == "10")  // counts are published only at the end
            #expect(half.succeededCount == 0)
            await #expect(throws: BatchError.self) { _ = try await collect(backend, half) }

            f.clock.advance(by: .seconds(51))
            let done = try await backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.remoteStatus == "ended")
            #expect(done.succeededCount == 10)
            #expect(done.metadata["results_url"] == f.baseURL.absoluteString + "/v1/messages/batches/\(job.id)/results")
            let results = try await collect(backend, done)
            #expect(Set(results.keys) == Set(reqs.map(\.id)))
            for r in results.values {
                #expect(r.route == .batch)
                #expect(r.isSuccess)
                #expect(r.response?.finishReason == .stop)
                #expect(r.usage.batchInputTokens > 0)
                #expect(r.usage.batchOutputTokens == r.usage.outputTokens)
                #expect(r.response?.raw["usage"]?["service_tier"] == "batch")
            }
            // The answers are the same as the real-time ones for the same prompt.
            let realtime = try await f.client().send(reqs[3])
            #expect(results["q-3"]?.response?.text == realtime.text)
            // The download asked for a file.
            #expect(f.recorder.all.last(where: { $0.url.path.hasSuffix("/results") })?.downloadsToFile == true)
        }
    }

    @Test(arguments: Wire.allCases) func cancelMidway(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(100))) { f in
            let backend = f.backend()
            let job = try await backend.submit(try requests(10).map { try backend.encode($0) }, metadata: [:])
            f.clock.advance(by: .seconds(30))
            let cancelling = try await backend.cancel(jobID: job.id)
            #expect(cancelling.status == .cancelling)
            #expect(cancelling.metadata["cancel_initiated_at"] != nil)
            // In-flight requests drain for a tenth of the duration (at most 1 s).
            #expect(try await backend.status(of: job.id).status == .cancelling)
            f.clock.advance(by: .seconds(1))
            let ended = try await backend.status(of: job.id)
            #expect(ended.status == .cancelled)
            #expect(ended.succeededCount == 3)
            #expect(ended.metadata["canceled"] == "7")
            let results = try await collect(backend, ended)
            #expect(results.count == 10)
            #expect(results.values.filter(\.isSuccess).count == 3)
            let cancelled = results.values.compactMap(\.error).filter { $0.code == .cancelled }
            #expect(cancelled.count == 7)
            // Cancelling an ended batch answers with the batch rather than failing.
            #expect(try await backend.cancel(jobID: job.id).status == .cancelled)
        }
    }

    @Test(arguments: Wire.allCases) func expiry(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(50))) { f in
            let backend = f.backend()
            let job = try await backend.submit(try requests(10).map { try backend.encode($0) }, metadata: [:])
            #expect(job.expiresAt.map { $0.timeIntervalSince(job.createdAt!) } == 50)
            f.clock.advance(by: .seconds(49))
            #expect(try await backend.status(of: job.id).status == .inProgress)
            f.clock.advance(by: .seconds(10))
            let ended = try await backend.status(of: job.id)
            #expect(ended.status == .expired)
            #expect(ended.succeededCount == 5)
            #expect(ended.failedCount == 5)
            let results = try await collect(backend, ended)
            let expired = results.values.compactMap(\.error).filter { $0.code == .expired }
            #expect(expired.count == 5)
            #expect(expired.allSatisfy { $0.isRetryable })
        }
    }

    @Test(arguments: Wire.allCases) func erroredItemsFromLazyValidation(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let backend = f.backend()
            var reqs = requests(4)
            reqs.append(chat("bad-1") { $0.extra = ["max_tokens": nil] })
            reqs.append(chat("bad-2") { $0.extra = ["frequency_penalty": 0.5] })
            let job = try await backend.submit(try reqs.map { try backend.encode($0) }, metadata: [:])
            let ended = try await backend.status(of: job.id)
            #expect(ended.status == .completed)
            #expect(ended.succeededCount == 4)
            #expect(ended.metadata["errored"] == "2")
            let results = try await collect(backend, ended)
            let bad1 = try #require(results["bad-1"]?.error)
            #expect(bad1.code == .invalidRequest)
            #expect(bad1.providerType == "invalid_request_error")
            #expect(bad1.field == "max_tokens")
            #expect(!bad1.isRetryable)
            #expect(results["bad-2"]?.error?.field == "frequency_penalty")
            #expect(results["q-0"]?.isSuccess == true)
        }
    }

    @Test(arguments: Wire.allCases) func structuredOutputInBatch(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let backend = f.backend()
            let req = chat("s-1", "Ada, 36") { $0.responseFormat = .jsonSchema(.init(name: "person", schema: personSchema)) }
            let job = try await backend.submit([try backend.encode(req)], metadata: [:])
            let results = try await collect(backend, try await backend.status(of: job.id))
            let r = try #require(results["s-1"]?.response)
            #expect(r.finishReason == .stop)
            #expect(try JSONValue(parsing: try #require(r.text))["name"]?.stringValue != nil)
        }
    }

    @Test(arguments: Wire.allCases) func malformedResultLines(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.anthropic))])) { f in
            let backend = f.backend()
            let job = try await backend.submit(try requests(6).map { try backend.encode($0) }, metadata: [:])
            let results = try await collect(backend, try await backend.status(of: job.id))
            #expect(results.count == 6)  // the custom ids of the damaged lines could still be read
            let damaged = results.values.compactMap(\.error)
            #expect(damaged.count == 2)
            #expect(damaged.allSatisfy { $0.code == .invalidResponse && $0.isRetryable })
            #expect(results.values.filter(\.isSuccess).count == 4)
        }
    }

    @Test(arguments: Wire.allCases) func errorOnlyBatch(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.errorFileOnly, on: .provider(.anthropic))])) { f in
            let backend = f.backend()
            let job = try await backend.submit(try requests(5).map { try backend.encode($0) }, metadata: [:])
            let ended = try await backend.status(of: job.id)
            #expect(ended.status == .completed)
            #expect(ended.succeededCount == 0)
            #expect(ended.failedCount == 5)
            let results = try await collect(backend, ended)
            #expect(results.count == 5)
            for r in results.values {
                #expect(r.error?.code == .server)
                #expect(r.error?.providerType == "api_error")
                #expect(r.error?.isRetryable == true)
                #expect(r.usage == .zero)
            }
        }
    }

    @Test(arguments: Wire.allCases) func listPagingAndDelete(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            var backend = f.backend()
            backend.listPageSize = 2
            var ids: [String] = []
            for i in 0..<5 { ids.append(try await backend.submit([try backend.encode(chat("l-\(i)"))], metadata: [:]).id) }
            let listed = try await backend.list(limit: 10)
            #expect(listed.map(\.id) == ids.reversed())  // newest first, over three pages
            #expect(f.recorder.all.filter { $0.url.path == "/v1/messages/batches" && $0.method == "GET" }.count == 3)
            let firstThree = try await backend.list(limit: 3)
            #expect(firstThree.map(\.id) == Array(ids.reversed().prefix(3)))

            try await backend.delete(jobID: ids[0])
            let e = await batchError { _ = try await backend.status(of: ids[0]) }
            #expect(e?.code == .notFound)
            #expect(try await backend.list(limit: 10).count == 4)
        }
    }

    @Test(arguments: Wire.allCases) func deletingARunningBatchFails(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(60))) { f in
            let backend = f.backend()
            let job = try await backend.submit([try backend.encode(chat("d-1"))], metadata: [:])
            let e = await batchError { try await backend.delete(jobID: job.id) }
            #expect(e?.code == .invalidRequest)
            #expect(e?.httpStatus == 400)
            f.clock.advance(by: .seconds(60))
            try await backend.delete(jobID: job.id)
            #expect(await batchError { try await backend.delete(jobID: job.id) }?.code == .notFound)
        }
    }

    @Test(arguments: Wire.allCases) func createLimits(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            f.emulator.setAnthropicBatchLimits(maxRequests: 3, maxBytes: 2_000)
            let backend = f.backend()
            let tooMany = await batchError { _ = try await backend.submit(try requests(4).map { try backend.encode($0) }, metadata: [:]) }
            #expect(tooMany?.code == .invalidRequest)
            #expect(tooMany?.httpStatus == 400)
            let big = chat("big-1", String(repeating: "x", count: 3_000))
            let tooBig = await batchError { _ = try await backend.submit([try backend.encode(big)], metadata: [:]) }
            #expect(tooBig?.code == .invalidRequest)
            #expect(tooBig?.httpStatus == 413)
            #expect(tooBig?.providerType == "request_too_large")
            #expect(f.emulator.sentCounts.isEmpty)  // nothing was accepted
            #expect(AnthropicBatchBackend.defaultLimits == BatchLimits(maxRequests: 100_000, maxBytes: 256_000_000))
        }
    }

    @Test(arguments: Wire.allCases) func authenticationErrorsDoNotLeakTheKey(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requiredAPIKey: "other")) { f in
            let backend = f.backend()
            let e = try #require(await batchError { _ = try await backend.submit([try backend.encode(chat("a-1"))], metadata: [:]) })
            #expect(e.code == .authentication)
            #expect(!e.description.contains(secretKey))
            #expect(!String(describing: backend).contains(secretKey))
        }
    }

    @Test(arguments: Wire.allCases) func pollFailuresAreRetryableErrors(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.status(500), on: .batchPoll(.anthropic), firstTimes: 1)])) { f in
            let backend = f.backend()
            let job = try await backend.submit([try backend.encode(chat("p-1"))], metadata: [:])
            let e = await batchError { _ = try await backend.status(of: job.id) }
            #expect(e?.code == .server)
            #expect(e?.isRetryable == true)
            #expect(try await backend.status(of: job.id).status == .completed)
        }
    }
}
