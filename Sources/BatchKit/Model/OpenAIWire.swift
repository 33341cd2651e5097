import Foundation

// The OpenAI wire format lives in the core module because the OpenAI batch input line
// (`{"custom_id","method","url","body"}`) is BatchKit's interchange format: the command-line
// tool reads it, and the Anthropic and Gemini paths translate from the `BatchRequest` it
// becomes.

extension BatchRequest {
    /// Reads one OpenAI batch input line (`{"custom_id", "method", "url", "body"}`).
    ///
    /// `/v1/chat/completions` becomes ``Body/chat(_:)``, `/v1/embeddings` with string inputs
    /// becomes ``Body/embedding(_:)``, anything else (`/v1/responses`, `/v1/completions`,
    /// `/v1/moderations`, token-id embeddings...) is kept verbatim as ``Body/raw(_:)``.
    ///
    /// The conversion is lossless: fields BatchKit does not model land in `extra` (of the
    /// request or of the message), and ``openAIBatchLine()`` writes the same JSON back. Two
    /// normalisations are the only exceptions, both meaning the same to the API: an integral
    /// floating-point `temperature`/`top_p` (`1.0`) comes back as an integer (`1`), and a message
    /// without a `content` key comes back with `"content": null`.
    ///
    /// ```swift
    /// let line: JSONValue = ["custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
    ///                        "body": ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Hi"]]]]
    /// let request = try BatchRequest(openAIBatchLine: line, lineNumber: 1)
    /// assert(request.openAIBatchLine() == line)
    /// ```
    ///
    /// - Throws: a `validation` ``BatchError`` whose message names the line and field
    ///   (`line 12: missing field "custom_id"`) and whose ``BatchError/field`` is the field's path.
    public init(openAIBatchLine line: JSONValue, lineNumber: Int? = nil) throws(BatchError) {
        let ctx = OpenAIWire.LineContext(line: lineNumber)
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

        switch url {
        case OpenAIWire.chatEndpoint:
            self.init(id: id, body: .chat(try OpenAIWire.chatRequest(body: body, ctx)))
        case OpenAIWire.embeddingsEndpoint:
            if let embedding = try OpenAIWire.embeddingRequest(body: body, ctx) {
                self.init(id: id, body: .embedding(embedding))
            } else {
                self.init(id: id, body: .raw(RawRequest(endpoint: url, body: bodyValue)))
            }
        default:
            self.init(id: id, body: .raw(RawRequest(endpoint: url, body: bodyValue)))
        }
    }

    /// Reads one OpenAI batch input line from its UTF-8 bytes (a JSONL line without its newline).
    ///
    /// - Throws: a `validation` ``BatchError`` naming the line, for text that is not JSON or a line
    ///   that is not a valid batch line.
    public init(openAIBatchLine bytes: some Collection<UInt8>, lineNumber: Int? = nil) throws(BatchError) {
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
        case .success(let value): try self.init(openAIBatchLine: value, lineNumber: lineNumber)
        case .failure(let error):
            throw OpenAIWire.LineContext(line: lineNumber).error("not valid JSON (\(error))", field: nil)
        }
    }

    /// This request as an OpenAI batch input line: `{"custom_id", "method": "POST", "url", "body"}`.
    ///
    /// `url` is ``openAIEndpoint``; `body` is ``OpenAIWire/body(of:)``.
    public func openAIBatchLine() -> JSONValue {
        .object([
            "custom_id": .string(id), "method": "POST", "url": .string(openAIEndpoint), "body": OpenAIWire.body(of: body),
        ])
    }

    /// This request as one OpenAI batch input line of compact JSON, without the trailing newline.
    public func openAIBatchLineData() -> Data {
        var out = [UInt8]()
        out.reserveCapacity(512)
        writeOpenAIBatchLine(into: &out)
        return Data(out)
    }

    /// Appends this request's OpenAI batch input line (compact JSON, no newline) to `out`.
    ///
    /// Byte for byte the same as `openAIBatchLine().write(into:)`, written without building the
    /// intermediate `JSONValue` envelope.
    public func writeOpenAIBatchLine(into out: inout [UInt8]) {
        // Keys in sorted order, as JSONValue writes objects: body, custom_id, method, url.
        out.append(contentsOf: #"{"body":"#.utf8)
        if case .chat(let chat) = body, OpenAIWire.writeChatBodyFast(chat, into: &out) {
            // Written directly.
        } else {
            OpenAIWire.body(of: body).write(into: &out)
        }
        out.append(contentsOf: #","custom_id":"#.utf8)
        JSONValue.writeString(id, into: &out)
        out.append(contentsOf: #","method":"POST","url":"#.utf8)
        JSONValue.writeString(openAIEndpoint, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}

/// OpenAI's wire format: request bodies, response parsing and error classification.
///
/// Shared by `OpenAIClient`, `OpenAIBatchBackend`, the command-line tool and anything else that
/// speaks OpenAI (any OpenAI-compatible server).
public enum OpenAIWire {
    /// The chat completions endpoint path.
    public static let chatEndpoint = "/v1/chat/completions"
    /// The embeddings endpoint path.
    public static let embeddingsEndpoint = "/v1/embeddings"

    // MARK: - Request bodies

    /// The JSON body posted for a request: ``chatBody(_:)``, ``embeddingBody(_:)`` or the raw body.
    public static func body(of body: BatchRequest.Body) -> JSONValue {
        switch body {
        case .chat(let c): return chatBody(c)
        case .embedding(let e): return embeddingBody(e)
        case .raw(let r): return r.body
        }
    }

    /// The `/v1/chat/completions` body of a chat request.
    ///
    /// `system` becomes a leading `system` message; `maxTokens` is written as
    /// `max_completion_tokens` (or `max_tokens` when ``ChatRequest/usesLegacyMaxTokens``); integral
    /// numbers are written as integers; `extra` is merged last and overrides what BatchKit wrote.
    public static func chatBody(_ c: ChatRequest) -> JSONValue {
        var o: [String: JSONValue] = [:]
        o.reserveCapacity(4 + c.extra.count)
        o["model"] = .string(c.model)
        var messages: [JSONValue] = []
        messages.reserveCapacity(c.messages.count + 1)
        if let system = c.system { messages.append(.object(["role": "system", "content": .string(system)])) }
        for m in c.messages { messages.append(message(m)) }
        o["messages"] = .array(messages)
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
    static func writeChatBodyFast(_ c: ChatRequest, into out: inout [UInt8]) -> Bool {
        guard c.extra.isEmpty, c.messages.allSatisfy({ $0.extra.isEmpty }) else { return false }
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
    public static func message(_ m: Message) -> JSONValue {
        var o: [String: JSONValue] = ["role": .string(m.role.rawValue)]
        switch m.content {
        case .text(let s): o["content"] = .string(s)
        case .parts(let parts): o["content"] = .array(parts.map(contentPart))
        }
        for (k, v) in m.extra { o[k] = v }
        return .object(o)
    }

    /// One content part in OpenAI's shape (`text`, `image_url`, or the verbatim `other` JSON).
    public static func contentPart(_ p: ContentPart) -> JSONValue {
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
    public static func responseFormat(_ f: ResponseFormat) -> JSONValue {
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
    public static func embeddingBody(_ e: EmbeddingRequest) -> JSONValue {
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
    static func number(_ d: Double) -> JSONValue {
        if d.rounded() == d, abs(d) < 9.0e15 { return .int(Int(d)) }
        return .double(d)
    }

    // MARK: - Request parsing

    /// Where a batch line came from, for error messages.
    struct LineContext {
        var line: Int?

        func error(_ text: String, field: String?) -> BatchError {
            .validation(line.map { "line \($0): \(text)" } ?? text, field: field)
        }
        func missing(_ field: String) -> BatchError { error("missing field \"\(field)\"", field: field) }
        func invalid(_ field: String, _ why: String) -> BatchError { error("field \"\(field)\" \(why)", field: field) }
    }

    static func chatRequest(body: [String: JSONValue], _ ctx: LineContext) throws(BatchError) -> ChatRequest {
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
        chat.extra = extra
        return chat
    }

    /// A number whose written form ``number(_:)`` reproduces: any integer, or a non-integral double.
    static func plainNumber(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i) where abs(i) < 1 << 53: return Double(i)
        case .double(let d) where d.isFinite: return d
        default: return nil
        }
    }

    static func message(_ v: JSONValue, index: Int, _ ctx: LineContext) throws(BatchError) -> Message {
        let path = "body.messages[\(index)]"
        guard case .object(var o) = v else { throw ctx.invalid(path, "must be an object") }
        guard let roleValue = o.removeValue(forKey: "role") else { throw ctx.missing(path + ".role") }
        guard case .string(let role) = roleValue else { throw ctx.invalid(path + ".role", "must be a string") }
        let content: Message.Content
        switch o["content"] {
        case .string(let s)?:
            content = .text(s)
            o["content"] = nil
        case .array(let parts)?:
            content = .parts(parts.map(contentPart(parsing:)))
            o["content"] = nil
        case .some:
            // `null` (an assistant message with tool calls) or another shape: written back verbatim.
            content = .text("")
        case .none:
            content = .text("")
            o["content"] = .null
        }
        return Message(role: Message.Role(rawValue: role), content: content, extra: o)
    }

    static func contentPart(parsing v: JSONValue) -> ContentPart {
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

    static func responseFormat(parsing v: JSONValue) -> ResponseFormat? {
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
    static func embeddingRequest(body: [String: JSONValue], _ ctx: LineContext) throws(BatchError) -> EmbeddingRequest? {
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
            text: text, finishReason: finish, usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body)
    }

    /// OpenAI's `finish_reason` in BatchKit's vocabulary (`function_call` counts as `tool_calls`;
    /// unknown values pass through).
    public static func finishReason(_ raw: String) -> FinishReason {
        switch raw {
        case "stop": return .stop
        case "length": return .length
        case "tool_calls", "function_call": return .toolCalls
        case "content_filter": return .contentFilter
        default: return FinishReason(rawValue: raw)
        }
    }

    /// Token usage in any of OpenAI's shapes: chat (`prompt_tokens`, `completion_tokens`,
    /// `*_tokens_details`), embeddings (`prompt_tokens`), responses (`input_tokens`, `output_tokens`).
    public static func usage(_ u: JSONValue?) -> Usage {
        guard let u, case .object = u else { return .zero }
        let input = u["prompt_tokens"]?.intValue ?? u["input_tokens"]?.intValue ?? 0
        let output = u["completion_tokens"]?.intValue ?? u["output_tokens"]?.intValue ?? 0
        let cached = (u["prompt_tokens_details"] ?? u["input_tokens_details"])?["cached_tokens"]?.intValue ?? 0
        let reasoning = (u["completion_tokens_details"] ?? u["output_tokens_details"])?["reasoning_tokens"]?.intValue ?? 0
        return Usage(inputTokens: input, outputTokens: output, cachedInputTokens: cached, reasoningTokens: reasoning)
    }

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
    public static func decodeBase64Floats(_ text: String) -> [Float]? {
        guard let data = Data(base64Encoded: text), data.count % 4 == 0 else { return nil }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { i in Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        }
    }

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
    public static func parseRawResponse(_ body: JSONValue) -> ModelResponse {
        var text: String?
        var finish: FinishReason?
        if let choice = body["choices"]?[0] {
            text = choice["message"]?["content"]?.stringValue ?? choice["text"]?.stringValue
            finish = choice["finish_reason"]?.stringValue.map(finishReason)
        } else if let t = body["output_text"]?.stringValue {
            text = t
        } else if case .array(let output)? = body["output"] {
            var pieces: [String] = []
            for item in output {
                for part in item["content"]?.arrayValue ?? [] where part["type"]?.stringValue == "output_text" {
                    if let t = part["text"]?.stringValue { pieces.append(t) }
                }
            }
            if !pieces.isEmpty { text = pieces.joined() }
            if body["status"]?.stringValue == "completed" { finish = .stop }
            if body["incomplete_details"]?["reason"]?.stringValue == "max_output_tokens" { finish = .length }
        }
        return ModelResponse(text: text, finishReason: finish, usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body)
    }

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
        let rateLimit = RateLimitInfo(headers: headers, now: now)
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
