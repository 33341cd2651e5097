import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitGemini

/// Forwards to another transport and keeps every request.
final class RecordingTransport: HTTPTransport {
    let base: any HTTPTransport
    private let log = Mutex<[HTTPRequest]>([])
    init(_ base: any HTTPTransport) { self.base = base }
    var requests: [HTTPRequest] { log.withLock { $0 } }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        log.withLock { $0.append(request) }
        return try await base.send(request)
    }
}

/// A Gemini batch backend against a fresh in-process emulator on a manual clock.
struct GeminiBatchFixture {
    let clock = ManualClock()
    let emulator: ProviderEmulator
    let transport: RecordingTransport
    var backend: GeminiBatchBackend

    init(_ configuration: EmulatorConfiguration = .init(), apiVersion: String = "v1beta", inlineByteLimit: Int? = nil,
         key: String = GeminiFixture.key) {
        emulator = ProviderEmulator(configuration: configuration, clock: clock)
        transport = RecordingTransport(emulator.transport)
        backend = GeminiBatchBackend(
            apiKey: key, baseURL: URL(string: "http://emulator.invalid")!, apiVersion: apiVersion, transport: transport)
        if let inlineByteLimit { backend.inlineByteLimit = inlineByteLimit }
    }

    func encode(_ requests: [BatchRequest]) throws -> [EncodedBatchItem] { try requests.map { try backend.encode($0) } }

    func results(_ job: BatchJob) async throws -> [String: BatchResult] {
        var out: [String: BatchResult] = [:]
        try await backend.results(of: job) { r in
            #expect(out[r.id] == nil, "result for \(r.id) reported twice")
            out[r.id] = r
        }
        return out
    }
}

func chats(_ n: Int, prefix: String = "req") -> [BatchRequest] {
    (0..<n).map { chat("\(prefix)-\($0)", "Question number \($0): what is \($0) squared?") }
}

@Suite struct GeminiBatchBackendTests {
    @Test(arguments: ["v1beta", "v1"])
    func inlineLifecycleOverTime(_ version: String) async throws {
        let f = GeminiBatchFixture(.init(batchDuration: .seconds(100)), apiVersion: version)
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

    @Test func filePathLifecycle() async throws {
        let f = GeminiBatchFixture(.init(batchDuration: .seconds(10)), inlineByteLimit: 100)
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

    @Test(arguments: [false, true])
    func embeddingsBatch(_ viaFile: Bool) async throws {
        let f = GeminiBatchFixture(inlineByteLimit: viaFile ? 10 : nil)
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

    @Test func cancelMidWayKeepsFinishedItems() async throws {
        let f = GeminiBatchFixture(.init(batchDuration: .seconds(100)))
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

    @Test func expiryLeavesNoResults() async throws {
        let f = GeminiBatchFixture(.init(batchDuration: .seconds(100), batchExpiry: .seconds(40)))
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

    @Test(arguments: [false, true])
    func errorOnlyBatch(_ viaFile: Bool) async throws {
        let f = GeminiBatchFixture(.init(faults: [EmulatorFault(.errorFileOnly, on: .provider(.gemini))]), inlineByteLimit: viaFile ? 10 : nil)
        let job = try await f.backend.submit(try f.encode(chats(4)), metadata: [:])
        let done = try await f.backend.status(of: job.id)
        #expect(done.status == .completed)
        #expect(done.failedCount == 4 && done.succeededCount == 0)
        let results = try await f.results(done)
        #expect(results.count == 4)
        #expect(results.values.allSatisfy { $0.error?.code == .server && $0.error?.isRetryable == true })
    }

    @Test func malformedResultLinesAreReportedByKey() async throws {
        let f = GeminiBatchFixture(.init(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.gemini))]), inlineByteLimit: 10)
        let job = try await f.backend.submit(try f.encode(chats(5)), metadata: [:])
        let results = try await f.results(try await f.backend.status(of: job.id))
        #expect(results.count == 5)
        #expect(results["req-0"]?.error?.code == .invalidResponse)
        #expect(results["req-1"]?.error?.code == .invalidResponse)
        #expect((2..<5).allSatisfy { results["req-\($0)"]?.isSuccess == true })
    }

    @Test func listPagesNewestFirst() async throws {
        var f = GeminiBatchFixture(.init(batchDuration: .seconds(100)))
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

    @Test func deleteRemovesBatchAndFiles() async throws {
        let f = GeminiBatchFixture(inlineByteLimit: 10)
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

    @Test func encodeValidation() throws {
        let f = GeminiBatchFixture()
        do {
            _ = try f.backend.encode(BatchRequest(id: "e", embedding: EmbeddingRequest(model: "m", inputs: ["a", "b"])))
            Issue.record("expected a validation error")
        } catch {
            #expect(error.code == .validation && error.field == "inputs")
        }
        do {
            _ = try f.backend.encode(BatchRequest(id: "r", body: .raw(RawRequest(endpoint: "/v1/responses", body: [:]))))
            Issue.record("expected a validation error")
        } catch {
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

    @Test(arguments: [
        ("BATCH_STATE_PENDING", BatchJob.Status.validating), ("JOB_STATE_RUNNING", .inProgress), ("BATCH_STATE_SUCCEEDED", .completed),
        ("JOB_STATE_SUCCEEDED", .completed), ("BATCH_STATE_FAILED", .failed), ("BATCH_STATE_CANCELLED", .cancelled),
        ("JOB_STATE_EXPIRED", .expired),
    ])
    func stateNames(_ wire: String, _ status: BatchJob.Status) {
        #expect(GeminiBatchBackend.status(forState: wire) == status)
    }

    @Test func keyNeverInErrorsOrRequests() async throws {
        let secret = "AIzaSECRET-batch-99"
        let f = GeminiBatchFixture(.init(requiredAPIKey: "other"), inlineByteLimit: 10, key: secret)
        let e = try #require(await failure { _ = try await f.backend.submit(try f.encode(chats(2)), metadata: [:]) })
        #expect(e.code == .authentication)
        #expect(!e.description.contains(secret))
        #expect(!String(describing: f.backend).contains(secret))
        #expect(f.transport.requests.allSatisfy { !$0.url.absoluteString.contains(secret) && !$0.description.contains(secret) })
    }
}

@Suite struct GeminiBatchScaleTests {
    @Test(arguments: [false, true])
    func thousandsOfItems(_ viaFile: Bool) async throws {
        let f = GeminiBatchFixture(inlineByteLimit: viaFile ? 10 : nil)
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
