import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `stream: true` as each provider answers it: server-sent events in real time whose deltas add
/// up to the plain answer; rejection inside batch bodies where the provider rejects it.
@Suite(.timeLimit(.minutes(5))) struct EmulatorStreamingTests {
    func post(_ e: ProviderEmulator, _ path: String, _ headers: HTTPHeaders, _ body: JSONValue) async throws -> HTTPResponse {
        var request = HTTPRequest(method: "POST", url: URL(string: "http://emulator.invalid" + path)!, headers: headers)
        request.headers["content-type"] = "application/json"
        request.body = .data(Data(body.jsonString.utf8))
        return try await e.transport.send(request)
    }

    /// The `data:` payloads of an event stream, and the event names.
    func events(_ r: HTTPResponse) -> (names: [String], data: [String]) {
        let text = String(decoding: r.body, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        var names: [String] = []
        var data: [String] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix("event: ") { names.append(String(line.dropFirst(7))) }
            if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        return (names, data)
    }

    @Test func openAIStreamsChunksThatAddUpToTheAnswer() async throws {
        let e = ProviderEmulator()
        let headers: HTTPHeaders = ["authorization": "Bearer sk-s"]
        let body: JSONValue = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Say something"]], "max_tokens": 30]
        let plain = try JSONValue(parsing: try await post(e, "/v1/chat/completions", headers, body).body)
        var streamed = body.objectValue!
        streamed["stream"] = true
        streamed["stream_options"] = ["include_usage": true]
        let r = try await post(e, "/v1/chat/completions", headers, .object(streamed))
        #expect(r.headers["content-type"]?.hasPrefix("text/event-stream") == true)
        let (_, data) = events(r)
        #expect(data.last == "[DONE]")
        let chunks = try data.dropLast().map { try JSONValue(parsing: $0) }
        #expect(chunks.allSatisfy { $0["object"] == "chat.completion.chunk" })
        let text = chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined()
        #expect(text == plain["choices"]?[0]?["message"]?["content"]?.stringValue)
        #expect(chunks.last?["usage"]?["completion_tokens"] == plain["usage"]?["completion_tokens"])
        #expect(chunks.contains { $0["choices"]?[0]?["finish_reason"] == plain["choices"]?[0]?["finish_reason"] })
    }

    @Test func anthropicStreamsEventsInRealTimeAndRejectsStreamInBatches() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(configuration: .init(batchDuration: .seconds(10)), clock: clock)
        let headers: HTTPHeaders = ["x-api-key": "sk-ant-s", "anthropic-version": "2023-06-01"]
        let body: JSONValue = ["model": "claude-haiku-4-5", "max_tokens": 40, "messages": [["role": "user", "content": "Say something"]]]
        let plain = try JSONValue(parsing: try await post(e, "/v1/messages", headers, body).body)
        var streamed = body.objectValue!
        streamed["stream"] = true
        let r = try await post(e, "/v1/messages", headers, .object(streamed))
        #expect(r.status == 200)
        let (names, data) = events(r)
        #expect(names.first == "message_start")
        #expect(names.last == "message_stop")
        #expect(names.contains("content_block_delta"))
        let payloads = try data.map { try JSONValue(parsing: $0) }
        let text = payloads.compactMap { $0["delta"]?["text"]?.stringValue }.joined()
        #expect(text == plain["content"]?[0]?["text"]?.stringValue)
        #expect(payloads.first { $0["type"] == "message_delta" }?["delta"]?["stop_reason"] == plain["stop_reason"])

        // In a batch the same params are an errored item.
        let batch = try await post(e, "/v1/messages/batches", headers, ["requests": [["custom_id": "s1", "params": .object(streamed)]]])
        #expect(batch.status == 200)
        let id = try #require(try JSONValue(parsing: batch.body)["id"]?.stringValue)
        clock.advance(by: .seconds(60))
        var results = HTTPRequest(url: URL(string: "http://emulator.invalid/v1/messages/batches/\(id)/results")!, headers: headers)
        results.method = "GET"
        let lines = try await e.transport.send(results)
        let line = try JSONValue(parsing: String(String(decoding: lines.body, as: UTF8.self).split(separator: "\n")[0]))
        #expect(line["result"]?["type"] == "errored")
        #expect(line["result"]?["error"]?["error"]?["message"]?.stringValue?.hasPrefix("stream:") == true)
    }

    @Test func geminiStreamsOnItsOwnEndpointAndHasNoStreamField() async throws {
        let e = ProviderEmulator()
        let headers: HTTPHeaders = ["x-goog-api-key": "AIza-s"]
        let body: JSONValue = ["contents": [["role": "user", "parts": [["text": "Say something"]]]]]
        let plain = try JSONValue(parsing: try await post(e, "/v1beta/models/gemini-2.5-flash:generateContent", headers, body).body)
        let r = try await post(e, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", headers, body)
        #expect(r.headers["content-type"]?.hasPrefix("text/event-stream") == true)
        let chunks = try events(r).data.map { try JSONValue(parsing: $0) }
        let text = chunks.compactMap { $0["candidates"]?[0]?["content"]?["parts"]?[0]?["text"]?.stringValue }.joined()
        #expect(text == plain["candidates"]?[0]?["content"]?["parts"]?[0]?["text"]?.stringValue)
        #expect(chunks.last?["usageMetadata"] == plain["usageMetadata"])
        // Without alt=sse: a JSON array of the same chunks.
        let array = try JSONValue(parsing: try await post(e, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", headers, body).body)
        #expect(array.arrayValue?.count == chunks.count)
        // A `stream` member is no Gemini field, in real time or in a batch request.
        var streamed = body.objectValue!
        streamed["stream"] = true
        let bad = try await post(e, "/v1beta/models/gemini-2.5-flash:generateContent", headers, .object(streamed))
        #expect(bad.status == 400)
    }

    /// Extended thinking: a signed `thinking` block before the text, streamed as `thinking_delta`s
    /// and one `signature_delta`, as the SDK's `messages.stream` assembles it.
    @Test func anthropicThinkingBlockComesFirstAndStreams() async throws {
        let e = ProviderEmulator()
        let headers: HTTPHeaders = ["x-api-key": "sk-ant-s", "anthropic-version": "2023-06-01"]
        let body: JSONValue = [
            "model": "claude-sonnet-4-5", "max_tokens": 2000, "thinking": ["type": "enabled", "budget_tokens": 1024],
            "messages": [["role": "user", "content": "What is 2+2?"]],
        ]
        let plain = try JSONValue(parsing: try await post(e, "/v1/messages", headers, body).body)
        let content = try #require(plain["content"]?.arrayValue)
        try #require(content.count == 2)
        #expect(content[0]["type"] == "thinking")
        #expect(content[0]["thinking"]?.stringValue?.isEmpty == false)
        #expect(content[0]["signature"]?.stringValue?.isEmpty == false)
        #expect(content[1]["type"] == "text")
        var streamed = body.objectValue!
        streamed["stream"] = true
        let (_, data) = events(try await post(e, "/v1/messages", headers, .object(streamed)))
        let deltas = try data.map { try JSONValue(parsing: $0) }.compactMap { $0["delta"] }
        let thinking = deltas.filter { $0["type"] == "thinking_delta" }.compactMap { $0["thinking"]?.stringValue }.joined()
        #expect(thinking == content[0]["thinking"]?.stringValue)
        #expect(deltas.contains { $0["type"] == "signature_delta" && $0["signature"] == content[0]["signature"] })
    }
}
