import BatchKit
import BatchKitGemini
import Foundation
import Testing

/// Tools and cached content on the Gemini wire, field by field.
@Suite struct GeminiToolWireTests {
    static let weather = Tool(
        name: "get_weather", description: "Weather", parameters: ["type": "object", "properties": ["city": ["type": "string"]]])

    static func body(_ c: ChatRequest) throws(BatchError) -> JSONValue { try GeminiWire.generateContentBody(c) }

    @Test func toolsAndToolConfig() throws {
        var c = ChatRequest(model: "m", messages: [.user("Hi")], tools: [Self.weather, Tool(name: "noargs")])
        #expect(try Self.body(c)["tools"] == [["functionDeclarations": [
            ["name": "get_weather", "description": "Weather", "parametersJsonSchema": ["type": "object", "properties": ["city": ["type": "string"]]]],
            ["name": "noargs"],
        ]]])
        #expect(try Self.body(c)["toolConfig"] == nil)
        let expected: [(ToolChoice, JSONValue)] = [
            (.auto, ["mode": "AUTO"]), (.none, ["mode": "NONE"]), (.required, ["mode": "ANY"]),
            (.tool("get_weather"), ["mode": "ANY", "allowedFunctionNames": ["get_weather"]]),
        ]
        for (choice, json) in expected {
            c.toolChoice = choice
            #expect(try Self.body(c)["toolConfig"] == ["functionCallingConfig": json])
        }
        c.parallelToolCalls = true
        #expect(throws: Never.self) { try Self.body(c) }
    }

    @Test func whatGeminiCannotExpressNamesTheField() {
        func field(_ c: ChatRequest) -> String? {
            do throws(BatchError) { _ = try Self.body(c); return nil } catch { return error.field }
        }
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], tools: [Self.weather], parallelToolCalls: false)) == "parallel_tool_calls")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], tools: [Tool(name: "s", strict: true)])) == "tools[0].function.strict")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], tools: [Self.weather], toolChoice: .tool("nope"))) == "tool_choice")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], promptCacheKey: "k")) == "prompt_cache_key")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], cachedContent: "my-cache")) == "cached_content")
        // A result whose call is unknown cannot name its function.
        #expect(field(ChatRequest(model: "m", messages: [.user("x"), .toolResult(callID: "c9", "r")])) == "messages[1].tool_call_id")
    }

    @Test func toolHistoryBecomesFunctionCallAndFunctionResponseParts() throws {
        let calls = [ToolCall(id: "call_0", name: "get_weather", arguments: ["city": "Paris"]), ToolCall(id: "call_1", name: "get_time", arguments: [:])]
        let c = ChatRequest(model: "m", messages: [
            .user("Weather and time?"), .assistant(toolCalls: calls),
            .toolResult(callID: "call_0", #"{"temp": 21}"#), .toolResult(callID: "call_1", "noon"),
        ])
        let contents = try #require(try Self.body(c)["contents"]?.arrayValue)
        #expect(contents.count == 3)
        #expect(contents[1] == ["role": "model", "parts": [
            ["functionCall": ["name": "get_weather", "args": ["city": "Paris"]]],
            ["functionCall": ["name": "get_time", "args": [:]]],
        ]])
        #expect(contents[2] == ["role": "user", "parts": [
            ["functionResponse": ["name": "get_weather", "response": ["temp": 21]]],
            ["functionResponse": ["name": "get_time", "response": ["result": "noon"]]],
        ]])
    }

    @Test func cachedContentIsSentAndCacheMarkersAreNot() throws {
        var m = Message.user("Doc")
        m.cacheControl = .ephemeral
        let b = try Self.body(ChatRequest(
            model: "m", messages: [m], system: "s", tools: [Tool(name: "t", cacheControl: .ephemeral)], systemCacheControl: .oneHour,
            cachedContent: "cachedContents/abc123"))
        #expect(b["cachedContent"] == "cachedContents/abc123")
        #expect(!b.jsonString.contains("cache_control"))
    }

    @Test func functionCallPartsBecomeToolCalls() throws {
        let json: JSONValue = [
            "candidates": [[
                "content": ["role": "model", "parts": [
                    ["functionCall": ["name": "get_weather", "args": ["city": "Paris"]]],
                    ["functionCall": ["id": "fc-7", "name": "get_time", "args": [:]]],
                ]],
                "finishReason": "STOP",
            ]],
            "usageMetadata": ["promptTokenCount": 1500, "candidatesTokenCount": 9, "cachedContentTokenCount": 1200, "totalTokenCount": 1509],
            "modelVersion": "gemini-2.5-flash",
        ]
        let r = try GeminiWire.parseGenerateContentResponse(json)
        #expect(r.toolCalls == [
            ToolCall(id: "call_0", name: "get_weather", arguments: ["city": "Paris"]),
            ToolCall(id: "fc-7", name: "get_time", arguments: [:]),
        ])
        #expect(r.finishReason == .toolCalls)
        #expect(r.usage.cachedInputTokens == 1200)
        #expect(r.usage.inputTokens == 1500)
        #expect(r.usage.cacheWriteTokens == 0)
    }
}
