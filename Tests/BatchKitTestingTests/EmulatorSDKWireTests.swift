import BatchKit
import BatchKitTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Wire shapes the official SDKs rely on (checked with them by `Scripts/sdk-crosscheck.py`, which
/// is not run in CI), asserted here through the real HTTP server: Responses API streaming events
/// and forced function calls, Gemini thinking parts, Anthropic model-list paging.
@Suite(.timeLimit(.minutes(5))) struct EmulatorSDKWireTests {
    static let openAI: HTTPHeaders = ["authorization": "Bearer sk-wire"]
    static let anthropic: HTTPHeaders = ["x-api-key": "sk-ant-wire", "anthropic-version": "2023-06-01"]
    static let gemini: HTTPHeaders = ["x-goog-api-key": "AIza-wire"]

    /// Runs `body` against an emulator behind a real HTTP server, shut down afterwards.
    func served(_ body: (_ send: @escaping @Sendable (String, String, HTTPHeaders, JSONValue?) async throws -> HTTPResponse) async throws -> Void)
        async throws
    {
        let server = try await EmulatorServer.start(emulator: ProviderEmulator())
        let base = server.baseURL
        let transport = URLSessionTransport()
        let send: @Sendable (String, String, HTTPHeaders, JSONValue?) async throws -> HTTPResponse = { method, path, headers, json in
            var request = HTTPRequest(method: method, url: URL(string: base.absoluteString + path)!, headers: headers)
            if let json {
                request.headers["content-type"] = "application/json"
                request.body = .data(Data(json.jsonString.utf8))
            }
            return try await transport.send(request)
        }
        do {
            try await body(send)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    /// The named events of a server-sent event stream, in order, with their parsed `data:`.
    func events(_ r: HTTPResponse) throws -> [(name: String?, data: JSONValue)] {
        let text = String(decoding: r.body, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        var out: [(name: String?, data: JSONValue)] = []
        for block in text.components(separatedBy: "\n\n") where !block.isEmpty {
            var name: String?
            var data = ""
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data += String(line.dropFirst(6)) }
            }
            out.append((name, try JSONValue(parsing: Data(data.utf8))))
        }
        return out
    }

    func keys(_ v: JSONValue?) -> [String] { (v?.objectValue ?? [:]).keys.sorted() }

    // MARK: - Responses API

    /// `responses.create(stream=True)`: the event sequence the SDK's stream accumulator needs,
    /// numbered from 0, whose deltas add up to the plain call's text.
    @Test func responsesStreamsTextAsNamedNumberedEvents() async throws {
        try await served { send in
            let body: JSONValue = ["model": "gpt-4o-mini", "input": "Say something", "max_output_tokens": 100]
            let plain = try JSONValue(parsing: try await send("POST", "/v1/responses", Self.openAI, body).body)
            var streamed = body.objectValue!
            streamed["stream"] = true
            let r = try await send("POST", "/v1/responses", Self.openAI, .object(streamed))
            #expect(r.status == 200)
            #expect(r.headers["content-type"]?.hasPrefix("text/event-stream") == true)
            #expect(!String(decoding: r.body, as: UTF8.self).contains("[DONE]"))
            let list = try events(r)
            let deltas = list.filter { $0.name == "response.output_text.delta" }
            try #require(deltas.count >= 2)
            let expected = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
                + Array(repeating: "response.output_text.delta", count: deltas.count)
                + ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
            #expect(list.map { $0.name ?? "" } == expected)
            for (i, e) in list.enumerated() {
                #expect(e.data["type"]?.stringValue == e.name)
                #expect(e.data["sequence_number"] == .int(i))
            }
            try #require(list.count == expected.count)
            let created = list[0].data["response"], completed = list[list.count - 1].data["response"]
            #expect(created?["status"] == "in_progress")
            #expect(created?["output"] == [])
            #expect(created?["usage"] == .null)
            #expect(created?["id"] == completed?["id"])
            #expect(keys(created) == keys(completed))
            #expect(completed?["status"] == "completed")
            let item = try #require(completed?["output"]?[0])
            let itemID = try #require(item["id"]?.stringValue)
            #expect(itemID.hasPrefix("msg_"))
            // The opened item is empty and in progress; the part starts with empty text.
            #expect(keys(list[2].data) == ["item", "output_index", "sequence_number", "type"])
            #expect(list[2].data["item"] == ["id": .string(itemID), "type": "message", "status": "in_progress", "role": "assistant", "content": []])
            #expect(keys(list[3].data) == ["content_index", "item_id", "output_index", "part", "sequence_number", "type"])
            #expect(list[3].data["part"] == ["type": "output_text", "text": "", "annotations": [], "logprobs": []])
            for d in deltas {
                #expect(keys(d.data) == ["content_index", "delta", "item_id", "logprobs", "output_index", "sequence_number", "type"])
                #expect(d.data["item_id"]?.stringValue == itemID && d.data["output_index"] == 0 && d.data["content_index"] == 0)
            }
            let text = deltas.compactMap { $0.data["delta"]?.stringValue }.joined()
            let done = list[list.count - 4].data
            #expect(keys(done) == ["content_index", "item_id", "logprobs", "output_index", "sequence_number", "text", "type"])
            #expect(done["text"]?.stringValue == text)
            #expect(list[list.count - 3].data["part"] == item["content"]?[0])
            #expect(list[list.count - 2].data["item"] == item)
            #expect(item["content"]?[0]?["text"]?.stringValue == text)
            #expect(text == plain["output"]?[0]?["content"]?[0]?["text"]?.stringValue)
            #expect(completed?["usage"] == plain["usage"])
        }
    }

    /// An answer cut by `max_output_tokens` ends with `response.incomplete` (not `.completed`):
    /// the Response `incomplete` with `incomplete_details.reason`, the item `incomplete` too.
    @Test func responsesStreamCutByMaxOutputTokensEndsIncomplete() async throws {
        try await served { send in
            let body: JSONValue = ["model": "gpt-4o-mini", "input": "Tell me a long story", "max_output_tokens": 5, "stream": true]
            let list = try events(try await send("POST", "/v1/responses", Self.openAI, body))
            let names = list.map { $0.name ?? "" }
            #expect(names.first == "response.created")
            #expect(names.last == "response.incomplete")
            #expect(!names.contains("response.completed"))
            let last = try #require(list.last?.data)
            #expect(last["sequence_number"] == .int(list.count - 1))
            #expect(last["response"]?["status"] == "incomplete")
            #expect(last["response"]?["incomplete_details"] == ["reason": "max_output_tokens"])
            #expect(last["response"]?["completed_at"] == .null)
            #expect(last["response"]?["output"]?[0]?["status"] == "incomplete")
            #expect(last["response"]?["usage"]?["output_tokens"] == 5)
            #expect(list.first { $0.name == "response.output_item.done" }?.data["item"]?["status"] == "incomplete")
        }
    }

    static let weatherTools: JSONValue = [
        ["type": "function", "name": "get_time", "parameters": ["type": "object", "properties": ["zone": ["type": "string"]]]],
        [
            "type": "function", "name": "get_weather", "description": "Weather for a city.",
            "parameters": [
                "type": "object", "additionalProperties": false, "required": ["city", "days", "unit"],
                "properties": ["city": ["type": "string"], "days": ["type": "integer"], "unit": ["type": "string", "enum": ["c", "f"]]],
            ],
        ],
    ]

    /// `tools` + `tool_choice` (`required` or a named function): one `function_call` item whose
    /// arguments fill the tool's schema; `auto` keeps the message; wrong shapes are OpenAI's 400s.
    @Test func responsesForcedToolChoiceAnswersAFunctionCall() async throws {
        try await served { send in
            func create(_ extra: [String: JSONValue]) async throws -> (Int, JSONValue) {
                var body: [String: JSONValue] = ["model": "gpt-4o-mini", "input": "Weather in Paris?", "tools": Self.weatherTools]
                body.merge(extra) { $1 }
                let r = try await send("POST", "/v1/responses", Self.openAI, .object(body))
                return (r.status, try JSONValue(parsing: r.body))
            }
            let (status, named) = try await create(["tool_choice": ["type": "function", "name": "get_weather"]])
            #expect(status == 200)
            let output = try #require(named["output"]?.arrayValue)
            try #require(output.count == 1)
            let call = output[0]
            #expect(keys(call) == ["arguments", "call_id", "id", "name", "status", "type"])
            #expect(call["type"] == "function_call" && call["name"] == "get_weather" && call["status"] == "completed")
            #expect(call["id"]?.stringValue?.hasPrefix("fc_") == true)
            #expect(call["call_id"]?.stringValue?.hasPrefix("call_") == true)
            let args = try JSONValue(parsing: Data(try #require(call["arguments"]?.stringValue).utf8))
            #expect(keys(args) == ["city", "days", "unit"])
            #expect(args["city"]?.stringValue?.isEmpty == false)
            #expect(args["days"]?.intValue != nil)
            #expect(args["unit"] == "c" || args["unit"] == "f")
            #expect(named["status"] == "completed")
            #expect(named["tool_choice"] == ["type": "function", "name": "get_weather"])
            #expect(named["tools"]?[1]?["strict"] == true)
            #expect(named["parallel_tool_calls"] == true)

            let (_, required) = try await create(["tool_choice": "required"])
            #expect(required["output"]?[0]?["type"] == "function_call")
            #expect(required["output"]?[0]?["name"] == "get_time")
            let (_, auto) = try await create(["tool_choice": "auto"])
            #expect(auto["output"]?[0]?["type"] == "message")

            // The Chat Completions tool shape has no top-level name.
            let (chatShape, chatError) = try await create([
                "tools": [["type": "function", "function": ["name": "f", "parameters": ["type": "object"]]]], "tool_choice": "required",
            ])
            #expect(chatShape == 400)
            #expect(chatError["error"]?["param"] == "tools[0].name")
            #expect(chatError["error"]?["code"] == "missing_required_parameter")
            let (unknown, unknownError) = try await create(["tool_choice": ["type": "function", "name": "nope"]])
            #expect(unknown == 400)
            #expect(unknownError["error"]?["param"] == "tool_choice")
        }
    }

    /// A streamed function call: the item opens with empty arguments, argument deltas add up to
    /// `function_call_arguments.done` and to the finished item.
    @Test func responsesStreamsAFunctionCall() async throws {
        try await served { send in
            let body: JSONValue = [
                "model": "gpt-4o-mini", "input": "Weather in Paris?", "tools": Self.weatherTools,
                "tool_choice": ["type": "function", "name": "get_weather"], "stream": true,
            ]
            let list = try events(try await send("POST", "/v1/responses", Self.openAI, body))
            let deltas = list.filter { $0.name == "response.function_call_arguments.delta" }
            try #require(deltas.count >= 2)
            let expected = ["response.created", "response.in_progress", "response.output_item.added"]
                + Array(repeating: "response.function_call_arguments.delta", count: deltas.count)
                + ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
            #expect(list.map { $0.name ?? "" } == expected)
            #expect(list.enumerated().allSatisfy { $0.element.data["sequence_number"] == .int($0.offset) })
            try #require(list.count == expected.count)
            let item = try #require(list[list.count - 1].data["response"]?["output"]?[0])
            let added = list[2].data["item"]
            #expect(added?["type"] == "function_call" && added?["status"] == "in_progress" && added?["arguments"] == "")
            #expect(added?["id"] == item["id"] && added?["call_id"] == item["call_id"] && added?["name"] == "get_weather")
            for d in deltas {
                #expect(keys(d.data) == ["delta", "item_id", "output_index", "sequence_number", "type"])
                #expect(d.data["item_id"] == item["id"])
            }
            let joined = deltas.compactMap { $0.data["delta"]?.stringValue }.joined()
            let done = list[list.count - 3].data
            #expect(keys(done) == ["arguments", "item_id", "output_index", "sequence_number", "type"])
            #expect(done["arguments"]?.stringValue == joined)
            #expect(item["arguments"]?.stringValue == joined)
            #expect(list[list.count - 2].data["item"] == item)
        }
    }

    // MARK: - Gemini thinking

    /// `thinkingConfig.includeThoughts`: a `thought: true` part before the same answer, its tokens
    /// as `thoughtsTokenCount` (in the total); a budget without `includeThoughts` counts thoughts
    /// but returns no part; `thinkingBudget: 0` (or no `thinkingConfig`) thinks not at all.
    @Test func geminiThinkingPartsAndThoughtTokens() async throws {
        try await served { send in
            func generate(_ config: JSONValue?, stream: Bool = false) async throws -> HTTPResponse {
                var body: [String: JSONValue] = ["contents": [["role": "user", "parts": [["text": "What is 2+2?"]]]]]
                if let config { body["generationConfig"] = config }
                let verb = stream ? "streamGenerateContent?alt=sse" : "generateContent"
                return try await send("POST", "/v1beta/models/gemini-2.5-flash:\(verb)", Self.gemini, .object(body))
            }
            let plain = try JSONValue(parsing: try await generate(nil).body)
            let answer = try #require(plain["candidates"]?[0]?["content"]?["parts"]?[0])
            #expect(plain["usageMetadata"]?["thoughtsTokenCount"] == nil)

            let r = try await generate(["thinkingConfig": ["includeThoughts": true]])
            #expect(r.status == 200)
            let thinking = try JSONValue(parsing: r.body)
            let parts = try #require(thinking["candidates"]?[0]?["content"]?["parts"]?.arrayValue)
            try #require(parts.count == 2)
            #expect(keys(parts[0]) == ["text", "thought"])
            #expect(parts[0]["thought"] == true)
            #expect(parts[0]["text"]?.stringValue?.isEmpty == false)
            #expect(parts[1] == answer)
            let usage = try #require(thinking["usageMetadata"])
            #expect(keys(usage) == ["candidatesTokenCount", "promptTokenCount", "promptTokensDetails", "thoughtsTokenCount", "totalTokenCount"])
            let thoughts = try #require(usage["thoughtsTokenCount"]?.intValue)
            #expect(thoughts > 0)
            #expect(usage["candidatesTokenCount"] == plain["usageMetadata"]?["candidatesTokenCount"])
            #expect(usage["totalTokenCount"]?.intValue
                == (usage["promptTokenCount"]?.intValue ?? 0) + (usage["candidatesTokenCount"]?.intValue ?? 0) + thoughts)

            // A budget without includeThoughts: thoughts are counted (at most the budget), not returned.
            let hidden = try JSONValue(parsing: try await generate(["thinkingConfig": ["thinkingBudget": 3]]).body)
            #expect(hidden["candidates"]?[0]?["content"]?["parts"] == [answer])
            #expect(hidden["usageMetadata"]?["thoughtsTokenCount"] == 3)
            // Budget 0: no thinking at all, even with includeThoughts.
            let off = try JSONValue(parsing: try await generate(["thinkingConfig": ["thinkingBudget": 0, "includeThoughts": true]]).body)
            #expect(off["candidates"]?[0]?["content"]?["parts"] == [answer])
            #expect(off["usageMetadata"] == plain["usageMetadata"])

            // Streamed: the thought's pieces first (each marked), then the answer's; usage last.
            let streamed = try events(try await generate(["thinkingConfig": ["includeThoughts": true]], stream: true)).map(\.data)
            let streamedParts = streamed.compactMap { $0["candidates"]?[0]?["content"]?["parts"]?[0] }
            try #require(streamedParts.count == streamed.count)
            let firstAnswer = try #require(streamedParts.firstIndex { $0["thought"] == nil })
            #expect(firstAnswer > 0)
            #expect(streamedParts[..<firstAnswer].allSatisfy { $0["thought"] == true })
            #expect(streamedParts[firstAnswer...].allSatisfy { $0["thought"] == nil })
            #expect(streamedParts[..<firstAnswer].compactMap { $0["text"]?.stringValue }.joined() == parts[0]["text"]?.stringValue)
            #expect(streamedParts[firstAnswer...].compactMap { $0["text"]?.stringValue }.joined() == answer["text"]?.stringValue)
            #expect(streamed.last?["usageMetadata"] == usage)
        }
    }

    // MARK: - Anthropic models paging

    /// `GET /v1/models`: newest first, `limit`, `after_id` (older), `before_id` (newer),
    /// `has_more`, `first_id`, `last_id`; paging through with `after_id` sees each model once.
    @Test func anthropicModelListPages() async throws {
        try await served { send in
            func list(_ query: String) async throws -> (Int, JSONValue) {
                let r = try await send("GET", "/v1/models" + query, Self.anthropic, nil)
                return (r.status, try JSONValue(parsing: r.body))
            }
            let (status, all) = try await list("")
            #expect(status == 200)
            #expect(keys(all) == ["data", "first_id", "has_more", "last_id"])
            let data = try #require(all["data"]?.arrayValue)
            try #require(data.count >= 3)
            let ids = data.compactMap { $0["id"]?.stringValue }
            let created = data.compactMap { $0["created_at"]?.stringValue }
            #expect(created == created.sorted(by: >), "newest first")
            #expect(all["has_more"] == false && all["first_id"]?.stringValue == ids.first && all["last_id"]?.stringValue == ids.last)

            let (_, first) = try await list("?limit=2")
            #expect(first["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == Array(ids.prefix(2)))
            #expect(first["has_more"] == true)
            #expect(first["first_id"]?.stringValue == ids[0] && first["last_id"]?.stringValue == ids[1])
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let (_, page) = try await list("?limit=2" + (cursor.map { "&after_id=\($0)" } ?? ""))
                seen += page["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                cursor = page["has_more"] == true ? page["last_id"]?.stringValue : nil
                pages += 1
            } while cursor != nil && pages < 10
            #expect(seen == ids)
            #expect(pages == (ids.count + 1) / 2)

            let (_, before) = try await list("?limit=1&before_id=\(ids[2])")
            #expect(before["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [ids[1]])
            #expect(before["has_more"] == true)
            let (_, newest) = try await list("?before_id=\(ids[0])")
            #expect(newest["data"] == [] && newest["has_more"] == false && newest["first_id"] == .null && newest["last_id"] == .null)
            #expect(try await list("?limit=0").0 == 400)
            #expect(try await list("?after_id=claude-unknown-9").0 == 400)
        }
    }
}
