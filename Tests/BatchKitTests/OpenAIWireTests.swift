import Foundation
import Testing

@testable import BatchKit

@Suite struct OpenAIWireTests {
    static let lines: [String] = [
        // plain chat, legacy max_tokens, system message kept in messages
        #"{"custom_id":"req-1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"2+2?"}],"max_tokens":20}}"#,
        // max_completion_tokens, temperature int and fraction, top_p, seed, stop array
        #"{"custom_id":"r2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":50,"temperature":0,"top_p":0.9,"seed":7,"stop":["\n","END"]}}"#,
        #"{"custom_id":"r3","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0.7,"stop":"\n"}}"#,
        // image parts with and without detail, data URL, unknown part, text part with extra key
        #"{"custom_id":"img","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"low"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}},{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}]}}"#,
        // tool calls: null content, tool message, name, unknown fields
        #"{"custom_id":"tools","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"weather?","name":"bob"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],"tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}],"tool_choice":"auto","n":2,"logprobs":true,"top_logprobs":3,"user":"u1","metadata":{"k":"v"},"service_tier":"flex","reasoning_effort":"low"}}"#,
        // response formats
        #"{"custom_id":"rf1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"developer","content":"json"}],"response_format":{"type":"json_object"}}}"#,
        #"{"custom_id":"rf2","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}}"#,
        #"{"custom_id":"rf3","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"person","description":"A person","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}}}}}"#,
        #"{"custom_id":"rf4","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object"}}}}}"#,
        // a response_format shape BatchKit does not model stays verbatim
        #"{"custom_id":"rf5","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{},"future":1}}}}"#,
        // both max-token fields, odd-typed known fields
        #"{"custom_id":"odd","method":"POST","url":"/v1/chat/completions","body":{"model":"o3","messages":[{"role":"user","content":""}],"max_completion_tokens":10,"max_tokens":5,"seed":1.5,"temperature":"hot","stop":null,"top_p":null}}"#,
        // empty messages, empty parts
        #"{"custom_id":"empty","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}}"#,
        #"{"custom_id":"noparts","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":[]}]}}"#,
        // embeddings
        #"{"custom_id":"emb-1","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":["first text","second text"]}}"#,
        #"{"custom_id":"emb-2","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"one","dimensions":256,"encoding_format":"base64","user":"u"}}"#,
        #"{"custom_id":"emb-3","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":["solo"]}}"#,
        #"{"custom_id":"emb-tok","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}}"#,
        #"{"custom_id":"emb-tok1","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":[1,2,3]}}"#,
        // raw endpoints
        #"{"custom_id":"resp","method":"POST","url":"/v1/responses","body":{"model":"gpt-4.1","input":"Tell me a joke","max_output_tokens":100}}"#,
        #"{"custom_id":"comp","method":"POST","url":"/v1/completions","body":{"model":"gpt-3.5-turbo-instruct","prompt":"Say this","max_tokens":7,"temperature":1.0}}"#,
        #"{"custom_id":"mod","method":"POST","url":"/v1/moderations","body":{"model":"omni-moderation-latest","input":"hello"}}"#,
        // unicode and escapes
        #"{"custom_id":"uni é 😀","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"tab\there \"quoted\" \\ back \u0001 é 😀"}]}}"#,
    ]

    @Test(arguments: lines)
    func roundTripIsLossless(_ text: String) throws {
        let json = try JSONValue(parsing: text)
        let request = try BatchRequest(openAIBatchLine: json, lineNumber: 3)
        #expect(request.openAIBatchLine() == json)
        // The byte form parses to the same JSON and matches the JSONValue serialisation exactly.
        let data = request.openAIBatchLineData()
        #expect(try JSONValue(parsing: data) == json)
        #expect(data == request.openAIBatchLine().serialized())
        // And parsing the bytes gives the same request.
        #expect(try BatchRequest(openAIBatchLine: Data(text.utf8), lineNumber: 3) == request)
        #expect(try BatchRequest(openAIBatchLine: Array(text.utf8)[...]) == request)
    }

    @Test func chatFieldsAreModelled() throws {
        let r = try BatchRequest(openAIBatchLine: Data(Self.lines[1].utf8))
        guard case .chat(let c) = r.body else { Issue.record("not chat"); return }
        #expect(r.id == "r2")
        #expect(c.model == "gpt-4o")
        #expect(c.maxTokens == 50)
        #expect(!c.usesLegacyMaxTokens)
        #expect(c.temperature == 0)
        #expect(c.topP == 0.9)
        #expect(c.seed == 7)
        #expect(c.stop == ["\n", "END"])
        #expect(c.extra.isEmpty)
        #expect(c.system == nil)

        let legacy = try BatchRequest(openAIBatchLine: Data(Self.lines[0].utf8))
        guard case .chat(let l) = legacy.body else { Issue.record("not chat"); return }
        #expect(l.usesLegacyMaxTokens)
        #expect(l.maxTokens == 20)
        #expect(l.messages.first?.role == .system)
        #expect(l.messages.count == 2)

        let stringStop = try BatchRequest(openAIBatchLine: Data(Self.lines[2].utf8))
        guard case .chat(let s) = stringStop.body else { Issue.record("not chat"); return }
        #expect(s.stop == nil)
        #expect(s.extra["stop"] == .string("\n"))
    }

    @Test func partsAndFormatsAreModelled() throws {
        let r = try BatchRequest(openAIBatchLine: Data(Self.lines[3].utf8))
        guard case .chat(let c) = r.body, case .parts(let parts) = c.messages[0].content else {
            Issue.record("no parts"); return
        }
        #expect(parts.count == 5)
        #expect(parts[0] == .text("What is this?"))
        #expect(parts[1] == .image(.url("https://x.test/a.png", detail: "low")))
        guard case .image(let dataImage) = parts[2] else { Issue.record("not an image"); return }
        #expect(dataImage.inlineData?.mediaType == "image/png")
        if case .other(let v) = parts[3] { #expect(v["type"] == "input_audio") } else { Issue.record("audio not kept") }
        if case .other = parts[4] {} else { Issue.record("text part with extra keys must stay verbatim") }

        let schema = try BatchRequest(openAIBatchLine: Data(Self.lines[7].utf8))
        guard case .chat(let sc) = schema.body, case .jsonSchema(let f)? = sc.responseFormat else {
            Issue.record("no schema"); return
        }
        #expect(f.name == "person")
        #expect(f.description == "A person")
        #expect(f.strict == true)
        #expect(f.schema["required"] == ["name"])

        let tools = try BatchRequest(openAIBatchLine: Data(Self.lines[4].utf8))
        guard case .chat(let t) = tools.body else { Issue.record("not chat"); return }
        #expect(t.extra["tools"] != nil)
        #expect(t.extra["n"] == 2)
        #expect(t.messages[0].extra["name"] == "bob")
        #expect(t.messages[1].extra["content"] == .null)
        #expect(t.messages[1].extra["tool_calls"] != nil)
    }

    @Test func embeddingsAndRaw() throws {
        let e = try BatchRequest(openAIBatchLine: Data(Self.lines[14].utf8))
        guard case .embedding(let emb) = e.body else { Issue.record("not embedding"); return }
        #expect(emb.isSingleInput)
        #expect(emb.inputs == ["one"])
        #expect(emb.dimensions == 256)
        #expect(emb.extra["encoding_format"] == "base64")

        let list = try BatchRequest(openAIBatchLine: Data(Self.lines[15].utf8))
        guard case .embedding(let l) = list.body else { Issue.record("not embedding"); return }
        #expect(!l.isSingleInput)

        let tokens = try BatchRequest(openAIBatchLine: Data(Self.lines[16].utf8))
        guard case .raw(let raw) = tokens.body else { Issue.record("token ids must stay raw"); return }
        #expect(raw.endpoint == "/v1/embeddings")
        #expect(tokens.openAIEndpoint == "/v1/embeddings")

        let responses = try BatchRequest(openAIBatchLine: Data(Self.lines[18].utf8))
        guard case .raw(let r) = responses.body else { Issue.record("not raw"); return }
        #expect(r.endpoint == "/v1/responses")
        #expect(responses.model == "gpt-4.1")
    }

    @Test func systemPromptBecomesLeadingSystemMessage() {
        let chat = ChatRequest(model: "m", messages: [.user("hi")], system: "Be brief.", maxTokens: 5, temperature: 1.0,
                               responseFormat: .jsonObject, extra: ["logprobs": true])
        let body = OpenAIWire.chatBody(chat)
        #expect(body["messages"]?[0] == ["role": "system", "content": "Be brief."])
        #expect(body["messages"]?[1] == ["role": "user", "content": "hi"])
        #expect(body["max_completion_tokens"] == 5)
        #expect(body["max_tokens"] == nil)
        #expect(body["temperature"] == 1)
        #expect(body["response_format"] == ["type": "json_object"])
        #expect(body["logprobs"] == true)
        let image = OpenAIWire.contentPart(.image(.base64("QUJD", mediaType: "image/jpeg")))
        #expect(image["image_url"]?["url"] == "data:image/jpeg;base64,QUJD")
    }

    @Test func integralFractionNormalisesToInteger() throws {
        // `1.0` and `1` are the same JSON number; the codec writes integral values as integers.
        let line: JSONValue = ["custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                               "body": ["model": "m", "messages": [], "temperature": 1.0]]
        let out = try BatchRequest(openAIBatchLine: line).openAIBatchLine()
        #expect(out["body"]?["temperature"] == 1)
    }

    struct BadLine: Sendable, CustomStringConvertible {
        var text: String
        var field: String?
        var fragment: String
        var description: String { fragment }
    }

    static let badLines: [BadLine] = [
        BadLine(text: #"{"method":"POST","url":"/v1/chat/completions","body":{}}"#, field: "custom_id", fragment: #"line 12: missing field "custom_id""#),
        BadLine(text: #"{"custom_id":5,"method":"POST","url":"/v1/chat/completions","body":{}}"#, field: "custom_id", fragment: "must be a string"),
        BadLine(text: #"{"custom_id":"a","url":"/v1/chat/completions","body":{}}"#, field: "method", fragment: #"missing field "method""#),
        BadLine(text: #"{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":{}}"#, field: "method", fragment: "POST"),
        BadLine(text: #"{"custom_id":"a","method":"POST","body":{}}"#, field: "url", fragment: #"missing field "url""#),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions"}"#, field: "body", fragment: #"missing field "body""#),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":[]}"#, field: "body", fragment: "JSON object"),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[]}}"#, field: "body.model", fragment: "body.model"),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}"#, field: "body.messages", fragment: "body.messages"),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"content":"x"}]}}"#, field: "body.messages[0].role", fragment: "role"),
        BadLine(text: #"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"model":"m"}}"#, field: "body.input", fragment: "body.input"),
        BadLine(text: #"{"custom_id":"a","#, field: nil, fragment: "line 12: not valid JSON"),
        BadLine(text: #"[1,2]"#, field: nil, fragment: "JSON object"),
    ]

    @Test(arguments: badLines)
    func invalidLinesNameLineAndField(_ bad: BadLine) {
        do {
            _ = try BatchRequest(openAIBatchLine: Data(bad.text.utf8), lineNumber: 12)
            Issue.record("accepted \(bad.text)")
        } catch {
            #expect(error.code == .validation)
            #expect(error.field == bad.field)
            #expect(error.message.hasPrefix("line 12: "))
            #expect(error.message.contains(bad.fragment))
            #expect(!error.isRetryable)
        }
    }

    // MARK: - Responses

    @Test func parsesChatResponse() throws {
        let body = try JSONValue(parsing: #"""
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"length"}],
         "usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}
        """#)
        let r = try OpenAIWire.parseChatResponse(body)
        #expect(r.text == "Hello!")
        #expect(r.finishReason == .length)
        #expect(r.usage == Usage(inputTokens: 9, outputTokens: 7, cachedInputTokens: 4, reasoningTokens: 2))
        #expect(r.model == "gpt-4o-mini-2024-07-18")
        #expect(r.raw == body)
        #expect(OpenAIWire.finishReason("tool_calls") == .toolCalls)
        #expect(OpenAIWire.finishReason("content_filter") == .contentFilter)
        #expect(OpenAIWire.finishReason("stop") == .stop)
        #expect(OpenAIWire.finishReason("weird").rawValue == "weird")

        let refusal: JSONValue = ["choices": [["message": ["role": "assistant", "content": nil, "refusal": "no"], "finish_reason": "stop"]]]
        let rr = try OpenAIWire.parseChatResponse(refusal)
        #expect(rr.text == nil)
        #expect(rr.finishReason == .contentFilter)

        #expect(throws: BatchError.self) { try OpenAIWire.parseChatResponse(["object": "list"]) }
    }

    @Test func parsesEmbeddingsFloatAndBase64() throws {
        let values: [Float] = [0.5, -1.25, 3.0e-3]
        var data = Data()
        for f in values { withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        let body: JSONValue = [
            "object": "list", "model": "text-embedding-3-small",
            "data": [
                ["object": "embedding", "index": 1, "embedding": .string(data.base64EncodedString())],
                ["object": "embedding", "index": 0, "embedding": [0.25, 1, -0.5]],
            ],
            "usage": ["prompt_tokens": 8, "total_tokens": 8],
        ]
        let r = try OpenAIWire.parseEmbeddingResponse(body)
        #expect(r.embeddings?.count == 2)
        #expect(r.embeddings?[0] == [0.25, 1, -0.5])
        #expect(r.embeddings?[1] == values)
        #expect(r.usage.inputTokens == 8)
        #expect(r.model == "text-embedding-3-small")
        #expect(throws: BatchError.self) {
            try OpenAIWire.parseEmbeddingResponse(["data": [["index": 0, "embedding": "!!notbase64"]]])
        }
    }

    @Test func parsesRawResponses() {
        let responses: JSONValue = [
            "model": "gpt-4.1", "status": "completed",
            "output": [["type": "message", "content": [["type": "output_text", "text": "Hi there"]]]],
            "usage": ["input_tokens": 5, "output_tokens": 3, "input_tokens_details": ["cached_tokens": 1],
                      "output_tokens_details": ["reasoning_tokens": 2], "total_tokens": 8],
        ]
        let r = OpenAIWire.parseRawResponse(responses)
        #expect(r.text == "Hi there")
        #expect(r.finishReason == .stop)
        #expect(r.usage == Usage(inputTokens: 5, outputTokens: 3, cachedInputTokens: 1, reasoningTokens: 2))
        let completion: JSONValue = ["choices": [["text": "done", "finish_reason": "length"]], "usage": ["prompt_tokens": 2, "completion_tokens": 1]]
        let c = OpenAIWire.parseRawResponse(completion)
        #expect(c.text == "done")
        #expect(c.finishReason == .length)
    }

    // MARK: - Errors

    @Test func classifiesErrors() {
        func body(_ message: String, _ type: String, code: String? = nil, param: String? = nil) -> Data {
            JSONValue.object(["error": ["message": .string(message), "type": .string(type),
                                        "param": param.map(JSONValue.string) ?? .null,
                                        "code": code.map(JSONValue.string) ?? .null]]).serialized()
        }
        let bad = OpenAIWire.error(status: 400, headers: [:], body: body("bad max_tokens", "invalid_request_error", param: "max_tokens"))
        #expect(bad.code == .invalidRequest)
        #expect(bad.field == "max_tokens")
        #expect(bad.providerType == "invalid_request_error")
        #expect(!bad.isRetryable)
        #expect(bad.httpStatus == 400)

        let auth = OpenAIWire.error(status: 401, headers: [:],
            body: body("Incorrect API key provided: sk-proj-abc*********************xyz9. You can find...", "invalid_request_error", code: "invalid_api_key"))
        #expect(auth.code == .authentication)
        #expect(!auth.message.contains("abc"))
        #expect(!auth.message.contains("xyz9"))
        #expect(auth.message.contains("invalid_api_key"))

        let limited = OpenAIWire.error(status: 429, headers: ["retry-after": "3", "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"],
                                       body: body("Rate limit reached", "requests", code: "rate_limit_exceeded"))
        #expect(limited.code == .rateLimited)
        #expect(limited.isRetryable)
        #expect(limited.retryAfter == .seconds(3))
        #expect(limited.rateLimit?.requests.limit == 60)
        #expect(limited.rateLimit?.requests.remaining == 0)

        let fallback = OpenAIWire.error(status: 429, headers: ["x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
                                                              "x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "10"],
                                        body: body("Rate limit reached", "tokens", code: "rate_limit_exceeded"))
        #expect(fallback.retryAfter == .seconds(360))
        let byRemaining = OpenAIWire.error(status: 429, headers: ["x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s",
                                                                 "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "5"],
                                           body: Data())
        #expect(byRemaining.retryAfter == .milliseconds(20))

        let quota = OpenAIWire.error(status: 429, headers: [:], body: body("You exceeded your current quota", "insufficient_quota", code: "insufficient_quota"))
        #expect(quota.code == .rateLimited)
        #expect(!quota.isRetryable)

        let server = OpenAIWire.error(status: 500, headers: [:], body: Data("<html>oops</html>".utf8))
        #expect(server.code == .server)
        #expect(server.isRetryable)
        #expect(server.message.contains("oops"))

        let overloaded = OpenAIWire.error(status: 503, headers: ["x-should-retry": "false"], body: Data())
        #expect(overloaded.code == .overloaded)
        #expect(!overloaded.isRetryable)
        let forced = OpenAIWire.error(status: 400, headers: ["x-should-retry": "true"], body: Data())
        #expect(forced.isRetryable)

        let filtered = OpenAIWire.error(status: 400, body: ["error": ["message": "filtered", "type": nil, "param": "prompt", "code": "content_filter"]])
        #expect(filtered.code == .contentFiltered)
        let flat = OpenAIWire.error(status: 400, body: ["object": "error", "message": "bad prompt", "type": "BadRequestError", "code": 400])
        #expect(flat.message == "bad prompt")
        #expect(flat.providerType == "BadRequestError")
        let notFound = OpenAIWire.error(status: 404, headers: [:], body: body("The model `x` does not exist", "invalid_request_error", code: "model_not_found"))
        #expect(notFound.code == .notFound)
    }

    @Test func redactsKeyLikeText() {
        #expect(OpenAIWire.redactKeys("key sk-abc123 and sk-proj-XY_z*** end") == "key sk-<redacted> and sk-<redacted> end")
        #expect(OpenAIWire.redactKeys("task-1 sk-") == "task-1 sk-")
        #expect(OpenAIWire.redactKeys("nothing here") == "nothing here")
    }
}

@Suite struct OpenAIWireFastPathTests {
    @Test(arguments: [
        ChatRequest(model: "m", messages: [.user("hi \"there\"\n")]),
        ChatRequest(model: "m", messages: [.user("look", images: [.url("https://x/y.png", detail: "high"), .base64("QUJD", mediaType: "image/png")]),
                                           .assistant("ok"), Message(role: .tool, content: .text("r"))],
                    system: "sys", maxTokens: 5, temperature: 0.25, topP: 1, stop: ["a", "b"], seed: -3,
                    responseFormat: .jsonSchema(JSONSchemaFormat(name: "n", schema: ["type": "object"], description: "d", strict: false))),
        ChatRequest(model: "m", messages: [], maxTokens: 7, temperature: 2.5, responseFormat: .text, usesLegacyMaxTokens: true),
        ChatRequest(model: "m", messages: [.user("x")], extra: ["n": 2]),
        ChatRequest(model: "m", messages: [Message(role: .user, content: .text("x"), extra: ["name": "bob"])]),
    ])
    func fastPathMatchesJSONValueSerialisation(_ chat: ChatRequest) throws {
        let request = BatchRequest(id: "fast-1", chat: chat)
        #expect(request.openAIBatchLineData() == request.openAIBatchLine().serialized())
        #expect(try BatchRequest(openAIBatchLine: request.openAIBatchLineData()).openAIBatchLine() == request.openAIBatchLine())
    }
}
