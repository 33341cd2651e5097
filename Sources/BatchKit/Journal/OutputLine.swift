import Foundation

// MARK: - BatchResult ⇄ OpenAI batch output line

/// The conversion between a ``BatchResult`` and one line of OpenAI's batch **output** format, the
/// format of the journal and of `batchkit run --output`:
///
/// ```json
/// {"id":"batch_req_…","custom_id":"a","response":{"status_code":200,"request_id":"…","body":{…}},"error":null,"batchkit":{…}}
/// {"id":"batch_req_…","custom_id":"b","response":{"status_code":400,"request_id":"","body":{"error":{…}}},"error":null}
/// {"id":"batch_req_…","custom_id":"c","response":null,"error":{"code":"batch_expired","message":"…"}}
/// ```
///
/// - A success has status 200 and, as `body`, the provider's own response body
///   (``ModelResponse/raw``) — a chat completion or embedding list in the line's own format, or
///   another provider's answer as that provider sent it. When a client gave no raw body (a
///   ``ClosureClient`` returning `ModelResponse(text:)`), a body in the line's format is written
///   from the parsed fields.
/// - A failure with an HTTP status has that status and `{"error":{"message","type","param","code"}}`
///   as body; a failure without one (network, timeout, expired, cancelled, validation) has
///   `response: null` and `error: {code, message}` (`batch_expired` / `batch_cancelled` for those,
///   as the format writes them; BatchKit's code otherwise).
/// - The extra member `"batchkit"` keeps what the format cannot hold, so a result read back is the
///   result written: `route`, `attempts`, `latency_ms`, the normalised `usage` (bodies of different
///   providers count tokens differently, and batch-billed tokens are not visible in a body), for
///   failures BatchKit's error `code`, `retryable` and `field`, and for successes `fields`: the
///   normalised fields the provider's decoder produced (`text`, `finish_reason`, `model`,
///   `embeddings`) that a reading of the body in the line's own format would not give back —
///   nothing for a body in that format, the text and finish reason for another provider's body.
///   Where a result sits in its run: `started_at`/`ended_at` (integer milliseconds since the Unix
///   epoch, UTC), `job_id` for batch items, `rate_limited` (429 answers met, when any) and `cost`
///   (US dollars, when the processor had a price) — what `batchkit report` draws.
///   Every provider's tool calls are in `tool_calls` (`[{"id","name","arguments"}]`, arguments as
///   JSON), cache reads and writes in `usage` (`cached`, `cache_write`, `cache_write_1h`), and the
///   request's ``BatchRequest/metadata`` in `metadata`: one shape whichever provider answered.
///   Readers of the format ignore unknown members. Lines without `batchkit` (an output file
///   downloaded from a provider) are read too: usage comes from the body, route is `.batch`; lines
///   without `fields` (written before it existed) are read as described in
///   ``ModelResponse/parsing(providerBody:)``.
extension BatchResult {
    /// This result as one batch output line.
    public func outputLine() -> JSONValue {
        var line: [String: JSONValue] = [
            "id": .string(OutputLineFormat.newLineID()),
            "custom_id": .string(id),
        ]
        let (response, error) = responseAndError()
        line["response"] = response
        line["error"] = error
        line["batchkit"] = batchKitMember()
        return .object(line)
    }

    /// The output line as compact JSON text without a newline, members in the order OpenAI writes
    /// them (`id`, `custom_id`, `response`, `error`), then `batchkit`.
    package func outputLineBytes() -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(512)
        writeOutputLine(into: &out)
        return out
    }

    /// Appends the output line (compact, no newline) to `out`.
    func writeOutputLine(into out: inout [UInt8]) {
        let (response, error) = responseAndError()
        out.append(contentsOf: Array(#"{"id":"#.utf8))
        JSONValue.writeString(OutputLineFormat.newLineID(), into: &out)
        out.append(contentsOf: Array(#","custom_id":"#.utf8))
        JSONValue.writeString(id, into: &out)
        out.append(contentsOf: Array(#","response":"#.utf8))
        response.write(into: &out)
        out.append(contentsOf: Array(#","error":"#.utf8))
        error.write(into: &out)
        out.append(contentsOf: Array(#","batchkit":"#.utf8))
        batchKitMember().write(into: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// Restores a result from a batch output line.
    ///
    /// Restores the id, success or failure, usage (from the `batchkit` member, else from the body:
    /// `usage.prompt_tokens`/`completion_tokens`, `usage.input_tokens`/`output_tokens`, or Gemini's
    /// `usageMetadata`), text (`choices[0].message.content`, Anthropic `content[].text`, Gemini
    /// `candidates[0].content.parts[].text`), embeddings, finish reason, model, and the error's code,
    /// message, HTTP status, type and field.
    ///
    /// - Throws: ``BatchError/Code/validation`` naming the missing or malformed member.
    public init(outputLine line: JSONValue) throws(BatchError) {
        guard case .object(let o) = line else { throw .validation("an output line must be a JSON object") }
        guard let id = o["custom_id"]?.stringValue else {
            throw .validation("missing or non-string \"custom_id\"", field: "custom_id")
        }
        let meta = o["batchkit"] ?? .null
        let route = meta["route"]?.stringValue.flatMap(Route.init(rawValue:)) ?? .batch
        let latency = meta["latency_ms"]?.doubleValue.map { Duration.milliseconds($0) } ?? .zero
        let storedUsage = meta["usage"].flatMap(OutputLineFormat.usage(fromMember:))
        let metadata = (meta["metadata"]?.objectValue ?? [:]).compactMapValues(\.stringValue)

        if case .object(let response) = o["response"] ?? .null {
            guard let status = response["status_code"]?.intValue else {
                throw .validation("\"response\" has no integer \"status_code\"", field: "response.status_code")
            }
            let body = response["body"] ?? .null
            if (200..<300).contains(status) {
                var model: ModelResponse
                if case .object(let fields)? = meta["fields"] {
                    model = OutputBody.decode(body)
                    OutputLineFormat.apply(fields, to: &model)
                } else {
                    model = ModelResponse.parsing(providerBody: body)
                }
                if let calls = meta["tool_calls"] { model.toolCalls = OutputLineFormat.toolCalls(fromMember: calls) }
                let usage = storedUsage ?? (route == .batch ? model.usage.asBatch : model.usage)
                model.usage = usage
                self.init(
                    id: id, outcome: .success(model), attempts: meta["attempts"]?.intValue ?? 1, usage: usage,
                    latency: latency, route: route, metadata: metadata)
                OutputLineFormat.restoreRunFields(from: meta, into: &self)
            } else {
                let e = body["error"] ?? .null
                let message = e["message"]?.stringValue ?? e.stringValue ?? body.stringValue ?? "HTTP \(status)"
                let error = OutputLineFormat.error(
                    code: meta["error"]?["code"]?.stringValue.map(BatchError.Code.init(rawValue:))
                        ?? BatchError.code(forHTTPStatus: status),
                    message: message, httpStatus: status,
                    providerType: e["type"]?.stringValue ?? e["status"]?.stringValue,
                    field: meta["error"]?["field"]?.stringValue ?? e["param"]?.stringValue,
                    retryable: meta["error"]?["retryable"]?.boolValue)
                self.init(
                    id: id, outcome: .failure(error), attempts: meta["attempts"]?.intValue ?? 1,
                    usage: storedUsage ?? .zero, latency: latency, route: route, metadata: metadata)
                OutputLineFormat.restoreRunFields(from: meta, into: &self)
            }
            return
        }
        guard case .object(let e) = o["error"] ?? .null else {
            throw .validation("an output line needs a \"response\" or an \"error\" object", field: "response")
        }
        let code = meta["error"]?["code"]?.stringValue.map(BatchError.Code.init(rawValue:))
            ?? OutputLineFormat.code(forLineErrorCode: e["code"]?.stringValue ?? "")
        let error = OutputLineFormat.error(
            code: code, message: e["message"]?.stringValue ?? code.rawValue, httpStatus: nil, providerType: nil,
            field: meta["error"]?["field"]?.stringValue, retryable: meta["error"]?["retryable"]?.boolValue)
        self.init(
            id: id, outcome: .failure(error), attempts: meta["attempts"]?.intValue ?? 0, usage: storedUsage ?? .zero,
            latency: latency, route: meta["route"] == nil ? .none : route, metadata: metadata)
        OutputLineFormat.restoreRunFields(from: meta, into: &self)
    }

    /// `response` and `error` members of the output line.
    private func responseAndError() -> (response: JSONValue, error: JSONValue) {
        switch outcome {
        case .success(let r):
            var body = r.raw
            if body.isNull { body = OutputBody.encode(r) }
            let requestID = body["id"]?.stringValue ?? body["responseId"]?.stringValue ?? ""
            return (["status_code": 200, "request_id": .string(requestID), "body": body], .null)
        case .failure(let e):
            if let status = e.httpStatus {
                let err: JSONValue = [
                    "message": .string(e.message),
                    "type": e.providerType.map(JSONValue.string) ?? .string(OutputLineFormat.errorType(for: e.code)),
                    "param": e.field.map(JSONValue.string) ?? .null,
                    "code": .string(e.code.rawValue),
                ]
                return (["status_code": .int(status), "request_id": "", "body": ["error": err]], .null)
            }
            return (.null, ["code": .string(OutputLineFormat.lineErrorCode(for: e.code)), "message": .string(e.message)])
        }
    }

    /// The `batchkit` member: what the OpenAI format cannot hold.
    private func batchKitMember() -> JSONValue {
        var m: [String: JSONValue] = [
            "route": .string(route.rawValue),
            "attempts": .int(attempts),
            "usage": OutputLineFormat.member(for: usage),
        ]
        let ms = Double(latency.components.seconds) * 1000 + Double(latency.components.attoseconds) / 1e15
        m["latency_ms"] = .int(Int(ms.rounded()))
        OutputLineFormat.writeRunFields(of: self, into: &m)
        if case .success(let r) = outcome {
            m["fields"] = OutputLineFormat.fields(of: r)
            if !r.toolCalls.isEmpty { m["tool_calls"] = OutputLineFormat.member(for: r.toolCalls) }
        }
        if !metadata.isEmpty { m["metadata"] = .object(metadata.mapValues(JSONValue.string)) }
        if case .failure(let e) = outcome {
            var err: [String: JSONValue] = ["code": .string(e.code.rawValue), "retryable": .bool(e.isRetryable)]
            if let field = e.field { err["field"] = .string(field) }
            m["error"] = .object(err)
        }
        return .object(m)
    }
}

extension ModelResponse {
    /// Parses the fields BatchKit models out of the body of an output line that carries no
    /// normalised `fields` (an output file downloaded from a provider, or a line written before
    /// BatchKit recorded them), keeping the body as ``raw``.
    ///
    /// A body in the line's own format (chat completion, completion, Responses API, embedding list)
    /// is read as that format; any other body through the read-only reader of older lines (see
    /// `LegacyOutputBody`). Unknown shapes give a response with only `raw` set. New results carry
    /// the fields their provider's decoder produced, so nothing here decides them.
    package static func parsing(providerBody body: JSONValue) -> ModelResponse {
        let r = OutputBody.decode(body)
        if r.text != nil || r.embeddings != nil { return r }
        return LegacyOutputBody.decode(body) ?? r
    }
}

/// Helpers of the output-line format.
package enum OutputLineFormat {
    /// A fresh `batch_req_…` line id (24 random hex digits, as OpenAI's are).
    static func newLineID() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64
        let b = g.next() as UInt64
        let hex = String(a, radix: 16) + String(b & 0xFFFF_FFFF, radix: 16)
        return "batch_req_" + String(repeating: "0", count: max(0, 24 - hex.count)) + hex
    }

    static func error(
        code: BatchError.Code, message: String, httpStatus: Int?, providerType: String?, field: String?, retryable: Bool?
    ) -> BatchError {
        BatchError(code, message, httpStatus: httpStatus, providerType: providerType, field: field, isRetryable: retryable)
    }

    /// OpenAI's `error.code` for failures without an HTTP answer.
    static func lineErrorCode(for code: BatchError.Code) -> String {
        switch code {
        case .expired: return "batch_expired"
        case .cancelled: return "batch_cancelled"
        default: return code.rawValue
        }
    }

    static func code(forLineErrorCode s: String) -> BatchError.Code {
        switch s {
        case "batch_expired": return .expired
        case "batch_cancelled": return .cancelled
        case "": return .server
        default: return BatchError.Code(rawValue: s)
        }
    }

    /// The OpenAI error `type` for a code, when the error did not carry the provider's own.
    static func errorType(for code: BatchError.Code) -> String {
        switch code {
        case .rateLimited: return "rate_limit_error"
        case .authentication: return "authentication_error"
        case .permission: return "permission_error"
        case .notFound: return "not_found_error"
        case .invalidRequest, .validation: return "invalid_request_error"
        case .overloaded: return "overloaded_error"
        default: return "server_error"
        }
    }

    /// Adds the members that place a result in its run: `started_at` and `ended_at` (integer
    /// milliseconds since 1970-01-01 UTC), `job_id` (batch route), `rate_limited` (429 answers met,
    /// when any) and `cost` (US dollars, when priced). Each is left out when unknown.
    static func writeRunFields(of r: BatchResult, into m: inout [String: JSONValue]) {
        if let t = r.startedAt { m["started_at"] = .int(epochMilliseconds(t)) }
        if let t = r.endedAt { m["ended_at"] = .int(epochMilliseconds(t)) }
        if let job = r.jobID { m["job_id"] = .string(job) }
        if r.rateLimitedAttempts > 0 { m["rate_limited"] = .int(r.rateLimitedAttempts) }
        if let cost = r.cost, cost.isFinite { m["cost"] = .double(cost) }
    }

    /// Reads back what ``writeRunFields(of:into:)`` wrote; absent members leave the defaults.
    static func restoreRunFields(from meta: JSONValue, into r: inout BatchResult) {
        r.startedAt = meta["started_at"]?.doubleValue.map { Date(timeIntervalSince1970: $0 / 1000) }
        r.endedAt = meta["ended_at"]?.doubleValue.map { Date(timeIntervalSince1970: $0 / 1000) }
        r.jobID = meta["job_id"]?.stringValue
        r.rateLimitedAttempts = meta["rate_limited"]?.intValue ?? 0
        r.cost = meta["cost"]?.doubleValue
    }

    /// Whole milliseconds since 1970-01-01 UTC.
    static func epochMilliseconds(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// The `batchkit.usage` member: zero counts are left out.
    static func member(for u: Usage) -> JSONValue {
        var m: [String: JSONValue] = ["input": .int(u.inputTokens), "output": .int(u.outputTokens)]
        if u.cachedInputTokens != 0 { m["cached"] = .int(u.cachedInputTokens) }
        if u.reasoningTokens != 0 { m["reasoning"] = .int(u.reasoningTokens) }
        if u.batchInputTokens != 0 { m["batch_input"] = .int(u.batchInputTokens) }
        if u.batchOutputTokens != 0 { m["batch_output"] = .int(u.batchOutputTokens) }
        if u.cacheWriteTokens != 0 { m["cache_write"] = .int(u.cacheWriteTokens) }
        if u.cacheWrite1hTokens != 0 { m["cache_write_1h"] = .int(u.cacheWrite1hTokens) }
        return .object(m)
    }

    /// The `batchkit.tool_calls` member: `[{"id","name","arguments"}]`, arguments as JSON (the
    /// same for every provider).
    static func member(for calls: [ToolCall]) -> JSONValue {
        .array(calls.map { ["id": .string($0.id), "name": .string($0.name), "arguments": $0.arguments] })
    }

    static func toolCalls(fromMember v: JSONValue) -> [ToolCall] {
        (v.arrayValue ?? []).compactMap { c in
            guard let name = c["name"]?.stringValue else { return nil }
            return ToolCall(id: c["id"]?.stringValue ?? "", name: name, arguments: c["arguments"] ?? .object([:]))
        }
    }

    package static func usage(fromMember m: JSONValue) -> Usage? {
        guard case .object = m else { return nil }
        return Usage(
            inputTokens: m["input"]?.intValue ?? 0, outputTokens: m["output"]?.intValue ?? 0,
            cachedInputTokens: m["cached"]?.intValue ?? 0, reasoningTokens: m["reasoning"]?.intValue ?? 0,
            batchInputTokens: m["batch_input"]?.intValue ?? 0, batchOutputTokens: m["batch_output"]?.intValue ?? 0,
            cacheWriteTokens: m["cache_write"]?.intValue ?? 0, cacheWrite1hTokens: m["cache_write_1h"]?.intValue ?? 0)
    }

    /// The `batchkit.fields` member of a success: each normalised field of `r` that reading the
    /// body in the line's own format (``OutputBody/decode(_:)``) would not give back. Empty for a
    /// body in that format; room for tool calls when ``ModelResponse`` carries them.
    static func fields(of r: ModelResponse) -> JSONValue {
        // A response without a raw body is written as ``OutputBody/encode(_:)`` of its own fields,
        // which reads back as they are (but for a finish reason the format spells differently).
        let decoded = r.raw.isNull && r.finishReason.map({ OutputBody.finishReason($0.rawValue) == $0 }) ?? true
            ? r : OutputBody.decode(r.raw.isNull ? OutputBody.encode(r) : r.raw)
        var f: [String: JSONValue] = [:]
        if decoded.text != r.text { f["text"] = r.text.map(JSONValue.string) ?? .null }
        if decoded.finishReason != r.finishReason { f["finish_reason"] = r.finishReason.map { .string($0.rawValue) } ?? .null }
        if decoded.model != r.model { f["model"] = r.model.map(JSONValue.string) ?? .null }
        if decoded.embeddings != r.embeddings {
            f["embeddings"] = r.embeddings.map { .array($0.map { .array($0.map { .double(Double($0)) }) }) } ?? .null
        }
        return .object(f)
    }

    /// Sets the fields a `batchkit.fields` member records on `r` (a `null` field clears it).
    static func apply(_ fields: [String: JSONValue], to r: inout ModelResponse) {
        if let t = fields["text"] { r.text = t.stringValue }
        if let f = fields["finish_reason"] { r.finishReason = f.stringValue.map(FinishReason.init(rawValue:)) }
        if let m = fields["model"] { r.model = m.stringValue }
        if let e = fields["embeddings"] {
            r.embeddings = e.arrayValue?.map { v in (v.arrayValue ?? []).map { Float($0.doubleValue ?? 0) } }
        }
    }
}
