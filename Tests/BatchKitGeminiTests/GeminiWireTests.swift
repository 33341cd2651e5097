import BatchKit
import Foundation
import Testing

@testable import BatchKitGemini

@Suite struct GeminiWireTests {
    @Test func chatBodyCarriesEveryField() throws {
        let chat = ChatRequest(
            model: "gemini-2.5-flash",
            messages: [.system("Be terse."), .user("Hi"), .assistant("Hello"), .user("Capital of France?")],
            system: "You are a geographer.", maxTokens: 64, temperature: 0.2, topP: 0.9, stop: ["END"], seed: 7)
        let body = try GeminiWire.generateContentBody(chat)
        let contents = try #require(body["contents"]?.arrayValue)
        #expect(contents.count == 3)
        #expect(contents[0]["role"] == "user")
        #expect(contents[1]["role"] == "model")
        #expect(contents[2]["parts"]?[0]?["text"] == "Capital of France?")
        let system = try #require(body["systemInstruction"]?["parts"]?.arrayValue)
        #expect(system.map { $0["text"]?.stringValue } == ["You are a geographer.", "Be terse."])
        let config = try #require(body["generationConfig"])
        #expect(config["maxOutputTokens"] == 64)
        #expect(config["temperature"] == 0.2)
        #expect(config["topP"] == 0.9)
        #expect(config["stopSequences"] == ["END"])
        #expect(config["seed"] == 7)
    }

    @Test func imagesBecomeInlineDataOrFileData() throws {
        let chat = ChatRequest(model: "m", messages: [
            .user("What is this?", images: [
                .base64("AAAA", mediaType: "image/png"),
                .url("data:image/jpeg;base64,BBBB"),
                .url("https://generativelanguage.googleapis.com/v1beta/files/abc123"),
            ]),
        ])
        let parts = try #require(try GeminiWire.generateContentBody(chat)["contents"]?[0]?["parts"]?.arrayValue)
        #expect(parts.count == 4)
        #expect(parts[1]["inlineData"] == ["mimeType": "image/png", "data": "AAAA"])
        #expect(parts[2]["inlineData"] == ["mimeType": "image/jpeg", "data": "BBBB"])
        #expect(parts[3]["fileData"]?["fileUri"] == "https://generativelanguage.googleapis.com/v1beta/files/abc123")
    }

    @Test func unsupportedFieldsFailValidationNamingTheField() {
        func field(_ chat: ChatRequest) -> String? {
            do {
                _ = try GeminiWire.generateContentBody(chat)
                return nil
            } catch {
                #expect(error.code == .validation)
                return error.field
            }
        }
        #expect(field(ChatRequest(model: "m", messages: [.user("x", images: [.url("https://example.com/cat.png")])]))
            == "messages[0].content[1]")
        #expect(field(ChatRequest(model: "m", messages: [Message(role: .user, content: .parts([.other(["type": "input_audio"])]))]))
            == "messages[0].content[0]")
        #expect(field(ChatRequest(model: "m", messages: [.user("a"), .system("late")])) == "messages[1].role")
        #expect(field(ChatRequest(model: "m", messages: [Message(role: .tool, content: .text("r"))])) == "messages[0].tool_call_id")
        #expect(field(ChatRequest(model: "m", messages: [Message(role: "function", content: .text("r"))])) == "messages[0].role")
        #expect(field(ChatRequest(model: "m", messages: [Message(role: .user, content: .text("x"), extra: ["name": "bob"])]))
            == "messages[0].name")
        #expect(field(ChatRequest(model: "m", messages: [.system("only system")])) == "messages")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], seed: Int(Int32.max) + 1)) == "seed")
    }

    @Test func structuredOutputAndExtraMerge() throws {
        let schema: JSONValue = ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"], "additionalProperties": false]
        let chat = ChatRequest(
            model: "m", messages: [.user("x")], temperature: 0.5,
            responseFormat: .jsonSchema(JSONSchemaFormat(name: "answer", schema: schema)),
            extra: ["generationConfig": ["topK": 5], "safetySettings": [["category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"]]])
        let body = try GeminiWire.generateContentBody(chat)
        let config = try #require(body["generationConfig"])
        #expect(config["responseMimeType"] == "application/json")
        #expect(config["responseJsonSchema"] == schema)
        #expect(config["temperature"] == 0.5)
        #expect(config["topK"] == 5)
        #expect(body["safetySettings"]?[0]?["threshold"] == "BLOCK_NONE")

        let json = try GeminiWire.generateContentBody(ChatRequest(model: "m", messages: [.user("x")], responseFormat: .jsonObject))
        #expect(json["generationConfig"] == ["responseMimeType": "application/json"])
    }

    @Test func parsesResponseWithUsageAndThoughts() throws {
        let raw = try JSONValue(parsing: """
            {"candidates":[{"content":{"parts":[{"text":"thinking...","thought":true},{"text":"Hi "},{"text":"there"}],"role":"model"},"finishReason":"STOP","index":0}],
             "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":"7","totalTokenCount":40,"thoughtsTokenCount":28,"cachedContentTokenCount":2},
             "modelVersion":"gemini-2.5-flash","responseId":"abc"}
            """)
        let r = try GeminiWire.parseGenerateContentResponse(raw)
        #expect(r.text == "Hi there")
        #expect(r.finishReason == .stop)
        #expect(r.usage == Usage(inputTokens: 5, outputTokens: 35, cachedInputTokens: 2, reasoningTokens: 28))
        #expect(r.model == "gemini-2.5-flash")
        #expect(r.raw == raw)
    }

    @Test(arguments: [
        ("STOP", FinishReason.stop), ("MAX_TOKENS", .length), ("SAFETY", .contentFilter), ("RECITATION", .contentFilter),
        ("BLOCKLIST", .contentFilter), ("PROHIBITED_CONTENT", .contentFilter), ("LANGUAGE", FinishReason(rawValue: "language")),
    ])
    func finishReasons(_ wire: String, _ expected: FinishReason) throws {
        let raw: JSONValue = ["candidates": [["content": ["parts": [["text": "x"]]], "finishReason": .string(wire)]]]
        #expect(try GeminiWire.parseGenerateContentResponse(raw).finishReason == expected)
    }

    @Test func blockedPromptIsContentFiltered() {
        let raw: JSONValue = ["promptFeedback": ["blockReason": "SAFETY"], "usageMetadata": ["promptTokenCount": 3]]
        #expect(throws: BatchError(.contentFiltered, "")) { try GeminiWire.parseGenerateContentResponse(raw) }
        #expect(throws: BatchError(.invalidResponse, "")) { try GeminiWire.parseGenerateContentResponse(["usageMetadata": [:]]) }
    }

    @Test func embeddingsRequestAndResponse() throws {
        let body = try GeminiWire.batchEmbedContentsBody(
            EmbeddingRequest(model: "gemini-embedding-001", inputs: ["a", "b"], dimensions: 8, extra: ["taskType": "RETRIEVAL_DOCUMENT"]))
        let requests = try #require(body["requests"]?.arrayValue)
        #expect(requests.count == 2)
        #expect(requests[1] == [
            "model": "models/gemini-embedding-001", "content": ["parts": [["text": "b"]]], "outputDimensionality": 8,
            "taskType": "RETRIEVAL_DOCUMENT",
        ])
        let response = try GeminiWire.parseBatchEmbedContentsResponse(
            ["embeddings": [["values": [0.5, -1]], ["values": [1, 2]]]], expected: 2)
        #expect(response.embeddings == [[0.5, -1], [1, 2]])
        #expect(throws: BatchError(.invalidResponse, "")) {
            try GeminiWire.parseBatchEmbedContentsResponse(["embeddings": [["values": [1]]]], expected: 2)
        }
        #expect(throws: BatchError(.validation, "")) { try GeminiWire.batchEmbedContentsBody(EmbeddingRequest(model: "m", inputs: [])) }
        let item = try GeminiWire.parseEmbedContentResponse(["embedding": ["values": [0.25]], "tokenCount": "3"])
        #expect(item.embeddings == [[0.25]])
        #expect(item.usage.inputTokens == 3)
    }

    @Test func modelResourceNames() {
        #expect(GeminiWire.modelResource("gemini-2.5-flash") == "models/gemini-2.5-flash")
        #expect(GeminiWire.modelResource("models/x") == "models/x")
        #expect(GeminiWire.modelResource("tunedModels/y") == "tunedModels/y")
    }

    // MARK: - Errors

    static func body(_ code: Int, _ status: String, _ message: String = "m", details: JSONValue? = nil) -> Data {
        var e: [String: JSONValue] = ["code": .int(code), "message": .string(message), "status": .string(status)]
        if let details { e["details"] = details }
        return JSONValue.object(["error": .object(e)]).serialized()
    }

    @Test func rateLimitedReadsRetryInfo() {
        let details: JSONValue = [
            ["@type": "type.googleapis.com/google.rpc.Help", "links": []],
            ["@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23.5s"],
        ]
        let e = GeminiWire.error(status: 429, headers: ["retry-after": "99"], body: Self.body(429, "RESOURCE_EXHAUSTED", details: details))
        #expect(e.code == .rateLimited)
        #expect(e.retryAfter == .milliseconds(23_500))
        #expect(e.isRetryable)
        #expect(e.providerType == "RESOURCE_EXHAUSTED")
        // Without RetryInfo: the Retry-After header.
        let h = GeminiWire.error(status: 429, headers: ["Retry-After": "4"], body: Self.body(429, "RESOURCE_EXHAUSTED"))
        #expect(h.retryAfter == .seconds(4))
    }

    @Test func arrayWrappedEnvelope() {
        let body = Data(#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#.utf8)
        let e = GeminiWire.error(status: 503, headers: [:], body: body)
        #expect(e.code == .overloaded)
        #expect(e.message.contains("overloaded"))
    }

    @Test(arguments: [
        (500, "INTERNAL", BatchError.Code.server, true), (503, "UNAVAILABLE", .overloaded, true), (504, "DEADLINE_EXCEEDED", .timeout, true),
        (400, "INVALID_ARGUMENT", .invalidRequest, false), (403, "PERMISSION_DENIED", .permission, false),
        (404, "NOT_FOUND", .notFound, false), (401, "UNAUTHENTICATED", .authentication, false),
    ])
    func statusClasses(_ status: Int, _ google: String, _ code: BatchError.Code, _ retryable: Bool) {
        let e = GeminiWire.error(status: status, headers: [:], body: Self.body(status, google))
        #expect(e.code == code)
        #expect(e.isRetryable == retryable)
        #expect(e.httpStatus == status)
    }

    @Test func invalidKeyIsAuthentication() {
        let details: JSONValue = [["@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"]]
        let e = GeminiWire.error(status: 400, headers: [:], body: Self.body(400, "INVALID_ARGUMENT", "API key not valid.", details: details))
        #expect(e.code == .authentication)
        #expect(!e.isRetryable)
    }

    @Test func nonJSONErrorBody() {
        let e = GeminiWire.error(status: 502, headers: [:], body: Data("<html>Bad Gateway</html>".utf8))
        #expect(e.code == .server)
        #expect(e.message.contains("502"))
    }

    @Test(arguments: [
        (3, BatchError.Code.invalidRequest), (1, .cancelled), (4, .timeout), (8, .rateLimited), (13, .server), (14, .overloaded),
        (429, .rateLimited), (400, .invalidRequest),
    ])
    func itemErrors(_ code: Int, _ expected: BatchError.Code) {
        #expect(GeminiWire.itemError(["code": .int(code), "message": "x"]).code == expected)
    }
}
