public import BatchKit
public import Foundation

/// OpenAI's Batch API (Files + Batches) as a ``BatchBackend``: half-price, results within 24 h.
///
/// - **encode**: the OpenAI batch input line (``BatchRequest/batchLine()``); the group key
///   is endpoint + model, because a batch file holds one model and one endpoint.
/// - **submit**: writes the lines into a temporary multipart file and uploads it
///   (`POST /files`, `purpose=batch`) streaming from disk, then `POST /batches` with
///   `completion_window: "24h"` and the metadata.
/// - **status**: the Batch object, its status and counts; `input_file_id`, `output_file_id`,
///   `error_file_id`, `endpoint` and `model` in ``BatchJob/metadata`` (`error` too, when
///   validation failed).
/// - **results**: downloads the output and error files to temporary files and parses them line by
///   line. A line that cannot be read becomes a failure for its `custom_id` when that can still be
///   read; otherwise it is skipped (its id then counts as missing, which the processor reports)
///   and counted in what ``downloadResults(of:handler:)`` returns.
/// - **delete**: OpenAI has no batch delete: cancels the batch if it is still running and deletes
///   its input, output and error files.
///
/// ```swift
/// let backend = OpenAIBatchBackend(apiKey: key)
/// let job = try await backend.submit([try backend.encode(request)], metadata: ["run": "nightly"])
/// ```
public struct OpenAIBatchBackend: UploadingBatchBackend, CustomStringConvertible, CustomReflectable {
    /// `openai`.
    public let provider = "openai"
    /// 50,000 requests and 200 MB per job by default.
    public var limits: BatchLimits
    let api: OpenAIAPI
    /// Time allowed for the upload of one input file.
    public var uploadTimeout: Duration

    /// OpenAI's own limits: 50,000 requests and 200 MB per input file.
    public static let defaultLimits = BatchLimits(maxRequests: 50_000, maxBytes: 200 * 1024 * 1024)

    /// The endpoints the Batch API accepts.
    public static let supportedEndpoints: Set<String> = [
        "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations",
        "/v1/images/generations", "/v1/images/edits", "/v1/videos",
    ]

    /// A backend for OpenAI or an OpenAI-compatible server with the Files and Batches APIs.
    ///
    /// - Parameters:
    ///   - apiKey: `nil` reads `OPENAI_API_KEY`.
    ///   - baseURL: the API base including `/v1`.
    ///   - limits: job limits (small ones make tests split).
    public init(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.openai.com/v1")!, organization: String? = nil,
        project: String? = nil, extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600), uploadTimeout: Duration = .seconds(3600), limits: BatchLimits = OpenAIBatchBackend.defaultLimits
    ) {
        self.init(
            api: OpenAIAPI(
                baseURL: baseURL, key: APIKey(apiKey, environment: "OPENAI_API_KEY"),
                organization: organization, project: project, extraHeaders: extraHeaders,
                transport: transport, timeout: timeout, flavor: .openAI),
            uploadTimeout: uploadTimeout, limits: limits)
    }

    /// A backend that reaches the same server, with the same key and transport, as `client`.
    public init(client: OpenAIClient, uploadTimeout: Duration = .seconds(3600), limits: BatchLimits = OpenAIBatchBackend.defaultLimits) {
        self.init(api: client.api, uploadTimeout: uploadTimeout, limits: limits)
    }

    init(api: OpenAIAPI, uploadTimeout: Duration, limits: BatchLimits) {
        self.api = api
        self.uploadTimeout = uploadTimeout
        self.limits = limits
    }

    /// A backend for Azure OpenAI's Batch API (`/openai/files`, `/openai/batches`, `api-key`,
    /// `api-version`). Lines use Azure's URL form (`/chat/completions`) and the deployment name
    /// as `model`, and the batch is created for that endpoint.
    public static func azure(
        endpoint: URL, apiKey: String? = nil, apiVersion: String = "2024-10-21", deployment: (@Sendable (String) -> String)? = nil,
        extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(), timeout: Duration? = .seconds(600),
        limits: BatchLimits = OpenAIBatchBackend.defaultLimits
    ) -> OpenAIBatchBackend {
        OpenAIBatchBackend(
            api: OpenAIAPI(
                baseURL: endpoint, key: APIKey(apiKey, environment: "AZURE_OPENAI_API_KEY"), extraHeaders: extraHeaders,
                transport: transport, timeout: timeout,
                flavor: .azure(apiVersion: apiVersion, deployment: deployment ?? { $0 })),
            uploadTimeout: .seconds(3600), limits: limits)
    }

    /// Where the backend talks to, never the key.
    public var description: String { "OpenAIBatchBackend(\(api.description))" }

    /// A reflection without the key.
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": api.baseURL, "azure": api.isAzure, "limits": limits], displayStyle: .struct)
    }

    // MARK: - Encode

    /// The request as one batch input line. Fails validation for an empty model, or a raw
    /// endpoint the Batch API does not accept (field `endpoint`).
    package func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem {
        let endpoint = request.endpoint
        guard Self.supportedEndpoints.contains(endpoint) else {
            throw .validation(
                "request \(request.id): the OpenAI Batch API does not accept the endpoint \(endpoint); use one of \(Self.supportedEndpoints.sorted().joined(separator: ", "))",
                field: "endpoint")
        }
        guard let model = request.model, !model.isEmpty else {
            throw .validation("request \(request.id): a batch request needs a model", field: "model")
        }
        if case .chat(let c) = request.body {
            do { try OpenAIWire.validate(c) } catch { throw .validation("request \(request.id): \(error.message)", field: error.field) }
        }
        var out = [UInt8]()
        out.reserveCapacity(256)
        switch api.flavor {
        case .openAI:
            if case .chat(let c) = request.body, c.hasCacheBreakpoints {
                // The interchange line's cache breakpoints are Anthropic's: not sent to OpenAI.
                let line: JSONValue = [
                    "custom_id": .string(request.id), "method": "POST", "url": .string(endpoint),
                    "body": OpenAIWire.chatBody(c),
                ]
                line.write(into: &out)
            } else {
                request.writeBatchLine(into: &out)
            }
        case .azure(_, let deployment):
            var line: JSONValue = [
                "custom_id": .string(request.id), "method": "POST", "url": .string(endpoint),
                "body": OpenAIWire.body(of: request.body),
            ]
            if case .object(var o) = line, case .object(var body)? = o["body"] {
                body["model"] = .string(deployment(model))
                o["body"] = .object(body)
                o["url"] = .string(Self.azureEndpoint(endpoint))
                line = .object(o)
            }
            line.write(into: &out)
        }
        return EncodedBatchItem(id: request.id, data: Data(out), groupKey: endpoint + " " + model)
    }

    /// `/v1/chat/completions` → `/chat/completions` (Azure's classic batch URLs).
    static func azureEndpoint(_ e: String) -> String { e.hasPrefix("/v1/") ? String(e.dropFirst(3)) : e }

    // MARK: - Submit

    /// Creates a batch for a spooled chunk: the multipart upload is written from the spool file
    /// piece by piece (the chunk is never in memory).
    package func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        guard chunk.count > 0 else { throw BatchError.validation("a batch needs at least one request") }
        let tagged = tagged(metadata, with: intent)
        var endpoint = Self.endpoint(groupKey: chunk.groupKey)
        if endpoint == nil {
            try await chunk.forEachItem { i, data in
                if i == 0 { endpoint = (try? JSONValue(parsing: data))?["url"]?.stringValue }
            }
        }
        return try await create(
            endpoint: endpoint ?? OpenAIWire.chatEndpoint, count: chunk.count, metadata: tagged, uploaded: uploaded
        ) { boundary, url in
            try Self.writeMultipart(spool: chunk.file, boundary: boundary, to: url)
        }
    }

    /// Uploads the items as one JSONL file and creates a batch for it (tagged, as an
    /// ``UploadingBatchBackend``, in its `metadata` under ``JobIntent/metadataKey``).
    ///
    /// The multipart body is written to a temporary file and sent from disk, so a 200 MB job is
    /// never held in memory a second time. When the batch was certainly not created (an answer
    /// from the server refusing it) the uploaded file is deleted again; after a failure that may
    /// have reached the server (a batch may exist that reads the file) it is kept.
    package func create(
        _ items: [EncodedBatchItem], metadata: [String: String], uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        guard let first = items.first else { throw BatchError.validation("a batch needs at least one request") }
        return try await create(endpoint: Self.endpoint(of: first), count: items.count, metadata: metadata, uploaded: uploaded) {
            boundary, url in try Self.writeMultipart(items, boundary: boundary, to: url)
        }
    }

    /// Uploads the file `write` produces and creates a batch reading it.
    func create(
        endpoint: String, count: Int, metadata: [String: String], uploaded: @Sendable (String) async throws -> Void,
        write: (_ boundary: String, _ url: URL) throws -> Void
    ) async throws -> BatchJob {
        let fileID = try await upload(write)
        do {
            try await uploaded(fileID)
        } catch {
            _ = try? await api.connection.sendJSON("DELETE", api.url("/v1/files/\(fileID)"))
            throw error
        }
        var body: [String: JSONValue] = [
            "input_file_id": .string(fileID),
            "endpoint": .string(api.isAzure ? Self.azureEndpoint(endpoint) : endpoint),
            "completion_window": "24h",
        ]
        if !metadata.isEmpty { body["metadata"] = .object(metadata.mapValues(JSONValue.string)) }
        do {
            let (json, _) = try await api.connection.sendJSONOnce(
                "POST", api.url("/v1/batches"), body: .data(JSONValue.object(body).serialized()))
            var job = try Self.job(from: json)
            job.requestCount = max(job.requestCount, count)
            return job
        } catch {
            if !BatchError(wrapping: error).mayHaveReachedServer {
                _ = try? await api.connection.sendJSON("DELETE", api.url("/v1/files/\(fileID)"))
            }
            throw error
        }
    }

    /// The endpoint named by a group key (`endpoint model`), if it names one.
    static func endpoint(groupKey: String) -> String? {
        guard let space = groupKey.firstIndex(of: " "), groupKey.hasPrefix("/") else { return nil }
        return String(groupKey[..<space])
    }

    /// The endpoint of an encoded item: the group key's first word, else the line's `url`.
    static func endpoint(of item: EncodedBatchItem) -> String {
        if let endpoint = endpoint(groupKey: item.groupKey) { return endpoint }
        return (try? JSONValue(parsing: item.data))?["url"]?.stringValue ?? OpenAIWire.chatEndpoint
    }

    /// Writes the multipart body to a temporary file with `write` and uploads it; returns the file id.
    func upload(_ write: (_ boundary: String, _ url: URL) throws -> Void) async throws -> String {
        let boundary = "batchkit-\(UUID().uuidString)"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-upload-\(UUID().uuidString).multipart")
        defer { try? FileManager.default.removeItem(at: url) }
        try write(boundary, url)
        let (json, response) = try await api.connection.sendJSONOnce(
            "POST", api.url("/v1/files"), body: .file(url), contentType: "multipart/form-data; boundary=\(boundary)",
            timeout: uploadTimeout)
        guard let id = json["id"]?.stringValue else {
            throw BatchError(.invalidResponse, "the file upload answered without a file id", httpStatus: response.status, isRetryable: true)
        }
        return id
    }

    /// The `multipart/form-data` body of a Files upload (`purpose=batch`, the lines as `*.jsonl`),
    /// written in 64 KB pieces.
    static func writeMultipart(_ items: [EncodedBatchItem], boundary: String, to url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw BatchError(.invalidRequest, "cannot create the temporary upload file", isRetryable: false)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var buffer = [UInt8]()
        buffer.reserveCapacity(64 << 10)
        func flush() throws {
            try handle.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }
        buffer.append(contentsOf: Array((
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batchkit-\(UUID().uuidString.prefix(8)).jsonl\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n").utf8))
        for item in items {
            buffer.append(contentsOf: item.data)
            buffer.append(0x0A)
            if buffer.count >= 64 << 10 { try flush() }
        }
        buffer.append(contentsOf: Array("\r\n--\(boundary)--\r\n".utf8))
        try flush()
    }

    /// The `multipart/form-data` body of a Files upload whose file is the spool file `spool`
    /// (already JSONL), copied in 64 KB pieces.
    static func writeMultipart(spool: URL, boundary: String, to url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw BatchError(.io, "cannot create the temporary upload file", isRetryable: false)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        let input = try FileHandle(forReadingFrom: spool)
        defer { try? input.close() }
        try handle.write(contentsOf: Data((
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batchkit-\(UUID().uuidString.prefix(8)).jsonl\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n").utf8))
        while let piece = try input.read(upToCount: 64 << 10), !piece.isEmpty {
            try handle.write(contentsOf: piece)
        }
        try handle.write(contentsOf: Data("\r\n--\(boundary)--\r\n".utf8))
    }

    // MARK: - Status, cancel, list

    /// The batch's state.
    package func status(of jobID: String) async throws -> BatchJob {
        let (json, _) = try await api.connection.sendJSON("GET", api.url("/v1/batches/\(jobID)"))
        return try Self.job(from: json)
    }

    /// Asks OpenAI to cancel; the batch goes to `cancelling`, then `cancelled`.
    package func cancel(jobID: String) async throws -> BatchJob {
        let (json, _) = try await api.connection.sendJSON("POST", api.url("/v1/batches/\(jobID)/cancel"))
        return try Self.job(from: json)
    }

    /// The most recent batches of the account, newest first, following `after` cursors until
    /// `limit` jobs or the end.
    package func list(limit: Int) async throws -> [BatchJob] {
        var jobs: [BatchJob] = []
        var after: String?
        while jobs.count < limit {
            let page = try await listPage(after: after, limit: min(100, limit - jobs.count))
            jobs += page.jobs
            guard page.hasMore, let last = page.lastID else { break }
            after = last
        }
        return jobs
    }

    /// One page of `GET /batches?after=&limit=` (limit 1...100).
    package func listPage(after: String? = nil, limit: Int = 20) async throws -> (jobs: [BatchJob], hasMore: Bool, lastID: String?) {
        var query = [URLQueryItem(name: "limit", value: String(max(1, min(100, limit))))]
        if let after { query.append(URLQueryItem(name: "after", value: after)) }
        let (json, _) = try await api.connection.sendJSON("GET", api.url("/v1/batches", query: query))
        guard case .array(let data)? = json["data"] else {
            throw BatchError(.invalidResponse, "the batch list has no data", isRetryable: true)
        }
        let jobs = try data.map { v throws(BatchError) in try Self.job(from: v) }
        return (jobs, json["has_more"]?.boolValue ?? false, json["last_id"]?.stringValue ?? jobs.last?.id)
    }

    /// Cancels the batch if it is still running, then deletes its input, output and error files
    /// (OpenAI keeps batches themselves forever). Files already gone are ignored.
    package func delete(jobID: String) async throws {
        var job = try await status(of: jobID)
        if !job.status.isTerminal && job.status != .cancelling {
            job = (try? await cancel(jobID: jobID)) ?? job
        }
        for key in ["input_file_id", "output_file_id", "error_file_id"] {
            guard let id = job.metadata[key] else { continue }
            do {
                _ = try await api.connection.sendJSON("DELETE", api.url("/v1/files/\(id)"))
            } catch let error as BatchError where error.code == .notFound {
                continue
            }
        }
    }

    /// A Batch object as a ``BatchJob``.
    static func job(from json: JSONValue) throws(BatchError) -> BatchJob {
        guard let id = json["id"]?.stringValue, let remote = json["status"]?.stringValue else {
            throw BatchError(.invalidResponse, "the answer is not a Batch object", isRetryable: true)
        }
        let status: BatchJob.Status
        switch remote {
        case "validating": status = .validating
        case "in_progress": status = .inProgress
        case "finalizing": status = .finalizing
        case "completed": status = .completed
        case "failed": status = .failed
        case "expired": status = .expired
        case "cancelling": status = .cancelling
        case "cancelled", "canceled": status = .cancelled
        default: status = .inProgress
        }
        let counts = json["request_counts"]
        var metadata: [String: String] = [:]
        for key in ["input_file_id", "output_file_id", "error_file_id", "endpoint", "model"] {
            if let v = json[key]?.stringValue, !v.isEmpty { metadata[key] = v }
        }
        if let tag = json["metadata"]?[JobIntent.metadataKey]?.stringValue { metadata[JobIntent.metadataKey] = tag }
        if case .array(let errors)? = json["errors"]?["data"], !errors.isEmpty {
            metadata["error"] = errors.prefix(20).map { e in
                let line = e["line"]?.intValue.map { "line \($0): " } ?? ""
                return line + (e["code"]?.stringValue.map { "\($0): " } ?? "") + (e["message"]?.stringValue ?? "")
            }.joined(separator: "; ")
        }
        return BatchJob(
            id: id, provider: "openai", status: status, remoteStatus: remote, requestCount: counts?["total"]?.intValue ?? 0,
            succeededCount: counts?["completed"]?.intValue ?? 0, failedCount: counts?["failed"]?.intValue ?? 0,
            createdAt: json["created_at"]?.intValue.map { Date(timeIntervalSince1970: TimeInterval($0)) },
            expiresAt: json["expires_at"]?.intValue.map { Date(timeIntervalSince1970: TimeInterval($0)) }, metadata: metadata)
    }

    // MARK: - Results

    /// What a results download found (see ``BatchResultsSummary`` for the malformed-line policy).
    package typealias ResultsSummary = BatchResultsSummary

    /// Streams the results of a job (``downloadResults(of:handler:)`` without the summary).
    package func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        _ = try await downloadResults(of: job, handler: handler)
    }

    /// Downloads the output and error files to temporary files and reports each line as a
    /// ``BatchResult`` (`route: .batch`, usage marked as batch usage):
    /// - `response.status_code` 2xx: success, parsed for the batch's endpoint;
    /// - other status codes: the error in `response.body`, classified like a real-time error;
    /// - `error` lines: `batch_expired` → `.expired`, `batch_cancelled` → `.cancelled`,
    ///   `request_timeout` → `.timeout`.
    /// A line that cannot be read becomes a retryable `invalidResponse` failure for its
    /// `custom_id` when that can still be read, and is skipped and counted in the returned summary
    /// otherwise.
    package func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> ResultsSummary {
        var job = job
        if job.metadata["output_file_id"] == nil && job.metadata["error_file_id"] == nil {
            job = try await status(of: job.id)
        }
        let endpoint = job.metadata["endpoint"].map { $0.hasPrefix("/v1/") ? $0 : "/v1" + $0 } ?? OpenAIWire.chatEndpoint
        var summary = ResultsSummary()
        for key in ["output_file_id", "error_file_id"] {
            guard let fileID = job.metadata[key] else { continue }
            let file = try await download(fileID)
            defer { try? FileManager.default.removeItem(at: file) }
            try await BatchResultsFile.read(
                file, name: fileID, idField: "custom_id", summary: &summary,
                parse: { json, id in Self.result(json: json, id: id, endpoint: endpoint) }, handler: handler)
        }
        return summary
    }

    /// Downloads a file's content to a temporary file.
    func download(_ fileID: String) async throws -> URL {
        try await api.connection.download(
            api.url("/v1/files/\(fileID)/content"), headers: ["Accept": "application/binary"], timeout: uploadTimeout)
    }

    /// One line of an output or error file as a result (`route: .batch`, batch usage), parsed
    /// for `endpoint`; `nil` when the line is malformed (not JSON, no `custom_id`, neither a
    /// `response` nor an `error`).
    package static func result(line: ArraySlice<UInt8>, endpoint: String = OpenAIWire.chatEndpoint) -> BatchResult? {
        guard let json = try? JSONValue(parsing: line), let id = json["custom_id"]?.stringValue else { return nil }
        return result(json: json, id: id, endpoint: endpoint)
    }

    /// A parsed line whose `custom_id` is `id` as a result; `nil` when it is neither a
    /// `response` with a status code nor an `error`.
    static func result(json: JSONValue, id: String, endpoint: String) -> BatchResult? {
        if let response = json["response"], case .object = response {
            guard let status = response["status_code"]?.intValue else { return nil }
            let body = response["body"]
            if (200..<300).contains(status) {
                do throws(BatchError) {
                    guard let body else { throw BatchError(.invalidResponse, "the result has no body", isRetryable: false) }
                    let parsed = try OpenAIWire.parseResponse(body, endpoint: endpoint)
                    return BatchResult(id: id, outcome: .success(parsed), attempts: 1, usage: parsed.usage.asBatch, route: .batch)
                } catch {
                    var e = error
                    e.httpStatus = status
                    return BatchResult(id: id, outcome: .failure(e), attempts: 1, usage: .zero, route: .batch)
                }
            }
            let error = OpenAIWire.error(status: status, body: body)
            return BatchResult(id: id, outcome: .failure(error), attempts: 1, usage: .zero, route: .batch)
        }
        if let error = json["error"], case .object = error {
            let code = error["code"]?.stringValue ?? "unknown"
            let message = error["message"]?.stringValue ?? code
            let batchError: BatchError
            switch code {
            case "batch_expired": batchError = BatchError(.expired, message, providerType: code)
            case "batch_cancelled": batchError = BatchError(.cancelled, message, providerType: code, isRetryable: false)
            case "request_timeout": batchError = BatchError(.timeout, message, providerType: code)
            default: batchError = BatchError(.server, "\(code): \(message)", providerType: code)
            }
            return BatchResult(id: id, outcome: .failure(batchError), attempts: 1, usage: .zero, route: .batch)
        }
        return nil
    }
}
