import BatchKit
import Foundation

/// A per-key token-bucket pair (requests and tokens per minute), continuously refilled as the
/// providers document their limits.
struct RateWindow {
    var requests: Double
    var tokens: Double
    var lastRefill: Duration
}

/// The outcome of admitting one model call against the rate limits.
struct RateDecision {
    var allowed: Bool
    var requestLimit: Int?
    var requestRemaining: Int
    var requestReset: Duration
    var tokenLimit: Int?
    var tokenRemaining: Int
    var tokenReset: Duration
    /// When not allowed: how long until the call would be admitted.
    var retryAfter: Duration
    /// Which budget ran out: `requests` or `tokens`.
    var exhausted: String
}

extension ProviderEmulator {
    // MARK: - Authentication

    /// The API key a request carries, as the provider would read it: OpenAI `Authorization:
    /// Bearer`, Azure `api-key`, Anthropic `x-api-key` (or Bearer, as the newest SDK sends),
    /// Gemini `x-goog-api-key` or `?key=`.
    static func apiKey(of r: EmulatorRequest, provider: EmulatedProvider) -> String? {
        func bearer() -> String? {
            guard let a = r.headers["Authorization"], a.lowercased().hasPrefix("bearer ") else { return nil }
            let k = String(a.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            return k.isEmpty ? nil : k
        }
        switch provider {
        case .openAI: return bearer() ?? r.headers["api-key"]
        case .anthropic: return r.headers["x-api-key"] ?? bearer()
        case .gemini: return r.headers["x-goog-api-key"] ?? r.query["key"]
        }
    }

    /// Checks the request's key. Returns the key, or the provider's 401 (Gemini: 400
    /// `API_KEY_INVALID`) answer.
    func authenticate(_ r: EmulatorRequest, _ provider: EmulatedProvider) -> Result<String, EmulatorFailure> {
        let required = config.withLock { $0.requiredAPIKey }
        guard let key = Self.apiKey(of: r, provider: provider), !key.isEmpty else {
            switch provider {
            case .openAI:
                return .failure(EmulatorFailure(errorResponse(.openAI, status: 401,
                    message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    type: "invalid_request_error", code: "missing_api_key")))
            case .anthropic:
                return .failure(EmulatorFailure(errorResponse(.anthropic, status: 401, message: "x-api-key header is required", type: "authentication_error")))
            case .gemini:
                return .failure(EmulatorFailure(errorResponse(.gemini, status: 403,
                    message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                    type: "PERMISSION_DENIED")))
            }
        }
        if let required, key != required {
            switch provider {
            case .openAI:
                return .failure(EmulatorFailure(errorResponse(.openAI, status: 401,
                    message: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                    type: "invalid_request_error", code: "invalid_api_key")))
            case .anthropic:
                return .failure(EmulatorFailure(errorResponse(.anthropic, status: 401, message: "invalid x-api-key", type: "authentication_error")))
            case .gemini:
                return .failure(EmulatorFailure(errorResponse(.gemini, status: 400,
                    message: "API key not valid. Please pass a valid API key.", type: "INVALID_ARGUMENT",
                    details: [["@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"]])))
            }
        }
        return .success(key)
    }

    // MARK: - Error bodies

    /// The provider's error envelope for a status.
    ///
    /// - OpenAI: `{"error":{"message","type","param","code"}}`
    /// - Anthropic: `{"type":"error","error":{"type","message"},"request_id"}`
    /// - Gemini: `{"error":{"code","message","status","details"?}}`
    func errorResponse(
        _ provider: EmulatedProvider, status: Int, message: String, type: String? = nil, code: String? = nil,
        param: String? = nil, details: [JSONValue]? = nil, headers: HTTPHeaders = [:]
    ) -> EmulatorResponse {
        switch provider {
        case .openAI:
            let t = type ?? (status >= 500 ? "server_error" : "invalid_request_error")
            let body: JSONValue = ["error": [
                "message": .string(message), "type": .string(t),
                "param": param.map(JSONValue.string) ?? .null, "code": code.map(JSONValue.string) ?? .null,
            ]]
            var h = headers
            h["x-request-id"] = newID("req_", hexDigits: 32)
            return .json(status, body, headers: h)
        case .anthropic:
            let t = type ?? Self.anthropicErrorType(status)
            let body: JSONValue = [
                "type": "error", "error": ["type": .string(t), "message": .string(message)],
                "request_id": .string(newID("req_", hexDigits: 24)),
            ]
            var h = headers
            h["request-id"] = body["request_id"]?.stringValue
            return .json(status, body, headers: h)
        case .gemini:
            var err: [String: JSONValue] = [
                "code": .int(status), "message": .string(message), "status": .string(type ?? Self.googleStatus(status)),
            ]
            if let details { err["details"] = .array(details) }
            return .json(status, ["error": .object(err)], headers: headers)
        }
    }

    static func anthropicErrorType(_ status: Int) -> String {
        switch status {
        case 401: return "authentication_error"
        case 402: return "billing_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 409: return "conflict_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 504: return "timeout_error"
        case 529: return "overloaded_error"
        case 500...: return "api_error"
        default: return "invalid_request_error"
        }
    }

    static func googleStatus(_ status: Int) -> String {
        switch status {
        case 400: return "INVALID_ARGUMENT"
        case 401: return "UNAUTHENTICATED"
        case 403: return "PERMISSION_DENIED"
        case 404: return "NOT_FOUND"
        case 409: return "ALREADY_EXISTS"
        case 429: return "RESOURCE_EXHAUSTED"
        case 503: return "UNAVAILABLE"
        case 504: return "DEADLINE_EXCEEDED"
        default: return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION"
        }
    }

    /// The provider's "overloaded" answer: Anthropic 529 `overloaded_error`, otherwise 503.
    func overloadedResponse(_ provider: EmulatedProvider) -> EmulatorResponse {
        switch provider {
        case .anthropic: return errorResponse(.anthropic, status: 529, message: "Overloaded", type: "overloaded_error")
        case .openAI:
            return errorResponse(.openAI, status: 503, message: "The engine is currently overloaded, please try again later.", type: "server_error")
        case .gemini: return errorResponse(.gemini, status: 503, message: "The model is overloaded. Please try again later.", type: "UNAVAILABLE")
        }
    }

    // MARK: - Rate limits

    /// Admits one model call of `tokens` estimated tokens for `key` against the configured limits,
    /// and consumes the budget when allowed; first waits the call's share of the latency jitter.
    func admit(key: String, provider: EmulatedProvider, tokens: Int) async -> RateDecision {
        let (rpm, tpm, window, jitter) = config.withLock { ($0.requestsPerMinute, $0.tokensPerMinute, $0.rateLimitWindow, $0.latencyJitter) }
        if jitter > .zero {
            let draw = shared.withLock { Double($0.jitterRNG.next() >> 11) / Double(1 << 53) }
            try? await sleepFor(jitter * draw)
        }
        let now = nowOffset()
        // Bucket capacities: `window`'s worth of each limit (a minute's by default).
        let share = window.seconds / 60
        let requestCap = rpm.map { max(1, Double($0) * share) }
        let tokenCap = tpm.map { max(1, Double($0) * share) }
        return shared.withLock { s -> RateDecision in
            let bucketKey = provider.rawValue + ":" + key
            var w = s.buckets[bucketKey] ?? RateWindow(requests: requestCap ?? 0, tokens: tokenCap ?? 0, lastRefill: now)
            let dt = (now - w.lastRefill).seconds
            if let rpm, let requestCap { w.requests = min(requestCap, w.requests + dt * Double(rpm) / 60) }
            if let tpm, let tokenCap { w.tokens = min(tokenCap, w.tokens + dt * Double(tpm) / 60) }
            w.lastRefill = now
            var allowed = true
            var wait: Double = 0
            var exhausted = ""
            if let rpm, w.requests < 1 {
                allowed = false
                wait = max(wait, (1 - w.requests) / (Double(rpm) / 60))
                exhausted = "requests"
            }
            if let tpm, let tokenCap, w.tokens < min(Double(tokens), tokenCap) {
                allowed = false
                wait = max(wait, (min(Double(tokens), tokenCap) - w.tokens) / (Double(tpm) / 60))
                if exhausted.isEmpty { exhausted = "tokens" }
            }
            if allowed {
                if rpm != nil { w.requests -= 1 }
                if tpm != nil { w.tokens -= Double(tokens) }
            } else {
                s.rateLimited += 1
            }
            s.buckets[bucketKey] = w
            let reqReset = rpm.map { Duration.seconds(((requestCap ?? 0) - w.requests) / (Double($0) / 60)) } ?? .zero
            let tokReset = tpm.map { Duration.seconds(((tokenCap ?? 0) - w.tokens) / (Double($0) / 60)) } ?? .zero
            return RateDecision(
                allowed: allowed, requestLimit: rpm, requestRemaining: max(0, Int(w.requests.rounded(.down))),
                requestReset: reqReset, tokenLimit: tpm, tokenRemaining: max(0, Int(w.tokens.rounded(.down))),
                tokenReset: tokReset, retryAfter: .seconds(wait), exhausted: exhausted)
        }
    }

    /// The provider's rate-limit headers for a decision (none for Gemini, which sends none).
    func rateLimitHeaders(_ d: RateDecision, provider: EmulatedProvider) -> HTTPHeaders {
        var h = HTTPHeaders()
        switch provider {
        case .openAI:
            if let l = d.requestLimit {
                h["x-ratelimit-limit-requests"] = String(l)
                h["x-ratelimit-remaining-requests"] = String(d.requestRemaining)
                h["x-ratelimit-reset-requests"] = Self.goDuration(d.requestReset)
            }
            if let l = d.tokenLimit {
                h["x-ratelimit-limit-tokens"] = String(l)
                h["x-ratelimit-remaining-tokens"] = String(d.tokenRemaining)
                h["x-ratelimit-reset-tokens"] = Self.goDuration(d.tokenReset)
            }
        case .anthropic:
            if let l = d.requestLimit {
                h["anthropic-ratelimit-requests-limit"] = String(l)
                h["anthropic-ratelimit-requests-remaining"] = String(d.requestRemaining)
                h["anthropic-ratelimit-requests-reset"] = Self.rfc3339(now.addingTimeInterval(d.requestReset.seconds), fractionDigits: 0)
            }
            if let l = d.tokenLimit {
                for kind in ["tokens", "input-tokens"] {
                    h["anthropic-ratelimit-\(kind)-limit"] = String(l)
                    h["anthropic-ratelimit-\(kind)-remaining"] = String(d.tokenRemaining)
                    h["anthropic-ratelimit-\(kind)-reset"] = Self.rfc3339(now.addingTimeInterval(d.tokenReset.seconds), fractionDigits: 0)
                }
            }
        case .gemini:
            break
        }
        return h
    }

    /// The provider's 429 answer for a refused decision, with its headers and `retry-after`.
    func rateLimitedResponse(_ d: RateDecision, provider: EmulatedProvider) -> EmulatorResponse {
        var h = rateLimitHeaders(d, provider: provider)
        let wait = max(d.retryAfter.seconds, 0.001)
        switch provider {
        case .openAI:
            h["retry-after"] = String(Int(wait.rounded(.up)))
            h["retry-after-ms"] = String(Int((wait * 1000).rounded(.up)))
            let what = d.exhausted == "tokens" ? "tokens per min (TPM)" : "requests per min (RPM)"
            let limit = d.exhausted == "tokens" ? d.tokenLimit ?? 0 : d.requestLimit ?? 0
            return errorResponse(.openAI, status: 429,
                message: "Rate limit reached for emulated-model in organization org-emulator on \(what): Limit \(limit). Please try again in \(Self.goDuration(.seconds(wait))).",
                type: d.exhausted == "tokens" ? "tokens" : "requests", code: "rate_limit_exceeded", headers: h)
        case .anthropic:
            h["retry-after"] = String(Int(wait.rounded(.up)))
            return errorResponse(.anthropic, status: 429,
                message: "This request would exceed the rate limit for your organization of \(d.exhausted == "tokens" ? "\(d.tokenLimit ?? 0) tokens" : "\(d.requestLimit ?? 0) requests") per minute.",
                type: "rate_limit_error", headers: h)
        case .gemini:
            let delay = String(format: "%.3fs", wait)
            return errorResponse(.gemini, status: 429,
                message: "You exceeded your current quota, please check your plan and billing details. Please retry in \(delay).",
                type: "RESOURCE_EXHAUSTED",
                details: [
                    ["@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [["quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"]]],
                    ["@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": .string(delay)],
                ], headers: h)
        }
    }

    /// Go `time.Duration` text as OpenAI sends it: `6m0s`, `1.5s`, `20ms`.
    static func goDuration(_ d: Duration) -> String {
        let s = max(0, d.seconds)
        if s < 1 {
            let ms = Int((s * 1000).rounded(.up))
            return "\(ms)ms"
        }
        let minutes = Int(s / 60)
        let rest = s - Double(minutes * 60)
        let secText = rest.rounded() == rest ? String(Int(rest)) : String(format: "%.3g", rest)
        return minutes > 0 ? "\(minutes)m\(secText)s" : "\(secText)s"
    }

    /// RFC 3339 in UTC with `fractionDigits` fraction digits and `Z`.
    static func rfc3339(_ date: Date, fractionDigits: Int) -> String {
        let t = date.timeIntervalSince1970
        let whole = floor(t)
        var tm = tm()
        var tt = time_t(whole)
        gmtime_r(&tt, &tm)
        var s = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
                       Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        if fractionDigits > 0 {
            let frac = t - whole
            let scaled = Int((frac * pow(10, Double(fractionDigits))).rounded(.down))
            let digits = String(scaled)
            s += "." + String(repeating: "0", count: max(0, fractionDigits - digits.count)) + digits
        }
        return s + "Z"
    }

    // MARK: - Deterministic answers

    /// A rough token count: one token per four bytes, at least one.
    static func tokenCount(_ text: String) -> Int { max(1, (text.utf8.count + 3) / 4) }

    /// A deterministic answer derived from the prompt: the same prompt always gives the same text
    /// and usage, different prompts give different texts.
    static func syntheticAnswer(prompt: String, maxTokens: Int?) -> (text: String, inputTokens: Int, outputTokens: Int, truncated: Bool) {
        let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
                     "kilo", "lima", "mike", "november", "oscar", "papa"]
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in prompt.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let wanted = 4 + Int(h % 12)
        // The "Echo(…): " head counts 4 tokens, each word one; `maxTokens` caps the whole answer.
        let limit = maxTokens.map { max(1, $0) } ?? Int.max
        let count = min(wanted, max(0, limit - 4))
        var rng = SplitMix64(seed: h)
        var parts: [String] = []
        parts.reserveCapacity(count)
        for _ in 0..<count { parts.append(words[Int(rng.next() % UInt64(words.count))]) }
        let text = "Echo(\(String(h % 1_000_000, radix: 36))):" + (parts.isEmpty ? "" : " " + parts.joined(separator: " "))
        return (text, tokenCount(prompt), min(wanted + 4, limit), wanted + 4 > limit)
    }

    /// A deterministic unit-length embedding for a text: the same text gives the same vector,
    /// different texts give different vectors.
    static func syntheticEmbedding(_ text: String, dimensions: Int) -> [Float] {
        var h: UInt64 = 0x8422_2325_cbf2_9ce4
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var rng = SplitMix64(seed: h)
        var v = (0..<max(1, dimensions)).map { _ in Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        let norm = sqrt(v.reduce(0) { $0 + $1 * $1 })
        if norm > 0 { v = v.map { $0 / norm } }
        return v
    }

    /// Base64 of little-endian float32 values, as OpenAI's `encoding_format: "base64"` returns.
    static func base64Floats(_ v: [Float]) -> String {
        var data = Data(capacity: v.count * 4)
        for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data.base64EncodedString()
    }
}

/// A ready-made failure answer (the provider's error envelope), for early returns.
struct EmulatorFailure: Error {
    var response: EmulatorResponse
    init(_ response: EmulatorResponse) { self.response = response }
}
