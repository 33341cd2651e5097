import BatchKit
import BatchKitOpenAI
import Foundation
import Testing

/// Tools and prompt caching on the OpenAI wire, field by field.
@Suite struct OpenAIToolWireTests {
    static let weather = Tool(
        name: "get_weather", description: "Weather", parameters: ["type": "object", "properties": ["city": ["type": "string"]]], strict: true)

    @Test func toolsChoiceParallelAndCacheKey() throws {
        var c = ChatRequest(
            model: "gpt-4o-mini", messages: [.user("Hi")], tools: [Self.weather], parallelToolCalls: false, promptCacheKey: "tenant-7")
        var b = OpenAIWire.chatBody(c)
        #expect(b["tools"] == [["type": "function", "function": [
            "name": "get_weather", "description": "Weather", "parameters": ["type": "object", "properties": ["city": ["type": "string"]]],
            "strict": true,
        ]]])
        #expect(b["parallel_tool_calls"] == false)
        #expect(b["prompt_cache_key"] == "tenant-7")
        #expect(b["tool_choice"] == nil)
        let expected: [(ToolChoice, JSONValue)] = [
            (.auto, "auto"), (.none, "none"), (.required, "required"),
            (.tool("get_weather"), ["type": "function", "function": ["name": "get_weather"]]),
        ]
        for (choice, json) in expected {
            c.toolChoice = choice
            b = OpenAIWire.chatBody(c)
            #expect(b["tool_choice"] == json)
        }
    }

    @Test func historyWithToolCallsAndResults() throws {
        let call = ToolCall(id: "call_1", name: "get_weather", arguments: ["city": "Paris"])
        let b = OpenAIWire.chatBody(ChatRequest(model: "m", messages: [
            .user("Weather?"), .assistant(toolCalls: [call]), .toolResult(callID: "call_1", "sunny"),
        ]))
        #expect(b["messages"]?[1] == ["role": "assistant", "content": nil, "tool_calls": [
            ["id": "call_1", "type": "function", "function": ["name": "get_weather", "arguments": #"{"city":"Paris"}"#]],
        ]])
        #expect(b["messages"]?[2] == ["role": "tool", "tool_call_id": "call_1", "content": "sunny"])
    }

    @Test func cacheMarkersAreNotSentAndCachedContentFailsValidation() throws {
        var m = Message.user("Doc")
        m.cacheControl = .ephemeral
        let c = ChatRequest(model: "m", messages: [m], system: "s", tools: [Tool(name: "t", cacheControl: .oneHour)], systemCacheControl: .ephemeral)
        let b = OpenAIWire.chatBody(c)
        #expect(!b.jsonString.contains("cache_control"))
        #expect(b["messages"]?[1]?["content"] == "Doc")
        // The interchange line keeps them, for the providers that take them.
        #expect(BatchRequest(id: "x", chat: c).batchLine().jsonString.contains("cache_control"))
        do {
            try OpenAIWire.validate(ChatRequest(model: "m", messages: [.user("x")], cachedContent: "cachedContents/a"))
            Issue.record("expected a validation error")
        } catch {
            #expect(error.field == "cached_content")
        }
    }

    @Test func toolCallAnswersAndCachedTokens() throws {
        let body: JSONValue = [
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [[
                "index": 0, "finish_reason": "tool_calls",
                "message": ["role": "assistant", "content": nil, "tool_calls": [
                    ["id": "call_a", "type": "function", "function": ["name": "get_weather", "arguments": #"{"city": "Paris"}"#]],
                    ["id": "call_b", "type": "function", "function": ["name": "broken", "arguments": #"{"city": "#]],
                ]],
            ]],
            "usage": ["prompt_tokens": 2000, "completion_tokens": 12, "total_tokens": 2012, "prompt_tokens_details": ["cached_tokens": 1920]],
        ]
        let r = try OpenAIWire.parseChatResponse(body)
        #expect(r.toolCalls == [
            ToolCall(id: "call_a", name: "get_weather", arguments: ["city": "Paris"]),
            ToolCall(id: "call_b", name: "broken", arguments: .string(#"{"city": "#)),  // kept as it came
        ])
        #expect(r.finishReason == .toolCalls)
        #expect(r.usage.cachedInputTokens == 1920)
        #expect(r.usage.cacheWriteTokens == 0)
        // Written back for OpenAI, the unparsable arguments are the same text.
        #expect(OpenAIWire.message(.assistant(toolCalls: r.toolCalls))["tool_calls"]?[1]?["function"]?["arguments"] == #"{"city": "#)
    }
}
