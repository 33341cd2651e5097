public import BatchKit
public import Foundation

/// The Gemini Batch API as a ``BatchBackend``: chat (`:batchGenerateContent`) and embeddings
/// (`:asyncBatchEmbedContent`), inline requests for small jobs and an uploaded JSONL file above
/// ``inlineByteLimit``.
///
/// **Encoding.** ``encode(_:)`` writes each request as the file-input line
/// `{"key":"<id>","request":{…}}` (keys in this order, no newline). ``submit(_:metadata:)`` writes
/// those bytes verbatim into the JSONL file, or splices them — without re-encoding the request —
/// into the inline form `{"request":{…},"metadata":{"key":"<id>"}}`. The group key is the kind
/// and the model (`generateContent:models/gemini-2.5-flash`): one model per Gemini batch, since
/// the model is in the URL, and chat and embeddings use different endpoints.
///
/// **Embeddings.** A batch item embeds one text (`EmbedContentRequest` has one `content`), so an
/// ``EmbeddingRequest`` with several inputs fails validation naming `inputs`; give each text its
/// own ``BatchRequest``.
///
/// **Job ids** are the operation names, `batches/<id>` (a bare `<id>` is accepted too).
///
/// ```swift
/// let backend = GeminiBatchBackend()                            // key from GEMINI_API_KEY, URLSession
/// let job = try await backend.submit([try backend.encode(request)], metadata: [:])
/// ```
public struct GeminiBatchBackend: UploadingBatchBackend, CustomStringConvertible, CustomReflectable {
    /// `gemini`.
    public let provider = "gemini"
    /// Limits of one job: by default 100,000 requests and just under 2 GB (the input-file cap).
    public var limits: BatchLimits
    /// Jobs whose inline create body would reach this many bytes go through an uploaded file
    /// instead (Gemini: inline bodies must stay under 20 MB). Tests lower it to force the file path.
    public var inlineByteLimit: Int
    /// Jobs asked for per `list` page (tests lower it to exercise paging).
    var listPageSize = 100
    let api: GeminiAPI

    /// Gemini's limits: 100,000 requests and just under 2 GB (the input-file cap).
    public static let defaultLimits = BatchLimits(maxRequests: 100_000, maxBytes: 2_000_000_000 - (1 << 20))

    /// Inline create bodies stay under 20 MB, with room for the JSON around the requests.
    public static let defaultInlineByteLimit = 20_000_000 - (64 << 10)

    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `GEMINI_API_KEY`, then `GOOGLE_API_KEY`.
    ///   - baseURL: `https://generativelanguage.googleapis.com` (or an emulator's URL).
    ///   - apiVersion: `v1beta` (default) or `v1`.
    ///   - extraHeaders: added to every request.
    ///   - transport: how requests are sent (URLSession by default).
    ///   - timeout: per HTTP request (uploads and downloads included).
    ///   - limits: per-job limits the processor splits by.
    ///   - inlineByteLimit: see ``inlineByteLimit``.
    public init(
        apiKey: String? = nil,
        baseURL: URL = URL(string: "https://generativelanguage.googleapis.com")!,
        apiVersion: String = "v1beta",
        extraHeaders: HTTPHeaders = [:],
        transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600),
        limits: BatchLimits = GeminiBatchBackend.defaultLimits,
        inlineByteLimit: Int = GeminiBatchBackend.defaultInlineByteLimit
    ) {
        self.api = GeminiAPI(
            apiKey: apiKey, baseURL: baseURL, apiVersion: apiVersion, extraHeaders: extraHeaders, transport: transport,
            timeout: timeout)
        self.limits = limits
        self.inlineByteLimit = inlineByteLimit
    }

    /// What `dump` and debuggers show: the base URL and version, never the key.
    public var customMirror: Mirror { Mirror(self, children: ["api": api]) }

    /// The base URL and version; never the key.
    public var description: String { "GeminiBatchBackend(\(api))" }

    // MARK: - Encoding

    static let chatKind = "generateContent"
    static let embeddingKind = "embedContent"

    /// Encodes one request as `{"key":"<id>","request":{…}}`.
    package func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem {
        let kind: String
        let model: String
        let body: JSONValue
        switch request.body {
        case .chat(let chat):
            kind = Self.chatKind
            model = chat.model
            body = try GeminiWire.generateContentBody(chat)
        case .embedding(let e):
            guard e.inputs.count == 1 else {
                throw .validation(
                    "a Gemini batch item embeds exactly one text (this request has \(e.inputs.count)); use one request per text",
                    field: "inputs")
            }
            if let d = e.dimensions, d <= 0 { throw .validation("dimensions must be positive", field: "dimensions") }
            kind = Self.embeddingKind
            model = e.model
            body = GeminiWire.embedContentRequest(model: e.model, text: e.inputs[0], dimensions: e.dimensions, extra: e.extra)
        case .raw(let raw):
            throw .validation("Gemini batches do not serve OpenAI endpoints such as \(raw.endpoint)", field: "body")
        }
        let data = JSONValue.object(["key": .string(request.id), "request": body]).serialized()
        return EncodedBatchItem(id: request.id, data: data, groupKey: kind + ":" + GeminiWire.modelResource(model))
    }

    /// The request JSON inside an encoded item, located by the known layout of ``encode(_:)``.
    static func requestBytes(of item: EncodedBatchItem) -> Data {
        let prefix = Data("{\"key\":".utf8) + JSONValue.string(item.id).serialized() + Data(",\"request\":".utf8)
        if item.data.count > prefix.count, item.data.starts(with: prefix), item.data.last == UInt8(ascii: "}") {
            return item.data[(item.data.startIndex + prefix.count)..<(item.data.endIndex - 1)]
        }
        // Not our layout (built by hand): take the request member the slow way.
        let parsed = try? JSONValue(parsing: item.data)
        return (parsed?["request"] ?? .object([:])).serialized()
    }

    // MARK: - Submit

    /// Gemini batches carry the tag as their `displayName` (it replaces a display name given in
    /// `metadata`).
    package func tagged(_ metadata: [String: String], with intent: JobIntent) -> [String: String] {
        var tagged = metadata
        tagged["displayName"] = intent.tag
        tagged["display_name"] = nil
        return tagged
    }

    /// Creates one batch: inline when the create body stays under ``inlineByteLimit``, otherwise
    /// through a resumable upload of a JSONL file (`uploaded` gets the file's name before the
    /// create call). `metadata["displayName"]` names the job.
    package func create(
        _ items: [EncodedBatchItem], metadata: [String: String], uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        guard let first = items.first else { throw BatchError.validation("a batch needs at least one request") }
        let parts = first.groupKey.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, items.allSatisfy({ $0.groupKey == first.groupKey }) else {
            throw BatchError.validation("a Gemini batch holds requests of one kind and one model", field: "groupKey")
        }
        let (kind, model) = (parts[0], parts[1])
        let verb = kind == Self.embeddingKind ? ":asyncBatchEmbedContent" : ":batchGenerateContent"
        let displayName = metadata["displayName"] ?? metadata["display_name"] ?? "batchkit-\(items.count)-requests"
        let nameJSON = JSONValue.string(displayName).serialized()

        // Inline body, spliced from the encoded lines.
        var estimate = 128 + nameJSON.count
        for item in items { estimate += item.data.count + 14 }
        var body = Data()
        var inputFile: String?
        if estimate < inlineByteLimit {
            body.reserveCapacity(estimate)
            body.append(contentsOf: Array("{\"batch\":{\"displayName\":".utf8))
            body.append(nameJSON)
            body.append(contentsOf: Array(",\"inputConfig\":{\"requests\":{\"requests\":[".utf8))
            for (i, item) in items.enumerated() {
                if i > 0 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: Array("{\"request\":".utf8))
                body.append(Self.requestBytes(of: item))
                body.append(contentsOf: Array(",\"metadata\":{\"key\":".utf8))
                body.append(JSONValue.string(item.id).serialized())
                body.append(contentsOf: Array("}}".utf8))
            }
            body.append(contentsOf: Array("]}}}}".utf8))
        } else {
            let file = try await upload(items, displayName: displayName)
            try await uploaded(file)
            inputFile = file
            body = JSONValue.object([
                "batch": ["displayName": .string(displayName), "inputConfig": ["fileName": .string(file)]],
            ]).serialized()
        }
        return try await post(body, kind: kind, model: model, verb: verb, inputFile: inputFile, metadata: metadata, count: items.count)
    }

    /// Creates a batch from a spooled chunk: inline (read back into memory, under
    /// ``inlineByteLimit``) when it is small, otherwise by uploading the spool file itself (its
    /// lines are already the `{key, request}` JSONL of file mode).
    package func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        let tagged = tagged(metadata, with: intent)
        let displayName = intent.tag
        if 192 + chunk.bytes + chunk.count * 14 < inlineByteLimit {
            return try await create(try await chunk.items(), metadata: tagged, uploaded: uploaded)
        }
        let parts = chunk.groupKey.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else {
            throw BatchError.validation("a Gemini batch holds requests of one kind and one model", field: "groupKey")
        }
        let (kind, model) = (parts[0], parts[1])
        let verb = kind == Self.embeddingKind ? ":asyncBatchEmbedContent" : ":batchGenerateContent"
        let file = try await upload(file: chunk.file, size: chunk.bytes, displayName: displayName)
        try await uploaded(file)
        let body = JSONValue.object([
            "batch": ["displayName": .string(displayName), "inputConfig": ["fileName": .string(file)]],
        ]).serialized()
        return try await post(body, kind: kind, model: model, verb: verb, inputFile: file, metadata: tagged, count: chunk.count)
    }

    /// The create call, and the job it made.
    func post(
        _ body: Data, kind: String, model: String, verb: String, inputFile: String?, metadata: [String: String], count: Int
    ) async throws -> BatchJob {
        let (created, _) = try await api.connection.sendJSONOnce("POST", api.url(model + verb), body: .data(body))
        var job = try Self.job(from: created)
        for (k, v) in metadata where job.metadata[k] == nil { job.metadata[k] = v }
        job.metadata["model"] = model
        job.metadata["kind"] = kind == Self.embeddingKind ? "embedding" : "chat"
        if let inputFile { job.metadata["inputFile"] = inputFile }
        if job.requestCount == 0 { job.requestCount = count }
        return job
    }

    /// Writes the items as JSONL to a temporary file and uploads it with the resumable protocol:
    /// `start` (authenticated) hands out an upload URL; `upload, finalize` sends the bytes to it
    /// without the key (the `upload_id` in the URL is the authorisation). Returns `files/<id>`.
    func upload(_ items: [EncodedBatchItem], displayName: String) async throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-gemini-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw BatchError(.invalidRequest, "cannot create a temporary file for the batch input", isRetryable: false)
        }
        let handle = try FileHandle(forWritingTo: url)
        var size = 0
        do {
            var buffer = Data()
            buffer.reserveCapacity(1 << 20)
            for item in items {
                buffer.append(item.data)
                buffer.append(UInt8(ascii: "\n"))
                if buffer.count >= 1 << 20 {
                    try handle.write(contentsOf: buffer)
                    size += buffer.count
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try handle.write(contentsOf: buffer)
            size += buffer.count
            try handle.close()
        } catch {
            try? handle.close()
            throw BatchError(.invalidRequest, "cannot write the batch input file: \(error)", isRetryable: false)
        }
        return try await upload(file: url, size: size, displayName: displayName)
    }

    /// Uploads a JSONL file with the resumable protocol (see ``upload(_:displayName:)``).
    func upload(file url: URL, size: Int, displayName: String) async throws -> String {

        let start = try await api.connection.send(
            "POST", api.url(prefix: "upload/", "files"),
            body: .data(JSONValue.object(["file": ["displayName": .string(displayName)]]).serialized()),
            headers: [
                "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": String(size),
                "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            ])
        guard let uploadURLText = start.headers["x-goog-upload-url"], let uploadURL = URL(string: uploadURLText) else {
            throw BatchError(.invalidResponse, "the Gemini upload start answer has no x-goog-upload-url header")
        }
        // The upload URL carries its own authorisation (`upload_id`): no key goes to it.
        let (file, _) = try await api.connection.sendJSONOnce(
            "POST", uploadURL, body: .file(url), contentType: "application/jsonl",
            headers: ["X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"], authenticated: false)
        guard let name = (file["file"] ?? file)["name"]?.stringValue else {
            throw BatchError(.invalidResponse, "the Gemini upload answer names no file")
        }
        return name
    }

    // MARK: - Status

    /// `batches/<id>` for an id given with or without the collection.
    static func batchName(_ id: String) -> String { id.hasPrefix("batches/") ? id : "batches/" + id }

    /// The job's state and counts (`GET /{version}/batches/{id}`).
    package func status(of jobID: String) async throws -> BatchJob {
        try Self.job(from: await api.connection.sendJSON("GET", api.url(Self.batchName(jobID))).0)
    }

    /// Maps a `BATCH_STATE_*` (or the SDKs' `JOB_STATE_*`) value to a ``BatchJob/Status``.
    public static func status(forState state: String?) -> BatchJob.Status {
        let s = state.map { $0.replacingOccurrences(of: "JOB_STATE_", with: "BATCH_STATE_") } ?? ""
        switch s {
        case "BATCH_STATE_PENDING", "BATCH_STATE_QUEUED": return .validating
        case "BATCH_STATE_SUCCEEDED": return .completed
        case "BATCH_STATE_FAILED": return .failed
        case "BATCH_STATE_CANCELLED": return .cancelled
        case "BATCH_STATE_EXPIRED": return .expired
        case "BATCH_STATE_CANCELLING": return .cancelling
        default: return .inProgress
        }
    }

    /// A ``BatchJob`` from an Operation (`{"name","metadata":{…batch…},"done","response"|"error"}`).
    static func job(from op: JSONValue) throws(BatchError) -> BatchJob {
        let meta = op["metadata"] ?? op
        guard let name = op["name"]?.stringValue ?? meta["name"]?.stringValue else {
            throw BatchError(.invalidResponse, "the Gemini batch answer has no name", isRetryable: false)
        }
        let state = meta["state"]?.stringValue
        let stats = meta["batchStats"]
        let created = meta["createTime"]?.stringValue.flatMap(RateLimitHeaderParsing.rfc3339)
        var metadata: [String: String] = [:]
        if let m = meta["model"]?.stringValue { metadata["model"] = m }
        if let d = meta["displayName"]?.stringValue { metadata["displayName"] = d }
        if let f = meta["inputConfig"]?["fileName"]?.stringValue { metadata["inputFile"] = f }
        if let f = (meta["output"] ?? op["response"])?["responsesFile"]?.stringValue { metadata["responsesFile"] = f }
        if let t = meta["@type"]?.stringValue { metadata["kind"] = t.contains("Embed") ? "embedding" : "chat" }
        if let e = op["error"]?["message"]?.stringValue { metadata["error"] = e }
        return BatchJob(
            id: name, provider: "gemini", status: status(forState: state), remoteStatus: state,
            requestCount: stats?["requestCount"]?.intValue ?? 0,
            succeededCount: stats?["successfulRequestCount"]?.intValue ?? 0,
            failedCount: stats?["failedRequestCount"]?.intValue ?? 0,
            createdAt: created, expiresAt: created?.addingTimeInterval(48 * 3600), metadata: metadata)
    }

    // MARK: - Results

    /// Streams the results: inline responses from the Operation (`metadata.output`, else
    /// `response`), or the JSONL result file, downloaded to a temporary file and read line by
    /// line. Each item is joined on its key; a line that cannot be read becomes an
    /// `invalidResponse` result when its key can still be read, and is skipped otherwise (the
    /// processor reports the id as missing; ``downloadResults(of:handler:)`` counts it). Expired
    /// Gemini jobs have no results.
    package func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        _ = try await downloadResults(of: job, handler: handler)
    }

    /// ``results(of:handler:)``, returning what the result file held: a line that cannot be read
    /// becomes a retryable `invalidResponse` failure for its `key` when that can still be read,
    /// and is skipped and counted otherwise. Inline results count as lines of their own.
    package func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        let (op, _) = try await api.connection.sendJSON("GET", api.url(Self.batchName(job.id)))
        let output = op["metadata"]?["output"] ?? op["response"]
        if let file = output?["responsesFile"]?.stringValue {
            return try await downloadResults(file: file, handler: handler)
        }
        var summary = BatchResultsSummary()
        let items = output?["inlinedResponses"]?["inlinedResponses"]?.arrayValue
            ?? output?["inlinedEmbedContentResponses"]?["inlinedResponses"]?.arrayValue ?? []
        for (index, item) in items.enumerated() {
            guard let key = item["metadata"]?["key"]?.stringValue ?? item["key"]?.stringValue else {
                summary.skip(at: "\(job.id) inline:\(index + 1)")
                continue
            }
            summary.results += 1
            try await handler(Self.result(key: key, item: item))
        }
        return summary
    }

    func downloadResults(file: String, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        let name = file.hasPrefix("files/") ? file : "files/" + file
        let media = [URLQueryItem(name: "alt", value: "media")]
        let url: URL
        do {
            // The guide's form; the python SDK uses the same path without `/download`.
            url = try await api.connection.download(api.url(prefix: "download/", name + ":download", query: media))
        } catch let e as BatchError where e.code == .notFound {
            url = try await api.connection.download(api.url(name + ":download", query: media))
        }
        defer { try? FileManager.default.removeItem(at: url) }
        var summary = BatchResultsSummary()
        try await BatchResultsFile.read(
            url, name: name, idField: "key", summary: &summary, parse: { item, key in Self.result(key: key, item: item) },
            handler: handler)
        return summary
    }

    /// One result from an inline item or a result line (`response` or `error`).
    static func result(key: String, item: JSONValue) -> BatchResult {
        let outcome: Result<ModelResponse, BatchError>
        if let response = item["response"] {
            do {
                var parsed = response["embedding"] != nil
                    ? try GeminiWire.parseEmbedContentResponse(response)
                    : try GeminiWire.parseGenerateContentResponse(response)
                parsed.usage = parsed.usage.asBatch
                outcome = .success(parsed)
            } catch {
                outcome = .failure(error)
            }
        } else if let error = item["error"] {
            outcome = .failure(GeminiWire.itemError(error))
        } else {
            outcome = .failure(BatchError(.invalidResponse, "the Gemini result has neither response nor error", isRetryable: false))
        }
        return BatchResult(id: key, outcome: outcome, attempts: 1, route: .batch)
    }

    // MARK: - Cancel, list, delete

    /// `POST batches/{id}:cancel`, then the job's state. Cancelling a job that has already ended
    /// (refused with 400 `FAILED_PRECONDITION` by some deployments) returns its final state.
    package func cancel(jobID: String) async throws -> BatchJob {
        do {
            _ = try await api.connection.send("POST", api.url(Self.batchName(jobID) + ":cancel"), body: .data(Data("{}".utf8)))
        } catch let e as BatchError where e.code == .invalidRequest {
            let job = try await status(of: jobID)
            guard job.status.isTerminal else { throw e }
            return job
        }
        return try await status(of: jobID)
    }

    /// `GET batches?pageSize=&pageToken=`, following `nextPageToken` until `limit` jobs.
    package func list(limit: Int) async throws -> [BatchJob] {
        var jobs: [BatchJob] = []
        var token: String?
        repeat {
            var query = [URLQueryItem(name: "pageSize", value: String(min(listPageSize, max(1, limit - jobs.count))))]
            if let token { query.append(URLQueryItem(name: "pageToken", value: token)) }
            let (page, _) = try await api.connection.sendJSON("GET", api.url("batches", query: query))
            // An entry that cannot be read is skipped rather than failing the whole list.
            for op in page["operations"]?.arrayValue ?? [] where jobs.count < limit {
                if let job = try? Self.job(from: op) { jobs.append(job) }
            }
            token = page["nextPageToken"]?.stringValue
            if token?.isEmpty == true { token = nil }
        } while token != nil && jobs.count < limit
        return jobs
    }

    /// Deletes the batch record (`DELETE batches/{id}`), then, best effort, its uploaded input
    /// file and generated result file.
    package func delete(jobID: String) async throws {
        let job = try? await status(of: jobID)
        _ = try await api.connection.send("DELETE", api.url(Self.batchName(jobID)))
        for file in [job?.metadata["inputFile"], job?.metadata["responsesFile"]].compactMap({ $0 }) {
            _ = try? await api.connection.send("DELETE", api.url(file.hasPrefix("files/") ? file : "files/" + file))
        }
    }
}
