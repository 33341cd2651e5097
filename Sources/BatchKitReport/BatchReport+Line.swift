import BatchKit
import Foundation

/// What ``BatchReport`` counts of one output line, read either from a parsed ``JSONValue`` (the
/// reference reading) or from the bytes by ``OutputLineScanner``. Both readings give the same
/// facts for the same line; the report counts facts, so both give the same report.
struct LineFacts {
    var hasMeta = false
    /// `response` is absent or `null`.
    var responseIsNull = true
    /// `response.status_code` is 2xx.
    var success = false
    var metaRoute: String?
    var attempts: Int?
    var latencyMs: Double?
    var rateLimited: Int?
    var startedAt: Double?
    var endedAt: Double?
    /// `batchkit.fields.model`, else the body's `model`, else its `modelVersion`.
    var model: String?
    /// `batchkit.usage`.
    var usage: Usage?
    /// The usage the provider's body states (read only for a success without `batchkit.usage`).
    var bodyUsage = Usage.zero
    var cost: Double?
    var jobID: String?
    /// For a failure: its code and example message, and the code a job's status is inferred from.
    var errorCode = ""
    var errorMessage = ""
    var jobFailureCode = ""

    /// The reference reading, from a parsed line (an object with a string `custom_id`).
    init(_ o: [String: JSONValue]) {
        let meta = o["batchkit"] ?? .null
        hasMeta = meta.objectValue != nil
        let response = o["response"] ?? .null
        responseIsNull = response.isNull
        let status = response["status_code"]?.intValue
        success = status.map { (200..<300).contains($0) } ?? false
        let body = response["body"] ?? .null
        metaRoute = meta["route"]?.stringValue
        attempts = meta["attempts"]?.intValue
        latencyMs = meta["latency_ms"]?.doubleValue
        rateLimited = meta["rate_limited"]?.intValue
        startedAt = meta["started_at"]?.doubleValue
        endedAt = meta["ended_at"]?.doubleValue
        model = meta["fields"]?["model"]?.stringValue ?? body["model"]?.stringValue ?? body["modelVersion"]?.stringValue
        usage = meta["usage"].flatMap(OutputLineFormat.usage(fromMember:))
        if success, usage == nil { bodyUsage = ModelResponse.parsing(providerBody: body).usage }
        cost = meta["cost"]?.doubleValue
        jobID = meta["job_id"]?.stringValue
        if !success {
            setFailure(
                metaCode: meta["error"]?["code"]?.stringValue, bodyError: body["error"] ?? .null,
                lineError: o["error"] ?? .null, status: status)
        }
    }

    /// The scanner's reading of `line` (whose bytes are `b`).
    init(_ line: OutputLineScanner.Line, in b: UnsafeBufferPointer<UInt8>, interning: inout StringInterning) {
        hasMeta = line.meta.isObject
        responseIsNull = line.response.kind == .absent || line.response.kind == .null
        let status = line.statusCode.intValue(in: b)
        success = status.map { (200..<300).contains($0) } ?? false
        metaRoute = interning.string(line.route, in: b)
        attempts = line.attempts.intValue(in: b)
        latencyMs = line.latency.doubleValue
        rateLimited = line.rateLimited.intValue(in: b)
        startedAt = line.startedAt.doubleValue
        endedAt = line.endedAt.doubleValue
        model = interning.string(line.fieldsModel, in: b) ?? interning.string(line.bodyModel, in: b)
            ?? interning.string(line.bodyModelVersion, in: b)
        if line.usage.isObject {
            let c = line.usageCounts
            usage = Usage(
                inputTokens: c.0.intValue(in: b) ?? 0, outputTokens: c.1.intValue(in: b) ?? 0,
                cachedInputTokens: c.2.intValue(in: b) ?? 0, reasoningTokens: c.3.intValue(in: b) ?? 0,
                batchInputTokens: c.4.intValue(in: b) ?? 0, batchOutputTokens: c.5.intValue(in: b) ?? 0,
                cacheWriteTokens: c.6.intValue(in: b) ?? 0, cacheWrite1hTokens: c.7.intValue(in: b) ?? 0)
        }
        if success, usage == nil { bodyUsage = ModelResponse.parsing(providerBody: line.body.json(in: b)).usage }
        cost = line.cost.doubleValue
        jobID = interning.string(line.jobID, in: b)
        if !success {
            setFailure(
                metaCode: interning.string(line.metaErrorCode, in: b), bodyError: line.bodyError.json(in: b),
                lineError: line.lineError.json(in: b), status: status)
        }
    }

    private mutating func setFailure(metaCode: String?, bodyError e: JSONValue, lineError: JSONValue, status: Int?) {
        errorCode = metaCode ?? e["code"]?.stringValue ?? lineError["code"]?.stringValue ?? status.map { "http_\($0)" } ?? "error"
        errorMessage = e["message"]?.stringValue ?? lineError["message"]?.stringValue ?? e.stringValue ?? ""
        jobFailureCode = metaCode ?? lineError["code"]?.stringValue ?? "error"
    }
}

/// The strings the scanner has made, by their bytes: a line's model, route, job id and error code
/// are mostly the ones of the lines before, so each is made once (a name longer than 15 bytes
/// would otherwise cost an allocation a line). Bounded: at most ``capacity`` entries, replaced in
/// turn.
struct StringInterning: Sendable {
    static let capacity = 64
    private var bytes: [[UInt8]] = []
    private var strings: [String] = []
    private var next = 0

    /// ``ScannedValue/stringValue(in:)``, from the table when the same bytes were seen.
    mutating func string(_ v: ScannedValue, in b: UnsafeBufferPointer<UInt8>) -> String? {
        guard v.kind == .string else { return v.stringValue(in: b) }
        let s = v.start + 1
        let n = v.end - 1 - s
        if n == 0 { return "" }
        let p = b.baseAddress! + s
        for k in bytes.indices {
            let candidate = bytes[k]
            if candidate.count == n, candidate.withUnsafeBufferPointer({ memcmp($0.baseAddress!, p, n) == 0 }) {
                return strings[k]
            }
        }
        let made = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        let copy = Array(UnsafeBufferPointer(start: p, count: n))
        if bytes.count < Self.capacity {
            bytes.append(copy)
            strings.append(made)
        } else {
            bytes[next] = copy
            strings[next] = made
            next = (next + 1) % Self.capacity
        }
        return made
    }
}
