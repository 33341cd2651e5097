import BatchKit
import Foundation

/// One emulated OpenAI batch. Its state is computed from the time since creation on every read
/// (no background work): items finish in input order over 90 % of `batchDuration`, the batch is
/// `finalizing` for the last 10 % and `completed` at `batchDuration`; cancellation freezes the
/// finished count and drains for 10 % of `batchDuration`; `batchExpiry` expires what is left.
struct OpenAIBatchRecord {
    var id: String
    /// The endpoint as submitted (`/v1/chat/completions`; Azure may use `/chat/completions`).
    var endpoint: String
    var inputFileID: String
    /// The input file's contents: the same storage as the file record (never copied).
    var input: EmulatorBlob
    var completionWindow: String
    var metadata: JSONValue
    var azure: Bool
    var createdOffset: Duration
    var createdAt: Int
    /// `batchDuration` and `batchExpiry` when the batch was created (later configuration changes
    /// do not move a batch's schedule).
    var duration: Duration
    var expiry: Duration?
    var model: String?
    /// Validation errors (`errors.data`); non-empty means the batch fails.
    var errors: [JSONValue]
    var total: Int
    /// Successful lines and their token usage among the first `k` lines, for every `k` (on disk
    /// for large batches: a million queued requests keep no counts in memory).
    var counts: EmulatorPrefixCounts
    /// The batch-level fault in force when the batch was created.
    var fault: EmulatorFault.Kind?
    /// Age of the batch when it was cancelled.
    var cancelAge: Duration?
    var outputFileID: String?
    var errorFileID: String?
    var materialized = false
    /// The output and error files as they will be if every line runs, written while the lines
    /// were evaluated at creation (no batch-level fault): a batch that completes adopts them
    /// instead of evaluating each line again. `nil` once materialized.
    var precomputed: (output: EmulatorBlob, errors: EmulatorBlob)?
}

/// An output and an error file written line by line into blobs (on disk above 64 KB), through
/// 32 KB buffers: the files are never whole in memory, and no large block is held for them.
final class OpenAIResultFilesWriter {
    private let outputBlob = EmulatorBlob.Writer(memoryLimit: 64 << 10)
    private let errorsBlob = EmulatorBlob.Writer(memoryLimit: 64 << 10)
    var output = [UInt8]()
    var errors = [UInt8]()

    func flushIfFull() {
        if output.count >= 32 << 10 {
            outputBlob.append(output)
            output.removeAll(keepingCapacity: true)
        }
        if errors.count >= 32 << 10 {
            errorsBlob.append(errors)
            errors.removeAll(keepingCapacity: true)
        }
    }

    /// The finished files; `nil` for one that has no line.
    func finish() -> (output: EmulatorBlob?, errors: EmulatorBlob?) {
        outputBlob.append(output)
        errorsBlob.append(errors)
        output = []
        errors = []
        return (outputBlob.isEmpty ? nil : outputBlob.finish(), errorsBlob.isEmpty ? nil : errorsBlob.finish())
    }
}

extension ProviderEmulator {
    /// Whether a line before `lineNumber` of a batch input has `customID` (rereads those lines:
    /// only asked when the id's fingerprint was seen).
    static func openAIEarlierLine(of input: EmulatorBlob, before lineNumber: Int, has customID: String) -> Bool {
        var found = false
        input.forEachLine { buf, n in
            guard !found, n < lineNumber, let json = try? JSONValue(parsing: buf) else { return }
            if json["custom_id"]?.stringValue == customID { found = true }
        }
        return found
    }
}

/// Running totals of a batch's lines: for each `k`, the successful lines among the first `k` and
/// their input and output tokens. Three 32-bit counts a line, written to an ``EmulatorBlob`` as the
/// lines are evaluated (on disk above 64 KB, about 5,000 lines), and read back one record at a
/// time: a million queued requests keep no counts in memory.
struct EmulatorPrefixCounts: Sendable {
    /// The counts among the first `k` lines.
    struct Totals: Sendable, Hashable {
        var ok = 0
        var inputTokens = 0
        var outputTokens = 0
    }

    /// Record `k - 1` (12 bytes, little-endian `Int32`s) holds the totals of the first `k` lines.
    private let records: EmulatorBlob
    /// The number of lines counted.
    let lines: Int
    /// The totals of all of them.
    let all: Totals

    /// Whether the records are in a file (not memory).
    var isOnDisk: Bool { records.fileURL != nil }

    /// The totals of the first `k` lines (`k` is clamped to the lines counted).
    subscript(k: Int) -> Totals {
        let k = min(max(0, k), lines)
        if k == 0 { return Totals() }
        if k == lines { return all }
        let data = records.read(offset: (k - 1) * 12, length: 12)
        guard data.count == 12 else { return Totals() }
        func int32(_ at: Int) -> Int {
            let b = data.startIndex + at
            return Int(Int32(bitPattern: UInt32(data[b]) | UInt32(data[b + 1]) << 8 | UInt32(data[b + 2]) << 16 | UInt32(data[b + 3]) << 24))
        }
        return Totals(ok: int32(0), inputTokens: int32(4), outputTokens: int32(8))
    }

    /// Counts lines as they are evaluated.
    final class Builder {
        private let writer = EmulatorBlob.Writer(memoryLimit: 64 << 10)
        private var totals = Totals()
        private var lines = 0
        private var record: [UInt8] = []

        /// Counts the next line.
        func append(ok: Bool, inputTokens: Int, outputTokens: Int) {
            if ok { totals.ok += 1 }
            totals.inputTokens = Int(Int32(truncatingIfNeeded: totals.inputTokens &+ inputTokens))
            totals.outputTokens = Int(Int32(truncatingIfNeeded: totals.outputTokens &+ outputTokens))
            lines += 1
            record.removeAll(keepingCapacity: true)
            func put(_ value: Int) {
                let v = UInt32(bitPattern: Int32(truncatingIfNeeded: value))
                record.append(UInt8(v & 0xFF))
                record.append(UInt8(v >> 8 & 0xFF))
                record.append(UInt8(v >> 16 & 0xFF))
                record.append(UInt8(v >> 24))
            }
            put(totals.ok)
            put(totals.inputTokens)
            put(totals.outputTokens)
            writer.append(record)
        }

        func finish() -> EmulatorPrefixCounts { EmulatorPrefixCounts(records: writer.finish(), lines: lines, all: totals) }
    }
}

/// The state of a batch at one instant.
struct OpenAIBatchView {
    var status: String
    var finished: Int
    var inProgressAt: Int?
    var finalizingAt: Int?
    var completedAt: Int?
    var failedAt: Int?
    var expiredAt: Int?
    var cancellingAt: Int?
    var cancelledAt: Int?

    var isTerminal: Bool { ["completed", "failed", "expired", "cancelled"].contains(status) }
}

extension ProviderEmulator {
    static let openAIBatchEndpoints: Set<String> = [
        "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations",
    ]
    static let openAIMaxBatchLines = 50_000

    /// `/chat/completions` (Azure's classic form) → `/v1/chat/completions`.
    static func openAINormalizedEndpoint(_ e: String) -> String { e.hasPrefix("/v1/") ? e : "/v1" + e }

    // MARK: - Create

    /// `POST /v1/batches`: answers `validating` at once; problems in the file surface on later
    /// reads as `failed` with `errors.data` (1-based `line`).
    func openAICreateBatch(_ request: EmulatorRequest, route: OpenAIRoute) -> EmulatorResponse {
        guard let body = request.json, case .object = body else {
            return openAIError(status: 400, message: "We could not parse the JSON body of your request.")
        }
        func missing(_ name: String) -> EmulatorResponse {
            openAIError(status: 400, message: "Missing required parameter: '\(name)'.", param: name, code: "missing_required_parameter")
        }
        guard let fileID = body["input_file_id"]?.stringValue else { return missing("input_file_id") }
        guard let endpoint = body["endpoint"]?.stringValue else { return missing("endpoint") }
        let normalized = Self.openAINormalizedEndpoint(endpoint)
        guard Self.openAIBatchEndpoints.contains(normalized), route.azure || endpoint == normalized else {
            return openAIError(status: 400,
                message: "Invalid value: '\(endpoint)'. Supported values are: '/v1/responses', '/v1/chat/completions', '/v1/embeddings', '/v1/completions', and '/v1/moderations'.",
                param: "endpoint", code: "invalid_value")
        }
        guard let window = body["completion_window"]?.stringValue else { return missing("completion_window") }
        guard window == "24h" else {
            return openAIError(status: 400, message: "Invalid value: '\(window)'. Supported values are: '24h'.",
                                 param: "completion_window", code: "invalid_value")
        }
        let metadata = body["metadata"] ?? .null
        switch metadata {
        case .null: break
        case .object(let m) where m.count <= 16 && m.allSatisfy({ $0.key.count <= 64 && ($0.value.stringValue?.count ?? 513) <= 512 }):
            break
        default:
            return openAIError(status: 400,
                message: "Invalid 'metadata': expected an object of at most 16 string values (keys up to 64, values up to 512 characters).",
                param: "metadata")
        }
        guard let file = openAIState.withLock({ $0.files[fileID] }) else { return openAINoSuchFile(fileID) }
        guard file.purpose == "batch" else {
            return openAIError(status: 400, message: "The input file \(fileID) must be uploaded with purpose 'batch'.",
                                 param: "input_file_id")
        }

        // Validate and evaluate every line now; the outcome is revealed as time passes.
        var errors: [JSONValue] = []
        // Fingerprints (8 bytes an id, in small blocks); one seen before is confirmed against the
        // earlier lines, so a duplicate is exact.
        var seen = FingerprintSet()
        let ids = EmulatorIDList.Builder()
        var model: String?
        var lineCount = 0
        var embeddingInputs = 0
        let counts = EmulatorPrefixCounts.Builder()
        let fault = batchFault(.openAI)
        // Without a batch-level fault, each line's result line is written now, while its answer is
        // at hand: a batch that completes needs no second pass over its input.
        let precomputed = fault == nil ? OpenAIResultFilesWriter() : nil
        let created = unixNow
        var batchCache = EmulatorPromptCache()
        func lineError(_ code: String, _ message: String, param: String? = nil, line: Int?) {
            errors.append(["code": .string(code), "message": .string(message), "param": param.map(JSONValue.string) ?? .null,
                           "line": line.map(JSONValue.int) ?? .null])
        }
        file.content.forEachLine { buf, lineNumber in
            lineCount += 1
            guard let json = try? JSONValue(parsing: buf), case .object = json else {
                lineError("invalid_json_line", "This line is not parseable as valid JSON.", line: lineNumber)
                return
            }
            guard let customID = json["custom_id"]?.stringValue, !customID.isEmpty else {
                lineError("missing_required_parameter", "Missing required parameter: 'custom_id'.", param: "custom_id", line: lineNumber)
                return
            }
            ids.append(customID)
            guard seen.insert(id: customID) || !Self.openAIEarlierLine(of: file.content, before: lineNumber, has: customID) else {
                lineError("duplicate_custom_id",
                    "The custom_id for this request is a duplicate of another request. The custom_id parameter must be unique for each individual request in a batch.",
                    param: "custom_id", line: lineNumber)
                return
            }
            guard json["method"]?.stringValue == "POST" else {
                lineError("invalid_method", "The method for this request must be POST.", param: "method", line: lineNumber)
                return
            }
            guard let url = json["url"]?.stringValue, Self.openAINormalizedEndpoint(url) == normalized,
                route.azure || url == endpoint
            else {
                lineError("url_mismatch", "The URL provided for this request does not match the batch endpoint.", param: "url", line: lineNumber)
                return
            }
            guard let lineBody = json["body"], case .object = lineBody else {
                lineError("invalid_request", "The body of this request must be a JSON object.", param: "body", line: lineNumber)
                return
            }
            if let m = lineBody["model"]?.stringValue {
                if let model, model != m {
                    lineError("model_mismatch",
                        "The provided model '\(m)' does not match the model of the rest of the batch ('\(model)'). All requests in a batch must use the same model.",
                        param: "body.model", line: lineNumber)
                    return
                }
                model = model ?? m
            }
            if normalized == "/v1/embeddings" { embeddingInputs += Self.openAIInputs(lineBody["input"]).count }
            guard errors.isEmpty else { return }
            let outcome = openAIOutcome(endpoint: normalized, body: lineBody, deployment: nil, created: created, cache: &batchCache)
            counts.append(
                ok: outcome.isSuccess, inputTokens: outcome.isSuccess ? outcome.inputTokens : 0,
                outputTokens: outcome.isSuccess ? outcome.outputTokens : 0)
            if let precomputed {
                let resultLine = openAIResultLine(customID, response: openAIHTTPResponse(outcome.status, outcome.body), error: .null)
                if outcome.isSuccess {
                    resultLine.write(into: &precomputed.output)
                    precomputed.output.append(0x0A)
                } else {
                    resultLine.write(into: &precomputed.errors)
                    precomputed.errors.append(0x0A)
                }
                precomputed.flushIfFull()
            }
        }
        if lineCount == 0 { lineError("empty_file", "The batch input file is empty.", line: nil) }
        if lineCount > Self.openAIMaxBatchLines {
            lineError("too_many_tasks",
                "The batch input file has \(lineCount) requests; a batch can contain at most \(Self.openAIMaxBatchLines).", line: nil)
        }
        if embeddingInputs > Self.openAIMaxBatchLines {
            lineError("too_many_tasks",
                "The batch contains \(embeddingInputs) embedding inputs; at most \(Self.openAIMaxBatchLines) are allowed per batch.", line: nil)
        }
        let sentIDs = ids.finish()
        recordSent(sentIDs)

        var record = OpenAIBatchRecord(
            id: newID("batch_", hexDigits: 32), endpoint: endpoint, inputFileID: fileID, input: file.content,
            completionWindow: window, metadata: metadata, azure: route.azure, createdOffset: elapsed, createdAt: created,
            duration: config.withLock { $0.batchDuration }, expiry: config.withLock { $0.batchExpiry },
            model: model, errors: errors, total: errors.isEmpty ? lineCount : 0, counts: counts.finish(),
            fault: fault)
        if errors.isEmpty, let files = precomputed?.finish() {
            record.precomputed = (files.output ?? EmulatorBlob(Data()), files.errors ?? EmulatorBlob(Data()))
        }
        openAIState.withLock { s in
            s.batches[record.id] = record
            s.batchOrder.append(record.id)
        }
        if errors.isEmpty { billJob(record.id, provider: .openAI, customIDs: sentIDs) }
        let validating = OpenAIBatchView(status: "validating", finished: 0)
        return .json(200, openAIBatchJSON(record, validating, validating: true), headers: openAIHeaders())
    }

    // MARK: - Read, cancel, list

    func openAINoSuchBatch(_ id: String) -> EmulatorResponse {
        openAIError(status: 404, message: "No batch found with id '\(id)'.")
    }

    /// `GET /v1/batches/{id}`.
    func openAIRetrieveBatch(_ id: String) -> EmulatorResponse {
        let json: JSONValue? = openAIState.withLock { s in
            guard s.batches[id] != nil else { return nil }
            return openAIBatchSnapshot(&s, id: id)
        }
        guard let json else { return openAINoSuchBatch(id) }
        return .json(200, json, headers: openAIHeaders())
    }

    /// `POST /v1/batches/{id}/cancel`: `cancelling`, then `cancelled` once drained; unfinished
    /// lines are reported as `batch_cancelled` in the error file.
    func openAICancelBatch(_ id: String) -> EmulatorResponse {
        enum Outcome { case missing, refused(String), ok(JSONValue, ran: Int?) }
        let age = elapsed
        let outcome: Outcome = openAIState.withLock { s in
            guard var b = s.batches[id] else { return .missing }
            let view = openAIBatchView(b, age: age - b.createdOffset)
            if view.isTerminal { return .refused(view.status) }
            var ran: Int?
            if b.cancelAge == nil {
                b.cancelAge = age - b.createdOffset
                s.batches[id] = b
                // Items stop finishing at the cancel: what ran is what had finished by then.
                ran = openAIBatchView(b, age: age - b.createdOffset).finished
            }
            return .ok(openAIBatchSnapshot(&s, id: id), ran: ran)
        }
        switch outcome {
        case .missing: return openAINoSuchBatch(id)
        case .refused(let status):
            return openAIError(status: 400, message: "Cannot cancel a batch with status '\(status)'.")
        case .ok(let json, let ran):
            if let ran { billCancel(id, ran: ran) }
            return .json(200, json, headers: openAIHeaders())
        }
    }

    /// `GET /v1/batches?after=&limit=`: newest first, with `first_id`, `last_id`, `has_more`.
    func openAIListBatches(_ request: EmulatorRequest, route: OpenAIRoute) -> EmulatorResponse {
        let limit = request.query["limit"].flatMap(Int.init) ?? 20
        guard (1...100).contains(limit) else {
            return openAIError(status: 400,
                message: "Invalid 'limit': integer \(limit > 100 ? "above maximum" : "below minimum") value. Expected a value \(limit > 100 ? "<= 100" : ">= 1"), but got \(limit) instead.",
                param: "limit", code: limit > 100 ? "integer_above_max_value" : "integer_below_min_value")
        }
        let after = request.query["after"]
        let page: JSONValue = openAIState.withLock { s in
            let ids = s.batchOrder.reversed().filter { s.batches[$0]?.azure == route.azure }
            var start = 0
            if let after, let i = ids.firstIndex(of: after) { start = i + 1 }
            let chosen = Array(ids[start...].prefix(limit))
            let data = chosen.map { openAIBatchSnapshot(&s, id: $0) }
            return [
                "object": "list", "data": .array(data),
                "first_id": chosen.first.map(JSONValue.string) ?? .null, "last_id": chosen.last.map(JSONValue.string) ?? .null,
                "has_more": .bool(start + chosen.count < ids.count),
            ]
        }
        return .json(200, page, headers: openAIHeaders())
    }

    /// The Batch object now, writing the output and error files the first time it is terminal.
    func openAIBatchSnapshot(_ s: inout OpenAIEmulatorState, id: String) -> JSONValue {
        guard var b = s.batches[id] else { return .null }
        let view = openAIBatchView(b, age: elapsed - b.createdOffset)
        if view.isTerminal, !b.materialized, b.errors.isEmpty {
            openAIWriteResults(&s, &b, view)
        }
        s.batches[id] = b
        return openAIBatchJSON(b, view, validating: false)
    }

    // MARK: - Time model

    /// The batch's state `age` after its creation.
    func openAIBatchView(_ b: OpenAIBatchRecord, age: Duration) -> OpenAIBatchView {
        let (duration, expiry) = (b.duration, b.expiry)
        func at(_ d: Duration) -> Int { b.createdAt + Int(d.seconds.rounded(.down)) }
        // Items finish evenly over the first 90 % of the duration; the rest is finalizing.
        func finished(_ t: Duration) -> Int {
            if duration <= .zero { return b.total }
            let fraction = min(1, max(0, t.seconds / (duration.seconds * 0.9)))
            return min(b.total, Int((Double(b.total) * fraction).rounded(.down)))
        }

        if !b.errors.isEmpty {
            return OpenAIBatchView(status: "failed", finished: 0, failedAt: b.createdAt)
        }
        var v = OpenAIBatchView(status: "in_progress", finished: 0, inProgressAt: b.createdAt)
        if let c = b.cancelAge {
            let drain = duration / 10
            v.finished = finished(c)
            v.cancellingAt = at(c)
            if age >= c + drain {
                v.status = "cancelled"
                v.cancelledAt = at(c + drain)
            } else {
                v.status = "cancelling"
            }
            return v
        }
        if let expiry, age >= expiry, finished(expiry) < b.total {
            v.finished = finished(expiry)
            v.status = "expired"
            v.expiredAt = at(expiry)
            return v
        }
        v.finished = finished(age)
        if v.finished < b.total { return v }
        v.finalizingAt = at(duration * 9 / 10)
        if age < duration {
            v.status = "finalizing"
        } else {
            v.status = "completed"
            v.completedAt = at(duration)
        }
        return v
    }

    func openAIBatchJSON(_ b: OpenAIBatchRecord, _ v: OpenAIBatchView, validating: Bool) -> JSONValue {
        func ts(_ t: Int?) -> JSONValue { t.map(JSONValue.int) ?? .null }
        let expiry = b.expiry
        let finishedCounts = b.fault == .errorFileOnly ? EmulatorPrefixCounts.Totals() : b.counts[v.finished]
        let okFinished = finishedCounts.ok
        var failed = v.finished - okFinished
        if v.status == "expired" || v.status == "cancelled" { failed = b.total - okFinished }
        let inputTokens = finishedCounts.inputTokens
        let outputTokens = finishedCounts.outputTokens
        return [
            "id": .string(b.id),
            "object": "batch",
            "endpoint": .string(b.endpoint),
            "model": b.model.map(JSONValue.string) ?? .null,
            "errors": b.errors.isEmpty || validating ? .null : ["object": "list", "data": .array(b.errors)],
            "input_file_id": .string(b.inputFileID),
            "completion_window": .string(b.completionWindow),
            "status": .string(v.status),
            "output_file_id": b.outputFileID.map(JSONValue.string) ?? .null,
            "error_file_id": b.errorFileID.map(JSONValue.string) ?? .null,
            "created_at": .int(b.createdAt),
            "in_progress_at": ts(v.inProgressAt),
            "expires_at": .int(b.createdAt + Int((expiry ?? .seconds(86_400)).seconds)),
            "finalizing_at": ts(v.finalizingAt),
            "completed_at": ts(v.completedAt),
            "failed_at": ts(v.failedAt),
            "expired_at": ts(v.expiredAt),
            "cancelling_at": ts(v.cancellingAt),
            "cancelled_at": ts(v.cancelledAt),
            "request_counts": [
                "total": .int(validating ? 0 : b.total), "completed": .int(validating ? 0 : okFinished),
                "failed": .int(validating ? 0 : failed),
            ],
            "usage": [
                "input_tokens": .int(validating ? 0 : inputTokens), "input_tokens_details": ["cached_tokens": 0],
                "output_tokens": .int(validating ? 0 : outputTokens), "output_tokens_details": ["reasoning_tokens": 0],
                "total_tokens": .int(validating ? 0 : inputTokens + outputTokens),
            ],
            "metadata": b.metadata,
        ]
    }

    // MARK: - Output and error files

    /// One line of a batch's output or error file.
    func openAIResultLine(_ customID: String, response: JSONValue, error: JSONValue) -> JSONValue {
        ["id": .string(newID("batch_req_", hexDigits: 32)), "custom_id": .string(customID), "response": response, "error": error]
    }

    /// The `response` member of a result line.
    func openAIHTTPResponse(_ status: Int, _ body: JSONValue) -> JSONValue {
        ["status_code": .int(status), "request_id": .string(newID("req_", hexDigits: 32)), "body": body]
    }

    /// Writes the output and error files of a batch that has just become terminal (§1.5):
    /// successes to the output file, non-2xx answers and `batch_expired` / `batch_cancelled`
    /// lines to the error file. Applies the batch-level faults.
    func openAIWriteResults(_ s: inout OpenAIEmulatorState, _ b: inout OpenAIBatchRecord, _ v: OpenAIBatchView) {
        b.materialized = true
        let precomputed = b.precomputed
        b.precomputed = nil
        if let precomputed, v.finished == b.total, v.status == "completed", b.fault == nil {
            // Every line ran: the files written at creation are the batch's files.
            if precomputed.output.count > 0 {
                b.outputFileID = openAIStoreFile(&s, filename: "batch_\(b.id)_output.jsonl", purpose: "batch_output", content: precomputed.output)
            }
            if precomputed.errors.count > 0 {
                b.errorFileID = openAIStoreFile(&s, filename: "batch_\(b.id)_error.jsonl", purpose: "batch_output", content: precomputed.errors)
            }
            return
        }
        let endpoint = Self.openAINormalizedEndpoint(b.endpoint)
        let created = unixNow
        // Written piece by piece into blobs (on disk once large): the files are never whole in memory.
        let files = OpenAIResultFilesWriter()
        var malformedLeft = 0
        var batchCache = EmulatorPromptCache()
        if case .malformedResultLines(let n)? = b.fault { malformedLeft = n }
        var index = 0
        let unfinished: (code: String, message: String)? =
            v.status == "expired"
            ? ("batch_expired", "This request could not be executed before the completion window expired.")
            : v.status == "cancelled" ? ("batch_cancelled", "This request was not executed because the batch was cancelled.") : nil

        func line(_ customID: String, response: JSONValue, error: JSONValue) -> JSONValue {
            openAIResultLine(customID, response: response, error: error)
        }
        func httpResponse(_ status: Int, _ body: JSONValue) -> JSONValue { openAIHTTPResponse(status, body) }
        b.input.forEachLine { buf, _ in
            guard let json = try? JSONValue(parsing: buf), let customID = json["custom_id"]?.stringValue else { return }
            defer {
                index += 1
                files.flushIfFull()
            }
            if index >= v.finished {
                if let unfinished {
                    line(customID, response: .null, error: ["code": .string(unfinished.code), "message": .string(unfinished.message)])
                        .write(into: &files.errors)
                    files.errors.append(0x0A)
                }
                return
            }
            if b.fault == .errorFileOnly {
                let body = Self.openAIErrorBody("The server had an error while processing your request. Sorry about that!", type: "server_error")
                line(customID, response: httpResponse(500, body), error: .null).write(into: &files.errors)
                files.errors.append(0x0A)
                return
            }
            let outcome = openAIOutcome(endpoint: endpoint, body: json["body"], deployment: nil, created: created, cache: &batchCache)
            if outcome.isSuccess {
                if malformedLeft > 0 {
                    malformedLeft -= 1
                    files.output.append(contentsOf: "@@ garbled result line \(index) {\"custom_id\": \"\(customID)\", \"response\": ".utf8)
                } else {
                    line(customID, response: httpResponse(outcome.status, outcome.body), error: .null).write(into: &files.output)
                }
                files.output.append(0x0A)
            } else {
                line(customID, response: httpResponse(outcome.status, outcome.body), error: .null).write(into: &files.errors)
                files.errors.append(0x0A)
            }
        }
        let written = files.finish()
        if let output = written.output {
            b.outputFileID = openAIStoreFile(&s, filename: "batch_\(b.id)_output.jsonl", purpose: "batch_output", content: output)
        }
        if let errors = written.errors {
            b.errorFileID = openAIStoreFile(&s, filename: "batch_\(b.id)_error.jsonl", purpose: "batch_output", content: errors)
        }
    }
}
