import BatchKit
import BatchKitAnthropic
import Foundation
import Testing

/// Tools and prompt caching on the Anthropic wire, field by field.
@Suite struct AnthropicToolWireTests {
    static let weather = Tool(
        name: "get_weather", description: "Weather", parameters: ["type": "object", "properties": ["city": ["type": "string"]]])

    static func body(_ c: ChatRequest) throws(BatchError) -> JSONValue { try AnthropicWire.messagesBody(c) }

    @Test func toolsAndChoices() throws {
        var c = ChatRequest(model: "m", messages: [.user("Hi")], tools: [Self.weather, Tool(name: "noargs", strict: true)])
        var b = try Self.body(c)
        #expect(b["tools"] == [
            ["name": "get_weather", "description": "Weather", "input_schema": ["type": "object", "properties": ["city": ["type": "string"]]]],
            ["name": "noargs", "input_schema": ["type": "object"], "strict": true],
        ])
        #expect(b["tool_choice"] == nil)
        let expected: [(ToolChoice, JSONValue)] = [
            (.auto, ["type": "auto"]), (.none, ["type": "none"]), (.required, ["type": "any"]),
            (.tool("get_weather"), ["type": "tool", "name": "get_weather"]),
        ]
        for (choice, json) in expected {
            c.toolChoice = choice
            b = try Self.body(c)
            #expect(b["tool_choice"] == json)
        }
        c.toolChoice = .required
        c.parallelToolCalls = false
        #expect(try Self.body(c)["tool_choice"] == ["type": "any", "disable_parallel_tool_use": true])
        c.toolChoice = nil
        #expect(try Self.body(c)["tool_choice"] == ["type": "auto", "disable_parallel_tool_use": true])
        c.parallelToolCalls = true
        #expect(try Self.body(c)["tool_choice"] == ["type": "auto"])
    }

    @Test func toolValidationNamesTheField() {
        func field(_ c: ChatRequest) -> String? {
            do throws(BatchError) { _ = try Self.body(c); return nil } catch { return error.field }
        }
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], tools: [Self.weather], toolChoice: .tool("other"))) == "tool_choice")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], toolChoice: .required)) == "tool_choice")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], tools: [Tool(name: "")])) == "tools[0].function.name")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], responseFormat: .jsonObject, tools: [Self.weather])) == "response_format")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], promptCacheKey: "k")) == "prompt_cache_key")
        #expect(field(ChatRequest(model: "m", messages: [.user("x")], cachedContent: "cachedContents/a")) == "cached_content")
        let bad = ToolCall(id: "t1", name: "w", arguments: .string("not json"))
        #expect(field(ChatRequest(model: "m", messages: [.user("x"), .assistant(toolCalls: [bad])])) == "messages[1].tool_calls[0].function.arguments")
        let userCalls = Message(role: .user, content: .text("x"), toolCalls: [bad])
        #expect(field(ChatRequest(model: "m", messages: [userCalls])) == "messages[0].tool_calls")
    }

    @Test func toolHistoryBecomesToolUseAndToolResultBlocks() throws {
        let calls = [
            ToolCall(id: "toolu_1", name: "get_weather", arguments: ["city": "Paris"]),
            ToolCall(id: "toolu_2", name: "get_weather", arguments: ["city": "Rome"]),
        ]
        let c = ChatRequest(model: "m", messages: [
            .user("Weather?"), .assistant("Checking.", toolCalls: calls),
            .toolResult(callID: "toolu_1", "sunny"), .toolResult(callID: "toolu_2", "rain"), .user("Thanks, and tomorrow?"),
        ], tools: [Self.weather])
        let messages = try #require(try Self.body(c)["messages"]?.arrayValue)
        #expect(messages.count == 3)  // results and the user turn after them share one user message
        #expect(messages[1] == ["role": "assistant", "content": [
            ["type": "text", "text": "Checking."],
            ["type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": ["city": "Paris"]],
            ["type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": ["city": "Rome"]],
        ]])
        #expect(messages[2] == ["role": "user", "content": [
            ["type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"],
            ["type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"],
            ["type": "text", "text": "Thanks, and tomorrow?"],
        ]])
        // An assistant turn with calls and no text has only tool_use blocks.
        let bare = try Self.body(ChatRequest(model: "m", messages: [.user("x"), .assistant(toolCalls: [calls[0]]), .toolResult(callID: "toolu_1", "ok")]))
        #expect(bare["messages"]?[1]?["content"]?.arrayValue?.count == 1)
        #expect(bare["messages"]?[2]?["content"] == [["type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"]])
    }

    @Test func cacheControlOnSystemMessagesAndTools() throws {
        var tool = Self.weather
        tool.cacheControl = .oneHour
        var last = Message.user("Long document")
        last.cacheControl = .ephemeral
        let c = ChatRequest(
            model: "m", messages: [last, .user("Question")], system: "Be brief.", tools: [tool], systemCacheControl: .ephemeral)
        let b = try Self.body(c)
        #expect(b["system"] == [["type": "text", "text": "Be brief.", "cache_control": ["type": "ephemeral"]]])
        #expect(b["tools"]?[0]?["cache_control"] == ["type": "ephemeral", "ttl": "1h"])
        #expect(b["messages"]?[0]?["content"] == [["type": "text", "text": "Long document", "cache_control": ["type": "ephemeral"]]])
        #expect(b["messages"]?[1]?["content"] == "Question")
        // Without a breakpoint the system prompt stays a string.
        #expect(try Self.body(ChatRequest(model: "m", messages: [.user("x")], system: "s"))["system"] == "s")
    }

    @Test func cacheControlFromAnInterchangeLineIsAccepted() throws {
        // A cache_control on a part that is not the last stays a verbatim part: on Anthropic it is
        // the same block, so validation accepts it.
        let line = #"{"custom_id":"c","method":"POST","url":"/v1/chat/completions","body":{"model":"claude-haiku-4-5","messages":[{"role":"system","content":[{"type":"text","text":"Rules","cache_control":{"type":"ephemeral","ttl":"1h"}}]},{"role":"user","content":[{"type":"text","text":"Doc","cache_control":{"type":"ephemeral"}},{"type":"text","text":"Q?"}]}]}}"#
        let r = try BatchRequest(batchLine: Data(line.utf8))
        guard case .chat(let c) = r.body else { Issue.record("not chat"); return }
        let b = try Self.body(c)
        #expect(b["system"] == [["type": "text", "text": "Rules", "cache_control": ["type": "ephemeral", "ttl": "1h"]]])
        #expect(b["messages"]?[0]?["content"]?[0] == ["type": "text", "text": "Doc", "cache_control": ["type": "ephemeral"]])
        #expect(r.batchLine() == (try JSONValue(parsing: line)))
    }

    @Test func toolUseAnswersBecomeToolCalls() throws {
        let m: JSONValue = [
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                ["type": "text", "text": "Let me check."],
                ["type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": ["city": "Paris"]],
                ["type": "tool_use", "id": "toolu_b", "name": "get_time", "input": [:]],
            ],
            "stop_reason": "tool_use", "stop_sequence": nil,
            "usage": [
                "input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 0,
                "cache_creation": ["ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200],
            ],
        ]
        let r = try AnthropicWire.parseMessage(m)
        #expect(r.toolCalls == [
            ToolCall(id: "toolu_a", name: "get_weather", arguments: ["city": "Paris"]),
            ToolCall(id: "toolu_b", name: "get_time", arguments: [:]),
        ])
        #expect(r.finishReason == .toolCalls)
        #expect(r.text == "Let me check.")
        #expect(r.usage == Usage(inputTokens: 310, outputTokens: 20, cacheWriteTokens: 300, cacheWrite1hTokens: 200))
        // The forced structured-output tool is the answer, not a tool call.
        let forced = try AnthropicWire.parseMessage(m, structuredOutputTool: "get_weather")
        #expect(forced.toolCalls.isEmpty)
    }
}
