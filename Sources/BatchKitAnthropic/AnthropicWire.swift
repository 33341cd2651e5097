public import BatchKit
public import Foundation

/// How a JSON ``ResponseFormat`` is expressed on the Anthropic wire.
public enum AnthropicStructuredOutput: Sendable, Hashable {
    /// A forced call of one tool named after the schema: `tools: [{name, description, input_schema}]`
    /// and `tool_choice: {"type":"tool","name":...}`. The tool's `input` is the answer, returned as
    /// ``ModelResponse/text`` (JSON text) with finish reason ``FinishReason/stop``. Works with every
    /// Claude model. The default.
    case forcedTool
    /// Anthropic's native structured outputs: `output_config: {"format": {"type": "json_schema",
    /// "schema": ...}}`. The answer is an ordinary text block. Needs a model that supports it
    /// (Claude Sonnet 4.5, Opus 4.5, Haiku 4.5 and later). `.jsonObject` still uses a forced tool,
    /// since native structured outputs need a closed schema.
    case outputConfig
}

/// Translation between BatchKit's provider-neutral types and Anthropic's Messages API
/// (`POST /v1/messages`, also the `params` of a Message Batches request).
///
/// ```swift
/// let body = try AnthropicWire.messagesBody(ChatRequest(model: "claude-sonnet-4-5", messages: [.user("Hi")]))
/// // {"max_tokens":4096,"messages":[{"content":"Hi","role":"user"}],"model":"claude-sonnet-4-5"}
/// ```
///
/// Mapping rules:
/// - `ChatRequest.system` and any *leading* `system`/`developer` messages become the top-level
///   `system` string (joined by a blank line). A system message after the first user or assistant
///   message cannot be expressed and fails validation naming `messages[i].role`.
/// - Tools: `tools` → `[{name, description, input_schema, strict, cache_control}]`; tool choice
///   `auto`/`none`/`required`/named → `{"type":"auto"|"none"|"any"|"tool"}`;
///   `parallelToolCalls == false` → `disable_parallel_tool_use: true`. Assistant tool calls →
///   `tool_use` blocks; `tool` messages → `tool_result` blocks of the next user message (a user
///   message right after them joins it).
/// - Caching: ``CacheControl`` on the system prompt, a message or a tool → `cache_control` on the
///   last system block, the message's last block, or the tool. `promptCacheKey` and
///   `cachedContent` have no Anthropic form: validation errors naming `prompt_cache_key` and
///   `cached_content`.
/// - `max_tokens` is required by Anthropic: `ChatRequest.maxTokens`, else `defaultMaxTokens`
///   (4,096 unless the client or backend is configured otherwise).
/// - Images: `data:` URLs and inline base64 → `{"type":"image","source":{"type":"base64",...}}`;
///   `https:`/`http:` URLs → `{"type":"image","source":{"type":"url","url":...}}`.
/// - `stop` → `stop_sequences`; `temperature` (Anthropic accepts 0...1) and `top_p` as is.
/// - `seed` has no Anthropic equivalent: validation error naming `seed`.
/// - `ContentPart.other` and message `extra` fields have no Anthropic form: validation errors
///   naming the field.
/// - `ChatRequest.extra` is merged verbatim last (it overrides anything above).
public enum AnthropicWire {
    /// The `max_tokens` used when a request does not set one.
    public static let defaultMaxTokens = 4096

    /// The name of the forced tool used for ``ResponseFormat/jsonObject``.
    public static let jsonObjectToolName = "json_object"

    // MARK: - Requests

    /// The Messages API body for a chat request.
    ///
    /// - Parameters:
    ///   - chat: the request.
    ///   - defaultMaxTokens: `max_tokens` when `chat.maxTokens` is `nil`.
    ///   - structuredOutput: how JSON response formats are expressed.
    /// - Throws: a `validation` ``BatchError`` naming the field Anthropic cannot express.
    public static func messagesBody(
        _ chat: ChatRequest, defaultMaxTokens: Int = AnthropicWire.defaultMaxTokens,
        structuredOutput: AnthropicStructuredOutput = .forcedTool
    ) throws(BatchError) -> JSONValue {
        var body: [String: JSONValue] = [:]
        guard !chat.model.isEmpty else { throw .validation("a model is required", field: "model") }
        body["model"] = .string(chat.model)

        var systemParts: [(text: String, cache: CacheControl?)] = []
        if let s = chat.system, !s.isEmpty { systemParts.append((s, chat.systemCacheControl)) }
        var messages: [JSONValue] = []
        var leading = true
        // Tool results open a user turn; the user message right after them joins it (Anthropic
        // wants every result of one assistant turn in the next user message, results first).
        var openResults: [JSONValue]?
        func closeResults() {
            if let blocks = openResults { messages.append(["role": "user", "content": .array(blocks)]) }
            openResults = nil
        }
        for (i, message) in chat.messages.enumerated() {
            if let badKey = message.extra.keys.sorted().first {
                throw .validation("Anthropic messages have no field '\(badKey)'", field: "messages[\(i)].\(badKey)")
            }
            if !message.toolCalls.isEmpty, message.role != .assistant {
                throw .validation("only assistant messages carry tool calls", field: "messages[\(i)].tool_calls")
            }
            switch message.role {
            case .system, .developer:
                guard leading else {
                    throw .validation(
                        "Anthropic accepts system instructions only before the conversation; move this \(message.role) message into ChatRequest.system",
                        field: "messages[\(i)].role")
                }
                let parts = message.content.parts
                for (j, part) in parts.enumerated() {
                    guard case .text(let t) = part else {
                        throw .validation("a system message can only contain text on Anthropic", field: "messages[\(i)].content[\(j)]")
                    }
                    if !t.isEmpty { systemParts.append((t, j == parts.count - 1 ? message.cacheControl : nil)) }
                }
            case .tool:
                leading = false
                guard let id = message.toolCallID, !id.isEmpty else {
                    throw .validation("a tool result needs the id of the call it answers", field: "messages[\(i)].tool_call_id")
                }
                var result: [String: JSONValue] = ["type": "tool_result", "tool_use_id": .string(id)]
                if case .text(let t) = message.content {
                    result["content"] = .string(t)
                } else {
                    result["content"] = try content(message.content, index: i)
                }
                if let cc = message.cacheControl { result["cache_control"] = cc.json }
                openResults = (openResults ?? []) + [.object(result)]
            case .user, .assistant:
                leading = false
                var body = try content(message.content, index: i, cacheControl: message.cacheControl)
                if message.role == .assistant, !message.toolCalls.isEmpty {
                    var blocks: [JSONValue]
                    switch body {
                    case .string(let t): blocks = t.isEmpty ? [] : [["type": "text", "text": .string(t)]]
                    default: blocks = body.arrayValue ?? []
                    }
                    for (j, call) in message.toolCalls.enumerated() {
                        guard case .object = call.arguments else {
                            throw .validation(
                                "Anthropic tool_use input must be a JSON object", field: "messages[\(i)].tool_calls[\(j)].function.arguments")
                        }
                        blocks.append(["type": "tool_use", "id": .string(call.id), "name": .string(call.name), "input": call.arguments])
                    }
                    body = .array(blocks)
                }
                if message.role == .user, var blocks = openResults {
                    switch body {
                    case .string(let t): if !t.isEmpty { blocks.append(["type": "text", "text": .string(t)]) }
                    default: blocks += body.arrayValue ?? []
                    }
                    openResults = nil
                    messages.append(["role": "user", "content": .array(blocks)])
                    continue
                }
                closeResults()
                messages.append(["role": .string(message.role.rawValue), "content": body])
            default:
                throw .validation(
                    "Anthropic has no '\(message.role)' role (only user and assistant; tool results are user content blocks)",
                    field: "messages[\(i)].role")
            }
        }
        closeResults()
        guard !messages.isEmpty else {
            throw .validation("Anthropic needs at least one user or assistant message", field: "messages")
        }
        body["messages"] = .array(messages)
        if systemParts.contains(where: { $0.cache != nil }) {
            body["system"] = .array(systemParts.map { part in
                var block: [String: JSONValue] = ["type": "text", "text": .string(part.text)]
                if let cc = part.cache { block["cache_control"] = cc.json }
                return .object(block)
            })
        } else if !systemParts.isEmpty {
            body["system"] = .string(systemParts.map(\.text).joined(separator: "\n\n"))
        }
        if chat.promptCacheKey != nil {
            throw .validation(
                "Anthropic has no prompt_cache_key; mark cache breakpoints with CacheControl (cache_control) instead",
                field: "prompt_cache_key")
        }
        if chat.cachedContent != nil {
            throw .validation(
                "Anthropic has no named cached content (a Gemini feature); mark cache breakpoints with CacheControl (cache_control) instead",
                field: "cached_content")
        }

        let maxTokens = chat.maxTokens ?? defaultMaxTokens
        guard maxTokens >= 1 else { throw .validation("max_tokens must be at least 1 on Anthropic", field: "max_tokens") }
        body["max_tokens"] = .int(maxTokens)

        if let t = chat.temperature {
            guard (0...1).contains(t) else {
                throw .validation("Anthropic accepts temperature between 0 and 1 (got \(t))", field: "temperature")
            }
            body["temperature"] = .double(t)
        }
        if let p = chat.topP { body["top_p"] = .double(p) }
        if let stop = chat.stop, !stop.isEmpty { body["stop_sequences"] = .array(stop.map(JSONValue.string)) }
        if chat.seed != nil {
            throw .validation("Anthropic has no seed parameter; remove it for this provider", field: "seed")
        }

        if !chat.tools.isEmpty {
            var tools: [JSONValue] = []
            for (k, tool) in chat.tools.enumerated() {
                guard !tool.name.isEmpty else { throw .validation("a tool needs a name", field: "tools[\(k)].function.name") }
                var t: [String: JSONValue] = ["name": .string(tool.name), "input_schema": tool.parameters ?? ["type": "object"]]
                if let d = tool.description { t["description"] = .string(d) }
                if let strict = tool.strict { t["strict"] = .bool(strict) }
                if let cc = tool.cacheControl { t["cache_control"] = cc.json }
                tools.append(.object(t))
            }
            body["tools"] = .array(tools)
        }
        if chat.toolChoice != nil || chat.parallelToolCalls != nil {
            if chat.tools.isEmpty, chat.extra["tools"] == nil, chat.toolChoice != ToolChoice.none {
                throw .validation("a tool choice needs tools", field: "tool_choice")
            }
            var choice: [String: JSONValue]
            switch chat.toolChoice ?? .auto {
            case .auto: choice = ["type": "auto"]
            case .none: choice = ["type": "none"]
            case .required: choice = ["type": "any"]
            case .tool(let name):
                if !chat.tools.isEmpty, !chat.tools.contains(where: { $0.name == name }) {
                    throw .validation("the tool choice names '\(name)', which is not among the tools", field: "tool_choice")
                }
                choice = ["type": "tool", "name": .string(name)]
            }
            // `none` takes no parallel switch; the others do.
            if chat.parallelToolCalls == false, chat.toolChoice != ToolChoice.none { choice["disable_parallel_tool_use"] = true }
            body["tool_choice"] = .object(choice)
        }

        switch chat.responseFormat {
        case .none, .text?: break
        case .jsonObject?, .jsonSchema?:
            if chat.extra["tools"] != nil || chat.extra["tool_choice"] != nil {
                throw .validation(
                    "a JSON response format cannot be combined with tools or tool_choice given in extra on Anthropic",
                    field: "response_format")
            }
            if structuredOutput == .forcedTool, !chat.tools.isEmpty || chat.toolChoice != nil {
                throw .validation(
                    "on Anthropic a JSON response format is a forced tool call and cannot be combined with tools; use AnthropicStructuredOutput.outputConfig or drop the response format",
                    field: "response_format")
            }
            if case .jsonSchema(let format)? = chat.responseFormat, structuredOutput == .outputConfig {
                body["output_config"] = ["format": ["type": "json_schema", "schema": format.schema]]
            } else {
                let tool = try forcedTool(for: chat.responseFormat!)
                body["tools"] = [tool]
                body["tool_choice"] = ["type": "tool", "name": tool["name"]!]
            }
        }

        for (k, v) in chat.extra { body[k] = v }
        return .object(body)
    }

    /// The name of the tool a request's response format is forced through, or `nil` when the
    /// answer arrives as plain text (no JSON format, or ``AnthropicStructuredOutput/outputConfig``
    /// with a schema).
    public static func structuredOutputTool(
        for chat: ChatRequest, structuredOutput: AnthropicStructuredOutput = .forcedTool
    ) -> String? {
        switch chat.responseFormat {
        case .jsonObject?: return jsonObjectToolName
        case .jsonSchema(let f)? where structuredOutput == .forcedTool: return toolName(forSchema: f.name)
        default: return nil
        }
    }

    /// A tool name derived from a schema name: characters outside `[a-zA-Z0-9_-]` become `_`,
    /// at most 64 characters, `json_response` when nothing is left.
    public static func toolName(forSchema name: String) -> String {
        let cleaned = String(name.unicodeScalars.map { s -> Character in
            let v = s.value
            let ok = (v >= 48 && v <= 57) || (v >= 65 && v <= 90) || (v >= 97 && v <= 122) || v == 95 || v == 45
            return ok ? Character(s) : "_"
        }.prefix(64))
        return cleaned.isEmpty ? "json_response" : cleaned
    }

    static func forcedTool(for format: ResponseFormat) throws(BatchError) -> JSONValue {
        switch format {
        case .jsonSchema(let f):
            if let type = f.schema["type"]?.stringValue, type != "object" {
                throw .validation(
                    "Anthropic's forced-tool structured output needs a schema whose top-level type is object (got \(type))",
                    field: "response_format.json_schema.schema")
            }
            guard f.schema.objectValue != nil else {
                throw .validation("the JSON schema must be an object", field: "response_format.json_schema.schema")
            }
            var tool: [String: JSONValue] = [
                "name": .string(toolName(forSchema: f.name)),
                "description": .string(f.description ?? "Give the answer as this tool's input, a JSON object conforming to its schema."),
                "input_schema": f.schema,
            ]
            if let strict = f.strict { tool["strict"] = .bool(strict) }
            return .object(tool)
        default:
            return [
                "name": .string(jsonObjectToolName),
                "description": "Give the answer as this tool's input, a JSON object.",
                "input_schema": ["type": "object"],
            ]
        }
    }

    /// A message's content: a string, or blocks (always blocks when a cache breakpoint marks the
    /// last one). A text part that carries the interchange's `cache_control` (an `.other` part
    /// `{"type":"text","text","cache_control"}`) is the same block on Anthropic and passes.
    static func content(_ content: Message.Content, index i: Int, cacheControl: CacheControl? = nil) throws(BatchError) -> JSONValue {
        if case .text(let s) = content, cacheControl == nil { return .string(s) }
        let parts = content.parts
        var blocks: [JSONValue] = []
        blocks.reserveCapacity(parts.count)
        for (j, part) in parts.enumerated() {
            switch part {
            case .text(let t): blocks.append(["type": "text", "text": .string(t)])
            case .image(let image): blocks.append(try imageBlock(image, field: "messages[\(i)].content[\(j)]"))
            case .other(let json):
                if case .object(let o) = json, o["type"] == "text", o["text"]?.stringValue != nil, o.count == 3,
                    let cc = o["cache_control"], CacheControl(json: cc) != nil
                {
                    blocks.append(json)
                    continue
                }
                let kind = json["type"]?.stringValue ?? "unknown"
                throw .validation("Anthropic cannot express a '\(kind)' content part", field: "messages[\(i)].content[\(j)]")
            }
        }
        if let cacheControl, case .object(var last)? = blocks.last {
            last["cache_control"] = cacheControl.json
            blocks[blocks.count - 1] = .object(last)
        }
        return .array(blocks)
    }

    static func imageBlock(_ image: ImagePart, field: String) throws(BatchError) -> JSONValue {
        if let inline = image.inlineData {
            return ["type": "image", "source": ["type": "base64", "media_type": .string(inline.mediaType), "data": .string(inline.data)]]
        }
        guard case .url(let url) = image.source else {
            throw .validation("unsupported image source", field: field)
        }
        let lower = url.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") else {
            throw .validation("Anthropic accepts images as https URLs or base64 data (data: URLs with ;base64)", field: field)
        }
        return ["type": "image", "source": ["type": "url", "url": .string(url)]]
    }

    // MARK: - Responses

    /// Parses a Message object (the answer of `POST /v1/messages`, or a succeeded batch result's
    /// `message`).
    ///
    /// - Text: the text blocks, concatenated. When the request forced `structuredOutputTool`, the
    ///   JSON text of that tool call's `input` instead. Without a known tool, a message that holds
    ///   no text and exactly one `tool_use` block also yields that input as JSON text.
    /// - Finish reason: `end_turn`/`stop_sequence` → `stop`; `max_tokens` and
    ///   `model_context_window_exceeded` → `length`; `tool_use` → `toolCalls` (but `stop` when it is
    ///   the forced structured-output tool); `refusal` → `contentFilter`; others verbatim.
    /// - Usage: `inputTokens` = `input_tokens + cache_creation_input_tokens +
    ///   cache_read_input_tokens` (Anthropic reports the three apart; their sum is the prompt),
    ///   `cachedInputTokens` = `cache_read_input_tokens`, `outputTokens` = `output_tokens`.
    public static func parseMessage(_ json: JSONValue, structuredOutputTool: String? = nil) throws(BatchError) -> ModelResponse {
        guard json.objectValue != nil, let blocks = json["content"]?.arrayValue else {
            throw BatchError(.invalidResponse, "the answer is not an Anthropic Message (no content array)", isRetryable: false)
        }
        var texts: [String] = []
        var toolUses: [JSONValue] = []
        for block in blocks {
            switch block["type"]?.stringValue {
            case "text": if let t = block["text"]?.stringValue { texts.append(t) }
            case "tool_use": toolUses.append(block)
            default: break
            }
        }
        let stopReason = json["stop_reason"]?.stringValue
        var text: String = texts.joined()
        var forced = false
        if let name = structuredOutputTool, let call = toolUses.first(where: { $0["name"]?.stringValue == name }) {
            text = (call["input"] ?? .object([:])).jsonString
            forced = true
        } else if texts.isEmpty, toolUses.count == 1 {
            text = (toolUses[0]["input"] ?? .object([:])).jsonString
        }
        let calls: [ToolCall] = forced ? [] : toolUses.map { block in
            ToolCall(id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "", arguments: block["input"] ?? .object([:]))
        }
        let finish: FinishReason?
        switch stopReason {
        case nil: finish = nil
        case "end_turn"?, "stop_sequence"?: finish = .stop
        case "max_tokens"?, "model_context_window_exceeded"?: finish = .length
        case "tool_use"?: finish = forced ? .stop : .toolCalls
        case "refusal"?: finish = .contentFilter
        case let other?: finish = FinishReason(rawValue: other)
        }
        return ModelResponse(
            text: text, finishReason: finish, usage: usage(json["usage"]), model: json["model"]?.stringValue, raw: json,
            toolCalls: calls)
    }

    /// Anthropic `usage` → ``Usage`` (see ``parseMessage(_:structuredOutputTool:)``): cache reads
    /// as ``Usage/cachedInputTokens``, writes as ``Usage/cacheWriteTokens``, of which the
    /// one-hour ones (`cache_creation.ephemeral_1h_input_tokens`) as ``Usage/cacheWrite1hTokens``.
    public static func usage(_ u: JSONValue?) -> Usage {
        guard let u else { return .zero }
        let input = u["input_tokens"]?.intValue ?? 0
        let created = u["cache_creation_input_tokens"]?.intValue ?? 0
        let read = u["cache_read_input_tokens"]?.intValue ?? 0
        let oneHour = min(created, u["cache_creation"]?["ephemeral_1h_input_tokens"]?.intValue ?? 0)
        return Usage(
            inputTokens: input + created + read, outputTokens: u["output_tokens"]?.intValue ?? 0, cachedInputTokens: read,
            cacheWriteTokens: created, cacheWrite1hTokens: oneHour)
    }

    // MARK: - Errors

    /// Translates an Anthropic error answer to a ``BatchError``.
    ///
    /// - Code from `error.type` (an open set: unknown types fall back to the HTTP status):
    ///   `invalid_request_error`/`request_too_large` → invalidRequest, `authentication_error` →
    ///   authentication, `permission_error`/`billing_error` → permission, `not_found_error` →
    ///   notFound, `rate_limit_error` → rateLimited, `api_error` → server, `timeout_error` →
    ///   timeout, `overloaded_error` (and any 529) → overloaded, `conflict_error` → server (the
    ///   SDK retries 409).
    /// - `retryAfter`: `retry-after-ms`, else `retry-after` (seconds or HTTP date), else for a 429
    ///   the latest `anthropic-ratelimit-*-reset` among the budgets with nothing remaining (or, when
    ///   none reports 0, the reset of the budget with the smallest share left).
    /// - A 429 for a spend limit (`details.error_code == "enforced_spend_limit_reached"`, or a
    ///   message about a spend/usage limit, with no `retry-after`) is not retryable.
    /// - `x-should-retry: true|false` overrides retryability, as in the official SDK.
    /// - `rateLimit` carries the `anthropic-ratelimit-*` headers.
    public static func error(status: Int, headers: HTTPHeaders, body: Data, now: Date = Date()) -> BatchError {
        let json = try? JSONValue(parsing: body)
        let type = json?["error"]?["type"]?.stringValue
        var message = json?["error"]?["message"]?.stringValue ?? fallbackMessage(status: status, body: body)
        if let rid = json?["request_id"]?.stringValue ?? headers["request-id"] { message += " (request id \(rid))" }
        var code = status == 529 ? .overloaded : type.flatMap(code(forErrorType:)) ?? BatchError.code(forHTTPStatus: status)
        if status == 413 { code = .invalidRequest }
        let rateLimit = RateLimitHeaderParser.anthropic.parse(headers, now: now)
        var retryAfter = RateLimitHeaderParsing.retryAfter(headers, now: now)
        if retryAfter == nil, code == .rateLimited, let info = rateLimit {
            // The budget that ran out: those with nothing remaining, else the one with the least
            // left relative to its limit (token remainders are rounded to thousands).
            let budgets = [info.requests, info.tokens, info.inputTokens, info.outputTokens].filter { $0.resetAfter != nil }
            let exhausted = budgets.filter { $0.remaining == 0 }
            if !exhausted.isEmpty {
                retryAfter = exhausted.compactMap(\.resetAfter).max()
            } else {
                func share(_ b: RateLimitInfo.Budget) -> Double {
                    guard let r = b.remaining, let l = b.limit, l > 0 else { return 1 }
                    return Double(r) / Double(l)
                }
                retryAfter = budgets.min { share($0) < share($1) }?.resetAfter
            }
        }
        var retryable = code.isRetryableByDefault
        if code == .rateLimited, headers["retry-after"] == nil, headers["retry-after-ms"] == nil {
            let detail = json?["error"]?["details"]?["error_code"]?.stringValue ?? json?["details"]?["error_code"]?.stringValue
            let lower = message.lowercased()
            if detail == "enforced_spend_limit_reached" || lower.contains("spend limit") || lower.contains("usage limit") {
                retryable = false
                retryAfter = nil
            }
        }
        if type == "conflict_error" { retryable = true }
        switch headers["x-should-retry"]?.lowercased() {
        case "true"?: retryable = true
        case "false"?: retryable = false
        default: break
        }
        return BatchError(
            code, message, httpStatus: status, providerType: type ?? (status == 413 ? "request_too_large" : nil),
            field: code == .invalidRequest ? field(in: message) : nil, retryAfter: retryAfter, isRetryable: retryable,
            rateLimit: rateLimit)
    }

    /// The ``BatchError/Code`` for an Anthropic `error.type`, or `nil` for an unknown type.
    public static func code(forErrorType type: String) -> BatchError.Code? {
        switch type {
        case "invalid_request_error", "request_too_large": return .invalidRequest
        case "authentication_error": return .authentication
        case "permission_error", "billing_error": return .permission
        case "not_found_error": return .notFound
        case "rate_limit_error": return .rateLimited
        case "api_error", "conflict_error": return .server
        case "timeout_error": return .timeout
        case "overloaded_error": return .overloaded
        default: return nil
        }
    }

    /// The error of an `errored` batch result: `result.error` is a full error envelope
    /// (`{"type":"error","error":{"type","message"},"request_id"}`). `invalid_request_error` is
    /// not retryable (fix the request); other types are (retry as is), as Anthropic's docs advise.
    public static func batchItemError(_ envelope: JSONValue?) -> BatchError {
        let inner = envelope?["error"]
        let type = inner?["type"]?.stringValue ?? envelope?["type"]?.stringValue
        var message = inner?["message"]?.stringValue ?? "the request failed in the batch"
        if let rid = envelope?["request_id"]?.stringValue { message += " (request id \(rid))" }
        let code = type.flatMap(code(forErrorType:)) ?? .server
        return BatchError(
            code, message, providerType: type, field: code == .invalidRequest ? field(in: message) : nil,
            isRetryable: type != "invalid_request_error" && code != .authentication && code != .permission && code != .notFound)
    }

    /// Anthropic's validation messages start with the field path (`max_tokens: Field required`,
    /// `messages.0.content: ...`); returns that path.
    static func field(in message: String) -> String? {
        guard let colon = message.firstIndex(of: ":") else { return nil }
        let head = message[..<colon]
        guard !head.isEmpty, head.count <= 80,
            head.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" })
        else { return nil }
        return String(head)
    }

    static func fallbackMessage(status: Int, body: Data) -> String {
        let snippet = String(decoding: body.prefix(200), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if status == 413 { return "request too large (over Anthropic's size limit)" }
        return snippet.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(snippet)"
    }
}
