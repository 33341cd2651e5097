import BatchKit
import Foundation

/// An emulated Gemini batch (`batches/<id>`), whose state is computed from time on each read.
///
/// Time model: items finish in input order, evenly over ``EmulatorConfiguration/batchDuration``
/// (`finishedCount(total:age:)`). The create answer is always `BATCH_STATE_PENDING`; later reads
/// show `PENDING` until the first item finishes or a tenth of the duration (at most 1 s) has
/// passed, then `RUNNING` with `batchStats` advancing, then `SUCCEEDED`.
///
/// Terminal states, as the emulator writes them (`providers.md` §3.4, §3.6; §6.5 leaves the
/// failed/cancelled payloads unverified, these are the emulator's documented choices):
/// - `SUCCEEDED`: `done: true`, `metadata.output` and `response` (`@type …Output`) with every
///   item's `response` or `error`, `endTime`, final `batchStats`.
/// - `CANCELLED` (`:cancel` while pending/running): `done: true`, Operation `error`
///   `{code: 1}` (the LRO contract), and partial output in `metadata.output`: finished items as
///   usual, unfinished ones with a per-item `error` `{code: 1, message: "…cancelled…"}`.
///   Unfinished items count as failed in `batchStats`.
/// - `EXPIRED` (``EmulatorConfiguration/batchExpiry`` reached with items unfinished):
///   `done: true`, Operation `error` `{code: 4}` (DEADLINE_EXCEEDED) and **no results**, as the
///   guide says of expired jobs; unfinished items count as failed in `batchStats`.
///
/// Per-item errors use gRPC canonical codes as in the captures: `3` for an invalid request
/// (e.g. empty `contents`), `13` INTERNAL under the `errorFileOnly` fault, `1` for cancelled.
/// The `malformedResultLines(n)` fault cuts the first `n` lines of a result *file* short (inline
/// results are one JSON document and cannot carry malformed lines); each cut line still starts
/// with its `{"key":…` so a client can tell which item it lost.
struct GeminiEmulatedBatch {
    enum Kind { case generate, embed }

    let id: String
    let kind: Kind
    let model: String
    let displayName: String?
    let version: String
    /// `files/<id>` for file input.
    let inputFile: String?
    /// The requests: the input file's own lines (shared with the file, never copied), or for
    /// inline input one `{"key", "metadata", "request"}` line each; problems found at create.
    let input: EmulatorBatchInput
    let priority: Int
    let created: Duration
    var cancelled: Duration?
    let errorOnly: Bool
    let malformedLines: Int
    /// The generated result file, once written.
    var resultsFile: String?
    /// The inline output, once built (so every read shows the same answers): the JSON text of
    /// `{"inlinedResponses": [...]}`, stored once (on disk when large), not parsed values.
    var inlineOutput: EmulatorBlob?
    /// The terminal state, once observed: later configuration changes do not rewrite history.
    var final: GeminiBatchSnapshot?
}

/// The state of a batch at one instant.
struct GeminiBatchSnapshot {
    var state: String
    var finished: Int
    var succeeded: Int
    var failed: Int
    var pending: Int
    var end: Duration?
    var isTerminal: Bool { end != nil }
}

extension ProviderEmulator {
    static let geminiTypePrefix = "type.googleapis.com/google.ai.generativelanguage.v1main."

    // MARK: - Create

    /// `POST models/{m}:batchGenerateContent` / `:asyncBatchEmbedContent`.
    func geminiCreateBatch(_ r: EmulatorRequest, model: String, kind: GeminiEmulatedBatch.Kind) -> EmulatorResponse {
        if r.body.count >= 20 * 1024 * 1024 {
            return errorResponse(.gemini, status: 400, message: "Request payload size exceeds the limit: 20971520 bytes.", type: "INVALID_ARGUMENT")
        }
        let body: JSONValue
        switch geminiParseBody(r) {
        case .success(let b): body = b
        case .failure(let f): return f.response
        }
        let batch = Self.gField(body, "batch") ?? body
        let inputConfig = Self.gField(batch, "inputConfig")
        let inline = Self.gField(inputConfig, "requests")
        let fileName = Self.gField(inputConfig, "fileName")?.stringValue
        guard (inline == nil) != (fileName == nil) else {
            return errorResponse(.gemini, status: 400,
                message: "* batch.input_config: exactly one of requests or file_name must be set", type: "INVALID_ARGUMENT")
        }
        var ids = PackedIDs()
        let input: EmulatorBatchInput
        if let inline {
            let list = Self.gField(inline, "requests")?.arrayValue ?? []
            var builder = EmulatorBatchInput.Builder()
            for entry in list {
                let request = Self.gField(entry, "request") ?? .object([:])
                let metadata = entry["metadata"]
                let key = metadata?["key"]?.stringValue ?? ""
                var line: [String: JSONValue] = ["key": .string(key), "request": request]
                line["metadata"] = metadata
                builder.append(.object(line), problem: Self.geminiItemProblem(request, kind: kind))
                ids.append(key)
            }
            input = builder.finish()
        } else if let fileName {
            let id = fileName.hasPrefix("files/") ? String(fileName.dropFirst(6)) : fileName
            guard let file = geminiState.withLock({ geminiLiveFile(id, in: $0) }) else { return geminiNotFound(fileName) }
            // The batch reads the file's own stored lines; only problems and keys are kept apart.
            var bad: Int?
            var problems: [Int: String] = [:]
            file.content.forEachLine { line, number in
                guard bad == nil else { return }
                guard let json = try? JSONValue(parsing: line), case .object = json else { bad = number; return }
                let request = Self.gField(json, "request") ?? .object([:])
                if let problem = Self.geminiItemProblem(request, kind: kind) { problems[ids.count] = problem }
                ids.append(json["key"]?.stringValue ?? "")
            }
            if let bad {
                return errorResponse(.gemini, status: 400, message: "Invalid JSON in the input file \(fileName) at line \(bad).", type: "INVALID_ARGUMENT")
            }
            input = EmulatorBatchInput(sharing: file.content, count: ids.count, problems: problems)
        } else {
            input = EmulatorBatchInput.Builder().finish()
        }
        guard input.count > 0 else {
            return errorResponse(.gemini, status: 400, message: "* batch.input_config: the batch has no requests", type: "INVALID_ARGUMENT")
        }
        recordSent(EmulatorIDList(ids.lazy.filter { !$0.isEmpty }))
        let fault = batchFault(.gemini)
        var malformed = 0
        if case .malformedResultLines(let n)? = fault { malformed = n }
        let id = newID("", hexDigits: 36)
        let created = elapsed
        let displayName = Self.gField(batch, "displayName")?.stringValue
        let b = GeminiEmulatedBatch(
            id: id, kind: kind, model: model, displayName: displayName, version: r.path.contains("/v1beta/") ? "v1beta" : "v1",
            inputFile: fileName.map { $0.hasPrefix("files/") ? $0 : "files/" + $0 }, input: input,
            priority: Self.gField(batch, "priority")?.intValue ?? 0, created: created, cancelled: nil,
            errorOnly: fault == .errorFileOnly, malformedLines: malformed, resultsFile: nil, inlineOutput: nil, final: nil)
        geminiState.withLock { s in
            s.batches[id] = b
            s.batchOrder.append(id)
        }
        billJob("batches/" + id, provider: .gemini, customIDs: EmulatorIDList(ids))
        let pending = GeminiBatchSnapshot(state: "BATCH_STATE_PENDING", finished: 0, succeeded: 0, failed: 0, pending: input.count, end: nil)
        return .json(200, geminiOperation(b, snapshot: pending, output: nil, includeOutput: false))
    }

    /// Why one batch item's request is invalid; `nil` when it is fine.
    static func geminiItemProblem(_ request: JSONValue, kind: GeminiEmulatedBatch.Kind) -> String? {
        switch kind {
        case .generate: return geminiGenerateProblem(request)
        case .embed: return geminiEmbedProblem(request)
        }
    }

    // MARK: - Time model

    /// The batch's state now; a terminal state is remembered the first time it is seen.
    func geminiObserve(_ b: GeminiEmulatedBatch) -> GeminiBatchSnapshot {
        if let f = b.final { return f }
        let s = geminiSnapshot(b)
        guard s.isTerminal else { return s }
        return geminiState.withLock { st in
            if st.batches[b.id] != nil, st.batches[b.id]?.final == nil { st.batches[b.id]?.final = s }
            return st.batches[b.id]?.final ?? s
        }
    }

    func geminiSnapshot(_ b: GeminiEmulatedBatch) -> GeminiBatchSnapshot {
        let total = b.input.count
        let (duration, expiry) = config.withLock { ($0.batchDuration, $0.batchExpiry) }
        func failures(in n: Int) -> Int { b.errorOnly ? n : b.input.problemCount(inFirst: n) }
        if let c = b.cancelled {
            let done = finishedCount(total: total, age: c - b.created)
            let failed = failures(in: done)
            return GeminiBatchSnapshot(
                state: "BATCH_STATE_CANCELLED", finished: done, succeeded: done - failed, failed: failed + (total - done), pending: 0, end: c)
        }
        let age = elapsed - b.created
        if let expiry {
            let doneAtExpiry = finishedCount(total: total, age: expiry)
            if isExpired(age: age, finished: doneAtExpiry, total: total) {
                let failed = failures(in: doneAtExpiry)
                return GeminiBatchSnapshot(
                    state: "BATCH_STATE_EXPIRED", finished: doneAtExpiry, succeeded: doneAtExpiry - failed,
                    failed: failed + (total - doneAtExpiry), pending: 0, end: b.created + expiry)
            }
        }
        let done = finishedCount(total: total, age: age)
        let failed = failures(in: done)
        if done == total {
            return GeminiBatchSnapshot(
                state: "BATCH_STATE_SUCCEEDED", finished: done, succeeded: done - failed, failed: failed, pending: 0,
                end: b.created + max(.zero, duration))
        }
        let pendingWindow = min(.seconds(1), duration / 10)
        let state = done == 0 && age < pendingWindow ? "BATCH_STATE_PENDING" : "BATCH_STATE_RUNNING"
        return GeminiBatchSnapshot(state: state, finished: done, succeeded: done - failed, failed: failed, pending: total - done, end: nil)
    }

    // MARK: - Results

    /// The result of item `index` (`response` or `error`) from its stored `line`, without key or
    /// metadata.
    func geminiItemResult(
        _ b: GeminiEmulatedBatch, _ index: Int, line: JSONValue, snapshot: GeminiBatchSnapshot
    ) -> (name: String, value: JSONValue) {
        if index >= snapshot.finished {
            return ("error", ["code": 1, "message": "The batch was cancelled before this request was processed."])
        }
        let request = Self.gField(line, "request") ?? .object([:])
        if let problem = b.input.problems[index] {
            return ("error", ["code": 3, "message": .string("Request contains an invalid argument. " + problem)])
        }
        if b.errorOnly {
            return ("error", ["code": 13, "message": "Internal error encountered."])
        }
        switch b.kind {
        case .generate:
            return ("response", geminiAnswer(request, model: b.model))
        case .embed:
            var r = Self.geminiEmbedding(request)
            r = .object((r.objectValue ?? [:]).merging([
                "tokenCount": .string(String(Self.tokenCount(Self.geminiContentText(Self.gField(request, "content"))))),
            ]) { a, _ in a })
            return ("response", r)
        }
    }

    /// Stands in an Operation's JSON for the stored inline output until the answer is written
    /// (``geminiInlineAnswer(_:inline:)``); random, so no client text can look like it.
    static let geminiInlineMarker = "\u{0}inline-output-" + UUID().uuidString

    /// The output of a terminal batch with results: inline responses, or the generated result
    /// file (written once, on first need). `nil` for expired batches (no results). Inline
    /// responses are stored as JSON text: `json` holds ``geminiInlineMarker`` in their place.
    func geminiOutput(_ id: String, snapshot: GeminiBatchSnapshot) -> (json: JSONValue, inline: EmulatorBlob?)? {
        guard snapshot.isTerminal, snapshot.state != "BATCH_STATE_EXPIRED" else { return nil }
        guard let b = geminiState.withLock({ $0.batches[id] }) else { return nil }
        if b.inputFile == nil {
            let marked: JSONValue = ["inlinedResponses": .string(Self.geminiInlineMarker)]
            if let cached = b.inlineOutput { return (marked, cached) }
            // `{"inlinedResponses":[…]}` written item by item from the stored requests.
            let writer = EmulatorBlob.Writer()
            writer.append("{\"inlinedResponses\":[".utf8)
            var item: [UInt8] = []
            b.input.forEach { i, line in
                let (name, value) = geminiItemResult(b, i, line: line, snapshot: snapshot)
                var o: [String: JSONValue] = [name: value]
                if let m = line["metadata"], m.objectValue?.isEmpty == false { o["metadata"] = m }
                item.removeAll(keepingCapacity: true)
                if i > 0 { item.append(UInt8(ascii: ",")) }
                JSONValue.object(o).write(into: &item)
                writer.append(item)
            }
            writer.append("]}".utf8)
            let output = writer.finish()
            let stored = geminiState.withLock { s -> EmulatorBlob? in
                if s.batches[id] != nil, s.batches[id]?.inlineOutput == nil { s.batches[id]?.inlineOutput = output }
                return s.batches[id]?.inlineOutput
            }
            return (marked, stored ?? output)
        }
        let fileID = "batch-" + b.id
        if b.resultsFile == nil {
            // Written line by line into a blob (on disk once large), read back from the input.
            var out = EmulatorResultsWriter()
            b.input.forEach { i, input in
                let (name, value) = geminiItemResult(b, i, line: input, snapshot: snapshot)
                var keyPart = 0
                out.appendLine({ line in
                    line.append(contentsOf: "{\"key\":".utf8)
                    JSONValue.string(input["key"]?.stringValue ?? "").write(into: &line)
                    keyPart = line.count
                    line.append(contentsOf: ",\"\(name)\":".utf8)
                    value.write(into: &line)
                    line.append(UInt8(ascii: "}"))
                }, cut: i < b.malformedLines ? { max(keyPart + 4, $0 / 2) } : nil)
            }
            let file = GeminiEmulatedFile(
                id: fileID, displayName: nil, mimeType: "application/jsonl", content: out.finish(), created: snapshot.end ?? elapsed,
                generated: true)
            geminiState.withLock { s in
                guard s.batches[id] != nil, s.batches[id]?.resultsFile == nil else { return }
                s.batches[id]?.resultsFile = "files/" + fileID
                s.files[fileID] = file
                s.fileOrder.append(fileID)
            }
        }
        return (["responsesFile": .string("files/" + fileID)], nil)
    }

    /// An Operation answer, with the stored inline output written where its marker stands.
    static func geminiInlineAnswer(_ op: JSONValue, inline: EmulatorBlob?) -> EmulatorResponse {
        guard let inline else { return .json(200, op) }
        let text = op.serialized()
        let marker = JSONValue.string(geminiInlineMarker).serialized()
        let output = inline.data
        var out = Data()
        out.reserveCapacity(text.count + 2 * output.count)
        var from = text.startIndex
        while let found = text.range(of: marker, in: from..<text.endIndex) {
            out.append(text[from..<found.lowerBound])
            out.append(output)
            from = found.upperBound
        }
        out.append(text[from...])
        return .bytes(out, contentType: "application/json")
    }

    /// The Operation for a batch (`name`, `metadata` = the batch, `done`, `response` / `error`).
    func geminiOperation(_ b: GeminiEmulatedBatch, snapshot s: GeminiBatchSnapshot, output: JSONValue?, includeOutput: Bool) -> JSONValue {
        let name = JSONValue.string("batches/" + b.id)
        let batchType = b.kind == .generate ? "GenerateContentBatch" : "EmbedContentBatch"
        var stats: [String: JSONValue] = ["requestCount": .string(String(b.input.count))]
        if s.succeeded > 0 { stats["successfulRequestCount"] = .string(String(s.succeeded)) }
        if s.failed > 0 { stats["failedRequestCount"] = .string(String(s.failed)) }
        if s.pending > 0 { stats["pendingRequestCount"] = .string(String(s.pending)) }
        var meta: [String: JSONValue] = [
            "@type": .string(Self.geminiTypePrefix + batchType), "model": .string(b.model), "name": name,
            "createTime": geminiTime(b.created), "updateTime": geminiTime(s.end ?? (s.state == "BATCH_STATE_PENDING" ? b.created : elapsed)),
            "batchStats": .object(stats), "state": .string(s.state),
        ]
        if let d = b.displayName, !d.isEmpty { meta["displayName"] = .string(d) }
        if let f = b.inputFile { meta["inputConfig"] = ["fileName": .string(f)] }
        if b.priority != 0 { meta["priority"] = .string(String(b.priority)) }
        if let end = s.end { meta["endTime"] = geminiTime(end) }
        var op: [String: JSONValue] = ["name": name]
        var outputForList = output
        if !includeOutput, let o = output, o["inlinedResponses"] != nil { outputForList = nil }
        if let o = outputForList { meta["output"] = o }
        op["metadata"] = .object(meta)
        if s.isTerminal { op["done"] = true }
        switch s.state {
        case "BATCH_STATE_SUCCEEDED":
            if let o = outputForList {
                var response = o.objectValue ?? [:]
                response["@type"] = .string(Self.geminiTypePrefix + batchType + "Output")
                op["response"] = .object(response)
            }
        case "BATCH_STATE_CANCELLED":
            op["error"] = ["code": 1, "message": "The batch was cancelled."]
        case "BATCH_STATE_EXPIRED":
            op["error"] = ["code": 4, "message": "The batch expired before all requests were processed."]
        default: break
        }
        return .object(op)
    }

    // MARK: - Get, list, cancel, delete

    func geminiGetBatch(id: String) -> EmulatorResponse {
        guard let b = geminiState.withLock({ $0.batches[id] }) else { return geminiNotFound("batches/\(id)") }
        let snapshot = geminiObserve(b)
        let output = geminiOutput(id, snapshot: snapshot)
        let current = geminiState.withLock { $0.batches[id] } ?? b
        let op = geminiOperation(current, snapshot: snapshot, output: output?.json, includeOutput: true)
        return Self.geminiInlineAnswer(op, inline: output?.inline)
    }

    /// `GET batches?pageSize=&pageToken=`: newest first, without inline results.
    func geminiListBatches(_ r: EmulatorRequest) -> EmulatorResponse {
        let all: [GeminiEmulatedBatch] = geminiState.withLock { s in s.batchOrder.reversed().compactMap { s.batches[$0] } }
        let (page, next) = Self.geminiPage(all, r, defaultSize: 50, maxSize: 1000)
        var ops: [JSONValue] = []
        for b in page {
            let snapshot = geminiObserve(b)
            // Inline results are left out of lists: do not build them.
            let output = b.inputFile == nil ? nil : geminiOutput(b.id, snapshot: snapshot)?.json
            let current = geminiState.withLock { $0.batches[b.id] } ?? b
            ops.append(geminiOperation(current, snapshot: snapshot, output: output, includeOutput: false))
        }
        var body: [String: JSONValue] = [:]
        if !ops.isEmpty { body["operations"] = .array(ops) }
        if let next { body["nextPageToken"] = .string(next) }
        return .json(200, .object(body))
    }

    /// `POST batches/{id}:cancel`: a pending or running batch becomes `CANCELLED` now; a finished
    /// one is left as it is. Answers `{}`.
    func geminiCancelBatch(id: String) -> EmulatorResponse {
        guard let b = geminiState.withLock({ $0.batches[id] }) else { return geminiNotFound("batches/\(id)") }
        if !geminiObserve(b).isTerminal {
            let now = elapsed
            let first = geminiState.withLock { s -> Bool in
                guard s.batches[id]?.cancelled == nil else { return false }
                s.batches[id]?.cancelled = now
                return true
            }
            if first { billCancel("batches/" + id, ran: finishedCount(total: b.input.count, age: now - b.created)) }
        }
        return .json(200, [:])
    }

    /// `DELETE batches/{id}`: drops the record (and with it any further processing). Answers `{}`.
    func geminiDeleteBatch(id: String) -> EmulatorResponse {
        // A batch deleted while it runs stops: bill what ran up to now.
        if let b = geminiState.withLock({ $0.batches[id] }), !geminiObserve(b).isTerminal {
            billCancel("batches/" + id, ran: finishedCount(total: b.input.count, age: elapsed - b.created))
        }
        let existed = geminiState.withLock { s -> Bool in
            guard s.batches.removeValue(forKey: id) != nil else { return false }
            s.batchOrder.removeAll { $0 == id }
            return true
        }
        return existed ? .json(200, [:]) : geminiNotFound("batches/\(id)")
    }
}
