import BatchKit
import Foundation

/// The emulator's Anthropic state: message batches and their limits. Owned by this file and
/// `AnthropicEmulatorModel.swift`.
struct AnthropicEmulatorState {
    var batches: [String: AnthropicEmulatedBatch] = [:]
    /// Batch ids in creation order, oldest first (lists are answered newest first).
    var order: [String] = []
    /// Most requests in one batch (Anthropic: 100,000).
    var maxBatchRequests = 100_000
    /// Largest create body in bytes (Anthropic: 256 MB; larger bodies get 413).
    var maxBatchBytes = 256 * 1024 * 1024
}

extension ProviderEmulator {
    /// Changes the Anthropic Message Batches limits enforced at create (defaults: 100,000
    /// requests, 256 MiB body), so tests can hit them with small inputs.
    public func setAnthropicBatchLimits(maxRequests: Int? = nil, maxBytes: Int? = nil) {
        anthropicState.withLock { s in
            if let maxRequests { s.maxBatchRequests = maxRequests }
            if let maxBytes { s.maxBatchBytes = maxBytes }
        }
    }

    /// Answers Anthropic requests; `nil` for paths it does not serve (the router answers 404).
    ///
    /// Served: `POST /v1/messages`; `POST /v1/messages/batches`, `GET /v1/messages/batches`
    /// (`limit`, `after_id`, `before_id`), `GET /v1/messages/batches/{id}`,
    /// `GET /v1/messages/batches/{id}/results`, `POST /v1/messages/batches/{id}/cancel`,
    /// `DELETE /v1/messages/batches/{id}`; `GET /v1/models` (`limit`, `after_id`, `before_id`),
    /// `GET /v1/models/{model_id}`. Every request needs a key (`x-api-key` or
    /// `Authorization: Bearer`) and an `anthropic-version` header (any value).
    func handleAnthropic(_ request: EmulatorRequest) async -> EmulatorResponse? {
        let path = request.path
        let retrievesModel = request.method == "GET" && (path.hasPrefix("/v1/models/") || path == "/v1/models")
        guard path == "/v1/messages" || path.hasPrefix("/v1/messages/") || retrievesModel else { return nil }
        let key: String
        switch authenticate(request, .anthropic) {
        case .failure(let f): return f.response
        case .success(let k): key = k
        }
        guard let version = request.headers["anthropic-version"], !version.trimmingCharacters(in: .whitespaces).isEmpty else {
            return errorResponse(.anthropic, status: 400, message: "anthropic-version: header is required", type: "invalid_request_error")
        }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if retrievesModel {
            if parts.count == 2 { return anthropicListModels(request) }
            return parts.count == 3 ? anthropicRetrieveModel(parts[2]) : nil
        }
        // parts: ["v1", "messages", ...]
        switch (request.method, parts.count) {
        case ("POST", 2):
            return await anthropicMessages(request, key: key)
        case ("POST", 3) where parts[2] == "batches":
            return anthropicCreateBatch(request)
        case ("POST", 3) where parts[2] == "count_tokens":
            return anthropicCountTokens(request)
        case ("GET", 3) where parts[2] == "batches":
            return anthropicListBatches(request)
        case ("GET", 4) where parts[2] == "batches":
            return anthropicRetrieveBatch(id: parts[3])
        case ("GET", 5) where parts[2] == "batches" && parts[4] == "results":
            return anthropicBatchResults(id: parts[3])
        case ("POST", 5) where parts[2] == "batches" && parts[4] == "cancel":
            return anthropicCancelBatch(id: parts[3])
        case ("DELETE", 4) where parts[2] == "batches":
            return anthropicDeleteBatch(id: parts[3])
        default:
            if parts.count == 2 || (parts.count <= 5 && parts[2] == "batches") {
                return errorResponse(
                    .anthropic, status: 405, message: "Method \(request.method) not allowed for \(path)", type: "invalid_request_error")
            }
            return nil
        }
    }

    // MARK: - Messages

    func anthropicMessages(_ request: EmulatorRequest, key: String) async -> EmulatorResponse {
        if let id = request.headers["x-client-request-id"], !id.isEmpty { recordSent(customID: id) }
        guard let params = request.json, params.objectValue != nil else {
            return errorResponse(.anthropic, status: 400, message: "The request body is not valid JSON.", type: "invalid_request_error")
        }
        if let problem = Self.anthropicValidate(params, inBatch: false) {
            return errorResponse(.anthropic, status: 400, message: problem, type: "invalid_request_error")
        }
        let estimate = Self.anthropicPromptTokens(params) + (params["max_tokens"]?.intValue ?? 0)
        let decision = await admit(key: key, provider: .anthropic, tokens: estimate)
        guard decision.allowed else {
            shared.withLock { $0.modelRequests += 1 }  // a 429 is an answered model call too
            return rateLimitedResponse(decision, provider: .anthropic)
        }
        await modelCall()
        let message = withPromptCache {
            Self.anthropicAnswer(params: params, messageID: newID("msg_01", hexDigits: 22), serviceTier: "standard", cache: &$0)
        }
        var headers = rateLimitHeaders(decision, provider: .anthropic)
        headers["request-id"] = newID("req_01", hexDigits: 22)
        if params["stream"]?.boolValue == true { return Self.eventStream(Self.anthropicStream(message), headers: headers) }
        return .json(200, message, headers: headers)
    }

    /// `POST /v1/messages/count_tokens`: `{"input_tokens"}`, what the same request would be charged
    /// as input (the message's `input_tokens` plus any cache write and read), validated as a
    /// message without `max_tokens`.
    func anthropicCountTokens(_ request: EmulatorRequest) -> EmulatorResponse {
        guard var params = request.json?.objectValue else {
            return errorResponse(.anthropic, status: 400, message: "The request body is not valid JSON.", type: "invalid_request_error")
        }
        if let k = params.keys.sorted().first(where: { $0 == "max_tokens" || $0 == "stream" }) {
            return errorResponse(.anthropic, status: 400, message: "\(k): Extra inputs are not permitted", type: "invalid_request_error")
        }
        params["max_tokens"] = 1
        if let problem = Self.anthropicValidate(.object(params), inBatch: false) {
            return errorResponse(.anthropic, status: 400, message: problem, type: "invalid_request_error")
        }
        return .json(200, ["input_tokens": .int(Self.anthropicInputTokens(.object(params)))],
                     headers: ["request-id": newID("req_01", hexDigits: 22)])
    }

    /// Known top-level fields of a Messages request; anything else is rejected as Anthropic does
    /// ("Extra inputs are not permitted").
    static let anthropicKnownFields: Set<String> = [
        "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences", "tools",
        "tool_choice", "thinking", "metadata", "service_tier", "stream", "cache_control", "output_config",
        "output_format", "container", "context_management", "mcp_servers", "inference_geo",
    ]

    /// Validates a Messages request (real-time body or batch `params`). Returns Anthropic's
    /// error message (field path first), or `nil` when the request is acceptable.
    static func anthropicValidate(_ p: JSONValue, inBatch: Bool) -> String? {
        guard let o = p.objectValue else { return "params: Input should be a valid dictionary" }
        for k in o.keys.sorted() where !anthropicKnownFields.contains(k) { return "\(k): Extra inputs are not permitted" }
        guard let model = o["model"] else { return "model: Field required" }
        guard let m = model.stringValue, !m.isEmpty else { return "model: Input should be a valid string" }
        guard let mt = o["max_tokens"], !mt.isNull else { return "max_tokens: Field required" }
        guard let maxTokens = mt.intValue, case .int = mt else { return "max_tokens: Input should be a valid integer" }
        if maxTokens < 1 { return "max_tokens: Input should be greater than or equal to 1" }
        guard let msgs = o["messages"] else { return "messages: Field required" }
        guard let list = msgs.arrayValue else { return "messages: Input should be a valid list" }
        if list.isEmpty { return "messages: at least one message is required" }
        for (i, msg) in list.enumerated() {
            guard let role = msg["role"]?.stringValue else { return "messages.\(i).role: Field required" }
            guard role == "user" || role == "assistant" else {
                return "messages.\(i).role: Input should be 'user' or 'assistant'"
            }
            guard let content = msg["content"] else { return "messages.\(i).content: Field required" }
            if let blocks = content.arrayValue {
                for (j, b) in blocks.enumerated() {
                    guard let type = b["type"]?.stringValue else { return "messages.\(i).content.\(j).type: Field required" }
                    if type == "image" {
                        let source = b["source"]
                        switch source?["type"]?.stringValue {
                        case "base64"?:
                            guard source?["media_type"]?.stringValue != nil, source?["data"]?.stringValue != nil else {
                                return "messages.\(i).content.\(j).source: base64 images need media_type and data"
                            }
                        case "url"?:
                            guard source?["url"]?.stringValue != nil else { return "messages.\(i).content.\(j).source.url: Field required" }
                        default: return "messages.\(i).content.\(j).source.type: Input should be 'base64', 'url' or 'file'"
                        }
                    }
                }
            } else if content.stringValue == nil {
                return "messages.\(i).content: Input should be a valid string or list of content blocks"
            }
            for k in (msg.objectValue ?? [:]).keys.sorted() where k != "role" && k != "content" {
                return "messages.\(i).\(k): Extra inputs are not permitted"
            }
        }
        if let t = o["temperature"] {
            guard let v = t.doubleValue else { return "temperature: Input should be a valid number" }
            if v < 0 || v > 1 { return "temperature: Input should be less than or equal to 1" }
        }
        if let s = o["stop_sequences"], s.arrayValue == nil { return "stop_sequences: Input should be a valid list" }
        if let stream = o["stream"], stream.boolValue == nil { return "stream: Input should be a valid boolean" }
        if inBatch, o["stream"]?.boolValue == true { return "stream: streaming is not supported for batch requests" }
        if case .array(let blocks)? = o["system"] {
            for (j, b) in blocks.enumerated() where b["type"] != "text" || b["text"]?.stringValue == nil {
                return "system.\(j): Input should be a valid text block"
            }
        } else if let system = o["system"], system.stringValue == nil {
            return "system: Input should be a valid string or list of text blocks"
        }
        return anthropicToolProblem(p)
    }

    /// The text of a request's system prompt and messages, for token counts and answers.
    static func anthropicPromptText(_ p: JSONValue) -> String {
        var out = ""
        func add(_ content: JSONValue?) {
            if let s = content?.stringValue {
                out += s + "\n"
            } else {
                for b in content?.arrayValue ?? [] {
                    if let t = b["text"]?.stringValue { out += t + "\n" }
                    if let s = b["source"]?["url"]?.stringValue { out += s + "\n" }
                }
            }
        }
        add(p["system"])
        for m in p["messages"]?.arrayValue ?? [] { add(m["content"]) }
        return out
    }

    /// All input tokens of a request (prompt and tool definitions), cached or not.
    static func anthropicInputTokens(_ p: JSONValue) -> Int {
        var tokens = anthropicPromptTokens(p)
        if let tools = p["tools"], !(tools.arrayValue ?? []).isEmpty { tokens += tokenCount(tools.jsonString) }
        return tokens
    }

    static func anthropicPromptTokens(_ p: JSONValue) -> Int {
        var tokens = tokenCount(anthropicPromptText(p))
        for m in p["messages"]?.arrayValue ?? [] {
            for b in m["content"]?.arrayValue ?? [] where b["type"]?.stringValue == "image" { tokens += 85 }
        }
        return tokens
    }

    /// A deterministic Message for a (valid) request: text from ``syntheticAnswer(prompt:maxTokens:)``,
    /// a `tool_use` block when a tool is forced, JSON text for `output_config.format`, stop
    /// sequences honoured.
    static func anthropicAnswer(params p: JSONValue, messageID: String, serviceTier: String, cache: inout EmulatorPromptCache) -> JSONValue {
        let prompt = anthropicPromptText(p)
        let maxTokens = p["max_tokens"]?.intValue
        let answer = syntheticAnswer(prompt: prompt, maxTokens: maxTokens)
        var seed: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in prompt.utf8 { seed = (seed ^ UInt64(b)) &* 0x100_0000_01b3 }
        var content: [JSONValue]
        var stopReason = answer.truncated ? "max_tokens" : "end_turn"
        var stopSequence: JSONValue = .null
        var outputTokens = answer.outputTokens

        let tools = p["tools"]?.arrayValue ?? []
        var forcedTool: JSONValue?
        switch p["tool_choice"]?["type"]?.stringValue {
        case "tool"?:
            let name = p["tool_choice"]?["name"]?.stringValue
            forcedTool = tools.first { $0["name"]?.stringValue == name }
        case "any"?: forcedTool = tools.first
        default: break
        }
        if let tool = forcedTool {
            let input = anthropicSyntheticJSON(tool["input_schema"] ?? ["type": "object"], seed: seed)
            content = [[
                "type": "tool_use", "id": .string("toolu_01" + String(seed, radix: 16)), "name": tool["name"] ?? "tool",
                "input": input,
            ]]
            stopReason = "tool_use"
            outputTokens = tokenCount(input.jsonString) + 10
            if let maxTokens, outputTokens > maxTokens {
                outputTokens = maxTokens
                stopReason = "max_tokens"
            }
        } else if p["output_config"]?["format"]?["type"]?.stringValue == "json_schema",
            let schema = p["output_config"]?["format"]?["schema"]
        {
            let text = anthropicSyntheticJSON(schema, seed: seed).jsonString
            content = [["type": "text", "text": .string(text)]]
            stopReason = "end_turn"
            outputTokens = tokenCount(text)
        } else {
            var text = answer.text
            for stop in (p["stop_sequences"]?.arrayValue ?? []).compactMap(\.stringValue) where !stop.isEmpty {
                if let r = text.range(of: stop) {
                    text = String(text[..<r.lowerBound])
                    stopReason = "stop_sequence"
                    stopSequence = .string(stop)
                    outputTokens = max(1, tokenCount(text))
                    break
                }
            }
            content = [["type": "text", "text": .string(text)]]
        }
        // Extended thinking (`thinking.type` enabled or adaptive): a signed `thinking` block comes
        // first, and its tokens are output tokens.
        if ["enabled", "adaptive"].contains(p["thinking"]?["type"]?.stringValue ?? "") {
            let words = prompt.split(whereSeparator: \.isWhitespace).prefix(12).joined(separator: " ")
            let thought = "The user asks: \(words). A short, direct answer fits."
            let signature = Data(("sig:" + anthropicStableHex(thought, digits: 48)).utf8).base64EncodedString()
            content.insert(["type": "thinking", "thinking": .string(thought), "signature": .string(signature)], at: 0)
            outputTokens += tokenCount(thought)
        }
        // Tool definitions are part of the prompt; a cache breakpoint splits it into written or
        // read tokens and the rest.
        let promptTokens = anthropicInputTokens(p)
        let cached = anthropicCacheUsage(p, cache: &cache)
        let input = max(1, promptTokens - cached.write - cached.read)
        return [
            "id": .string(messageID), "type": "message", "role": "assistant",
            "model": p["model"] ?? "claude-emulated", "content": .array(content),
            "stop_reason": .string(stopReason), "stop_sequence": stopSequence,
            "usage": [
                "input_tokens": .int(input), "output_tokens": .int(outputTokens),
                "cache_creation_input_tokens": .int(cached.write), "cache_read_input_tokens": .int(cached.read),
                "cache_creation": [
                    "ephemeral_5m_input_tokens": .int(cached.oneHour ? 0 : cached.write),
                    "ephemeral_1h_input_tokens": .int(cached.oneHour ? cached.write : 0),
                ],
                "service_tier": .string(serviceTier),
            ],
        ]
    }

    /// A deterministic JSON value conforming (loosely) to a JSON Schema: every property present,
    /// the first enum value, one array element (or `minItems`). Type names are read without
    /// regard to case: Gemini's OpenAPI schemas spell them `OBJECT`, `STRING`, … (the python SDK).
    static func anthropicSyntheticJSON(_ schema: JSONValue, seed: UInt64, depth: Int = 0) -> JSONValue {
        guard depth < 8 else { return .null }
        if let c = schema["const"] { return c }
        if let e = schema["enum"]?.arrayValue, !e.isEmpty { return e[Int(seed % UInt64(e.count))] }
        for k in ["anyOf", "oneOf", "allOf"] {
            if let first = schema[k]?.arrayValue?.first { return anthropicSyntheticJSON(first, seed: seed, depth: depth + 1) }
        }
        var type = schema["type"]?.stringValue?.lowercased()
        if type == nil, let types = schema["type"]?.arrayValue {
            type = types.compactMap { $0.stringValue?.lowercased() }.first { $0 != "null" }
        }
        if type == nil { type = schema["properties"] != nil ? "object" : nil }
        var rng = SplitMix64(seed: seed &+ UInt64(depth))
        switch type {
        case "object"?:
            var out: [String: JSONValue] = [:]
            for (name, sub) in schema["properties"]?.objectValue ?? [:] {
                var h = seed
                for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
                out[name] = anthropicSyntheticJSON(sub, seed: h, depth: depth + 1)
            }
            return .object(out)
        case "array"?:
            let n = max(1, schema["minItems"]?.intValue ?? 1)
            return .array((0..<min(n, 5)).map { i in
                anthropicSyntheticJSON(schema["items"] ?? ["type": "string"], seed: seed &+ UInt64(i), depth: depth + 1)
            })
        case "string"?: return .string("value-" + String(rng.next() % 1_000_000, radix: 36))
        case "integer"?: return .int(Int(rng.next() % 100))
        case "number"?: return .double(Double(rng.next() % 1000) / 10)
        case "boolean"?: return .bool(rng.next() % 2 == 0)
        case "null"?: return .null
        default: return .object([:])
        }
    }
}
