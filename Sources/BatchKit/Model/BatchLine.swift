package import Foundation

// The batch-line interchange format: the batch input line (`{"custom_id","method","url","body"}`)
// that the command-line tool reads and that native batch backends can write. It is the OpenAI
// batch input format; the other providers translate from the `BatchRequest` it becomes. The
// output line is in Journal/OutputLine.swift.

extension BatchRequest {
    /// Reads one batch input line (`{"custom_id", "method", "url", "body"}`).
    ///
    /// `/v1/chat/completions` becomes ``Body/chat(_:)``, `/v1/embeddings` with string inputs
    /// becomes ``Body/embedding(_:)``, anything else (`/v1/responses`, `/v1/completions`,
    /// `/v1/moderations`, token-id embeddings...) is kept verbatim as ``Body/raw(_:)``.
    ///
    /// The conversion is lossless: fields BatchKit does not model land in `extra` (of the
    /// request or of the message), and ``batchLine()`` writes the same JSON back. Two
    /// normalisations are the only exceptions, both meaning the same to the API: an integral
    /// floating-point `temperature`/`top_p` (`1.0`) comes back as an integer (`1`), a message
    /// without a `content` key comes back with `"content": null`, and tool-call `arguments` come
    /// back as compact JSON text.
    ///
    /// A line's own `metadata` member (an object of strings, BatchKit's addition to the format)
    /// becomes ``metadata``; ``batchLine()`` does not write it, so it never reaches a provider.
    ///
    /// ```swift
    /// let line: JSONValue = ["custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
    ///                        "body": ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Hi"]]]]
    /// let request = try BatchRequest(batchLine: line, lineNumber: 1)
    /// assert(request.batchLine() == line)
    /// ```
    ///
    /// - Throws: a `validation` ``BatchError`` whose message names the line and field
    ///   (`line 12: missing field "custom_id"`) and whose ``BatchError/field`` is the field's path.
    public init(batchLine line: JSONValue, lineNumber: Int? = nil) throws(BatchError) {
        let ctx = BatchLine.LineContext(line: lineNumber)
        guard case .object(let o) = line else { throw ctx.error("a batch line must be a JSON object", field: nil) }
        guard let idValue = o["custom_id"] else { throw ctx.missing("custom_id") }
        guard case .string(let id) = idValue else { throw ctx.invalid("custom_id", "must be a string") }
        guard !id.isEmpty else { throw ctx.invalid("custom_id", "must not be empty") }
        guard let methodValue = o["method"] else { throw ctx.missing("method") }
        guard case .string(let method) = methodValue, method == "POST" else {
            throw ctx.invalid("method", "must be \"POST\"")
        }
        guard let urlValue = o["url"] else { throw ctx.missing("url") }
        guard case .string(let url) = urlValue, url.hasPrefix("/") else {
            throw ctx.invalid("url", "must be an endpoint path such as \"/v1/chat/completions\"")
        }
        guard let bodyValue = o["body"] else { throw ctx.missing("body") }
        guard case .object(let body) = bodyValue else { throw ctx.invalid("body", "must be a JSON object") }

        var metadata: [String: String] = [:]
        if let m = o["metadata"], !m.isNull {
            guard case .object(let members) = m else { throw ctx.invalid("metadata", "must be an object of strings") }
            for key in members.keys.sorted() {
                guard case .string(let value) = members[key]! else {
                    throw ctx.invalid("metadata.\(key)", "must be a string")
                }
                metadata[key] = value
            }
        }

        let requestBody: Body
        switch url {
        case BatchLine.chatEndpoint:
            requestBody = .chat(try BatchLine.chatRequest(body: body, ctx))
        case BatchLine.embeddingsEndpoint:
            if let embedding = try BatchLine.embeddingRequest(body: body, ctx) {
                requestBody = .embedding(embedding)
            } else {
                requestBody = .raw(RawRequest(endpoint: url, body: bodyValue))
            }
        default:
            requestBody = .raw(RawRequest(endpoint: url, body: bodyValue))
        }
        self.init(id: id, body: requestBody, metadata: metadata)
    }

    /// Reads one batch input line from its UTF-8 bytes (a JSONL line without its newline).
    ///
    /// - Throws: a `validation` ``BatchError`` naming the line, for text that is not JSON or a line
    ///   that is not a valid batch line.
    package init(batchLine bytes: some Collection<UInt8>, lineNumber: Int? = nil) throws(BatchError) {
        let parsed: Result<JSONValue, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buf in
            do throws(JSONParseError) { return .success(try JSONValue(parsing: buf)) } catch { return .failure(error) }
        }
        let result: Result<JSONValue, JSONParseError>
        if let parsed {
            result = parsed
        } else {
            do throws(JSONParseError) { result = .success(try JSONValue(parsing: ArraySlice(bytes))) } catch {
                result = .failure(error)
            }
        }
        switch result {
        case .success(let value): try self.init(batchLine: value, lineNumber: lineNumber)
        case .failure(let error):
            throw BatchLine.LineContext(line: lineNumber).error("not valid JSON (\(error))", field: nil)
        }
    }

    /// This request as a batch input line: `{"custom_id", "method": "POST", "url", "body"}`.
    ///
    /// `url` is ``endpoint``; `body` is the request body in the line's format.
    public func batchLine() -> JSONValue {
        .object([
            "custom_id": .string(id), "method": "POST", "url": .string(endpoint), "body": BatchLine.body(of: body),
        ])
    }

    /// This request as one batch input line of compact JSON, without the trailing newline.
    package func batchLineData() -> Data {
        var out = [UInt8]()
        out.reserveCapacity(512)
        writeBatchLine(into: &out)
        return Data(out)
    }

    /// Appends this request's batch input line (compact JSON, no newline) to `out`.
    ///
    /// Byte for byte the same as `batchLine().write(into:)`, written without building the
    /// intermediate `JSONValue` envelope.
    package func writeBatchLine(into out: inout [UInt8]) {
        // Keys in sorted order, as JSONValue writes objects: body, custom_id, method, url.
        out.append(contentsOf: #"{"body":"#.utf8)
        if case .chat(let chat) = body, BatchLine.writeChatBodyFast(chat, into: &out) {
            // Written directly.
        } else {
            BatchLine.body(of: body).write(into: &out)
        }
        out.append(contentsOf: #","custom_id":"#.utf8)
        JSONValue.writeString(id, into: &out)
        out.append(contentsOf: #","method":"POST","url":"#.utf8)
        JSONValue.writeString(endpoint, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}

/// The request half of the batch-line interchange format: the `body` of a batch input line
/// (a chat-completions or embeddings request body), written from and read into the model types.
///
/// It is the format of `batchkit run` input files and of the OpenAI-compatible provider module,
/// which posts these bodies as they are.
package enum BatchLine {
    /// The chat completions endpoint path.
    package static let chatEndpoint = "/v1/chat/completions"
    /// The embeddings endpoint path.
    package static let embeddingsEndpoint = "/v1/embeddings"

    // MARK: - Request bodies

    /// The JSON body posted for a request: ``chatBody(_:)``, ``embeddingBody(_:)`` or the raw body.
    package static func body(of body: BatchRequest.Body, cacheMarkers: Bool = true) -> JSONValue {
        switch body {
        case .chat(let c): return chatBody(c, cacheMarkers: cacheMarkers)
        case .embedding(let e): return embeddingBody(e)
        case .raw(let r): return r.body
        }
    }

    /// The `/v1/chat/completions` body of a chat request.
    ///
    /// `system` becomes a leading `system` message; `maxTokens` is written as
    /// `max_completion_tokens` (or `max_tokens` when ``ChatRequest/usesLegacyMaxTokens``); integral
    /// numbers are written as integers; `extra` is merged last and overrides what BatchKit wrote.
    ///
    /// Tools are written in OpenAI's shape (`tools`, `tool_choice`, `parallel_tool_calls`,
    /// assistant `tool_calls`, `tool_call_id`), as are `prompt_cache_key`. Two members are the
    /// interchange format's own, for the providers that take them: `cache_control` on a content
    /// part or tool (Anthropic breakpoints; left out when `cacheMarkers` is `false`, as the OpenAI
    /// module posts it) and `cached_content` (Gemini).
    package static func chatBody(_ c: ChatRequest, cacheMarkers: Bool = true) -> JSONValue {
        var o: [String: JSONValue] = [:]
        o.reserveCapacity(4 + c.extra.count)
        o["model"] = .string(c.model)
        var messages: [JSONValue] = []
        messages.reserveCapacity(c.messages.count + 1)
        if let system = c.system {
            messages.append(message(Message(role: .system, content: .text(system), cacheControl: c.systemCacheControl), cacheMarkers: cacheMarkers))
        }
        for m in c.messages { messages.append(message(m, cacheMarkers: cacheMarkers)) }
        o["messages"] = .array(messages)
        if !c.tools.isEmpty { o["tools"] = .array(c.tools.map { tool($0, cacheMarkers: cacheMarkers) }) }
        if let choice = c.toolChoice { o["tool_choice"] = toolChoice(choice) }
        if let parallel = c.parallelToolCalls { o["parallel_tool_calls"] = .bool(parallel) }
        if let key = c.promptCacheKey { o["prompt_cache_key"] = .string(key) }
        if let name = c.cachedContent { o["cached_content"] = .string(name) }
        if let n = c.maxTokens { o[c.usesLegacyMaxTokens ? "max_tokens" : "max_completion_tokens"] = .int(n) }
        if let t = c.temperature { o["temperature"] = number(t) }
        if let p = c.topP { o["top_p"] = number(p) }
        if let stop = c.stop { o["stop"] = .array(stop.map(JSONValue.string)) }
        if let seed = c.seed { o["seed"] = .int(seed) }
        if let format = c.responseFormat { o["response_format"] = responseFormat(format) }
        for (k, v) in c.extra { o[k] = v }
        return .object(o)
    }

    /// Writes ``chatBody(_:)`` without building a `JSONValue`, byte for byte as its serialisation
    /// (keys sorted), when nothing needs merging (no `extra` anywhere). Returns `false`, having
    /// written nothing, otherwise.
    package static func writeChatBodyFast(_ c: ChatRequest, into out: inout [UInt8]) -> Bool {
        guard c.extra.isEmpty, !c.usesToolsOrCaching,
            c.messages.allSatisfy({ $0.extra.isEmpty && $0.toolCalls.isEmpty && $0.toolCallID == nil && $0.cacheControl == nil })
        else { return false }
        // Keys in sorted order: max_completion_tokens | max_tokens, messages, model,
        // response_format, seed, stop, temperature, top_p.
        out.append(UInt8(ascii: "{"))
        if let n = c.maxTokens {
            out.append(contentsOf: (c.usesLegacyMaxTokens ? #""max_tokens":"# : #""max_completion_tokens":"#).utf8)
            JSONValue.writeInt(n, into: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: #""messages":["#.utf8)
        var first = true
        if let system = c.system {
            out.append(contentsOf: #"{"content":"#.utf8)
            JSONValue.writeString(system, into: &out)
            out.append(contentsOf: #","role":"system"}"#.utf8)
            first = false
        }
        for m in c.messages {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: #"{"content":"#.utf8)
            switch m.content {
            case .text(let t): JSONValue.writeString(t, into: &out)
            case .parts(let parts): JSONValue.array(parts.map(contentPart)).write(into: &out)
            }
            out.append(contentsOf: #","role":"#.utf8)
            JSONValue.writeString(m.role.rawValue, into: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: #"],"model":"#.utf8)
        JSONValue.writeString(c.model, into: &out)
        if let f = c.responseFormat {
            out.append(contentsOf: #","response_format":"#.utf8)
            responseFormat(f).write(into: &out)
        }
        if let seed = c.seed {
            out.append(contentsOf: #","seed":"#.utf8)
            JSONValue.writeInt(seed, into: &out)
        }
        if let stop = c.stop {
            out.append(contentsOf: #","stop":"#.utf8)
            JSONValue.array(stop.map(JSONValue.string)).write(into: &out)
        }
        if let t = c.temperature {
            out.append(contentsOf: #","temperature":"#.utf8)
            number(t).write(into: &out)
        }
        if let p = c.topP {
            out.append(contentsOf: #","top_p":"#.utf8)
            number(p).write(into: &out)
        }
        out.append(UInt8(ascii: "}"))
        return true
    }

    /// One chat message in OpenAI's shape; `extra` is merged last.
    ///
    /// An assistant turn with tool calls and no content has `"content": null`. A cache breakpoint
    /// (when `cacheMarkers`) writes the content as parts, the last one carrying `cache_control`.
    package static func message(_ m: Message, cacheMarkers: Bool = true) -> JSONValue {
        var o: [String: JSONValue] = ["role": .string(m.role.rawValue)]
        switch m.content {
        case .parts(let parts) where parts.isEmpty && !m.toolCalls.isEmpty: o["content"] = .null
        case .text(let s) where !(cacheMarkers && m.cacheControl != nil): o["content"] = .string(s)
        default:
            var parts = m.content.parts.map(contentPart)
            if cacheMarkers, let cc = m.cacheControl, case .object(var last)? = parts.last {
                last["cache_control"] = cc.json
                parts[parts.count - 1] = .object(last)
            }
            o["content"] = .array(parts)
        }
        if !m.toolCalls.isEmpty { o["tool_calls"] = .array(m.toolCalls.map(toolCall)) }
        if let id = m.toolCallID { o["tool_call_id"] = .string(id) }
        for (k, v) in m.extra { o[k] = v }
        return .object(o)
    }

    /// One tool in OpenAI's shape: `{"type":"function","function":{"name","description","parameters","strict"}}`,
    /// plus the interchange's `cache_control` when `cacheMarkers`.
    package static func tool(_ t: Tool, cacheMarkers: Bool = true) -> JSONValue {
        var f: [String: JSONValue] = ["name": .string(t.name)]
        if let d = t.description { f["description"] = .string(d) }
        if let p = t.parameters { f["parameters"] = p }
        if let strict = t.strict { f["strict"] = .bool(strict) }
        var o: [String: JSONValue] = ["type": "function", "function": .object(f)]
        if cacheMarkers, let cc = t.cacheControl { o["cache_control"] = cc.json }
        return .object(o)
    }

    /// OpenAI's `tool_choice`: `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name"}}`.
    package static func toolChoice(_ c: ToolChoice) -> JSONValue {
        switch c {
        case .auto: return "auto"
        case .none: return "none"
        case .required: return "required"
        case .tool(let name): return ["type": "function", "function": ["name": .string(name)]]
        }
    }

    /// One call in OpenAI's shape: `{"id","type":"function","function":{"name","arguments":"<JSON text>"}}`.
    package static func toolCall(_ call: ToolCall) -> JSONValue {
        ["id": .string(call.id), "type": "function",
         "function": ["name": .string(call.name), "arguments": .string(call.argumentsText)]]
    }

    /// Reads OpenAI's `tool_calls` list; `nil` unless every element has exactly that shape.
    package static func toolCalls(parsing v: JSONValue) -> [ToolCall]? {
        guard case .array(let list) = v else { return nil }
        var calls: [ToolCall] = []
        calls.reserveCapacity(list.count)
        for item in list {
            guard case .object(let o) = item, o.count == 3, o["type"] == "function", case .string(let id)? = o["id"],
                case .object(let f)? = o["function"], f.count == 2, case .string(let name)? = f["name"],
                case .string(let arguments)? = f["arguments"]
            else { return nil }
            calls.append(ToolCall(id: id, name: name, arguments: ToolCall.arguments(parsing: arguments)))
        }
        return calls
    }

    /// Reads one tool in OpenAI's shape (with the interchange's `cache_control`); `nil` for any
    /// other shape.
    package static func tool(parsing v: JSONValue) -> Tool? {
        guard case .object(let o) = v, o["type"] == "function", case .object(let f)? = o["function"],
            case .string(let name)? = f["name"]
        else { return nil }
        var tool = Tool(name: name)
        var known = 2
        if let cc = o["cache_control"] {
            guard let c = CacheControl(json: cc) else { return nil }
            tool.cacheControl = c
            known += 1
        }
        guard known == o.count else { return nil }
        var fields = 1
        if let d = f["description"] {
            guard case .string(let text) = d else { return nil }
            tool.description = text
            fields += 1
        }
        if let p = f["parameters"] {
            tool.parameters = p
            fields += 1
        }
        if let s = f["strict"] {
            guard case .bool(let b) = s else { return nil }
            tool.strict = b
            fields += 1
        }
        return fields == f.count ? tool : nil
    }

    /// Reads OpenAI's `tool_choice`; `nil` for a shape ``ToolChoice`` does not model.
    package static func toolChoice(parsing v: JSONValue) -> ToolChoice? {
        switch v {
        case "auto": return .auto
        case "none": return ToolChoice.none
        case "required": return .required
        case .object(let o):
            guard o.count == 2, o["type"] == "function", case .object(let f)? = o["function"], f.count == 1,
                case .string(let name)? = f["name"]
            else { return nil }
            return .tool(name)
        default: return nil
        }
    }

    /// One content part in OpenAI's shape (`text`, `image_url`, or the verbatim `other` JSON).
    package static func contentPart(_ p: ContentPart) -> JSONValue {
        switch p {
        case .text(let t): return .object(["type": "text", "text": .string(t)])
        case .image(let image):
            let url: String
            switch image.source {
            case .url(let u): url = u
            case .base64(let mediaType, let data): url = "data:\(mediaType);base64,\(data)"
            }
            var i: [String: JSONValue] = ["url": .string(url)]
            if let detail = image.detail { i["detail"] = .string(detail) }
            return .object(["type": "image_url", "image_url": .object(i)])
        case .other(let v): return v
        }
    }

    /// OpenAI's `response_format` object.
    package static func responseFormat(_ f: ResponseFormat) -> JSONValue {
        switch f {
        case .text: return ["type": "text"]
        case .jsonObject: return ["type": "json_object"]
        case .jsonSchema(let s):
            var schema: [String: JSONValue] = ["name": .string(s.name), "schema": s.schema]
            if let d = s.description { schema["description"] = .string(d) }
            if let strict = s.strict { schema["strict"] = .bool(strict) }
            return .object(["type": "json_schema", "json_schema": .object(schema)])
        }
    }

    /// The `/v1/embeddings` body: `input` is a string when ``EmbeddingRequest/isSingleInput`` and a
    /// list otherwise; `extra` (e.g. `encoding_format`, `user`) is merged last.
    package static func embeddingBody(_ e: EmbeddingRequest) -> JSONValue {
        var o: [String: JSONValue] = ["model": .string(e.model)]
        if e.isSingleInput, e.inputs.count == 1 {
            o["input"] = .string(e.inputs[0])
        } else {
            o["input"] = .array(e.inputs.map(JSONValue.string))
        }
        if let d = e.dimensions { o["dimensions"] = .int(d) }
        for (k, v) in e.extra { o[k] = v }
        return .object(o)
    }

    /// A number as JSON: an integer when the value is integral (`0`, `1`), a double otherwise.
    package static func number(_ d: Double) -> JSONValue {
        if d.rounded() == d, abs(d) < 9.0e15 { return .int(Int(d)) }
        return .double(d)
    }

    // MARK: - Request parsing

    /// Where a batch line came from, for error messages.
    package struct LineContext {
        package var line: Int?
        package init(line: Int?) { self.line = line }

        package func error(_ text: String, field: String?) -> BatchError {
            .validation(line.map { "line \($0): \(text)" } ?? text, field: field)
        }
        package func missing(_ field: String) -> BatchError { error("missing field \"\(field)\"", field: field) }
        package func invalid(_ field: String, _ why: String) -> BatchError { error("field \"\(field)\" \(why)", field: field) }
    }

    package static func chatRequest(body: [String: JSONValue], _ ctx: LineContext) throws(BatchError) -> ChatRequest {
        var extra = body
        guard let modelValue = extra.removeValue(forKey: "model") else { throw ctx.missing("body.model") }
        guard case .string(let model) = modelValue else { throw ctx.invalid("body.model", "must be a string") }
        guard let messagesValue = extra.removeValue(forKey: "messages") else { throw ctx.missing("body.messages") }
        guard case .array(let list) = messagesValue else { throw ctx.invalid("body.messages", "must be an array") }
        var messages: [Message] = []
        messages.reserveCapacity(list.count)
        for (index, m) in list.enumerated() { messages.append(try message(m, index: index, ctx)) }

        var chat = ChatRequest(model: model, messages: messages)
        if case .int(let n)? = extra["max_completion_tokens"] {
            chat.maxTokens = n
            extra["max_completion_tokens"] = nil
        } else if case .int(let n)? = extra["max_tokens"] {
            chat.maxTokens = n
            chat.usesLegacyMaxTokens = true
            extra["max_tokens"] = nil
        }
        if let t = extra["temperature"], let d = plainNumber(t) {
            chat.temperature = d
            extra["temperature"] = nil
        }
        if let p = extra["top_p"], let d = plainNumber(p) {
            chat.topP = d
            extra["top_p"] = nil
        }
        if case .array(let items)? = extra["stop"] {
            // A string `stop` stays in `extra` so it is written back as a string.
            let strings = items.compactMap(\.stringValue)
            if strings.count == items.count {
                chat.stop = strings
                extra["stop"] = nil
            }
        }
        if case .int(let seed)? = extra["seed"] {
            chat.seed = seed
            extra["seed"] = nil
        }
        if let f = extra["response_format"], let format = responseFormat(parsing: f) {
            chat.responseFormat = format
            extra["response_format"] = nil
        }
        if case .array(let list)? = extra["tools"], !list.isEmpty {
            let tools = list.compactMap(tool(parsing:))
            if tools.count == list.count {
                chat.tools = tools
                extra["tools"] = nil
            }
        }
        if let c = extra["tool_choice"], let choice = toolChoice(parsing: c) {
            chat.toolChoice = choice
            extra["tool_choice"] = nil
        }
        if case .bool(let b)? = extra["parallel_tool_calls"] {
            chat.parallelToolCalls = b
            extra["parallel_tool_calls"] = nil
        }
        if case .string(let key)? = extra["prompt_cache_key"] {
            chat.promptCacheKey = key
            extra["prompt_cache_key"] = nil
        }
        if case .string(let name)? = extra["cached_content"] {
            chat.cachedContent = name
            extra["cached_content"] = nil
        }
        chat.extra = extra
        return chat
    }

    /// A number whose written form ``number(_:)`` reproduces: any integer, or a non-integral double.
    package static func plainNumber(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i) where abs(i) < 1 << 53: return Double(i)
        case .double(let d) where d.isFinite: return d
        default: return nil
        }
    }

    package static func message(_ v: JSONValue, index: Int, _ ctx: LineContext) throws(BatchError) -> Message {
        let path = "body.messages[\(index)]"
        guard case .object(var o) = v else { throw ctx.invalid(path, "must be an object") }
        guard let roleValue = o.removeValue(forKey: "role") else { throw ctx.missing(path + ".role") }
        guard case .string(let role) = roleValue else { throw ctx.invalid(path + ".role", "must be a string") }
        var toolCalls: [ToolCall] = []
        if let v = o["tool_calls"], let calls = BatchLine.toolCalls(parsing: v), !calls.isEmpty {
            toolCalls = calls
            o["tool_calls"] = nil
        }
        var toolCallID: String?
        if case .string(let id)? = o["tool_call_id"] {
            toolCallID = id
            o["tool_call_id"] = nil
        }
        var cacheControl: CacheControl?
        let content: Message.Content
        switch o["content"] {
        case .string(let s)?:
            content = .text(s)
            o["content"] = nil
        case .array(var parts)?:
            // A breakpoint on the last part, a text part: the message's cache control.
            if case .object(var last)? = parts.last, last.count == 3, last["type"] == "text", last["text"]?.stringValue != nil,
                let cc = last["cache_control"].flatMap(CacheControl.init(json:))
            {
                cacheControl = cc
                last["cache_control"] = nil
                parts[parts.count - 1] = .object(last)
            }
            content = .parts(parts.map(contentPart(parsing:)))
            o["content"] = nil
        case .null? where !toolCalls.isEmpty, .none where !toolCalls.isEmpty:
            // A tool-calling assistant turn without text: written back as `"content": null`.
            content = .parts([])
            o["content"] = nil
        case .some:
            // `null` or another shape: written back verbatim.
            content = .text("")
        case .none:
            content = .text("")
            o["content"] = .null
        }
        return Message(
            role: Message.Role(rawValue: role), content: content, extra: o, toolCalls: toolCalls, toolCallID: toolCallID,
            cacheControl: cacheControl)
    }

    package static func contentPart(parsing v: JSONValue) -> ContentPart {
        guard case .object(let o) = v, case .string(let type)? = o["type"] else { return .other(v) }
        switch type {
        case "text":
            if o.count == 2, case .string(let t)? = o["text"] { return .text(t) }
        case "image_url":
            if o.count == 2, case .object(let image)? = o["image_url"], case .string(let url)? = image["url"] {
                if image.count == 1 { return .image(ImagePart(source: .url(url))) }
                if image.count == 2, case .string(let detail)? = image["detail"] {
                    return .image(ImagePart(source: .url(url), detail: detail))
                }
            }
        default:
            break
        }
        return .other(v)
    }

    package static func responseFormat(parsing v: JSONValue) -> ResponseFormat? {
        guard case .object(let o) = v, case .string(let type)? = o["type"] else { return nil }
        switch type {
        case "text" where o.count == 1: return .text
        case "json_object" where o.count == 1: return .jsonObject
        case "json_schema" where o.count == 2:
            guard case .object(let s)? = o["json_schema"], case .string(let name)? = s["name"], let schema = s["schema"]
            else { return nil }
            var format = JSONSchemaFormat(name: name, schema: schema)
            var known = 2
            if let d = s["description"] {
                guard case .string(let text) = d else { return nil }
                format.description = text
                known += 1
            }
            if let strict = s["strict"] {
                guard case .bool(let b) = strict else { return nil }
                format.strict = b
                known += 1
            }
            guard known == s.count else { return nil }
            return .jsonSchema(format)
        default:
            return nil
        }
    }

    /// An embedding request, or `nil` when the input is not text (token ids: kept as a raw request).
    package static func embeddingRequest(body: [String: JSONValue], _ ctx: LineContext) throws(BatchError) -> EmbeddingRequest? {
        var extra = body
        guard let modelValue = extra.removeValue(forKey: "model") else { throw ctx.missing("body.model") }
        guard case .string(let model) = modelValue else { throw ctx.invalid("body.model", "must be a string") }
        guard let input = extra.removeValue(forKey: "input") else { throw ctx.missing("body.input") }
        var request: EmbeddingRequest
        switch input {
        case .string(let s):
            request = EmbeddingRequest(model: model, input: s)
        case .array(let items):
            let strings = items.compactMap(\.stringValue)
            guard strings.count == items.count else { return nil }
            request = EmbeddingRequest(model: model, inputs: strings)
        default:
            return nil
        }
        if case .int(let d)? = extra["dimensions"] {
            request.dimensions = d
            extra["dimensions"] = nil
        }
        request.extra = extra
        return request
    }
}
