import BatchKit
import Foundation
import Testing

/// Tools, cache fields and metadata in the interchange formats (input line, output line) and in
/// the price table.
@Suite struct ToolLineTests {
    static let line = #"{"body":{"max_completion_tokens":100,"messages":[{"content":[{"cache_control":{"ttl":"1h","type":"ephemeral"},"text":"Rules","type":"text"}],"role":"system"},{"content":"Weather?","role":"user"},{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"id":"call_1","type":"function"}]},{"content":"sunny","role":"tool","tool_call_id":"call_1"}],"model":"gpt-4o-mini","parallel_tool_calls":false,"prompt_cache_key":"k1","tool_choice":{"function":{"name":"get_weather"},"type":"function"},"tools":[{"cache_control":{"type":"ephemeral"},"function":{"description":"Weather","name":"get_weather","parameters":{"type":"object"},"strict":true},"type":"function"}]},"custom_id":"t1","metadata":{"row":"7","source":"crm"},"method":"POST","url":"/v1/chat/completions"}"#

    @Test func aToolLineIsModelledAndWrittenBackTheSame() throws {
        let r = try BatchRequest(batchLine: Data(Self.line.utf8), lineNumber: 1)
        guard case .chat(let c) = r.body else { Issue.record("not chat"); return }
        #expect(c.tools == [Tool(name: "get_weather", description: "Weather", parameters: ["type": "object"], strict: true, cacheControl: .ephemeral)])
        #expect(c.toolChoice == .tool("get_weather"))
        #expect(c.parallelToolCalls == false)
        #expect(c.promptCacheKey == "k1")
        #expect(c.extra.isEmpty)
        #expect(c.messages[0].cacheControl == .oneHour)
        #expect(c.messages[2].toolCalls == [ToolCall(id: "call_1", name: "get_weather", arguments: ["city": "Paris"])])
        #expect(c.messages[3].toolCallID == "call_1")
        #expect(c.messages.allSatisfy { $0.extra.isEmpty })
        #expect(r.metadata == ["row": "7", "source": "crm"])
        // Written back: the same line but for the metadata, which is never sent.
        var expected = try JSONValue(parsing: Self.line).objectValue!
        expected["metadata"] = nil
        #expect(r.batchLine() == .object(expected))
        #expect(String(decoding: r.batchLineData(), as: UTF8.self) == JSONValue.object(expected).jsonString)
    }

    @Test func cachedContentRoundTripsAndUnmodelledShapesStayVerbatim() throws {
        let line = #"{"custom_id":"g","method":"POST","url":"/v1/chat/completions","body":{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],"cached_content":"cachedContents/abc","tools":[{"type":"web_search"}],"tool_choice":{"type":"allowed_tools"}}}"#
        let r = try BatchRequest(batchLine: Data(line.utf8))
        guard case .chat(let c) = r.body else { Issue.record("not chat"); return }
        #expect(c.cachedContent == "cachedContents/abc")
        #expect(c.tools.isEmpty)
        #expect(c.extra["tools"] == [["type": "web_search"]])
        #expect(c.extra["tool_choice"] == ["type": "allowed_tools"])
        #expect(r.batchLine() == (try JSONValue(parsing: line)))
    }

    @Test func metadataMustBeAnObjectOfStrings() {
        for (metadata, field) in [(#"["a"]"#, "metadata"), (#"{"n": 1}"#, "metadata.n")] {
            let line = #"{"custom_id":"m","method":"POST","url":"/v1/chat/completions","metadata":\#(metadata),"body":{"model":"m","messages":[]}}"#
            do {
                _ = try BatchRequest(batchLine: Data(line.utf8), lineNumber: 4)
                Issue.record("expected a validation error")
            } catch {
                #expect(error.field == field)
                #expect(error.message.hasPrefix("line 4:"))
            }
        }
    }

    @Test func outputLineCarriesToolCallsCacheUsageAndMetadata() throws {
        let calls = [ToolCall(id: "toolu_1", name: "get_weather", arguments: ["city": "Paris"])]
        let usage = Usage(inputTokens: 2000, outputTokens: 30, cachedInputTokens: 1500, cacheWriteTokens: 400, cacheWrite1hTokens: 400)
        let raw: JSONValue = ["type": "message", "content": [["type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": ["city": "Paris"]]], "stop_reason": "tool_use"]
        let response = ModelResponse(text: "", finishReason: .toolCalls, usage: usage, model: "claude-haiku-4-5", raw: raw, toolCalls: calls)
        let result = BatchResult(id: "a", outcome: .success(response), attempts: 1, metadata: ["row": "3"])
        let line = result.outputLine()
        let member = try #require(line["batchkit"])
        #expect(member["tool_calls"] == [["id": "toolu_1", "name": "get_weather", "arguments": ["city": "Paris"]]])
        #expect(member["metadata"] == ["row": "3"])
        #expect(member["usage"]?["cached"] == 1500)
        #expect(member["usage"]?["cache_write"] == 400)
        #expect(member["usage"]?["cache_write_1h"] == 400)
        let back = try BatchResult(outputLine: .object(try JSONValue(parsing: String(decoding: result.outputLineBytes(), as: UTF8.self)).objectValue!))
        #expect(back.response?.toolCalls == calls)
        #expect(back.usage == usage)
        #expect(back.metadata == ["row": "3"])
        // A failure keeps its metadata too; nothing is written when there is none.
        let failed = BatchResult(id: "b", outcome: .failure(.validation("x", field: "f")), attempts: 0, route: .none, metadata: ["k": "v"])
        #expect(try BatchResult(outputLine: failed.outputLine()).metadata == ["k": "v"])
        #expect(BatchResult(id: "c", outcome: .success(ModelResponse(text: "t")), attempts: 1).outputLine()["batchkit"]?["metadata"] == nil)
        // An OpenAI body without the member gives its tool calls too.
        let openAI: JSONValue = ["custom_id": "d", "response": ["status_code": 200, "body": [
            "object": "chat.completion", "choices": [["index": 0, "finish_reason": "tool_calls", "message": ["role": "assistant", "content": nil,
                "tool_calls": [["id": "call_9", "type": "function", "function": ["name": "f", "arguments": "{}"]]]]]],
        ]]]
        #expect(try BatchResult(outputLine: openAI).response?.toolCalls == [ToolCall(id: "call_9", name: "f", arguments: [:])])
    }

    @Test func cacheTokensArePricedAsEachProviderBillsThem() throws {
        let prices = PriceTable.defaults
        // Anthropic (Haiku 4.5: $1 in, 0.10 read, 1.25 write 5 m, 2 write 1 h), batch stacks.
        let u = Usage(inputTokens: 4_000_000, outputTokens: 0, cachedInputTokens: 1_000_000, cacheWriteTokens: 2_000_000, cacheWrite1hTokens: 1_000_000)
        let haiku = try #require(prices.cost(of: u, model: "claude-haiku-4-5"))
        #expect(abs(haiku - (1 + 0.10 + 1.25 + 2)) < 1e-9)
        let haikuBatch = try #require(prices.cost(of: u.asBatch, model: "claude-haiku-4-5"))
        #expect(abs(haikuBatch - haiku / 2) < 1e-9)
        // OpenAI: reads at the cached rate, batch halves them too.
        let o = Usage(inputTokens: 2_000_000, outputTokens: 0, cachedInputTokens: 1_000_000)
        #expect(abs(try #require(prices.cost(of: o, model: "gpt-4.1")) - (2 + 0.5)) < 1e-9)
        #expect(abs(try #require(prices.cost(of: o.asBatch, model: "gpt-4.1")) - (1 + 0.25)) < 1e-9)
        // Gemini: a batch halves uncached input but bills cache hits as outside a batch.
        #expect(abs(try #require(prices.cost(of: o.asBatch, model: "gemini-2.5-flash")) - (0.15 + 0.03)) < 1e-9)
        // From a price file.
        let file = try PriceTable(json: Data(#"{"m": {"input": 1, "output": 2, "cache_write": 3, "cache_write_1h": 4}}"#.utf8))
        let w = Usage(inputTokens: 2_000_000, cacheWriteTokens: 2_000_000, cacheWrite1hTokens: 1_000_000)
        #expect(abs(try #require(file.cost(of: w, model: "m")) - 7) < 1e-9)
        #expect(!PriceTable.cachePricesAsOf.isEmpty)
    }

    /// The Anthropic row of Docs/Tools.md's caching table: 1,000 requests sharing a 10,000-token
    /// prefix, 200 tokens of question and 100 of answer each.
    @Test func docsCachingExample() throws {
        let prices = PriceTable.defaults
        func total(_ usages: [Usage]) throws -> Double {
            try usages.reduce(0) { $0 + (try #require(prices.cost(of: $1, model: "claude-haiku-4-5"))) }
        }
        let read = Usage(inputTokens: 10_200, outputTokens: 100, cachedInputTokens: 10_000)
        let uncached = Array(repeating: Usage(inputTokens: 10_200, outputTokens: 100), count: 1000)
        let realtime = [Usage(inputTokens: 10_200, outputTokens: 100, cacheWriteTokens: 10_000)] + Array(repeating: read, count: 999)
        let batch = ([Usage(inputTokens: 10_200, outputTokens: 100, cacheWriteTokens: 10_000, cacheWrite1hTokens: 10_000)]
            + Array(repeating: read, count: 999)).map(\.asBatch)
        #expect(abs(try total(uncached) - 10.70) < 0.005)
        #expect(abs(try total(realtime) - 1.7115) < 1e-9)
        #expect(abs(try total(uncached.map(\.asBatch)) - 5.35) < 0.005)
        #expect(abs(try total(batch) - 0.8595) < 1e-9)
    }
}
