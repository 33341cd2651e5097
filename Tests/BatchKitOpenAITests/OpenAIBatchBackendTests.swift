import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(5))) struct OpenAIBatchBackendTests {
    func encodeAll(_ backend: OpenAIBatchBackend, _ requests: [BatchRequest]) throws -> [EncodedBatchItem] {
        try requests.map { r throws(BatchError) in try backend.encode(r) }
    }

    func collect(_ backend: OpenAIBatchBackend, _ job: BatchJob) async throws -> ([String: BatchResult], OpenAIBatchBackend.ResultsSummary) {
        var results: [String: BatchResult] = [:]
        let summary = try await backend.downloadResults(of: job) { r in
            #expect(results[r.id] == nil, "duplicate result for \(r.id)")
            results[r.id] = r
        }
        return (results, summary)
    }

    @Test(arguments: Wire.allCases)
    func fullLifecycle(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            let backend = h.backend()
            let requests = (0..<20).map { chat("item-\($0)", "question \($0)") }
            let job = try await backend.submit(try encodeAll(backend, requests), metadata: ["run": "test"])
            #expect(job.id.hasPrefix("batch_"))
            #expect(job.provider == "openai")
            #expect(job.status == .validating)
            #expect(job.requestCount == 20)
            #expect(job.metadata["input_file_id"]?.hasPrefix("file-") == true)
            #expect(job.metadata["endpoint"] == "/v1/chat/completions")
            #expect(requests.allSatisfy { h.emulator.sentCount(customID: $0.id) == 1 })

            let running = try await backend.status(of: job.id)
            #expect(running.status == .inProgress)
            #expect(running.remoteStatus == "in_progress")
            #expect(running.requestCount == 20)
            h.clock.advance(by: .seconds(45))
            let half = try await backend.status(of: job.id)
            #expect(half.succeededCount == 10)
            h.clock.advance(by: .seconds(55))
            let done = try await backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.succeededCount == 20)
            #expect(done.metadata["output_file_id"] != nil)
            #expect(done.metadata["error_file_id"] == nil)
            #expect(done.createdAt != nil)
            #expect(done.expiresAt != nil)

            let (results, summary) = try await collect(backend, done)
            #expect(summary.results == 20)
            #expect(summary.malformedLines == 0)
            #expect(Set(results.keys) == Set(requests.map(\.id)))
            for r in results.values {
                #expect(r.isSuccess)
                #expect(r.route == .batch)
                #expect(r.attempts == 1)
                #expect(r.usage.batchInputTokens == r.usage.inputTokens)
                #expect(r.usage.batchOutputTokens > 0)
                #expect(r.response?.text?.isEmpty == false)
                #expect(r.response?.finishReason == .stop)
            }
            let meta = try await h.call("GET", "/v1/batches/\(job.id)")
            #expect(meta.json?["metadata"] == ["run": "test"])
        }
    }

    @Test(arguments: Wire.allCases)
    func resultsOfAStaleJobRefetchStatus(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, [chat("a", "x")]), metadata: [:])
            var n = 0
            try await backend.results(of: job) { _ in n += 1 }
            #expect(n == 1)
        }
    }

    @Test(arguments: Wire.allCases)
    func mixedSuccessAndFailure(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            let requests = [chat("good", "x"), chat("too-long", "y", maxTokens: 1_000_000), chat("good2", "z")]
            let job = try await backend.submit(try encodeAll(backend, requests), metadata: [:])
            let done = try await backend.status(of: job.id)
            #expect(done.succeededCount == 2)
            #expect(done.failedCount == 1)
            let (results, _) = try await collect(backend, done)
            #expect(results.count == 3)
            #expect(results["good"]?.isSuccess == true)
            let failure = try #require(results["too-long"]?.error)
            #expect(failure.code == .invalidRequest)
            #expect(failure.httpStatus == 400)
            #expect(failure.field == "max_completion_tokens")
            #expect(results["too-long"]?.usage == .zero)
            #expect(results["too-long"]?.route == .batch)
        }
    }

    @Test(arguments: Wire.allCases)
    func embeddingsAndRawEndpoints(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            let emb = [BatchRequest(id: "e1", embedding: EmbeddingRequest(model: "text-embedding-3-small", inputs: ["a", "b"], dimensions: 4)),
                       BatchRequest(id: "e2", embedding: EmbeddingRequest(model: "text-embedding-3-small", input: "c", dimensions: 4))]
            let job = try await backend.submit(try encodeAll(backend, emb), metadata: [:])
            let (results, _) = try await collect(backend, try await backend.status(of: job.id))
            #expect(results["e1"]?.response?.embeddings?.count == 2)
            #expect(results["e2"]?.response?.embeddings?.first?.count == 4)

            let raw = [BatchRequest(id: "r1", body: .raw(RawRequest(endpoint: "/v1/responses", body: ["model": "gpt-4.1", "input": "hi"])))]
            let rawJob = try await backend.submit(try encodeAll(backend, raw), metadata: [:])
            let (rawResults, _) = try await collect(backend, try await backend.status(of: rawJob.id))
            #expect(rawResults["r1"]?.response?.text?.isEmpty == false)
            #expect(rawResults["r1"]?.usage.batchInputTokens ?? 0 > 0)
        }
    }

    @Test func encodeGroupsByEndpointAndModel() throws {
        let backend = OpenAIBatchBackend(apiKey: "k", transport: ClosureTransport { _ in throw URLError(.badURL) })
        let a = try backend.encode(chat("a", "x", model: "gpt-4o"))
        let b = try backend.encode(chat("b", "x", model: "gpt-4o-mini"))
        let e = try backend.encode(BatchRequest(id: "e", embedding: EmbeddingRequest(model: "gpt-4o", input: "x")))
        #expect(a.groupKey != b.groupKey)
        #expect(a.groupKey != e.groupKey)
        #expect(a.id == "a")
        #expect(try JSONValue(parsing: a.data) == chat("a", "x", model: "gpt-4o").batchLine())
        let error = #expect(throws: BatchError.self) {
            try backend.encode(BatchRequest(id: "x", body: .raw(RawRequest(endpoint: "/v1/fine_tuning/jobs", body: ["model": "m"]))))
        }
        #expect(error?.field == "endpoint")
        #expect(throws: BatchError.self) { try backend.encode(BatchRequest(id: "x", body: .raw(RawRequest(endpoint: "/v1/responses", body: [:])))) }
        #expect(backend.limits == OpenAIBatchBackend.defaultLimits)
        #expect(backend.provider == "openai")
    }

    @Test(arguments: Wire.allCases)
    func cancelMidway(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, (0..<10).map { chat("c\($0)", "q\($0)") }), metadata: [:])
            h.clock.advance(by: .seconds(27))
            let cancelling = try await backend.cancel(jobID: job.id)
            #expect(cancelling.status == .cancelling)
            h.clock.advance(by: .seconds(10))
            let cancelled = try await backend.status(of: job.id)
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.succeededCount == 3)
            let (results, _) = try await collect(backend, cancelled)
            #expect(results.count == 10)
            #expect(results.values.filter(\.isSuccess).count == 3)
            let errors = results.values.compactMap(\.error)
            #expect(errors.count == 7)
            #expect(errors.allSatisfy { $0.code == .cancelled && !$0.isRetryable })
        }
    }

    @Test(arguments: Wire.allCases)
    func expiry(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100), batchExpiry: .seconds(45))) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, (0..<10).map { chat("x\($0)", "q\($0)") }), metadata: [:])
            h.clock.advance(by: .seconds(50))
            let expired = try await backend.status(of: job.id)
            #expect(expired.status == .expired)
            let (results, _) = try await collect(backend, expired)
            #expect(results.values.filter(\.isSuccess).count == 5)
            let errors = results.values.compactMap(\.error)
            #expect(errors.count == 5)
            #expect(errors.allSatisfy { $0.code == .expired && $0.isRetryable })
        }
    }

    @Test(arguments: Wire.allCases)
    func garbledLinesBecomeFailuresForTheirIDs(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.openAI))])) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, (0..<5).map { chat("m\($0)", "q\($0)") }), metadata: [:])
            let (results, summary) = try await collect(backend, try await backend.status(of: job.id))
            // The garbled lines still name their custom_id: each becomes a retryable failure for it.
            #expect(results.count == 5)
            #expect(results.values.filter(\.isSuccess).count == 3)
            #expect(results.values.compactMap(\.error).allSatisfy { $0.code == .invalidResponse && $0.isRetryable })
            #expect(summary.results == 5)
            #expect(summary.unreadableLines == 2)
            #expect(summary.malformedLines == 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func errorFileOnly(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.errorFileOnly)])) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, (0..<4).map { chat("f\($0)", "q\($0)") }), metadata: [:])
            let done = try await backend.status(of: job.id)
            #expect(done.metadata["output_file_id"] == nil)
            #expect(done.failedCount == 4)
            let (results, _) = try await collect(backend, done)
            #expect(results.count == 4)
            #expect(results.values.allSatisfy { $0.error?.code == .server && $0.error?.isRetryable == true })
        }
    }

    @Test(arguments: Wire.allCases)
    func validationFailureIsReportedOnTheJob(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            // Two items with the same id: the emulator fails the batch during validation.
            let job = try await backend.submit(try encodeAll(backend, [chat("same", "a"), chat("same", "b")]), metadata: [:])
            let failed = try await backend.status(of: job.id)
            #expect(failed.status == .failed)
            #expect(failed.metadata["error"]?.contains("line 2: duplicate_custom_id") == true)
            var n = 0
            try await backend.results(of: failed) { _ in n += 1 }
            #expect(n == 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func listPagingAndDelete(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            var ids: [String] = []
            for i in 0..<5 { ids.append(try await backend.submit(try encodeAll(backend, [chat("l\(i)", "x")]), metadata: [:]).id) }
            let three = try await backend.list(limit: 3)
            #expect(three.map(\.id) == [ids[4], ids[3], ids[2]])
            let page = try await backend.listPage(after: ids[3], limit: 2)
            #expect(page.jobs.map(\.id) == [ids[2], ids[1]])
            #expect(page.hasMore)
            let all = try await backend.list(limit: 100)
            #expect(all.map(\.id) == ids.reversed())

            let done = try await backend.status(of: ids[0])
            let files = [done.metadata["input_file_id"], done.metadata["output_file_id"]].compactMap { $0 }
            #expect(files.count == 2)
            #expect(files.allSatisfy(h.emulator.openAIFileExists))
            try await backend.delete(jobID: ids[0])
            #expect(!files.contains(where: h.emulator.openAIFileExists))
            try await backend.delete(jobID: ids[0])  // files already gone: no error
        }
    }

    @Test(arguments: Wire.allCases)
    func listPagingAcrossPages(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let backend = h.backend()
            for i in 0..<3 { _ = try await backend.submit(try encodeAll(backend, [chat("p\(i)", "x")]), metadata: [:]) }
            // A page size of 1 forces `after` cursors.
            var seen: [String] = []
            var after: String?
            while true {
                let page = try await backend.listPage(after: after, limit: 1)
                seen += page.jobs.map(\.id)
                guard page.hasMore else { break }
                after = page.lastID
            }
            #expect(seen.count == 3)
            #expect(Set(seen).count == 3)
        }
    }

    @Test(arguments: Wire.allCases)
    func failedPollIsARetryableError(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.status(500), on: .batchPoll(.openAI), firstTimes: 1)])) { h in
            let backend = h.backend()
            let job = try await backend.submit(try encodeAll(backend, [chat("a", "x")]), metadata: [:])
            let error = await #expect(throws: BatchError.self) { try await backend.status(of: job.id) }
            #expect(error?.isRetryable == true)
            let ok = try await backend.status(of: job.id)
            #expect(ok.status == .completed)
        }
    }

    @Test(arguments: Wire.allCases)
    func uploadErrorsAreClassified(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "other")) { h in
            let backend = h.backend()
            let error = await #expect(throws: BatchError.self) { try await backend.submit(try encodeAll(backend, [chat("a", "x")]), metadata: [:]) }
            #expect(error?.code == .authentication)
            #expect(error.map { !$0.description.contains("sk-test-key-123456") } == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func azureLifecycle(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "azure-key")) { h in
            let backend = OpenAIBatchBackend.azure(endpoint: h.root, apiKey: "azure-key", apiVersion: "2024-10-21",
                                                   deployment: { "batch-\($0)" }, transport: h.transport)
            let item = try backend.encode(chat("z1", "hello"))
            let line = try JSONValue(parsing: item.data)
            #expect(line["url"] == "/chat/completions")
            #expect(line["body"]?["model"] == "batch-gpt-4o-mini")
            let job = try await backend.submit([item, try backend.encode(chat("z2", "again"))], metadata: [:])
            let done = try await backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.metadata["endpoint"] == "/chat/completions")
            var results: [BatchResult] = []
            try await backend.results(of: done) { results.append($0) }
            #expect(results.count == 2)
            #expect(results.allSatisfy { $0.isSuccess && $0.response?.model == "batch-gpt-4o-mini" })
            #expect(try await backend.list(limit: 10).map(\.id) == [job.id])
        }
    }

    @Test(arguments: Wire.allCases)
    func multipartBodyIsStreamedFromAFile(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let inner = h.transport
            let bodies = BodyKinds()
            let spy = ClosureTransport { request in
                bodies.record(request)
                return try await inner.send(request)
            }
            let backend = OpenAIBatchBackend(apiKey: "sk-x", baseURL: h.baseURL, transport: spy)
            _ = try await backend.submit(try encodeAll(backend, [chat("a", "x")]), metadata: [:])
            #expect(bodies.uploadWasFile)
            #expect(bodies.uploadFileRemoved)
        }
    }
}

/// Records how the upload body was sent.
final class BodyKinds: Sendable {
    private let state = Mutex<(Bool, URL?)>((false, nil))
    func record(_ r: HTTPRequest) {
        if r.url.path.hasSuffix("/files"), case .file(let url)? = r.body { state.withLock { $0 = (true, url) } }
    }
    var uploadWasFile: Bool { state.withLock { $0.0 } }
    var uploadFileRemoved: Bool { state.withLock { $0.1.map { !FileManager.default.fileExists(atPath: $0.path) } ?? false } }
}
