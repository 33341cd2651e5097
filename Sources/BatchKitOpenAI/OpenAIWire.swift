public import BatchKit
public import Foundation

/// OpenAI's wire format: request bodies, response parsing and error classification.
///
/// Shared by `OpenAIClient`, `OpenAIBatchBackend` and anything else that speaks OpenAI (any
/// OpenAI-compatible server). The request bodies and the response vocabulary are those of the
/// batch-line interchange format the core defines (`BatchRequest(batchLine:)`), so this type
/// forwards to it rather than keeping a copy.
public enum OpenAIWire {
    /// The chat completions endpoint path.
    public static let chatEndpoint = BatchLine.chatEndpoint
    /// The embeddings endpoint path.
    public static let embeddingsEndpoint = BatchLine.embeddingsEndpoint

    // MARK: - Request bodies

    /// The JSON body posted for a request: ``chatBody(_:)``, ``embeddingBody(_:)`` or the raw body.
    /// Cache breakpoints (``CacheControl``) are not written: OpenAI caches prompt prefixes on its own.
    public static func body(of body: BatchRequest.Body) -> JSONValue { BatchLine.body(of: body, cacheMarkers: false) }

    /// The `/v1/chat/completions` body of a chat request.
    ///
    /// `system` becomes a leading `system` message; `maxTokens` is written as
    /// `max_completion_tokens` (or `max_tokens` when ``ChatRequest/usesLegacyMaxTokens``); integral
    /// numbers are written as integers; `extra` is merged last and overrides what BatchKit wrote.
    /// Tools as `tools`, `tool_choice`, `parallel_tool_calls`, assistant `tool_calls` and
    /// `role: tool` messages with `tool_call_id`; ``ChatRequest/promptCacheKey`` as
    /// `prompt_cache_key`. Cache breakpoints are not written (OpenAI caches prefixes on its own).
    public static func chatBody(_ c: ChatRequest) -> JSONValue { BatchLine.chatBody(c, cacheMarkers: false) }

    /// Rejects what OpenAI cannot express in a chat request: a Gemini ``ChatRequest/cachedContent``
    /// (field `cached_content`).
    public static func validate(_ c: ChatRequest) throws(BatchError) {
        if c.cachedContent != nil {
            throw .validation(
                "OpenAI has no named cached content (a Gemini feature); OpenAI caches prompt prefixes on its own, steered by prompt_cache_key",
                field: "cached_content")
        }
    }

    /// One chat message in OpenAI's shape; `extra` is merged last.
    public static func message(_ m: Message) -> JSONValue { BatchLine.message(m, cacheMarkers: false) }

    /// One content part in OpenAI's shape (`text`, `image_url`, or the verbatim `other` JSON).
    public static func contentPart(_ p: ContentPart) -> JSONValue { BatchLine.contentPart(p) }

    /// OpenAI's `response_format` object.
    public static func responseFormat(_ f: ResponseFormat) -> JSONValue { BatchLine.responseFormat(f) }

    /// The `/v1/embeddings` body: `input` is a string when ``EmbeddingRequest/isSingleInput`` and a
    /// list otherwise; `extra` (e.g. `encoding_format`, `user`) is merged last.
    public static func embeddingBody(_ e: EmbeddingRequest) -> JSONValue { BatchLine.embeddingBody(e) }

    // MARK: - Responses

    /// Parses a `/v1/chat/completions` answer: the first choice's text, its finish reason
    /// (`stop`, `length`, `tool_calls`, `content_filter`; a refusal counts as `content_filter`),
    /// usage with cached and reasoning tokens, the model, and the raw body.
    ///
    /// - Throws: `invalidResponse` when the body has no `choices` list.
    public static func parseChatResponse(_ body: JSONValue) throws(BatchError) -> ModelResponse {
        guard case .array(let choices)? = body["choices"] else {
            throw BatchError(.invalidResponse, "the chat completion has no \"choices\" list", isRetryable: false)
        }
        let first = choices.first
        let message = first?["message"]
        var text: String?
        switch message?["content"] {
        case .string(let s)?: text = s
        case .array(let parts)?:
            // Some OpenAI-compatible servers answer with content parts.
            text = parts.compactMap { $0["text"]?.stringValue }.joined()
        default: text = nil
        }
        var finish = first?["finish_reason"]?.stringValue.map(finishReason)
        if text == nil, message?["refusal"]?.stringValue != nil { finish = .contentFilter }
        return ModelResponse(
            text: text, finishReason: finish, usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body,
            toolCalls: OutputBody.toolCalls(message?["tool_calls"]))
    }

    /// OpenAI's `finish_reason` in BatchKit's vocabulary (`function_call` counts as `tool_calls`;
    /// unknown values pass through).
    public static func finishReason(_ raw: String) -> FinishReason { OutputBody.finishReason(raw) }

    /// Token usage in any of OpenAI's shapes: chat (`prompt_tokens`, `completion_tokens`,
    /// `*_tokens_details`), embeddings (`prompt_tokens`), responses (`input_tokens`, `output_tokens`).
    public static func usage(_ u: JSONValue?) -> Usage { OutputBody.usage(u) }

    /// Parses a `/v1/embeddings` answer: one vector per input in index order, whether the server
    /// sent float arrays or base64 strings of little-endian float32 (`encoding_format: "base64"`).
    ///
    /// - Throws: `invalidResponse` when `data` is missing or a vector cannot be read.
    public static func parseEmbeddingResponse(_ body: JSONValue) throws(BatchError) -> ModelResponse {
        guard case .array(let data)? = body["data"] else {
            throw BatchError(.invalidResponse, "the embedding response has no \"data\" list", isRetryable: false)
        }
        var indexed: [(Int, [Float])] = []
        indexed.reserveCapacity(data.count)
        for (position, item) in data.enumerated() {
            let index = item["index"]?.intValue ?? position
            switch item["embedding"] {
            case .array(let numbers)?:
                var v = [Float]()
                v.reserveCapacity(numbers.count)
                for n in numbers {
                    guard let d = n.doubleValue else {
                        throw BatchError(.invalidResponse, "embedding \(index) holds a non-number", isRetryable: false)
                    }
                    v.append(Float(d))
                }
                indexed.append((index, v))
            case .string(let b64)?:
                guard let v = decodeBase64Floats(b64) else {
                    throw BatchError(.invalidResponse, "embedding \(index) is not base64 float32 data", isRetryable: false)
                }
                indexed.append((index, v))
            default:
                throw BatchError(.invalidResponse, "embedding \(index) has no vector", isRetryable: false)
            }
        }
        indexed.sort { $0.0 < $1.0 }
        return ModelResponse(
            embeddings: indexed.map(\.1), usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body)
    }

    /// Decodes base64 of little-endian float32 values; `nil` when not base64 or not a whole number
    /// of floats.
    public static func decodeBase64Floats(_ text: String) -> [Float]? { OutputBody.decodeBase64Floats(text) }

    /// Parses any OpenAI answer for the endpoint it came from: chat and embeddings as above;
    /// other endpoints (`/v1/responses`, `/v1/completions`, `/v1/moderations`...) keep the raw
    /// body with usage, model, and the text where the shape has one.
    public static func parseResponse(_ body: JSONValue, endpoint: String) throws(BatchError) -> ModelResponse {
        switch endpoint {
        case chatEndpoint, "/chat/completions": return try parseChatResponse(body)
        case embeddingsEndpoint, "/embeddings": return try parseEmbeddingResponse(body)
        default: return parseRawResponse(body)
        }
    }

    /// The parsed fields of an answer from an endpoint BatchKit does not model: `usage`, `model`,
    /// and the text of chat choices, completion choices (`choices[0].text`) or Responses API
    /// `output_text` items.
    public static func parseRawResponse(_ body: JSONValue) -> ModelResponse { OutputBody.decodeText(body) }

    // MARK: - Errors

    /// Classifies an OpenAI error answer.
    ///
    /// - code from the status (``BatchError/code(forHTTPStatus:)``); Azure's `content_filter`
    ///   becomes `contentFiltered`;
    /// - `providerType` is the body's `type`, `field` its `param`, the message carries `code`;
    /// - `retryAfter` from `retry-after-ms` / `retry-after`, falling back on a 429 to the matching
    ///   `x-ratelimit-reset-*` header;
    /// - a 429 `insufficient_quota` (out of credit) is not retryable; `x-should-retry: true|false`
    ///   overrides the status rule, as in the official SDKs;
    /// - the answer's rate-limit headers are attached as ``BatchError/rateLimit``.
    ///
    /// Anything that looks like an OpenAI key (`sk-...`) in the server's message is masked.
    public static func error(status: Int, headers: HTTPHeaders, body: Data, now: Date = Date()) -> BatchError {
        let json = body.isEmpty ? nil : try? JSONValue(parsing: body)
        var fallback: String?
        if json == nil, !body.isEmpty {
            let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { fallback = text }
        }
        return error(status: status, headers: headers, json: json, fallbackMessage: fallback, now: now)
    }

    /// Classifies an OpenAI error body already parsed (e.g. the `response.body` of a batch
    /// error-file line). See the `Data` overload.
    public static func error(status: Int, headers: HTTPHeaders = [:], body: JSONValue?, now: Date = Date()) -> BatchError {
        error(status: status, headers: headers, json: body, fallbackMessage: nil, now: now)
    }

    static func error(status: Int, headers: HTTPHeaders, json: JSONValue?, fallbackMessage: String?, now: Date) -> BatchError {
        let e = json?["error"]
        // OpenAI nests the error; some compatible servers (vLLM) put its fields at the top level.
        let type = e?["type"]?.stringValue ?? json?["type"]?.stringValue
        let code: String? = e?["code"]?.stringValue ?? e?["code"]?.intValue.map(String.init)
        let param = e?["param"]?.stringValue
        var message = e?["message"]?.stringValue ?? e?.stringValue ?? json?["message"]?.stringValue
            ?? fallbackMessage ?? "HTTP \(status) from the OpenAI API"
        if let code, !message.contains(code) { message += " (code: \(code))" }
        message = redactKeys(message)

        var errorCode = BatchError.code(forHTTPStatus: status)
        if code == "content_filter" || code == "content_policy_violation" { errorCode = .contentFiltered }
        var retryable = errorCode.isRetryableByDefault
        if code == "insufficient_quota" || type == "insufficient_quota" { retryable = false }
        switch headers["x-should-retry"]?.lowercased() {
        case "true": retryable = true
        case "false": retryable = false
        default: break
        }
        let rateLimit = RateLimitHeaderParser.openAI.parse(headers, now: now)
        var retryAfter = RateLimitHeaderParsing.retryAfter(headers, now: now)
        if retryAfter == nil, status == 429, let rateLimit {
            retryAfter = resetFallback(rateLimit, type: type)
        }
        return BatchError(
            errorCode, message, httpStatus: status, providerType: type, field: param, retryAfter: retryAfter,
            isRetryable: retryable, rateLimit: rateLimit)
    }

    /// The reset time of the budget a 429 is about: the one its `type` names (`requests` or
    /// `tokens`), else the exhausted one, else the sooner one.
    static func resetFallback(_ info: RateLimitInfo, type: String?) -> Duration? {
        if type == "requests", let r = info.requests.resetAfter { return r }
        if type == "tokens", let t = info.tokens.resetAfter { return t }
        var candidates: [Duration] = []
        if info.requests.remaining == 0, let r = info.requests.resetAfter { candidates.append(r) }
        if info.tokens.remaining == 0, let t = info.tokens.resetAfter { candidates.append(t) }
        if let longest = candidates.max() { return longest }
        return [info.requests.resetAfter, info.tokens.resetAfter].compactMap { $0 }.min()
    }

    /// Masks anything that looks like an OpenAI key (`sk-...`, including the partly starred form
    /// OpenAI echoes in 401 messages).
    public static func redactKeys(_ text: String) -> String {
        guard text.contains("sk-") else { return text }
        var out = ""
        var rest = Substring(text)
        while let r = rest.range(of: "sk-") {
            out += rest[rest.startIndex..<r.lowerBound]
            var end = r.upperBound
            while end < rest.endIndex, let c = rest[end].unicodeScalars.first,
                CharacterSet.alphanumerics.contains(c) || c == "-" || c == "_" || c == "*"
            {
                end = rest.index(after: end)
            }
            // Only at a word start: `task-1` is not a key.
            let atWordStart = r.lowerBound == rest.startIndex && out.last.map { !$0.isLetter && !$0.isNumber } ?? true
                || r.lowerBound != rest.startIndex
                    && !(rest[rest.index(before: r.lowerBound)].isLetter || rest[rest.index(before: r.lowerBound)].isNumber)
            out += (end == r.upperBound || !atWordStart) ? rest[r.lowerBound..<end] : "sk-<redacted>"
            rest = rest[end...]
        }
        return out + rest
    }
}
