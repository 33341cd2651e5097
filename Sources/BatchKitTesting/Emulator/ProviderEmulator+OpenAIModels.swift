import BatchKit
import Foundation

/// The answer of one OpenAI model call, shared by the real-time endpoints and batch lines.
struct OpenAIOutcome {
    var status: Int
    var body: JSONValue
    var inputTokens: Int
    var outputTokens: Int

    var isSuccess: Bool { (200..<300).contains(status) }

    static func failure(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil)
        -> OpenAIOutcome
    {
        OpenAIOutcome(
            status: status, body: ProviderEmulator.openAIErrorBody(message, type: type, param: param, code: code),
            inputTokens: 0, outputTokens: 0)
    }
}

extension ProviderEmulator {
    // MARK: - Real-time model calls

    /// One real-time model call: records `x-client-request-id`, applies the rate limits (429 with
    /// OpenAI's headers and body), waits the latency, answers with rate-limit headers.
    func openAIModelRequest(_ request: EmulatorRequest, route: OpenAIRoute, endpoint: String, deployment: String?) async
        -> EmulatorResponse
    {
        if let id = request.headers["x-client-request-id"], !id.isEmpty { recordSent(customID: id) }
        let json = request.json
        let decision = await admit(key: route.key, provider: .openAI, tokens: Self.openAITokenEstimate(json, endpoint: endpoint))
        guard decision.allowed else {
            shared.withLock { $0.modelRequests += 1 }
            return rateLimitedResponse(decision, provider: .openAI)
        }
        await modelCall()
        let outcome: OpenAIOutcome
        if json == nil {
            outcome = .failure(400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
        } else {
            outcome = withPromptCache { openAIOutcome(endpoint: endpoint, body: json, deployment: deployment, created: unixNow, cache: &$0) }
        }
        var headers = openAIHeaders()
        for f in rateLimitHeaders(decision, provider: .openAI) { headers[f.name] = f.value }
        if outcome.isSuccess, endpoint == "/v1/chat/completions", json?["stream"]?.boolValue == true {
            let usage = json?["stream_options"]?["include_usage"]?.boolValue == true
            return Self.eventStream(Self.openAIStream(outcome.body, includeUsage: usage), headers: headers)
        }
        if outcome.isSuccess, endpoint == "/v1/responses", json?["stream"]?.boolValue == true {
            return Self.eventStream(Self.openAIResponsesStream(outcome.body), headers: headers)
        }
        return .json(outcome.status, outcome.body, headers: headers)
    }

    /// Tokens a call is charged against the tokens-per-minute budget: the prompt plus the output
    /// allowance, as OpenAI estimates it.
    static func openAITokenEstimate(_ body: JSONValue?, endpoint: String) -> Int {
        guard let body else { return 1 }
        switch endpoint {
        case "/v1/chat/completions":
            let prompt = tokenCount(openAIPrompt(body["messages"]))
            let output = (body["max_completion_tokens"] ?? body["max_tokens"])?.intValue ?? 16
            return prompt + max(0, output)
        case "/v1/embeddings", "/v1/moderations":
            return openAIInputs(body["input"]).reduce(0) { $0 + tokenCount($1) }
        default:
            let text = openAIInputs(body["prompt"] ?? body["input"]).joined(separator: "\n")
            let output = (body["max_output_tokens"] ?? body["max_tokens"])?.intValue ?? 16
            return tokenCount(text) + max(0, output)
        }
    }

    /// The answer to one request body for an endpoint (`/v1/...` form).
    func openAIOutcome(endpoint: String, body: JSONValue?, deployment: String?, created: Int, cache: inout EmulatorPromptCache) -> OpenAIOutcome {
        guard let body, case .object = body else {
            return .failure(400, "The request body must be a JSON object.")
        }
        switch endpoint {
        case "/v1/chat/completions": return openAIChat(body, deployment: deployment, created: created, cache: &cache)
        case "/v1/embeddings": return openAIEmbeddings(body, deployment: deployment)
        case "/v1/completions": return openAICompletion(body, deployment: deployment, created: created)
        case "/v1/responses": return openAIResponse(body, deployment: deployment, created: created)
        case "/v1/moderations": return openAIModeration(body)
        default: return .failure(404, "Invalid URL (POST \(endpoint))")
        }
    }

    /// Models that answer 404 `model_not_found`: any name containing `does-not-exist` or `nonexistent`.
    static func isUnknownModel(_ model: String) -> Bool {
        model.contains("does-not-exist") || model.contains("nonexistent")
    }

    static func modelNotFound(_ model: String) -> OpenAIOutcome {
        .failure(404, "The model `\(model)` does not exist or you do not have access to it.", code: "model_not_found")
    }

    /// The model named by a body (or the Azure deployment), or the failure when it is missing or unknown.
    static func openAIModel(_ body: JSONValue, deployment: String?) -> Result<String, OpenAIFailureBox> {
        guard let model = body["model"]?.stringValue ?? deployment, !model.isEmpty else {
            return .failure(OpenAIFailureBox(.failure(400, "you must provide a model parameter")))
        }
        if isUnknownModel(model) { return .failure(OpenAIFailureBox(modelNotFound(model))) }
        return .success(model)
    }

    /// The model (as ``openAIModel(_:deployment:)``), then the required body member `field`
    /// (missing: OpenAI's `missing_required_parameter`), in the order OpenAI checks them.
    static func openAIModel(
        _ body: JSONValue, deployment: String?, requiring field: String
    ) -> Result<(model: String, value: JSONValue), OpenAIFailureBox> {
        openAIModel(body, deployment: deployment).flatMap { model in
            guard let value = body[field] else {
                return .failure(OpenAIFailureBox(.failure(
                    400, "Missing required parameter: '\(field)'.", param: field, code: "missing_required_parameter")))
            }
            return .success((model, value))
        }
    }

    // MARK: Chat completions

    static let openAIRoles: Set<String> = ["system", "developer", "user", "assistant", "tool", "function"]

    func openAIChat(_ body: JSONValue, deployment: String?, created: Int, cache: inout EmulatorPromptCache) -> OpenAIOutcome {
        let model: String, messagesValue: JSONValue
        switch Self.openAIModel(body, deployment: deployment, requiring: "messages") {
        case .success(let found): (model, messagesValue) = found
        case .failure(let f): return f.outcome
        }
        guard case .array(let messages) = messagesValue else {
            return .failure(400, "Invalid type for 'messages': expected an array of objects, but got \(Self.jsonTypeName(messagesValue)) instead.",
                            param: "messages", code: "invalid_type")
        }
        guard !messages.isEmpty else {
            return .failure(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                            param: "messages", code: "empty_array")
        }
        for (i, m) in messages.enumerated() {
            guard case .object = m else {
                return .failure(400, "Invalid type for 'messages[\(i)]': expected an object, but got \(Self.jsonTypeName(m)) instead.",
                                param: "messages[\(i)]", code: "invalid_type")
            }
            guard let role = m["role"]?.stringValue else {
                return .failure(400, "Missing required parameter: 'messages[\(i)].role'.", param: "messages[\(i)].role",
                                code: "missing_required_parameter")
            }
            guard Self.openAIRoles.contains(role) else {
                return .failure(400, "Invalid value: '\(role)'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                                param: "messages[\(i)].role", code: "invalid_value")
            }
            if role != "assistant", m["content"] == nil {
                return .failure(400, "Missing required parameter: 'messages[\(i)].content'.", param: "messages[\(i)].content",
                                code: "missing_required_parameter")
            }
        }
        let maxName = body["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
        let maxTokens = body[maxName]?.intValue
        if let maxTokens, maxTokens > 128_000 {
            return .failure(400, "\(maxName) is too large: \(maxTokens). This model supports at most 128000 completion tokens, whereas you provided \(maxTokens).",
                            param: maxName, code: "invalid_value")
        }
        if let maxTokens, maxTokens < 1 {
            return .failure(400, "Invalid '\(maxName)': integer below minimum value. Expected a value >= 1, but got \(maxTokens) instead.",
                            param: maxName, code: "integer_below_min_value")
        }
        if let t = body["temperature"]?.doubleValue, t < 0 || t > 2 {
            return .failure(400, "Invalid 'temperature': decimal \(t > 2 ? "above maximum" : "below minimum") value. Expected a value \(t > 2 ? "<= 2" : ">= 0"), but got \(t) instead.",
                            param: "temperature", code: t > 2 ? "decimal_above_max_value" : "decimal_below_min_value")
        }
        if let problem = Self.openAIToolProblem(body) {
            return .failure(400, problem.message, param: problem.param, code: problem.code)
        }
        let prompt = Self.openAIPrompt(body["messages"])
        var answer = Self.syntheticAnswer(prompt: prompt, maxTokens: maxTokens)
        var text = answer.text
        if let format = body["response_format"], let structured = Self.structuredAnswer(format, words: text) {
            text = structured
            answer.outputTokens = Self.tokenCount(text)
            answer.truncated = false
        }
        var message: JSONValue = ["role": "assistant", "content": .string(text), "refusal": nil, "annotations": []]
        var finish = answer.truncated ? "length" : "stop"
        if let tool = Self.openAIForcedTool(body) {
            let (seed, value) = Self.forcedCallArguments(tool.parameters, prompt: prompt, name: tool.name)
            let arguments = value.jsonString
            message = [
                "role": "assistant", "content": nil, "refusal": nil, "annotations": [],
                "tool_calls": [[
                    "id": .string("call_" + String(seed, radix: 36)), "type": "function",
                    "function": ["name": .string(tool.name), "arguments": .string(arguments)],
                ]],
            ]
            answer.outputTokens = Self.tokenCount(arguments) + 8
            finish = "tool_calls"
            if let maxTokens, answer.outputTokens > maxTokens {
                answer.outputTokens = maxTokens
                finish = "length"
            }
        }
        let cached = Self.openAICachedTokens(body, cache: &cache)
        let n = max(1, body["n"]?.intValue ?? 1)
        let choices: [JSONValue] = (0..<n).map { i in
            ["index": .int(i), "message": message, "logprobs": nil, "finish_reason": .string(finish)]
        }
        let output = answer.outputTokens * n
        return OpenAIOutcome(
            status: 200,
            body: [
                "id": .string(newID("chatcmpl-", hexDigits: 29)),
                "object": "chat.completion",
                "created": .int(created),
                "model": .string(model),
                "choices": .array(choices),
                "usage": [
                    "prompt_tokens": .int(answer.inputTokens), "completion_tokens": .int(output),
                    "total_tokens": .int(answer.inputTokens + output),
                    "prompt_tokens_details": ["cached_tokens": .int(cached), "audio_tokens": 0],
                    "completion_tokens_details": ["reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0],
                ],
                "service_tier": .string(body["service_tier"]?.stringValue ?? "default"),
                "system_fingerprint": "fp_emulator",
            ],
            inputTokens: answer.inputTokens, outputTokens: output)
    }

    /// All message text of a `messages` list, one message per line.
    static func openAIPrompt(_ messages: JSONValue?) -> String {
        guard case .array(let list)? = messages else { return "" }
        var lines: [String] = []
        lines.reserveCapacity(list.count)
        for m in list {
            switch m["content"] {
            case .string(let s)?: lines.append(s)
            case .array(let parts)?: lines.append(parts.compactMap { $0["text"]?.stringValue }.joined(separator: " "))
            default: break
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A JSON answer for `json_object` / `json_schema` response formats; `nil` for text.
    static func structuredAnswer(_ format: JSONValue, words: String) -> String? {
        switch format["type"]?.stringValue {
        case "json_object": return JSONValue.object(["answer": .string(words)]).jsonString
        case "json_schema":
            let schema = format["json_schema"]?["schema"] ?? ["type": "object"]
            return sampleJSON(schema, words: words.split(separator: " ").map(String.init), depth: 0).jsonString
        default: return nil
        }
    }

    /// A value conforming to a (simple) JSON Schema: every property filled, enums take their first
    /// value, arrays hold one item.
    static func sampleJSON(_ schema: JSONValue, words: [String], depth: Int) -> JSONValue {
        guard depth < 16 else { return .null }
        if let first = schema["enum"]?[0] { return first }
        if let c = schema["const"] { return c }
        if let first = (schema["anyOf"] ?? schema["oneOf"])?[0] { return sampleJSON(first, words: words, depth: depth + 1) }
        var type = schema["type"]?.stringValue
        if type == nil, case .array(let types)? = schema["type"] {
            type = types.compactMap(\.stringValue).first { $0 != "null" }
        }
        if type == nil, schema["properties"] != nil { type = "object" }
        switch type {
        case "object":
            var o: [String: JSONValue] = [:]
            for (k, v) in schema["properties"]?.objectValue ?? [:] { o[k] = sampleJSON(v, words: words, depth: depth + 1) }
            return .object(o)
        case "array": return .array([sampleJSON(schema["items"] ?? ["type": "string"], words: words, depth: depth + 1)])
        case "integer": return .int(words.count)
        case "number": return .double(Double(words.count) + 0.5)
        case "boolean": return .bool(words.count % 2 == 0)
        case "null": return .null
        default: return .string(words.suffix(3).joined(separator: " "))
        }
    }

    static func jsonTypeName(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    // MARK: Embeddings

    /// The texts of an `input` (string, strings, token ids — ids are embedded by their text form).
    static func openAIInputs(_ input: JSONValue?) -> [String] {
        switch input {
        case .string(let s)?: return [s]
        case .array(let items)?:
            if items.allSatisfy({ $0.intValue != nil && $0.stringValue == nil }) { return [JSONValue.array(items).jsonString] }
            return items.map { $0.stringValue ?? $0.jsonString }
        default: return []
        }
    }

    func openAIEmbeddings(_ body: JSONValue, deployment: String?) -> OpenAIOutcome {
        let model: String, input: JSONValue
        switch Self.openAIModel(body, deployment: deployment, requiring: "input") {
        case .success(let found): (model, input) = found
        case .failure(let f): return f.outcome
        }
        let inputs = Self.openAIInputs(input)
        if inputs.isEmpty || inputs.contains("") {
            return .failure(400, "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                            param: "input")
        }
        if inputs.count > 2048 {
            return .failure(400, "Invalid 'input': array too long. Expected an array with maximum length 2048, but got an array with length \(inputs.count) instead.",
                            param: "input", code: "array_above_max_length")
        }
        let native = model.contains("large") ? 3072 : 1536
        var dims = native
        if let d = body["dimensions"] {
            guard let n = d.intValue, n >= 1, n <= native else {
                return .failure(400, "Invalid value for 'dimensions' = \(d.jsonString). Must be between 1 and \(native).", param: "dimensions")
            }
            dims = n
        }
        let format = body["encoding_format"]?.stringValue ?? "float"
        guard format == "float" || format == "base64" else {
            return .failure(400, "Invalid value: '\(format)'. Supported values are: 'float' and 'base64'.", param: "encoding_format",
                            code: "invalid_value")
        }
        var tokens = 0
        var data: [JSONValue] = []
        data.reserveCapacity(inputs.count)
        for (i, text) in inputs.enumerated() {
            tokens += Self.tokenCount(text)
            let v = Self.syntheticEmbedding(text, dimensions: dims)
            let embedding: JSONValue = format == "base64"
                ? .string(Self.base64Floats(v)) : .array(v.map { .double(Double($0)) })
            data.append(["object": "embedding", "index": .int(i), "embedding": embedding])
        }
        return OpenAIOutcome(
            status: 200,
            body: ["object": "list", "data": .array(data), "model": .string(model),
                   "usage": ["prompt_tokens": .int(tokens), "total_tokens": .int(tokens)]],
            inputTokens: tokens, outputTokens: 0)
    }

    // MARK: Completions, Responses, Moderations

    func openAICompletion(_ body: JSONValue, deployment: String?, created: Int) -> OpenAIOutcome {
        let model: String, prompt: JSONValue
        switch Self.openAIModel(body, deployment: deployment, requiring: "prompt") {
        case .success(let found): (model, prompt) = found
        case .failure(let f): return f.outcome
        }
        let answer = Self.syntheticAnswer(prompt: Self.openAIInputs(prompt).joined(separator: "\n"), maxTokens: body["max_tokens"]?.intValue ?? 16)
        return OpenAIOutcome(
            status: 200,
            body: [
                "id": .string(newID("cmpl-", hexDigits: 29)), "object": "text_completion", "created": .int(created),
                "model": .string(model),
                "choices": [["text": .string(answer.text), "index": 0, "logprobs": nil, "finish_reason": answer.truncated ? "length" : "stop"]],
                "usage": ["prompt_tokens": .int(answer.inputTokens), "completion_tokens": .int(answer.outputTokens),
                          "total_tokens": .int(answer.inputTokens + answer.outputTokens)],
            ],
            inputTokens: answer.inputTokens, outputTokens: answer.outputTokens)
    }

    /// `POST /v1/responses`: a `message` item with one `output_text` part, or — with `tool_choice`
    /// `required` or a named function — one `function_call` item whose `arguments` follow the
    /// tool's `parameters` schema (as the Chat Completions path answers forced calls). The body
    /// carries what the SDK's `Response` model requires (`tools`, `tool_choice`,
    /// `parallel_tool_calls`, …); with `stream: true` it is sent as events (``openAIResponsesStream(_:)``).
    func openAIResponse(_ body: JSONValue, deployment: String?, created: Int) -> OpenAIOutcome {
        let model: String, input: JSONValue
        switch Self.openAIModel(body, deployment: deployment, requiring: "input") {
        case .success(let found): (model, input) = found
        case .failure(let f): return f.outcome
        }
        if let problem = Self.openAIResponsesToolProblem(body) {
            return .failure(400, problem.message, param: problem.param, code: problem.code)
        }
        let prompt: String
        if case .array(let items) = input, items.contains(where: { $0["role"] != nil }) {
            prompt = Self.openAIPrompt(input)
        } else {
            prompt = Self.openAIInputs(input).joined(separator: "\n")
        }
        let maxTokens = body["max_output_tokens"]?.intValue
        var answer = Self.syntheticAnswer(prompt: prompt, maxTokens: maxTokens)
        // Structured output: `text.format` carries the schema flat (`{"type":"json_schema","name","schema"}`).
        if var format = body["text"]?["format"] {
            if format["type"] == "json_schema", format["json_schema"] == nil {
                format = ["type": "json_schema", "json_schema": ["schema": format["schema"] ?? ["type": "object"]]]
            }
            if let structured = Self.structuredAnswer(format, words: answer.text) {
                answer.text = structured
                answer.outputTokens = Self.tokenCount(structured)
                answer.truncated = false
            }
        }
        var item: JSONValue
        if let tool = Self.openAIResponsesForcedTool(body) {
            let (seed, value) = Self.forcedCallArguments(tool.parameters, prompt: prompt, name: tool.name)
            let arguments = value.jsonString
            answer.outputTokens = Self.tokenCount(arguments) + 8
            answer.truncated = false
            if let maxTokens, answer.outputTokens > maxTokens {
                answer.outputTokens = maxTokens
                answer.truncated = true
            }
            item = [
                "type": "function_call", "id": .string(newID("fc_", hexDigits: 48)),
                "call_id": .string("call_" + String(seed, radix: 36)), "name": .string(tool.name),
                "arguments": .string(arguments), "status": answer.truncated ? "incomplete" : "completed",
            ]
        } else {
            item = [
                "type": "message", "id": .string(newID("msg_", hexDigits: 48)),
                "status": answer.truncated ? "incomplete" : "completed", "role": "assistant",
                "content": [["type": "output_text", "text": .string(answer.text), "annotations": [], "logprobs": []]],
            ]
        }
        let status = answer.truncated ? "incomplete" : "completed"
        return OpenAIOutcome(
            status: 200,
            body: [
                "id": .string(newID("resp_", hexDigits: 48)), "object": "response", "created_at": .int(created),
                "status": .string(status), "background": false, "completed_at": answer.truncated ? nil : .int(created),
                "model": .string(model), "error": nil,
                "incomplete_details": answer.truncated ? ["reason": "max_output_tokens"] : nil,
                "instructions": body["instructions"] ?? .null, "max_output_tokens": body["max_output_tokens"] ?? .null,
                "metadata": body["metadata"] ?? [:], "previous_response_id": body["previous_response_id"] ?? .null,
                "output": [item],
                "parallel_tool_calls": body["parallel_tool_calls"] ?? true,
                "reasoning": ["effort": nil, "summary": nil],
                "service_tier": .string(body["service_tier"]?.stringValue ?? "default"),
                "store": body["store"] ?? true,
                "temperature": body["temperature"] ?? 1.0,
                "text": ["format": body["text"]?["format"] ?? ["type": "text"]],
                "tool_choice": body["tool_choice"] ?? "auto",
                "tools": .array(Self.openAIResponsesTools(body)),
                "top_p": body["top_p"] ?? 1.0, "truncation": body["truncation"] ?? "disabled",
                "usage": [
                    "input_tokens": .int(answer.inputTokens),
                    "input_tokens_details": ["cached_tokens": 0, "cache_write_tokens": 0],
                    "output_tokens": .int(answer.outputTokens), "output_tokens_details": ["reasoning_tokens": 0],
                    "total_tokens": .int(answer.inputTokens + answer.outputTokens),
                ],
                "user": body["user"] ?? .null,
            ],
            inputTokens: answer.inputTokens, outputTokens: answer.outputTokens)
    }

    func openAIModeration(_ body: JSONValue) -> OpenAIOutcome {
        guard let input = body["input"] else {
            return .failure(400, "Missing required parameter: 'input'.", param: "input", code: "missing_required_parameter")
        }
        let results: [JSONValue] = Self.openAIInputs(input).map { text in
            let flagged = text.lowercased().contains("kill")
            return ["flagged": .bool(flagged), "categories": ["violence": .bool(flagged)],
                    "category_scores": ["violence": .double(flagged ? 0.9 : 0.001)]]
        }
        return OpenAIOutcome(
            status: 200,
            body: ["id": .string(newID("modr-", hexDigits: 24)), "model": .string(body["model"]?.stringValue ?? "omni-moderation-latest"),
                   "results": .array(results)],
            inputTokens: 0, outputTokens: 0)
    }
}

/// An ``OpenAIOutcome`` failure carried through `Result`.
struct OpenAIFailureBox: Error {
    var outcome: OpenAIOutcome
    init(_ outcome: OpenAIOutcome) { self.outcome = outcome }
}
