public import BatchKit
public import Foundation

/// Translation between BatchKit's provider-neutral model and the Gemini Developer API's JSON
/// (`generativelanguage.googleapis.com`, proto3 JSON mapping: camelCase names, int64 as strings,
/// zero fields omitted).
///
/// Used by ``GeminiClient`` (real time) and ``GeminiBatchBackend`` (batch items carry the same
/// `GenerateContentRequest` / `EmbedContentRequest` bodies).
///
/// ```swift
/// let body = try GeminiWire.generateContentBody(ChatRequest(model: "gemini-2.5-flash", messages: [.user("Hi")]))
/// // {"contents":[{"parts":[{"text":"Hi"}],"role":"user"}]}
/// ```
public enum GeminiWire {
    // MARK: - Models

    /// The resource name of a model: `gemini-2.5-flash` → `models/gemini-2.5-flash`; names that
    /// already carry a collection (`models/…`, `tunedModels/…`) are kept.
    public static func modelResource(_ model: String) -> String {
        if model.hasPrefix("models/") || model.hasPrefix("tunedModels/") { return model }
        return "models/" + model
    }

    // MARK: - generateContent

    /// The `GenerateContentRequest` for a chat request.
    ///
    /// - `ChatRequest.system` and leading `system`/`developer` messages become `systemInstruction`;
    ///   a system message after the first user or assistant message is a validation error.
    /// - Roles `user` → `user`, `assistant` → `model`; other roles fail validation.
    /// - Images: inline base64 and `data:` URLs → `inlineData`; Files API URIs
    ///   (`https://generativelanguage.googleapis.com/…/files/…`) → `fileData.fileUri`. Other URLs
    ///   fail validation: `providers.md` documents `fileData` only for uploaded files.
    /// - `generationConfig`: `maxOutputTokens`, `temperature`, `topP`, `stopSequences`, `seed`;
    ///   JSON object → `responseMimeType: application/json`; JSON schema → also
    ///   `responseJsonSchema` (full JSON Schema; the schema's `name` has no Gemini counterpart
    ///   and is not sent). To use the OpenAPI-subset `responseSchema` instead, pass it in
    ///   `extra["generationConfig"]` and use the `.jsonObject` format.
    /// - `extra` is merged last: objects are merged key by key (so `extra["generationConfig"]`
    ///   adds to the generated config), everything else replaces what BatchKit wrote.
    /// - `ContentPart.other` and `Message.extra` have no Gemini form and fail validation naming
    ///   the field.
    public static func generateContentBody(_ chat: ChatRequest) throws(BatchError) -> JSONValue {
        var systemTexts: [String] = []
        if let s = chat.system { systemTexts.append(s) }
        var contents: [JSONValue] = []
        var seenConversation = false
        // Tool call ids → function names: a functionResponse names the function, not the call.
        var callNames: [String: String] = [:]
        // Function responses of consecutive tool messages share one user turn.
        var openResponses: [JSONValue]?
        func closeResponses() {
            if let parts = openResponses { contents.append(["role": "user", "parts": .array(parts)]) }
            openResponses = nil
        }
        for (i, message) in chat.messages.enumerated() {
            if let key = message.extra.keys.sorted().first {
                throw .validation("Gemini contents cannot carry the message field '\(key)'", field: "messages[\(i)].\(key)")
            }
            if !message.toolCalls.isEmpty, message.role != .assistant {
                throw .validation("only assistant messages carry tool calls", field: "messages[\(i)].tool_calls")
            }
            switch message.role {
            case .system, .developer:
                guard !seenConversation else {
                    throw .validation(
                        "Gemini has no system role inside a conversation; only leading system messages become systemInstruction",
                        field: "messages[\(i)].role")
                }
                for (j, part) in message.content.parts.enumerated() {
                    guard case .text(let t) = part else {
                        throw .validation("a Gemini systemInstruction can only hold text", field: "messages[\(i)].content[\(j)]")
                    }
                    systemTexts.append(t)
                }
            case .tool:
                seenConversation = true
                guard let id = message.toolCallID, let name = callNames[id] else {
                    throw .validation(
                        "a Gemini functionResponse names its function: the tool result's tool_call_id must match a call of an earlier assistant message",
                        field: "messages[\(i)].tool_call_id")
                }
                let text = message.content.text
                // The response is a JSON object (a Struct): the result's JSON object as is, else
                // its text under "result".
                var response: JSONValue = ["result": .string(text)]
                if case .object(let o)? = try? JSONValue(parsing: text) { response = .object(o) }
                openResponses = (openResponses ?? []) + [["functionResponse": ["name": .string(name), "response": response]]]
            case .user, .assistant:
                seenConversation = true
                var parts: [JSONValue] = []
                for (j, part) in message.content.parts.enumerated() {
                    parts.append(try partJSON(part, field: "messages[\(i)].content[\(j)]"))
                }
                for (j, call) in message.toolCalls.enumerated() {
                    guard case .object = call.arguments else {
                        throw .validation(
                            "Gemini functionCall args must be a JSON object", field: "messages[\(i)].tool_calls[\(j)].function.arguments")
                    }
                    callNames[call.id] = call.name
                    parts.append(["functionCall": ["name": .string(call.name), "args": call.arguments]])
                }
                if message.role == .user, var responses = openResponses {
                    responses += parts
                    openResponses = nil
                    contents.append(["role": "user", "parts": .array(responses)])
                    continue
                }
                closeResponses()
                contents.append(["role": message.role == .user ? "user" : "model", "parts": .array(parts)])
            default:
                throw .validation("Gemini has no '\(message.role.rawValue)' role (only user, assistant and tool)", field: "messages[\(i)].role")
            }
        }
        closeResponses()
        if contents.isEmpty {
            throw .validation("Gemini needs at least one user or assistant message", field: "messages")
        }
        var body: [String: JSONValue] = ["contents": .array(contents)]
        if !systemTexts.isEmpty {
            body["systemInstruction"] = ["parts": .array(systemTexts.map { ["text": .string($0)] })]
        }
        if !chat.tools.isEmpty {
            var declarations: [JSONValue] = []
            for (k, tool) in chat.tools.enumerated() {
                if tool.strict != nil {
                    throw .validation("Gemini function declarations have no strict flag", field: "tools[\(k)].function.strict")
                }
                var d: [String: JSONValue] = ["name": .string(tool.name)]
                if let text = tool.description { d["description"] = .string(text) }
                if let p = tool.parameters { d["parametersJsonSchema"] = p }
                declarations.append(.object(d))
            }
            body["tools"] = [["functionDeclarations": .array(declarations)]]
        }
        if chat.parallelToolCalls == false {
            throw .validation("Gemini cannot forbid parallel function calls", field: "parallel_tool_calls")
        }
        if let choice = chat.toolChoice {
            var config: [String: JSONValue]
            switch choice {
            case .auto: config = ["mode": "AUTO"]
            case .none: config = ["mode": "NONE"]
            case .required: config = ["mode": "ANY"]
            case .tool(let name):
                if !chat.tools.isEmpty, !chat.tools.contains(where: { $0.name == name }) {
                    throw .validation("the tool choice names '\(name)', which is not among the tools", field: "tool_choice")
                }
                config = ["mode": "ANY", "allowedFunctionNames": [.string(name)]]
            }
            body["toolConfig"] = ["functionCallingConfig": .object(config)]
        }
        if chat.promptCacheKey != nil {
            throw .validation(
                "Gemini has no prompt_cache_key; name a cached content (ChatRequest.cachedContent) instead", field: "prompt_cache_key")
        }
        if let name = chat.cachedContent {
            guard name.hasPrefix("cachedContents/"), name.count > "cachedContents/".count else {
                throw .validation("a Gemini cached content is named cachedContents/<id> (got \(name))", field: "cached_content")
            }
            body["cachedContent"] = .string(name)
        }
        var config: [String: JSONValue] = [:]
        if let m = chat.maxTokens { config["maxOutputTokens"] = .int(m) }
        if let t = chat.temperature { config["temperature"] = .double(t) }
        if let p = chat.topP { config["topP"] = .double(p) }
        if let stop = chat.stop, !stop.isEmpty { config["stopSequences"] = .array(stop.map(JSONValue.string)) }
        if let seed = chat.seed {
            guard seed >= Int(Int32.min), seed <= Int(Int32.max) else {
                throw .validation("Gemini's seed is a 32-bit integer", field: "seed")
            }
            config["seed"] = .int(seed)
        }
        switch chat.responseFormat {
        case .none, .text?: break
        case .jsonObject?: config["responseMimeType"] = "application/json"
        case .jsonSchema(let format)?:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = format.schema
        }
        if !config.isEmpty { body["generationConfig"] = .object(config) }
        return merged(.object(body), extra: chat.extra)
    }

    static func partJSON(_ part: ContentPart, field: String) throws(BatchError) -> JSONValue {
        switch part {
        case .text(let t):
            return ["text": .string(t)]
        case .image(let image):
            if let inline = image.inlineData {
                return ["inlineData": ["mimeType": .string(inline.mediaType), "data": .string(inline.data)]]
            }
            guard case .url(let url) = image.source else {
                throw .validation("unsupported image source", field: field)
            }
            if isFilesAPIURI(url) {
                var data: [String: JSONValue] = ["fileUri": .string(url)]
                if let mime = mimeType(forPath: url) { data["mimeType"] = .string(mime) }
                return ["fileData": .object(data)]
            }
            throw .validation(
                "Gemini cannot fetch image URLs; give the image as base64 data (or a data: URL) or upload it with the Files API",
                field: field)
        case .other:
            throw .validation("Gemini cannot express this content part", field: field)
        }
    }

    /// Whether a URL names a file uploaded through the Gemini Files API.
    static func isFilesAPIURI(_ url: String) -> Bool {
        guard let u = URL(string: url), u.scheme == "https", let host = u.host else { return false }
        return host == "generativelanguage.googleapis.com" && u.path.contains("/files/")
    }

    static func mimeType(forPath path: String) -> String? {
        let ext = (path.split(separator: "?").first.map(String.init) ?? path).split(separator: ".").last?.lowercased()
        switch ext {
        case "png": return "image/png"
        case "jpg", "jpeg": return "image/jpeg"
        case "webp": return "image/webp"
        case "heic": return "image/heic"
        case "heif": return "image/heif"
        case "gif": return "image/gif"
        default: return nil
        }
    }

    /// `base` with `extra` merged: objects merged key by key (recursively), anything else
    /// replaced by the extra value.
    static func merged(_ base: JSONValue, extra: [String: JSONValue]) -> JSONValue {
        guard !extra.isEmpty, case .object(var o) = base else { return base }
        for (key, value) in extra {
            if case .object(let sub)? = o[key], case .object(let add) = value {
                o[key] = merged(.object(sub), extra: add)
            } else {
                o[key] = value
            }
        }
        return .object(o)
    }

    /// Parses a `GenerateContentResponse` (real time, or one batch item's `response`).
    ///
    /// The text of the first candidate's parts is joined (thought parts skipped). A prompt
    /// blocked before generation (`promptFeedback.blockReason`, no candidates) throws a
    /// `contentFiltered` error. Usage: input = `promptTokenCount` + `toolUsePromptTokenCount`,
    /// output = `candidatesTokenCount` + `thoughtsTokenCount` (thoughts are billed as output and
    /// reported as ``Usage/reasoningTokens``), cached = `cachedContentTokenCount`.
    public static func parseGenerateContentResponse(_ json: JSONValue) throws(BatchError) -> ModelResponse {
        guard case .object = json else {
            throw BatchError(.invalidResponse, "a Gemini generateContent answer must be a JSON object", isRetryable: false)
        }
        let usage = usage(json["usageMetadata"])
        guard let candidate = json["candidates"]?[0] else {
            if let reason = json["promptFeedback"]?["blockReason"]?.stringValue {
                throw BatchError(.contentFiltered, "Gemini blocked the prompt (\(reason))", providerType: reason, isRetryable: false)
            }
            throw BatchError(.invalidResponse, "the Gemini answer has no candidates", isRetryable: false)
        }
        var text = ""
        var calls: [ToolCall] = []
        for part in candidate["content"]?["parts"]?.arrayValue ?? [] {
            if let call = part["functionCall"] {
                calls.append(ToolCall(
                    id: call["id"]?.stringValue ?? "call_\(calls.count)", name: call["name"]?.stringValue ?? "",
                    arguments: call["args"] ?? .object([:])))
            }
            if part["thought"]?.boolValue == true { continue }
            if let t = part["text"]?.stringValue { text += t }
        }
        var reason = candidate["finishReason"]?.stringValue.map(finishReason)
        if !calls.isEmpty, reason == .stop { reason = .toolCalls }
        return ModelResponse(
            text: text, finishReason: reason, usage: usage, model: json["modelVersion"]?.stringValue, raw: json, toolCalls: calls)
    }

    /// Maps a Gemini `finishReason` to BatchKit's vocabulary; unknown values are kept lowercased.
    public static func finishReason(_ raw: String) -> FinishReason {
        switch raw {
        case "STOP": return .stop
        case "MAX_TOKENS": return .length
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY": return .contentFilter
        case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS": return .toolCalls
        default: return FinishReason(rawValue: raw.lowercased())
        }
    }

    /// `usageMetadata` as ``Usage`` (counts may be numbers or int64 strings; absent means 0).
    public static func usage(_ meta: JSONValue?) -> Usage {
        guard let meta else { return .zero }
        func n(_ k: String) -> Int { meta[k]?.intValue ?? 0 }
        let thoughts = n("thoughtsTokenCount")
        return Usage(
            inputTokens: n("promptTokenCount") + n("toolUsePromptTokenCount"),
            outputTokens: n("candidatesTokenCount") + thoughts,
            cachedInputTokens: n("cachedContentTokenCount"), reasoningTokens: thoughts)
    }

    // MARK: - Embeddings

    /// One `EmbedContentRequest`: `{"model":"models/…","content":{"parts":[{"text":…}]},"outputDimensionality":…}`
    /// with `extra` (`taskType`, `title`…) merged.
    public static func embedContentRequest(model: String, text: String, dimensions: Int?, extra: [String: JSONValue]) -> JSONValue {
        var r: [String: JSONValue] = [
            "model": .string(modelResource(model)), "content": ["parts": [["text": .string(text)]]],
        ]
        if let dimensions { r["outputDimensionality"] = .int(dimensions) }
        return merged(.object(r), extra: extra)
    }

    /// The `batchEmbedContents` body: one `EmbedContentRequest` per input, in order; `extra` is
    /// merged into each of them.
    public static func batchEmbedContentsBody(_ request: EmbeddingRequest) throws(BatchError) -> JSONValue {
        guard !request.inputs.isEmpty else { throw .validation("an embedding request needs at least one input", field: "inputs") }
        if let d = request.dimensions, d <= 0 { throw .validation("dimensions must be positive", field: "dimensions") }
        return ["requests": .array(request.inputs.map {
            embedContentRequest(model: request.model, text: $0, dimensions: request.dimensions, extra: request.extra)
        })]
    }

    /// Parses a `batchEmbedContents` answer (`{"embeddings":[{"values":[…]},…]}`), vectors in
    /// request order. `expected` (the number of inputs), when given, must match.
    public static func parseBatchEmbedContentsResponse(_ json: JSONValue, expected: Int? = nil) throws(BatchError) -> ModelResponse {
        guard let list = json["embeddings"]?.arrayValue else {
            throw BatchError(.invalidResponse, "the Gemini answer has no embeddings", isRetryable: false)
        }
        var vectors: [[Float]] = []
        vectors.reserveCapacity(list.count)
        for e in list { vectors.append(try floats(e["values"])) }
        if let expected, expected != vectors.count {
            throw BatchError(.invalidResponse, "Gemini returned \(vectors.count) embeddings for \(expected) inputs", isRetryable: false)
        }
        var usage = Usage.zero
        if let meta = json["usageMetadata"] { usage = Self.usage(meta) }
        return ModelResponse(embeddings: vectors, usage: usage, raw: json)
    }

    /// Parses one embedding answer (`embedContent`, or an embedding batch item's `response`:
    /// `{"embedding":{"values":[…]},"tokenCount":"7"}`).
    public static func parseEmbedContentResponse(_ json: JSONValue) throws(BatchError) -> ModelResponse {
        guard let e = json["embedding"] else {
            throw BatchError(.invalidResponse, "the Gemini answer has no embedding", isRetryable: false)
        }
        let tokens = json["tokenCount"]?.intValue ?? json["usageMetadata"]?["promptTokenCount"]?.intValue ?? 0
        return ModelResponse(embeddings: [try floats(e["values"])], usage: Usage(inputTokens: tokens), raw: json)
    }

    static func floats(_ v: JSONValue?) throws(BatchError) -> [Float] {
        guard let a = v?.arrayValue else {
            throw BatchError(.invalidResponse, "a Gemini embedding has no values", isRetryable: false)
        }
        var out = [Float]()
        out.reserveCapacity(a.count)
        for x in a {
            guard let d = x.doubleValue else {
                throw BatchError(.invalidResponse, "a Gemini embedding value is not a number", isRetryable: false)
            }
            out.append(Float(d))
        }
        return out
    }

    // MARK: - Errors

    /// The ``BatchError`` for a non-2xx Gemini answer.
    ///
    /// Reads the Google envelope `{"error":{"code","message","status","details"}}` (also wrapped
    /// in an array). 429 `RESOURCE_EXHAUSTED` → `rateLimited` with `retryAfter` from
    /// `RetryInfo.retryDelay`, else the `Retry-After` header; 503 `UNAVAILABLE` → `overloaded`;
    /// 500 `INTERNAL` → `server`; 504 `DEADLINE_EXCEEDED` → `timeout`; 400 with an `ErrorInfo`
    /// reason `API_KEY_INVALID` → `authentication`; 400 → `invalidRequest`; 401 →
    /// `authentication`; 403 → `permission`; 404 → `notFound`.
    public static func error(status: Int, headers: HTTPHeaders, body: Data) -> BatchError {
        let json = try? JSONValue(parsing: body)
        let envelope = json?["error"] ?? json?[0]?["error"]
        let googleStatus = envelope?["status"]?.stringValue
        let message = envelope?["message"]?.stringValue
            ?? (body.isEmpty ? "HTTP \(status)" : "HTTP \(status): " + String(decoding: body.prefix(200), as: UTF8.self))
        let details = envelope?["details"]?.arrayValue ?? []
        let reasons = details.compactMap { $0["reason"]?.stringValue }

        var code: BatchError.Code
        switch (status, googleStatus) {
        case (_, "RESOURCE_EXHAUSTED"), (429, _): code = .rateLimited
        case (_, "UNAVAILABLE"), (503, _): code = .overloaded
        case (_, "DEADLINE_EXCEEDED"), (504, _): code = .timeout
        case (_, "UNAUTHENTICATED"), (401, _): code = .authentication
        case (_, "PERMISSION_DENIED"), (403, _): code = .permission
        case (_, "NOT_FOUND"), (404, _): code = .notFound
        case (400, _): code = .invalidRequest
        default: code = BatchError.code(forHTTPStatus: status)
        }
        if reasons.contains("API_KEY_INVALID") || reasons.contains("API_KEY_EXPIRED") { code = .authentication }

        var retryAfter: Duration?
        if let json { retryAfter = retryDelay(json) }
        if retryAfter == nil { retryAfter = RateLimitHeaderParsing.retryAfter(headers) }
        if code == .rateLimited, retryAfter == nil, let m = message.range(of: #"retry in [0-9.]+s"#, options: .regularExpression) {
            retryAfter = protobufDuration(String(message[m].dropFirst(9)))
        }
        return BatchError(
            code, "Gemini: " + message, httpStatus: status, providerType: googleStatus ?? reasons.first,
            retryAfter: retryAfter)
    }

    /// Parses a protobuf JSON `Duration` (`"23s"`, `"29.723877525s"`), as in `RetryInfo`.
    public static func protobufDuration(_ text: String) -> Duration? {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard t.hasSuffix("s"), let v = Double(t.dropLast()), v >= 0 else { return nil }
        return .seconds(v)
    }

    /// `RetryInfo.retryDelay` from a Google error body
    /// (`{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"23s"}]}}`,
    /// also wrapped in an array).
    public static func retryDelay(_ body: JSONValue) -> Duration? {
        let error = body["error"] ?? body[0]?["error"]
        for d in error?["details"]?.arrayValue ?? [] {
            if let type = d["@type"]?.stringValue, type.hasSuffix("google.rpc.RetryInfo"),
                let delay = d["retryDelay"]?.stringValue
            {
                return protobufDuration(delay)
            }
        }
        return nil
    }

    /// The ``BatchError`` for one failed batch item: a `google.rpc.Status`
    /// (`{"code":3,"message":…}`). Codes below 100 are read as gRPC canonical codes (the form
    /// the captures show); larger ones as HTTP statuses (`providers.md` §6.5 leaves it open).
    public static func itemError(_ status: JSONValue) -> BatchError {
        let raw = status["code"]?.intValue ?? 2
        let message = "Gemini: " + (status["message"]?.stringValue ?? "request failed")
        if raw >= 100 {
            return BatchError(BatchError.code(forHTTPStatus: raw), message, httpStatus: raw)
        }
        let (name, code): (String, BatchError.Code)
        switch raw {
        case 1: (name, code) = ("CANCELLED", .cancelled)
        case 3: (name, code) = ("INVALID_ARGUMENT", .invalidRequest)
        case 4: (name, code) = ("DEADLINE_EXCEEDED", .timeout)
        case 5: (name, code) = ("NOT_FOUND", .notFound)
        case 7: (name, code) = ("PERMISSION_DENIED", .permission)
        case 8: (name, code) = ("RESOURCE_EXHAUSTED", .rateLimited)
        case 9: (name, code) = ("FAILED_PRECONDITION", .invalidRequest)
        case 13: (name, code) = ("INTERNAL", .server)
        case 14: (name, code) = ("UNAVAILABLE", .overloaded)
        case 16: (name, code) = ("UNAUTHENTICATED", .authentication)
        default: (name, code) = ("UNKNOWN", .server)
        }
        return BatchError(code, message, providerType: name)
    }
}
