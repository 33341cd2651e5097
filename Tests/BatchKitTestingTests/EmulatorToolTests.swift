import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// The emulator's providers check tool shapes their own way and honour max_tokens.
@Suite struct EmulatorToolTests {
    static let openAITools: JSONValue = [["type": "function", "function": ["name": "f", "parameters": ["type": "object"]]]]
    static let anthropicTools: JSONValue = [["name": "f", "input_schema": ["type": "object"]]]
    static let geminiTools: JSONValue = [["functionDeclarations": [["name": "f"]]]]

    func post(_ e: ProviderEmulator, _ path: String, _ headers: HTTPHeaders, _ body: JSONValue) async throws -> (Int, JSONValue) {
        var request = HTTPRequest(method: "POST", url: URL(string: "http://emulator.invalid" + path)!, headers: headers)
        request.headers["content-type"] = "application/json"
        request.body = .data(Data(body.jsonString.utf8))
        let response = try await e.transport.send(request)
        return (response.status, try JSONValue(parsing: response.body))
    }

    static let openAIHeaders: HTTPHeaders = ["authorization": "Bearer sk-e"]
    static let anthropicHeaders: HTTPHeaders = ["x-api-key": "sk-ant-e", "anthropic-version": "2023-06-01"]
    static let geminiHeaders: HTTPHeaders = ["x-goog-api-key": "AIza-e"]

    func openAI(_ e: ProviderEmulator, tools: JSONValue, extra: [String: JSONValue] = [:]) async throws -> (Int, JSONValue) {
        var body: [String: JSONValue] = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "hi"]], "tools": tools]
        body.merge(extra) { _, b in b }
        return try await post(e, "/v1/chat/completions", Self.openAIHeaders, .object(body))
    }
    func anthropic(_ e: ProviderEmulator, tools: JSONValue, extra: [String: JSONValue] = [:]) async throws -> (Int, JSONValue) {
        var body: [String: JSONValue] = ["model": "claude-haiku-4-5", "max_tokens": 50, "messages": [["role": "user", "content": "hi"]], "tools": tools]
        body.merge(extra) { _, b in b }
        return try await post(e, "/v1/messages", Self.anthropicHeaders, .object(body))
    }
    func gemini(_ e: ProviderEmulator, tools: JSONValue, extra: [String: JSONValue] = [:]) async throws -> (Int, JSONValue) {
        var body: [String: JSONValue] = ["contents": [["role": "user", "parts": [["text": "hi"]]]], "tools": tools]
        body.merge(extra) { _, b in b }
        return try await post(e, "/v1beta/models/gemini-2.5-flash:generateContent", Self.geminiHeaders, .object(body))
    }

    @Test func eachProviderRejectsTheOthersToolShapesWithItsOwnError() async throws {
        let e = ProviderEmulator()
        for foreign in [Self.anthropicTools, Self.geminiTools] {
            let (status, body) = try await openAI(e, tools: foreign)
            #expect(status == 400)
            #expect(body["error"]?["type"] == "invalid_request_error")
            #expect(body["error"]?["param"] == "tools[0].type")
        }
        for foreign in [Self.openAITools, Self.geminiTools] {
            let (status, body) = try await anthropic(e, tools: foreign)
            #expect(status == 400)
            #expect(body["type"] == "error")
            #expect(body["error"]?["type"] == "invalid_request_error")
            #expect(body["error"]?["message"]?.stringValue?.hasPrefix("tools.0") == true)
        }
        for foreign in [Self.openAITools, Self.anthropicTools] {
            let (status, body) = try await gemini(e, tools: foreign)
            #expect(status == 400)
            #expect(body["error"]?["status"] == "INVALID_ARGUMENT")
            #expect(body["error"]?["message"]?.stringValue?.contains("tools[0]") == true)
        }
        // Their own shapes pass.
        #expect(try await openAI(e, tools: Self.openAITools).0 == 200)
        #expect(try await anthropic(e, tools: Self.anthropicTools).0 == 200)
        #expect(try await gemini(e, tools: Self.geminiTools).0 == 200)
    }

    @Test func maxTokensCapsTheAnswer() async throws {
        let e = ProviderEmulator()
        for limit in [1, 3, 5, 9] {
            let (_, o) = try await post(e, "/v1/chat/completions", Self.openAIHeaders,
                ["model": "gpt-4o-mini", "messages": [["role": "user", "content": .string("tell me a long story \(limit)")]], "max_tokens": .int(limit)])
            #expect(try #require(o["usage"]?["completion_tokens"]?.intValue) <= limit)
            let (_, a) = try await post(e, "/v1/messages", Self.anthropicHeaders,
                ["model": "claude-haiku-4-5", "max_tokens": .int(limit), "messages": [["role": "user", "content": .string("tell me a story \(limit)")]]])
            #expect(try #require(a["usage"]?["output_tokens"]?.intValue) <= limit)
            let (_, g) = try await post(e, "/v1beta/models/gemini-2.5-flash:generateContent", Self.geminiHeaders,
                ["contents": [["role": "user", "parts": [["text": .string("a story \(limit)")]]]], "generationConfig": ["maxOutputTokens": .int(limit)]])
            #expect(try #require(g["usageMetadata"]?["candidatesTokenCount"]?.intValue) <= limit)
        }
        // max_tokens 3: 3 tokens and a length stop.
        let (_, three) = try await post(e, "/v1/chat/completions", Self.openAIHeaders,
            ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "x"]], "max_tokens": 3])
        #expect(three["usage"]?["completion_tokens"] == 3)
        #expect(three["choices"]?[0]?["finish_reason"] == "length")
    }

    @Test func anthropicCacheControlIsCheckedAndCounted() async throws {
        let e = ProviderEmulator()
        let long = String(repeating: "policy text ", count: 500)
        let system: JSONValue = [["type": "text", "text": .string(long), "cache_control": ["type": "ephemeral"]]]
        let (s1, first) = try await anthropic(e, tools: Self.anthropicTools, extra: ["system": system])
        let (_, second) = try await anthropic(e, tools: Self.anthropicTools, extra: ["system": system])
        #expect(s1 == 200)
        #expect(try #require(first["usage"]?["cache_creation_input_tokens"]?.intValue) > 1000)
        #expect(first["usage"]?["cache_read_input_tokens"] == 0)
        #expect(second["usage"]?["cache_read_input_tokens"] == first["usage"]?["cache_creation_input_tokens"])
        let bad: JSONValue = [["type": "text", "text": "x", "cache_control": ["type": "persistent"]]]
        let (status, body) = try await anthropic(e, tools: Self.anthropicTools, extra: ["system": bad])
        #expect(status == 400)
        #expect(body["error"]?["message"]?.stringValue?.hasPrefix("system.0.cache_control.type") == true)
    }

    /// The python SDK sends Gemini schemas with the OpenAPI `Type` enum in capitals (`OBJECT`,
    /// `STRING`): a forced call's `args` must still fill the declared properties.
    @Test func geminiForcedCallFillsCapitalisedSchemaTypes() async throws {
        let e = ProviderEmulator()
        let tools: JSONValue = [["functionDeclarations": [[
            "name": "get_weather",
            "parameters": ["type": "OBJECT", "properties": ["city": ["type": "STRING"], "days": ["type": "INTEGER"]], "required": ["city"]],
        ]]]]
        let (status, body) = try await gemini(e, tools: tools, extra: ["toolConfig": ["functionCallingConfig": ["mode": "ANY"]]])
        #expect(status == 200)
        let call = try #require(body["candidates"]?[0]?["content"]?["parts"]?[0]?["functionCall"])
        #expect(call["name"] == "get_weather")
        #expect(call["args"]?["city"]?.stringValue?.isEmpty == false)
        #expect(call["args"]?["days"]?.intValue != nil)
    }

    /// Responses API structured output (`text.format`, flat `json_schema` as `responses.parse`
    /// sends it; `json_object`): `output_text` is JSON that fits the schema.
    @Test func responsesTextFormatAnswersJSON() async throws {
        let e = ProviderEmulator()
        let schema: JSONValue = [
            "type": "object", "properties": ["name": ["type": "string"], "population": ["type": "integer"]],
            "required": ["name", "population"], "additionalProperties": false,
        ]
        let (status, body) = try await post(e, "/v1/responses", Self.openAIHeaders, [
            "model": "gpt-4o-mini", "input": "Paris",
            "text": ["format": ["type": "json_schema", "name": "City", "schema": schema, "strict": true]],
        ])
        #expect(status == 200)
        let text = try #require(body["output"]?[0]?["content"]?[0]?["text"]?.stringValue)
        let parsed = try JSONValue(parsing: Data(text.utf8))
        #expect(parsed["name"]?.stringValue != nil)
        #expect(parsed["population"]?.intValue != nil)
        #expect(try #require(body["usage"]?["output_tokens"]?.intValue) > 0)
        let (_, object) = try await post(e, "/v1/responses", Self.openAIHeaders, [
            "model": "gpt-4o-mini", "input": "Paris", "text": ["format": ["type": "json_object"]],
        ])
        let objectText = try #require(object["output"]?[0]?["content"]?[0]?["text"]?.stringValue)
        #expect(try JSONValue(parsing: Data(objectText.utf8)).objectValue != nil)
    }
}
