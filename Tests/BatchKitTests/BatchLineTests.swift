import Foundation
import Testing

@testable import BatchKit

@Suite struct BatchLineTests {
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
        let request = try BatchRequest(batchLine: json, lineNumber: 3)
        #expect(request.batchLine() == json)
        // The byte form parses to the same JSON and matches the JSONValue serialisation exactly.
        let data = request.batchLineData()
        #expect(try JSONValue(parsing: data) == json)
        #expect(data == request.batchLine().serialized())
        // And parsing the bytes gives the same request.
        #expect(try BatchRequest(batchLine: Data(text.utf8), lineNumber: 3) == request)
        #expect(try BatchRequest(batchLine: Array(text.utf8)[...]) == request)
    }

    @Test func chatFieldsAreModelled() throws {
        let r = try BatchRequest(batchLine: Data(Self.lines[1].utf8))
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

        let legacy = try BatchRequest(batchLine: Data(Self.lines[0].utf8))
        guard case .chat(let l) = legacy.body else { Issue.record("not chat"); return }
        #expect(l.usesLegacyMaxTokens)
        #expect(l.maxTokens == 20)
        #expect(l.messages.first?.role == .system)
        #expect(l.messages.count == 2)

        let stringStop = try BatchRequest(batchLine: Data(Self.lines[2].utf8))
        guard case .chat(let s) = stringStop.body else { Issue.record("not chat"); return }
        #expect(s.stop == nil)
        #expect(s.extra["stop"] == .string("\n"))
    }

    @Test func partsAndFormatsAreModelled() throws {
        let r = try BatchRequest(batchLine: Data(Self.lines[3].utf8))
        guard case .chat(let c) = r.body, case .parts(let parts) = c.messages[0].content else {
            Issue.record("no parts"); return
        }
        #expect(parts.count == 5)
        #expect(parts[0] == .text("What is this?"))
        #expect(parts[1] == .image(.url("https://x.test/a.png", detail: "low")))
        guard case .image(let dataImage) = parts[2] else { Issue.record("not an image"); return }
        #expect(dataImage.inlineData?.mediaType == "image/png")
        if case .other(let v) = parts[3] { #expect(v["type"] == "input_audio") } else { Issue.record("audio not kept") }
        // The last part's cache breakpoint is the message's.
        #expect(parts[4] == .text("x"))
        #expect(c.messages[0].cacheControl == .ephemeral)

        let schema = try BatchRequest(batchLine: Data(Self.lines[7].utf8))
        guard case .chat(let sc) = schema.body, case .jsonSchema(let f)? = sc.responseFormat else {
            Issue.record("no schema"); return
        }
        #expect(f.name == "person")
        #expect(f.description == "A person")
        #expect(f.strict == true)
        #expect(f.schema["required"] == ["name"])

        let tools = try BatchRequest(batchLine: Data(Self.lines[4].utf8))
        guard case .chat(let t) = tools.body else { Issue.record("not chat"); return }
        #expect(t.tools == [Tool(name: "w", parameters: ["type": "object"])])
        #expect(t.toolChoice == .auto)
        #expect(t.extra["tools"] == nil)
        #expect(t.extra["n"] == 2)
        #expect(t.extra["metadata"] == ["k": "v"])  // the body's metadata is OpenAI's, kept for OpenAI
        #expect(t.messages[0].extra["name"] == "bob")
        #expect(t.messages[1].extra.isEmpty)
        #expect(t.messages[1].content == .parts([]))
        #expect(t.messages[1].toolCalls == [ToolCall(id: "c1", name: "w", arguments: [:])])
        #expect(t.messages[2].toolCallID == "c1")
        #expect(t.messages[2].role == .tool)
    }

    @Test func embeddingsAndRaw() throws {
        let e = try BatchRequest(batchLine: Data(Self.lines[14].utf8))
        guard case .embedding(let emb) = e.body else { Issue.record("not embedding"); return }
        #expect(emb.isSingleInput)
        #expect(emb.inputs == ["one"])
        #expect(emb.dimensions == 256)
        #expect(emb.extra["encoding_format"] == "base64")

        let list = try BatchRequest(batchLine: Data(Self.lines[15].utf8))
        guard case .embedding(let l) = list.body else { Issue.record("not embedding"); return }
        #expect(!l.isSingleInput)

        let tokens = try BatchRequest(batchLine: Data(Self.lines[16].utf8))
        guard case .raw(let raw) = tokens.body else { Issue.record("token ids must stay raw"); return }
        #expect(raw.endpoint == "/v1/embeddings")
        #expect(tokens.endpoint == "/v1/embeddings")

        let responses = try BatchRequest(batchLine: Data(Self.lines[18].utf8))
        guard case .raw(let r) = responses.body else { Issue.record("not raw"); return }
        #expect(r.endpoint == "/v1/responses")
        #expect(responses.model == "gpt-4.1")
    }

    @Test func systemPromptBecomesLeadingSystemMessage() {
        let chat = ChatRequest(model: "m", messages: [.user("hi")], system: "Be brief.", maxTokens: 5, temperature: 1.0,
                               responseFormat: .jsonObject, extra: ["logprobs": true])
        let body = BatchLine.chatBody(chat)
        #expect(body["messages"]?[0] == ["role": "system", "content": "Be brief."])
        #expect(body["messages"]?[1] == ["role": "user", "content": "hi"])
        #expect(body["max_completion_tokens"] == 5)
        #expect(body["max_tokens"] == nil)
        #expect(body["temperature"] == 1)
        #expect(body["response_format"] == ["type": "json_object"])
        #expect(body["logprobs"] == true)
        let image = BatchLine.contentPart(.image(.base64("QUJD", mediaType: "image/jpeg")))
        #expect(image["image_url"]?["url"] == "data:image/jpeg;base64,QUJD")
    }

    @Test func integralFractionNormalisesToInteger() throws {
        // `1.0` and `1` are the same JSON number; the codec writes integral values as integers.
        let line: JSONValue = ["custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                               "body": ["model": "m", "messages": [], "temperature": 1.0]]
        let out = try BatchRequest(batchLine: line).batchLine()
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
            _ = try BatchRequest(batchLine: Data(bad.text.utf8), lineNumber: 12)
            Issue.record("accepted \(bad.text)")
        } catch {
            #expect(error.code == .validation)
            #expect(error.field == bad.field)
            #expect(error.message.hasPrefix("line 12: "))
            #expect(error.message.contains(bad.fragment))
            #expect(!error.isRetryable)
        }
    }
}

@Suite struct BatchLineFastPathTests {
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
        #expect(request.batchLineData() == request.batchLine().serialized())
        #expect(try BatchRequest(batchLine: request.batchLineData()).batchLine() == request.batchLine())
    }
}
