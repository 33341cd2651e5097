public import BatchKit
public import Foundation
import Synchronization

/// The ``BatchBackend`` for Anthropic's Message Batches API (`/v1/messages/batches`): inline
/// requests in the create body, results as JSONL at the batch's `results_url`.
///
/// ```swift
/// let backend = AnthropicBatchBackend()   // key from ANTHROPIC_API_KEY, URLSessionTransport
/// let items = try requests.map { try backend.encode($0) }
/// let job = try await backend.submit(items, metadata: [:])
/// ```
///
/// Status mapping (`processing_status` and `request_counts` → ``BatchJob``):
/// - `in_progress` → ``BatchJob/Status/inProgress``; `canceling` → ``BatchJob/Status/cancelling``;
/// - `ended` with `cancel_initiated_at` set → ``BatchJob/Status/cancelled`` (partial results kept);
/// - `ended` with `request_counts.expired > 0` → ``BatchJob/Status/expired`` (partial results kept);
/// - any other `ended` → ``BatchJob/Status/completed`` (errored items are per-item failures).
///
/// `requestCount` is the sum of the five counts, `succeededCount` is `succeeded`, `failedCount` is
/// `errored + canceled + expired`. `metadata` keeps `results_url`, `processing_status`, `ended_at`,
/// `cancel_initiated_at` and the five counts as strings. Anthropic batches have no metadata of their
/// own: the `metadata` argument of ``submit(_:metadata:)`` is not sent.
///
/// Results: `succeeded` → a ``ModelResponse`` (usage marked ``Usage/asBatch``), `errored` → the
/// inner error (`invalid_request_error` not retryable, `api_error`/`overloaded_error` retryable),
/// `canceled` → ``BatchError/Code/cancelled``, `expired` → ``BatchError/Code/expired``
/// (retryable). A line that cannot be read becomes an `invalidResponse` (retryable) item when its
/// custom id can still be read, and is otherwise counted in ``downloadResults(of:handler:)``'s
/// summary and left for the processor to report as missing.
public struct AnthropicBatchBackend: BatchBackend, CustomStringConvertible {
    let connection: ProviderConnection
    /// `anthropic`.
    public var provider: String { "anthropic" }
    /// 100,000 requests and 256 MB (decimal, which leaves room for the JSON around the items
    /// under Anthropic's 256 MiB body limit) unless configured otherwise.
    public let limits: BatchLimits
    /// `max_tokens` for requests that do not set one.
    public let defaultMaxTokens: Int
    /// How JSON response formats are expressed.
    public let structuredOutput: AnthropicStructuredOutput
    /// Custom id → forced structured-output tool, remembered at encode time so that results of
    /// the same process report such answers with finish reason `stop`. A final class holding a
    /// `Mutex`, so the struct stays `Sendable` and copies share it.
    let forcedTools: ForcedTools
    /// Batches asked for per list page (Anthropic allows up to 1,000). Tests make it small.
    var listPageSize = 1000

    final class ForcedTools: Sendable {
        let names = Mutex<[String: String]>([:])
    }

    /// Anthropic's limits: 100,000 requests, 256 MB.
    public static let defaultLimits = BatchLimits(maxRequests: 100_000, maxBytes: 256_000_000)

    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `ANTHROPIC_API_KEY`.
    ///   - baseURL: `https://api.anthropic.com` or the emulator's URL.
    ///   - version: the `anthropic-version` header.
    ///   - defaultMaxTokens: `max_tokens` when a request sets none.
    ///   - structuredOutput: how JSON response formats are expressed.
    ///   - extraHeaders: added to every request.
    ///   - transport: the HTTP transport (a new ``URLSessionTransport`` by default).
    ///   - timeout: per-request timeout (the results download included).
    ///   - limits: per-job limits (smaller ones make tests split).
    public init(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.anthropic.com")!, version: String = "2023-06-01",
        defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens, structuredOutput: AnthropicStructuredOutput = .forcedTool,
        extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(), timeout: Duration? = .seconds(600),
        limits: BatchLimits = AnthropicBatchBackend.defaultLimits
    ) {
        self.connection = .anthropic(
            apiKey: apiKey, baseURL: baseURL, version: version, extraHeaders: extraHeaders, transport: transport, timeout: timeout)
        self.defaultMaxTokens = defaultMaxTokens
        self.structuredOutput = structuredOutput
        self.limits = limits
        self.forcedTools = ForcedTools()
    }

    /// Describes the backend without its key.
    public var description: String { "AnthropicBatchBackend(baseURL: \(connection.baseURL.absoluteString))" }

    // MARK: - Encode / submit

    /// Whether `id` is a valid Anthropic custom id: `^[a-zA-Z0-9_-]{1,64}$`.
    public static func isValidCustomID(_ id: String) -> Bool {
        let u = id.utf8
        guard (1...64).contains(u.count) else { return false }
        return u.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45
        }
    }

    /// Encodes `{"custom_id": ..., "params": {...Messages body...}}`.
    ///
    /// - Throws: a validation error naming `custom_id` for an id outside `^[a-zA-Z0-9_-]{1,64}$`,
    ///   `body` for embeddings and raw requests, or the chat field Anthropic cannot express.
    package func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem {
        guard Self.isValidCustomID(request.id) else {
            throw .validation(
                "Anthropic custom ids must match ^[a-zA-Z0-9_-]{1,64}$ (got \(request.id.prefix(80).debugDescription))",
                field: "custom_id")
        }
        let chat: ChatRequest
        switch request.body {
        case .chat(let c): chat = c
        case .embedding: throw .validation("Anthropic has no embeddings endpoint (Message Batches take chat requests only)", field: "body")
        case .raw(let r): throw .validation("Anthropic Message Batches cannot carry a raw request for \(r.endpoint)", field: "body")
        }
        let params = try AnthropicWire.messagesBody(chat, defaultMaxTokens: defaultMaxTokens, structuredOutput: structuredOutput)
        if let tool = AnthropicWire.structuredOutputTool(for: chat, structuredOutput: structuredOutput) {
            forcedTools.names.withLock { $0[request.id] = tool }
        }
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(contentsOf: #"{"custom_id":"#.utf8)
        JSONValue.string(request.id).write(into: &out)
        out.append(contentsOf: #","params":"#.utf8)
        params.write(into: &out)
        out.append(UInt8(ascii: "}"))
        return EncodedBatchItem(id: request.id, data: Data(out))
    }

    /// Creates one batch: `POST /v1/messages/batches` with `{"requests":[...]}`, the encoded items
    /// concatenated as they are.
    package func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        guard !items.isEmpty else { throw BatchError.validation("a batch needs at least one request", field: "requests") }
        var body = Data()
        body.reserveCapacity(items.reduce(16) { $0 + $1.data.count + 1 })
        body.append(contentsOf: #"{"requests":["#.utf8)
        for (i, item) in items.enumerated() {
            if i > 0 { body.append(UInt8(ascii: ",")) }
            body.append(item.data)
        }
        body.append(contentsOf: "]}".utf8)
        let (json, _) = try await connection.sendJSONOnce("POST", connection.url("/v1/messages/batches"), body: .data(body))
        return try Self.job(from: json)
    }

    /// Creates one batch from a spooled chunk: the `{"requests":[...]}` body is written from the
    /// spool file to a temporary file piece by piece and sent from disk (a 256 MB batch is never
    /// in memory). Anthropic batches carry no tag: the intent is recognised by time and count.
    package func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        guard chunk.count > 0 else { throw BatchError.validation("a batch needs at least one request", field: "requests") }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-anthropic-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw BatchError(.io, "cannot create the temporary request body file", isRetryable: false)
        }
        do {
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            var buffer = [UInt8]()
            buffer.reserveCapacity(1 << 20)
            buffer.append(contentsOf: #"{"requests":["#.utf8)
            try await chunk.forEachItem { i, data in
                if i > 0 { buffer.append(UInt8(ascii: ",")) }
                buffer.append(contentsOf: data)
                if buffer.count >= 1 << 20 {
                    try handle.write(contentsOf: buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            buffer.append(contentsOf: "]}".utf8)
            try handle.write(contentsOf: buffer)
        } catch {
            throw BatchError(.io, "cannot write the temporary request body file: \(BatchError(wrapping: error).message)", isRetryable: false)
        }
        let (json, _) = try await connection.sendJSONOnce("POST", connection.url("/v1/messages/batches"), body: .file(url))
        return try Self.job(from: json)
    }

    // MARK: - Status

    /// `GET /v1/messages/batches/{id}`.
    package func status(of jobID: String) async throws -> BatchJob {
        let (json, _) = try await connection.sendJSON("GET", connection.url("/v1/messages/batches/\(try Self.pathID(jobID))"))
        return try Self.job(from: json)
    }

    /// Asks Anthropic to cancel: `POST /v1/messages/batches/{id}/cancel` (the batch moves to
    /// `canceling`, then ends with unprocessed requests `canceled`). Cancelling a batch that has
    /// already ended answers with the ended batch rather than an error.
    package func cancel(jobID: String) async throws -> BatchJob {
        do {
            let (json, _) = try await connection.sendJSON(
                "POST", connection.url("/v1/messages/batches/\(try Self.pathID(jobID))/cancel"))
            return try Self.job(from: json)
        } catch let error as BatchError where error.code == .invalidRequest {
            let job = try await status(of: jobID)
            if job.status.isTerminal { return job }
            throw error
        }
    }

    /// Batches of this workspace, newest first: `GET /v1/messages/batches?limit=&after_id=`,
    /// following `has_more`/`last_id` until `limit` batches are collected.
    package func list(limit: Int) async throws -> [BatchJob] {
        var jobs: [BatchJob] = []
        var after: String?
        while jobs.count < limit {
            var query = [URLQueryItem(name: "limit", value: String(min(listPageSize, max(1, limit - jobs.count))))]
            if let after { query.append(URLQueryItem(name: "after_id", value: after)) }
            let (json, _) = try await connection.sendJSON("GET", connection.url("/v1/messages/batches", query: query))
            guard let data = json["data"]?.arrayValue else {
                throw BatchError(.invalidResponse, "the batch list has no data array", isRetryable: false)
            }
            for item in data { jobs.append(try Self.job(from: item)) }
            guard json["has_more"]?.boolValue == true, let last = json["last_id"]?.stringValue, !data.isEmpty else { break }
            after = last
        }
        return Array(jobs.prefix(limit))
    }

    /// `DELETE /v1/messages/batches/{id}` (only ended batches can be deleted).
    package func delete(jobID: String) async throws {
        _ = try await connection.sendJSON("DELETE", connection.url("/v1/messages/batches/\(try Self.pathID(jobID))"))
    }

    // MARK: - Results

    /// Downloads the results at the batch's `results_url` to a temporary file and reports one
    /// result per line, reading the file in chunks (``downloadResults(of:handler:)`` without the
    /// summary).
    package func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        _ = try await downloadResults(of: job, handler: handler)
    }

    /// Downloads the results at the batch's `results_url` and reports one result per line. A line
    /// that cannot be read becomes a retryable `invalidResponse` failure for its `custom_id` when
    /// that can still be read, and is skipped and counted in the returned summary otherwise.
    package func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        var current = job
        if current.metadata["results_url"] == nil { current = try await status(of: job.id) }
        guard let text = current.metadata["results_url"], let url = connection.serverURL(text) else {
            throw BatchError(
                .invalidRequest, "batch \(job.id) has no results yet (processing_status \(current.remoteStatus ?? "unknown"))",
                isRetryable: true)
        }
        // The results download is JSONL; the SDK asks for it as `application/binary`.
        let file = try await connection.download(url, headers: ["accept": "application/binary"])
        defer { try? FileManager.default.removeItem(at: file) }
        let tools = forcedTools.names.withLock { $0 }
        var summary = BatchResultsSummary()
        try await BatchResultsFile.read(
            file, name: "batch \(job.id) results", idField: "custom_id", isValidID: Self.isValidCustomID, summary: &summary,
            parse: { json, id in Self.result(json: json, id: id, forcedTools: tools) }, handler: handler)
        return summary
    }

    /// One parsed results line whose `custom_id` is `id` as a result.
    static func result(json: JSONValue, id: String, forcedTools: [String: String]) -> BatchResult {
        let result = json["result"]
        let outcome: Result<ModelResponse, BatchError>
        switch result?["type"]?.stringValue {
        case "succeeded"?:
            do {
                var response = try AnthropicWire.parseMessage(result?["message"] ?? .null, structuredOutputTool: forcedTools[id])
                response.usage = response.usage.asBatch
                outcome = .success(response)
            } catch {
                outcome = .failure(error)
            }
        case "errored"?:
            outcome = .failure(AnthropicWire.batchItemError(result?["error"]))
        case "canceled"?:
            outcome = .failure(.cancelled("the batch was canceled before this request was processed"))
        case "expired"?:
            outcome = .failure(BatchError(.expired, "the batch expired before this request was processed", isRetryable: true))
        case let other:
            outcome = .failure(BatchError(.invalidResponse, "unknown result type \(other ?? "null")", isRetryable: false))
        }
        return BatchResult(id: id, outcome: outcome, attempts: 1, route: .batch)
    }

    // MARK: - MessageBatch → BatchJob

    static func pathID(_ id: String) throws(BatchError) -> String {
        guard !id.isEmpty, id.utf8.allSatisfy({ $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else {
            throw .validation("invalid batch id \(id.debugDescription)", field: "id")
        }
        return id
    }

    /// Maps a MessageBatch object to a ``BatchJob`` (see the type's documentation).
    public static func job(from json: JSONValue) throws(BatchError) -> BatchJob {
        guard let id = json["id"]?.stringValue, let state = json["processing_status"]?.stringValue else {
            throw BatchError(.invalidResponse, "the answer is not a MessageBatch (no id or processing_status)", isRetryable: false)
        }
        let counts = json["request_counts"]
        func count(_ k: String) -> Int { counts?[k]?.intValue ?? 0 }
        let processing = count("processing"), succeeded = count("succeeded"), errored = count("errored")
        let canceled = count("canceled"), expired = count("expired")
        let cancelInitiated = json["cancel_initiated_at"]?.stringValue
        let status: BatchJob.Status
        switch state {
        case "in_progress": status = .inProgress
        case "canceling": status = .cancelling
        case "ended":
            if cancelInitiated != nil { status = .cancelled } else if expired > 0 { status = .expired } else { status = .completed }
        default: status = .inProgress
        }
        var metadata: [String: String] = [
            "processing_status": state, "processing": String(processing), "succeeded": String(succeeded),
            "errored": String(errored), "canceled": String(canceled), "expired": String(expired),
        ]
        if let u = json["results_url"]?.stringValue { metadata["results_url"] = u }
        if let e = json["ended_at"]?.stringValue { metadata["ended_at"] = e }
        if let c = cancelInitiated { metadata["cancel_initiated_at"] = c }
        if let a = json["archived_at"]?.stringValue { metadata["archived_at"] = a }
        return BatchJob(
            id: id, provider: "anthropic", status: status, remoteStatus: state,
            requestCount: processing + succeeded + errored + canceled + expired, succeededCount: succeeded,
            failedCount: errored + canceled + expired,
            createdAt: json["created_at"]?.stringValue.flatMap(RateLimitHeaderParsing.rfc3339),
            expiresAt: json["expires_at"]?.stringValue.flatMap(RateLimitHeaderParsing.rfc3339), metadata: metadata)
    }
}
