import BatchKit
import Foundation

/// One emulated Anthropic message batch. Its state is computed lazily from creation time, the
/// configured batch duration and expiry, and the cancellation time, whenever it is read; once it
/// has ended, the end is frozen so later reads agree.
struct AnthropicEmulatedBatch {
    let id: String
    /// The requests, one `{"custom_id", "params"}` line each (stored once, on disk when large);
    /// invalid `params` are found at create and answered `errored` once processed.
    let input: EmulatorBatchInput
    var total: Int { input.count }
    /// Creation time on the emulator's clock.
    let created: Duration
    let expiry: Duration
    var cancelAt: Duration?
    var end: End?

    enum EndReason {
        /// Every request was processed.
        case completed
        /// Cancelled: requests not yet processed became `canceled`.
        case canceled
        /// `expires_at` was reached: requests not yet processed became `expired`.
        case expired
    }

    struct End {
        let offset: Duration
        let finished: Int
        let reason: EndReason
        /// Whether the error-file-only fault was active: every processed request `errored` (api_error).
        let errorOnly: Bool
        let errored: Int
        var succeeded: Int { finished - errored }
    }
}

/// The configuration values a batch read needs, taken before the state lock.
struct AnthropicBatchClock {
    var now: Duration
    var duration: Duration
    var fault: EmulatorFault.Kind?
    var publicBaseURL: URL
    var startDate: Date
}

extension ProviderEmulator {
    static let anthropicArchiveAge: Duration = .seconds(29 * 86_400)

    func anthropicBatchClock() -> AnthropicBatchClock {
        let (duration, base) = config.withLock { ($0.batchDuration, $0.publicBaseURL) }
        return AnthropicBatchClock(
            now: nowOffset(), duration: duration, fault: batchFault(.anthropic), publicBaseURL: base, startDate: startDate)
    }

    // MARK: - Time model

    /// Ends the batch if one of its end events (all processed, expiry, cancel drained) has
    /// happened by `clock.now`.
    static func anthropicAdvance(_ b: inout AnthropicEmulatedBatch, _ clock: AnthropicBatchClock) {
        guard b.end == nil else { return }
        let total = b.total
        let duration = max(.zero, clock.duration)
        func finished(at t: Duration) -> Int {
            if duration <= .zero { return total }
            let fraction = min(1, max(0, (t - b.created).seconds / duration.seconds))
            return min(total, Int((Double(total) * fraction).rounded(.down)))
        }
        let done = b.created + duration
        let expires = b.created + b.expiry
        let drain = anthropicCancelDrain(duration)
        let cancelEnd = b.cancelAt.map { $0 + drain }
        var endAt = done
        var reason = AnthropicEmulatedBatch.EndReason.completed
        if expires < endAt { endAt = expires; reason = .expired }
        if let c = cancelEnd, c < endAt { endAt = c; reason = .canceled }
        guard endAt <= clock.now else { return }
        let n = reason == .completed ? total : finished(at: endAt)
        let errorOnly: Bool
        if case .errorFileOnly? = clock.fault { errorOnly = true } else { errorOnly = false }
        let errored = errorOnly ? n : b.input.problemCount(inFirst: n)
        b.end = AnthropicEmulatedBatch.End(
            offset: endAt, finished: n, reason: reason, errorOnly: errorOnly, errored: errored)
    }

    /// Cancellation drains the requests in flight: a tenth of the batch duration, at most 1 s.
    static func anthropicCancelDrain(_ duration: Duration) -> Duration { min(max(.zero, duration) / 10, .seconds(1)) }

    static func anthropicDate(_ offset: Duration, _ clock: AnthropicBatchClock) -> JSONValue {
        .string(rfc3339(clock.startDate.addingTimeInterval(offset.seconds), fractionDigits: 6))
    }

    /// The MessageBatch object: every key present, nulls explicit, RFC 3339 with 6 fraction digits.
    static func anthropicBatchJSON(_ b: AnthropicEmulatedBatch, _ clock: AnthropicBatchClock) -> JSONValue {
        let total = b.total
        var counts: [String: JSONValue] = ["processing": .int(total), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0]
        let status: String
        var endedAt: JSONValue = .null
        var resultsURL: JSONValue = .null
        if let e = b.end {
            status = "ended"
            counts["processing"] = 0
            counts["succeeded"] = .int(e.succeeded)
            counts["errored"] = .int(e.errored)
            let unfinished = total - e.finished
            switch e.reason {
            case .completed: break
            case .canceled: counts["canceled"] = .int(unfinished)
            case .expired: counts["expired"] = .int(unfinished)
            }
            endedAt = anthropicDate(e.offset, clock)
            var base = clock.publicBaseURL.absoluteString
            while base.hasSuffix("/") { base.removeLast() }
            resultsURL = .string(base + "/v1/messages/batches/\(b.id)/results")
        } else {
            status = b.cancelAt == nil ? "in_progress" : "canceling"
        }
        let archived = clock.now - b.created >= anthropicArchiveAge
        return [
            "id": .string(b.id), "type": "message_batch", "processing_status": .string(status),
            "request_counts": .object(counts),
            "created_at": anthropicDate(b.created, clock), "expires_at": anthropicDate(b.created + b.expiry, clock),
            "ended_at": endedAt, "cancel_initiated_at": b.cancelAt.map { anthropicDate($0, clock) } ?? .null,
            "archived_at": archived ? anthropicDate(b.created + anthropicArchiveAge, clock) : .null,
            "results_url": resultsURL,
        ]
    }

    func anthropicNotFound(_ id: String) -> EmulatorResponse {
        errorResponse(.anthropic, status: 404, message: "No message batch found with id '\(id)'.", type: "not_found_error")
    }

    // MARK: - Endpoints

    /// `POST /v1/messages/batches`: synchronous validation of the envelope (bounds, custom ids,
    /// size); each `params` is validated when processed (an `errored` result).
    func anthropicCreateBatch(_ request: EmulatorRequest) -> EmulatorResponse {
        let (maxRequests, maxBytes) = anthropicState.withLock { ($0.maxBatchRequests, $0.maxBatchBytes) }
        guard request.body.count <= maxBytes else {
            return errorResponse(
                .anthropic, status: 413, message: "Request exceeds the maximum allowed number of bytes (\(maxBytes)).",
                type: "request_too_large")
        }
        func bad(_ message: String) -> EmulatorResponse {
            errorResponse(.anthropic, status: 400, message: message, type: "invalid_request_error")
        }
        // A body that scans cleanly is read one request at a time (a large batch never becomes one
        // parsed tree); any other is parsed whole, for the same error answers as always.
        let requests: (count: Int, at: (Int) -> JSONValue)
        if let spans = EmulatorJSONSpans.arrayMember("requests", of: request.body) {
            requests = (spans.count, { (try? JSONValue(parsing: request.body[spans[$0]])) ?? .null })
        } else {
            guard let body = request.json, body.objectValue != nil else { return bad("The request body is not valid JSON.") }
            guard let list = body["requests"] else { return bad("requests: Field required") }
            guard let all = list.arrayValue else { return bad("requests: Input should be a valid list") }
            requests = (all.count, { all[$0] })
        }
        if requests.count == 0 { return bad("requests: List should have at least 1 item after validation, not 0") }
        if requests.count > maxRequests {
            return bad("requests: List should have at most \(maxRequests) items after validation, not \(requests.count)")
        }
        // Each request is written as one line as it is checked: the batch keeps those bytes, not
        // parsed values.
        var input = EmulatorBatchInput.Builder()
        var ids = PackedIDs()
        var seen = Set<String>()
        for i in 0..<requests.count {
            let r = requests.at(i)
            guard r.objectValue != nil else { return bad("requests.\(i): Input should be a valid dictionary") }
            guard let id = r["custom_id"]?.stringValue else { return bad("requests.\(i).custom_id: Field required") }
            guard Self.isAnthropicCustomID(id) else {
                return bad("requests.\(i).custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
            }
            guard seen.insert(id).inserted else {
                return bad("requests.\(i).custom_id: Duplicate custom_id '\(id)'; custom_id values must be unique within a batch.")
            }
            guard let params = r["params"] else { return bad("requests.\(i).params: Field required") }
            guard params.objectValue != nil else { return bad("requests.\(i).params: Input should be a valid dictionary") }
            input.append(["custom_id": .string(id), "params": params], problem: Self.anthropicValidate(params, inBatch: true))
            ids.append(id)
        }
        seen = []
        let sentIDs = EmulatorIDList(ids)
        recordSent(sentIDs)
        let clock = anthropicBatchClock()
        let expiry = configuration.batchExpiry ?? .seconds(86_400)
        let id = newID("msgbatch_01", hexDigits: 22)
        let batch = AnthropicEmulatedBatch(id: id, input: input.finish(), created: clock.now, expiry: expiry)
        anthropicState.withLock { s in
            s.batches[id] = batch
            s.order.append(id)
        }
        billJob(id, provider: .anthropic, customIDs: sentIDs)
        return .json(200, Self.anthropicBatchJSON(batch, clock))
    }

    /// `GET /v1/messages/batches/{id}`.
    func anthropicRetrieveBatch(id: String) -> EmulatorResponse {
        let clock = anthropicBatchClock()
        let json = anthropicState.withLock { s -> JSONValue? in
            guard var b = s.batches[id] else { return nil }
            Self.anthropicAdvance(&b, clock)
            s.batches[id] = b
            return Self.anthropicBatchJSON(b, clock)
        }
        guard let json else { return anthropicNotFound(id) }
        return .json(200, json)
    }

    /// `POST /v1/messages/batches/{id}/cancel`: `canceling` with `cancel_initiated_at`; an ended
    /// batch cannot be cancelled (400 `invalid_request_error`).
    func anthropicCancelBatch(id: String) -> EmulatorResponse {
        let clock = anthropicBatchClock()
        enum Outcome { case missing, ended, ok(JSONValue, ran: Int?) }
        let outcome = anthropicState.withLock { s -> Outcome in
            guard var b = s.batches[id] else { return .missing }
            Self.anthropicAdvance(&b, clock)
            if b.end != nil {
                s.batches[id] = b
                return .ended
            }
            var ran: Int?
            if b.cancelAt == nil {
                b.cancelAt = clock.now
                // What will have run when the cancel has drained: the batch as it ends.
                var ending = b
                var later = clock
                later.now = clock.now + Self.anthropicCancelDrain(clock.duration)
                Self.anthropicAdvance(&ending, later)
                ran = ending.end?.finished
            }
            s.batches[id] = b
            return .ok(Self.anthropicBatchJSON(b, clock), ran: ran)
        }
        switch outcome {
        case .missing: return anthropicNotFound(id)
        case .ended:
            return errorResponse(
                .anthropic, status: 400, message: "Batch '\(id)' has already ended and cannot be canceled.", type: "invalid_request_error")
        case .ok(let json, let ran):
            if let ran { billCancel(id, ran: ran) }
            return .json(200, json)
        }
    }

    /// `DELETE /v1/messages/batches/{id}`: only ended batches (else 400 `invalid_request_error`).
    func anthropicDeleteBatch(id: String) -> EmulatorResponse {
        let clock = anthropicBatchClock()
        enum Outcome { case missing, running, deleted }
        let outcome = anthropicState.withLock { s -> Outcome in
            guard var b = s.batches[id] else { return .missing }
            Self.anthropicAdvance(&b, clock)
            s.batches[id] = b
            guard b.end != nil else { return .running }
            s.batches[id] = nil
            s.order.removeAll { $0 == id }
            return .deleted
        }
        switch outcome {
        case .missing: return anthropicNotFound(id)
        case .running:
            return errorResponse(
                .anthropic, status: 400,
                message: "Batch '\(id)' is still processing; cancel it and wait for it to end before deleting it.",
                type: "invalid_request_error")
        case .deleted: return .json(200, ["id": .string(id), "type": "message_batch_deleted"])
        }
    }

    /// `GET /v1/messages/batches?limit=&after_id=&before_id=`: newest first.
    func anthropicListBatches(_ request: EmulatorRequest) -> EmulatorResponse {
        var limit = 20
        if let text = request.query["limit"] {
            guard let l = Int(text), (1...1000).contains(l) else {
                return errorResponse(
                    .anthropic, status: 400, message: "limit: Input should be between 1 and 1000", type: "invalid_request_error")
            }
            limit = l
        }
        let after = request.query["after_id"].flatMap { $0.isEmpty ? nil : $0 }
        let before = request.query["before_id"].flatMap { $0.isEmpty ? nil : $0 }
        let clock = anthropicBatchClock()
        let page = anthropicState.withLock { s -> (data: [JSONValue], hasMore: Bool)? in
            let newestFirst = Array(s.order.reversed())
            var slice: ArraySlice<String>
            var hasMore: Bool
            if let before {
                guard let i = newestFirst.firstIndex(of: before) else { return nil }
                let candidates = newestFirst[..<i]
                slice = candidates.suffix(limit)
                hasMore = candidates.count > limit
            } else {
                var start = 0
                if let after {
                    guard let i = newestFirst.firstIndex(of: after) else { return nil }
                    start = i + 1
                }
                slice = newestFirst[start...].prefix(limit)
                hasMore = newestFirst.count - start > limit
            }
            var data: [JSONValue] = []
            for id in slice {
                guard var b = s.batches[id] else { continue }
                Self.anthropicAdvance(&b, clock)
                s.batches[id] = b
                data.append(Self.anthropicBatchJSON(b, clock))
            }
            return (data, hasMore)
        }
        guard let page else {
            return errorResponse(.anthropic, status: 404, message: "No message batch found with the given cursor id.", type: "not_found_error")
        }
        return .json(200, [
            "data": .array(page.data), "has_more": .bool(page.hasMore),
            "first_id": page.data.first?["id"] ?? .null, "last_id": page.data.last?["id"] ?? .null,
        ])
    }

    /// `GET /v1/messages/batches/{id}/results`: JSONL, one line per request, in an order that is
    /// not the input order (clients must join on `custom_id`). Batch faults apply here:
    /// `malformedResultLines(n)` cuts the first `n` lines in half.
    func anthropicBatchResults(id: String) -> EmulatorResponse {
        let clock = anthropicBatchClock()
        enum Outcome { case missing, notEnded(String), archived, ok(AnthropicEmulatedBatch) }
        let outcome = anthropicState.withLock { s -> Outcome in
            guard var b = s.batches[id] else { return .missing }
            Self.anthropicAdvance(&b, clock)
            s.batches[id] = b
            if clock.now - b.created >= Self.anthropicArchiveAge { return .archived }
            guard b.end != nil else { return .notEnded(b.cancelAt == nil ? "in_progress" : "canceling") }
            return .ok(b)
        }
        let batch: AnthropicEmulatedBatch
        switch outcome {
        case .missing: return anthropicNotFound(id)
        case .archived:
            return errorResponse(.anthropic, status: 404, message: "Results for batch '\(id)' have been archived.", type: "not_found_error")
        case .notEnded(let status):
            return errorResponse(
                .anthropic, status: 404,
                message: "Results for batch '\(id)' are not available yet: processing_status is \(status).", type: "not_found_error")
        case .ok(let b): batch = b
        }
        guard let end = batch.end else { return anthropicNotFound(id) }
        var malformed = 0
        if case .malformedResultLines(let n)? = clock.fault { malformed = n }
        // Cache writes and reads in that order: the same for every download of the results.
        var batchCache = EmulatorPromptCache()
        var out = EmulatorResultsWriter()
        var position = 0
        // Odd positions first, then even ones: a deterministic order that is not the input order.
        // Two passes over the stored lines; the results are written to a blob as they are made.
        for parity in [1, 0] {
            batch.input.forEach(where: { $0 % 2 == parity }) { i, request in
                let customID = request["custom_id"]?.stringValue ?? ""
                let result: JSONValue
                if i < end.finished {
                    if let problem = batch.input.problems[i] {
                        result = ["type": "errored", "error": Self.anthropicErrorEnvelope("invalid_request_error", problem, seed: id + customID)]
                    } else if end.errorOnly {
                        result = ["type": "errored", "error": Self.anthropicErrorEnvelope("api_error", "Internal server error", seed: id + customID)]
                    } else {
                        let message = Self.anthropicAnswer(
                            params: request["params"] ?? .null, messageID: "msg_01" + Self.anthropicStableHex(id + customID, digits: 22),
                            serviceTier: "batch", cache: &batchCache)
                        result = ["type": "succeeded", "message": message]
                    }
                } else {
                    result = ["type": end.reason == .expired ? "expired" : "canceled"]
                }
                let line: JSONValue = ["custom_id": .string(customID), "result": result]
                out.appendLine({ line.write(into: &$0) }, cut: position < malformed ? { max(1, $0 / 2) } : nil)
                position += 1
            }
        }
        return .file(out.finish(), contentType: "application/x-jsonl")
    }

    static func anthropicErrorEnvelope(_ type: String, _ message: String, seed: String) -> JSONValue {
        ["type": "error", "error": ["type": .string(type), "message": .string(message)],
         "request_id": .string("req_01" + anthropicStableHex("req" + seed, digits: 22))]
    }

    /// `digits` hex characters derived from `text` (stable across downloads).
    static func anthropicStableHex(_ text: String, digits: Int) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var rng = SplitMix64(seed: h)
        var out = ""
        while out.count < digits {
            let w = String(rng.next(), radix: 16)
            out += String(repeating: "0", count: 16 - w.count) + w
        }
        return String(out.prefix(digits))
    }

    static func isAnthropicCustomID(_ id: String) -> Bool {
        let u = id.utf8
        guard (1...64).contains(u.count) else { return false }
        return u.allSatisfy { c in (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 45 }
    }
}
