import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitGemini

@Suite(.timeLimit(.minutes(5))) struct GeminiBatchBackendTests {
    @Test(arguments: Wire.allCases, ["v1beta", "v1"])
    func inlineLifecycleOverTime(_ wire: Wire, _ version: String) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100)), apiVersion: version) { f in
            var items = try f.encode(chats(9))
            // A hand-made item the emulator rejects per item (empty contents).
            items.append(EncodedBatchItem(id: "bad", data: Data(#"{"key":"bad","request":{"contents":[]}}"#.utf8), groupKey: items[0].groupKey))
            let job = try await f.backend.submit(items, metadata: ["displayName": "nightly"])
            #expect(job.id.hasPrefix("batches/"))
            #expect(job.status == .validating)
            #expect(job.remoteStatus == "BATCH_STATE_PENDING")
            #expect(job.requestCount == 10)
            #expect(job.metadata["model"] == "models/gemini-2.5-flash")
            #expect(job.metadata["inputFile"] == nil)
            #expect(f.transport.requests.last?.url.path == "/\(version)/models/gemini-2.5-flash:batchGenerateContent")
            for item in items { #expect(f.emulator.sentCount(customID: item.id) == 1) }

            f.clock.advance(by: .seconds(50))
            let running = try await f.backend.status(of: job.id)
            #expect(running.status == .inProgress)
            #expect(running.remoteStatus == "BATCH_STATE_RUNNING")
            #expect(running.succeededCount == 5)
            #expect(running.failedCount == 0)

            f.clock.advance(by: .seconds(50))
            let done = try await f.backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.succeededCount == 9)
            #expect(done.failedCount == 1)
            #expect(done.metadata["displayName"] == "nightly")

            let results = try await f.results(done)
            #expect(results.count == 10)
            for i in 0..<9 {
                let r = try #require(results["req-\(i)"])
                #expect(r.route == .batch)
                #expect(r.response?.text?.hasPrefix("Echo(") == true)
                #expect(r.usage.batchInputTokens > 0 && r.usage.batchInputTokens == r.usage.inputTokens)
                #expect(r.usage.batchOutputTokens == r.usage.outputTokens)
            }
            #expect(results["req-0"]?.response?.text != results["req-1"]?.response?.text)
            #expect(results["bad"]?.error?.code == .invalidRequest)
            // Submitted exactly once.
            #expect(f.emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    @Test(arguments: Wire.allCases)
    func filePathLifecycle(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(10)), inlineByteLimit: 100) { f in
            let requests = chats(25)
            let job = try await f.backend.submit(try f.encode(requests), metadata: [:])
            let inputFile = try #require(job.metadata["inputFile"])
            #expect(inputFile.hasPrefix("files/"))

            // The resumable upload: start with the key, bytes without it.
            let reqs = f.transport.requests
            let start = try #require(reqs.first { $0.url.path == "/upload/v1beta/files" && $0.url.query == nil })
            #expect(start.headers["x-goog-api-key"] == GeminiFixture.key)
            #expect(start.headers["X-Goog-Upload-Protocol"] == "resumable")
            #expect(start.headers["X-Goog-Upload-Command"] == "start")
            let upload = try #require(reqs.first { $0.url.query?.contains("upload_id=") == true })
            #expect(upload.headers["x-goog-api-key"] == nil)
            #expect(upload.headers["X-Goog-Upload-Command"] == "upload, finalize")
            guard case .file? = upload.body else {
                Issue.record("the upload body should stream from a temporary file")
                return
            }
            #expect(start.headers["X-Goog-Upload-Header-Content-Length"].flatMap(Int.init) ?? 0 > 1000)

            f.clock.advance(by: .seconds(10))
            let done = try await f.backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.metadata["responsesFile"] == "files/batch-" + job.id.dropFirst("batches/".count))
            let results = try await f.results(done)
            #expect(Set(results.keys) == Set(requests.map(\.id)))
            #expect(results.values.allSatisfy { $0.isSuccess && $0.route == .batch })
            let download = try #require(f.transport.requests.last)
            #expect(download.url.path.hasPrefix("/download/v1beta/files/batch-"))
            #expect(download.url.path.hasSuffix(":download"))
            #expect(download.url.query == "alt=media")
            #expect(download.downloadsToFile)
        }
    }

    @Test(arguments: Wire.allCases, [false, true])
    func embeddingsBatch(_ wire: Wire, _ viaFile: Bool) async throws {
        try await withBatch(wire, inlineByteLimit: viaFile ? 10 : nil) { f in
            let texts = ["red", "green", "blue", "red"]
            let requests = texts.enumerated().map { i, t in
                BatchRequest(id: "emb-\(i)", embedding: EmbeddingRequest(model: "gemini-embedding-001", input: t, dimensions: 8))
            }
            let items = try f.encode(requests)
            #expect(items[0].groupKey == "embedContent:models/gemini-embedding-001")
            let job = try await f.backend.submit(items, metadata: [:])
            #expect(f.transport.requests.last?.url.path == "/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent")
            let done = try await f.backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.metadata["kind"] == "embedding")
            let results = try await f.results(done)
            let vectors = try (0..<4).map { try #require(results["emb-\($0)"]?.response?.embeddings?.first) }
            #expect(vectors.allSatisfy { $0.count == 8 })
            #expect(vectors[0] == vectors[3])
            #expect(vectors[0] != vectors[1] && vectors[1] != vectors[2])
            #expect(results["emb-0"]?.usage.batchInputTokens ?? 0 > 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func cancelMidWayKeepsFinishedItems(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100))) { f in
            let job = try await f.backend.submit(try f.encode(chats(10)), metadata: [:])
            f.clock.advance(by: .seconds(30))
            let cancelled = try await f.backend.cancel(jobID: job.id)
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.remoteStatus == "BATCH_STATE_CANCELLED")
            #expect(cancelled.succeededCount == 3)
            // Time moving on changes nothing.
            f.clock.advance(by: .seconds(100))
            let later = try await f.backend.status(of: job.id)
            #expect(later.status == .cancelled && later.succeededCount == 3)
            let results = try await f.results(later)
            #expect(results.count == 10)
            #expect(results.values.filter(\.isSuccess).count == 3)
            #expect(results["req-9"]?.error?.code == .cancelled)
            #expect(results["req-0"]?.isSuccess == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func expiryLeavesNoResults(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(40))) { f in
            let job = try await f.backend.submit(try f.encode(chats(10)), metadata: [:])
            f.clock.advance(by: .seconds(30))
            #expect(try await f.backend.status(of: job.id).status == .inProgress)
            f.clock.advance(by: .seconds(15))
            let expired = try await f.backend.status(of: job.id)
            #expect(expired.status == .expired)
            #expect(expired.remoteStatus == "BATCH_STATE_EXPIRED")
            #expect(expired.failedCount == 6)
            #expect(expired.metadata["error"]?.contains("expired") == true)
            #expect(try await f.results(expired).isEmpty)
        }
    }

    @Test(arguments: Wire.allCases, [false, true])
    func errorOnlyBatch(_ wire: Wire, _ viaFile: Bool) async throws {
        try await withBatch(wire, .init(faults: [EmulatorFault(.errorFileOnly, on: .provider(.gemini))]), inlineByteLimit: viaFile ? 10 : nil) { f in
            let job = try await f.backend.submit(try f.encode(chats(4)), metadata: [:])
            let done = try await f.backend.status(of: job.id)
            #expect(done.status == .completed)
            #expect(done.failedCount == 4 && done.succeededCount == 0)
            let results = try await f.results(done)
            #expect(results.count == 4)
            #expect(results.values.allSatisfy { $0.error?.code == .server && $0.error?.isRetryable == true })
        }
    }

    @Test(arguments: Wire.allCases)
    func malformedResultLinesAreReportedByKey(_ wire: Wire) async throws {
        try await withBatch(wire, .init(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.gemini))]), inlineByteLimit: 10) { f in
            let job = try await f.backend.submit(try f.encode(chats(5)), metadata: [:])
            let results = try await f.results(try await f.backend.status(of: job.id))
            #expect(results.count == 5)
            #expect(results["req-0"]?.error?.code == .invalidResponse)
            #expect(results["req-1"]?.error?.code == .invalidResponse)
            #expect((2..<5).allSatisfy { results["req-\($0)"]?.isSuccess == true })
        }
    }

    @Test(arguments: Wire.allCases)
    func listPagesNewestFirst(_ wire: Wire) async throws {
        try await withBatch(wire, .init(batchDuration: .seconds(100))) { f in
            f.backend.listPageSize = 2
            var ids: [String] = []
            for i in 0..<5 {
                ids.append(try await f.backend.submit(try f.encode(chats(1, prefix: "b\(i)")), metadata: [:]).id)
            }
            let before = f.transport.requests.count
            let all = try await f.backend.list(limit: 10)
            #expect(all.map(\.id) == ids.reversed())
            #expect(f.transport.requests.count - before == 3)  // pages of 2, 2, 1
            #expect(f.transport.requests.last?.url.query?.contains("pageToken=") == true)
            let three = try await f.backend.list(limit: 3)
            #expect(three.map(\.id) == Array(ids.reversed().prefix(3)))
        }
    }

    @Test(arguments: Wire.allCases)
    func deleteRemovesBatchAndFiles(_ wire: Wire) async throws {
        try await withBatch(wire, inlineByteLimit: 10) { f in
            let job = try await f.backend.submit(try f.encode(chats(2)), metadata: [:])
            let done = try await f.backend.status(of: job.id)
            let input = try #require(done.metadata["inputFile"])
            let output = try #require(done.metadata["responsesFile"])
            try await f.backend.delete(jobID: job.id)
            let e = try #require(await failure { _ = try await f.backend.status(of: job.id) })
            #expect(e.code == .notFound)
            for file in [input, output] {
                let r = try await f.emulator.transport.send(HTTPRequest(
                    url: URL(string: "http://emulator.invalid/v1beta/\(file)")!, headers: ["x-goog-api-key": "k"]))
                #expect(r.status == 404)
            }
        }
    }

    @Test func encodeValidation() async throws {
        try await withBatch(.inProcess) { f in
            do {
                _ = try f.backend.encode(BatchRequest(id: "e", embedding: EmbeddingRequest(model: "m", inputs: ["a", "b"])))
                Issue.record("expected a validation error")
            } catch let error as BatchError {
                #expect(error.code == .validation && error.field == "inputs")
            }
            do {
                _ = try f.backend.encode(BatchRequest(id: "r", body: .raw(RawRequest(endpoint: "/v1/responses", body: [:]))))
                Issue.record("expected a validation error")
            } catch let error as BatchError {
                #expect(error.code == .validation && error.field == "body")
            }
            let a = try f.backend.encode(chat("a", "x", model: "gemini-2.5-flash"))
            let b = try f.backend.encode(chat("b", "x", model: "gemini-2.5-pro"))
            #expect(a.groupKey != b.groupKey)
            let line = try JSONValue(parsing: a.data)
            #expect(line["key"] == "a")
            #expect(line["request"]?["contents"]?[0]?["parts"]?[0]?["text"] == "x")
            #expect(GeminiBatchBackend.requestBytes(of: a) == line["request"]?.serialized())
        }
    }

    @Test(arguments: [
        ("BATCH_STATE_PENDING", BatchJob.Status.validating), ("JOB_STATE_RUNNING", .inProgress), ("BATCH_STATE_SUCCEEDED", .completed),
        ("JOB_STATE_SUCCEEDED", .completed), ("BATCH_STATE_FAILED", .failed), ("BATCH_STATE_CANCELLED", .cancelled),
        ("JOB_STATE_EXPIRED", .expired),
    ])
    func stateNames(_ wire: String, _ status: BatchJob.Status) {
        #expect(GeminiBatchBackend.status(forState: wire) == status)
    }

    @Test(arguments: Wire.allCases)
    func keyNeverInErrorsOrRequests(_ wire: Wire) async throws {
        let secret = "AIzaSECRET-batch-99"
        try await withBatch(wire, .init(requiredAPIKey: "other"), inlineByteLimit: 10, key: secret) { f in
            let e = try #require(await failure { _ = try await f.backend.submit(try f.encode(chats(2)), metadata: [:]) })
            #expect(e.code == .authentication)
            #expect(!e.description.contains(secret))
            #expect(!String(describing: f.backend).contains(secret))
            #expect(f.transport.requests.allSatisfy { !$0.url.absoluteString.contains(secret) && !$0.description.contains(secret) })
        }
    }
}

@Suite(.timeLimit(.minutes(5))) struct GeminiBatchScaleTests {
    @Test(arguments: Wire.allCases, [false, true])
    func thousandsOfItems(_ wire: Wire, _ viaFile: Bool) async throws {
        try await withBatch(wire, inlineByteLimit: viaFile ? 10 : nil) { f in
            let requests = chats(3_000)
            let job = try await f.backend.submit(try f.encode(requests), metadata: [:])
            let done = try await f.backend.status(of: job.id)
            #expect(done.status == .completed && done.succeededCount == 3_000)
            var seen = Set<String>()
            try await f.backend.results(of: done) { r in
                #expect(r.isSuccess)
                seen.insert(r.id)
            }
            #expect(seen.count == 3_000)
        }
    }
}

/// The backend against scripted answers: shapes the emulator does not produce.
@Suite(.timeLimit(.minutes(5))) struct GeminiBatchBackendScriptedTests {
    static func backend(_ answer: @escaping @Sendable (HTTPRequest) -> HTTPResponse) -> GeminiBatchBackend {
        GeminiBatchBackend(apiKey: "k", transport: ClosureTransport { answer($0) })
    }

    static func json(_ s: String, status: Int = 200) -> HTTPResponse { HTTPResponse(status: status, body: Data(s.utf8)) }

    @Test func resultsFromTheResponseOnlyWithSDKStateNames() async throws {
        let backend = Self.backend { _ in
            Self.json("""
                {"name":"batches/b1","metadata":{"name":"batches/b1","state":"JOB_STATE_SUCCEEDED","createTime":"2025-12-10T18:27:01.407650525Z",
                 "batchStats":{"requestCount":"2","successfulRequestCount":"1","failedRequestCount":"1"}},
                 "done":true,"response":{"inlinedResponses":{"inlinedResponses":[
                   {"response":{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1}},"metadata":{"key":"a"}},
                   {"error":{"code":3,"message":"Request contains an invalid argument."},"metadata":{"key":"b"}}]}}}
                """)
        }
        let job = try await backend.status(of: "b1")
        #expect(job.status == .completed && job.requestCount == 2 && job.succeededCount == 1 && job.failedCount == 1)
        #expect(job.createdAt == RateLimitHeaderParsing.rfc3339("2025-12-10T18:27:01.407650525Z"))
        var results: [String: BatchResult] = [:]
        try await backend.results(of: job) { results[$0.id] = $0 }
        #expect(results["a"]?.response?.text == "hi")
        #expect(results["a"]?.usage == Usage(inputTokens: 3, outputTokens: 1).asBatch)
        #expect(results["b"]?.error?.code == .invalidRequest)
    }

    @Test func downloadFallsBackToTheSDKPath() async throws {
        let backend = Self.backend { request in
            let path = request.url.path
            if path.hasPrefix("/download/") { return Self.json(#"{"error":{"code":404,"message":"nope","status":"NOT_FOUND"}}"#, status: 404) }
            if path.hasSuffix(":download") {
                #expect(request.url.query == "alt=media")
                return Self.json(#"{"key":"x","response":{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}}"# + "\n")
            }
            return Self.json(#"{"name":"batches/b2","metadata":{"state":"BATCH_STATE_SUCCEEDED","output":{"responsesFile":"files/batch-b2"}},"done":true}"#)
        }
        var results: [BatchResult] = []
        try await backend.results(of: try await backend.status(of: "batches/b2")) { results.append($0) }
        #expect(results.map(\.id) == ["x"])
        #expect(results.first?.response?.text == "ok")
    }

    @Test func cancellingAFinishedJobReturnsItsState() async throws {
        let backend = Self.backend { request in
            if request.url.path.hasSuffix(":cancel") {
                return Self.json(#"{"error":{"code":400,"message":"Batch is already finished.","status":"FAILED_PRECONDITION"}}"#, status: 400)
            }
            return Self.json(#"{"name":"batches/b3","metadata":{"state":"BATCH_STATE_SUCCEEDED"},"done":true}"#)
        }
        #expect(try await backend.cancel(jobID: "batches/b3").status == .completed)
    }

    /// A listing of `count` ended jobs, created a minute apart up to `newest`, served in pages
    /// (`pageSize`, `pageToken`) oldest first or newest first; the newest job carries
    /// `newestName` as its display name. Counts the list calls.
    static func listing(count: Int, newest: Date, newestName: String, oldestFirst: Bool, calls: SentCounter) -> GeminiBatchBackend {
        let formatter = ISO8601DateFormatter()
        let ops = (0..<count).map { i -> String in
            let created = formatter.string(from: newest.addingTimeInterval(Double(i - count + 1) * 60))
            let name = i == count - 1 ? newestName : "someone-else-\(i)"
            return #"{"name":"batches/j\#(i)","metadata":{"name":"batches/j\#(i)","displayName":"\#(name)","state":"BATCH_STATE_SUCCEEDED","#
                + #""createTime":"\#(created)","batchStats":{"requestCount":"3"}},"done":true}"#
        }
        let ordered = oldestFirst ? ops : ops.reversed()
        return backend { request in
            calls.increment()
            let query = URLComponents(url: request.url, resolvingAgainstBaseURL: false)?.queryItems ?? []
            let size = Int(query.first { $0.name == "pageSize" }?.value ?? "") ?? 50
            let start = Int(query.first { $0.name == "pageToken" }?.value ?? "") ?? 0
            let page = ordered[start..<min(start + size, ordered.count)].joined(separator: ",")
            let next = start + size < ordered.count ? #","nextPageToken":"\#(start + size)""# : ""
            return json(#"{"operations":[\#(page)]\#(next)}"#)
        }
    }

    /// The reference does not say in which order `batches.list` answers: a job created for an
    /// intent (whose create answer was lost) is found among 250 jobs listed oldest first, so it
    /// is adopted rather than created again (the independent mock's `--list-order oldest` made a
    /// second job of every request).
    @Test func findJobLooksPastTheFirstHundredJobsOfAnOldestFirstListing() async throws {
        let now = Date()
        let intent = JobIntent(provider: "gemini", groupKey: "generateContent:models/gemini-2.5-flash", count: 3, idsHash: "0", createdAt: now)
        let calls = SentCounter()
        let backend = Self.listing(count: 250, newest: now, newestName: intent.tag, oldestFirst: true, calls: calls)
        let job = try await backend.findJob(for: intent, excluding: [])
        #expect(job?.id == "batches/j249")
    }

    /// Listed newest first, the search stops once the listing has passed the intent's creation
    /// time: no job of the intent (nothing to adopt) costs one page, not the whole account.
    @Test func findJobStopsOnceANewestFirstListingPassesTheIntent() async throws {
        let now = Date()
        let intent = JobIntent(provider: "gemini", groupKey: "generateContent:models/gemini-2.5-flash", count: 3, idsHash: "0", createdAt: now)
        let calls = SentCounter()
        let backend = Self.listing(count: 2_500, newest: now.addingTimeInterval(-3600), newestName: "not-the-tag", oldestFirst: false, calls: calls)
        #expect(try await backend.findJob(for: intent, excluding: []) == nil)
        #expect(calls.value == 1)
    }

    @Test func listSkipsUnreadableEntries() async throws {
        let backend = Self.backend { _ in
            Self.json(#"{"operations":[{"metadata":{"state":"BATCH_STATE_RUNNING"}},{"name":"batches/ok","metadata":{"state":"BATCH_STATE_RUNNING"}}]}"#)
        }
        #expect(try await backend.list(limit: 10).map(\.id) == ["batches/ok"])
    }
}
