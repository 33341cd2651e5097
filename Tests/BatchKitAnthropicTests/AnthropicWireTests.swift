import BatchKit
import Foundation
import Testing

@testable import BatchKitAnthropic

@Suite struct AnthropicWireTests {
    @Test func minimalBodyUsesDefaultMaxTokens() throws {
        let body = try AnthropicWire.messagesBody(ChatRequest(model: "claude-sonnet-4-5", messages: [.user("Hi")]))
        #expect(body == ["model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [["role": "user", "content": "Hi"]]])
        let custom = try AnthropicWire.messagesBody(ChatRequest(model: "m", messages: [.user("Hi")]), defaultMaxTokens: 77)
        #expect(custom["max_tokens"] == 77)
        let explicit = try AnthropicWire.messagesBody(ChatRequest(model: "m", messages: [.user("Hi")], maxTokens: 12))
        #expect(explicit["max_tokens"] == 12)
    }

    @Test func systemPromptAndLeadingSystemMessagesBecomeTopLevelSystem() throws {
        let c = ChatRequest(
            model: "m",
            messages: [.system("Be brief."), Message(role: .developer, content: .text("Use French.")), .user("Hi"), .assistant("Salut"), .user("Encore")],
            system: "You are a bot.")
        let body = try AnthropicWire.messagesBody(c)
        #expect(body["system"] == "You are a bot.\n\nBe brief.\n\nUse French.")
        #expect(body["messages"]?.arrayValue?.count == 3)
        #expect(body["messages"]?[1]?["role"] == "assistant")
    }

    @Test func lateSystemMessageAndToolRoleAreRejected() {
        let late = ChatRequest(model: "m", messages: [.user("Hi"), .system("Now be rude")])
        #expect(throws: BatchError.self) { try AnthropicWire.messagesBody(late) }
        do { _ = try AnthropicWire.messagesBody(late) } catch { #expect(error.field == "messages[1].role") }
        // A tool result must name the call it answers.
        let tool = ChatRequest(model: "m", messages: [.user("Hi"), Message(role: .tool, content: .text("42"))])
        do { _ = try AnthropicWire.messagesBody(tool); Issue.record("expected a validation error") } catch {
            #expect(error.code == .validation)
            #expect(error.field == "messages[1].tool_call_id")
        }
        let function = ChatRequest(model: "m", messages: [.user("Hi"), Message(role: "function", content: .text("42"))])
        do { _ = try AnthropicWire.messagesBody(function); Issue.record("expected a validation error") } catch {
            #expect(error.field == "messages[1].role")
        }
        let onlySystem = ChatRequest(model: "m", messages: [.system("x")])
        do { _ = try AnthropicWire.messagesBody(onlySystem); Issue.record("expected a validation error") } catch {
            #expect(error.field == "messages")
        }
    }

    @Test func imagesBecomeBase64OrURLSources() throws {
        let c = ChatRequest(model: "m", messages: [
            .user("What is this?", images: [
                .url("data:image/png;base64,iVBORw0KGgo="), .base64("R0lGODlh", mediaType: "image/gif"),
                .url("https://example.com/cat.jpg", detail: "high"),
            ]),
        ])
        let blocks = try #require(try AnthropicWire.messagesBody(c)["messages"]?[0]?["content"]?.arrayValue)
        #expect(blocks.count == 4)
        #expect(blocks[0] == ["type": "text", "text": "What is this?"])
        #expect(blocks[1] == ["type": "image", "source": ["type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="]])
        #expect(blocks[2] == ["type": "image", "source": ["type": "base64", "media_type": "image/gif", "data": "R0lGODlh"]])
        #expect(blocks[3] == ["type": "image", "source": ["type": "url", "url": "https://example.com/cat.jpg"]])
        let ftp = ChatRequest(model: "m", messages: [.user("x", images: [.url("ftp://example.com/a.png")])])
        do { _ = try AnthropicWire.messagesBody(ftp); Issue.record("expected a validation error") } catch {
            #expect(error.field == "messages[0].content[1]")
        }
    }

    @Test func samplingAndStopFields() throws {
        let c = ChatRequest(model: "m", messages: [.user("Hi")], temperature: 0.25, topP: 0.5, stop: ["END", "STOP"])
        let body = try AnthropicWire.messagesBody(c)
        #expect(body["temperature"] == 0.25)
        #expect(body["top_p"] == 0.5)
        #expect(body["stop_sequences"] == ["END", "STOP"])
        #expect(body["stop"] == nil)
        let hot = ChatRequest(model: "m", messages: [.user("Hi")], temperature: 1.5)
        do { _ = try AnthropicWire.messagesBody(hot); Issue.record("expected a validation error") } catch {
            #expect(error.field == "temperature")
        }
    }

    @Test func seedCannotBeExpressed() {
        let c = ChatRequest(model: "m", messages: [.user("Hi")], seed: 7)
        do { _ = try AnthropicWire.messagesBody(c); Issue.record("expected a validation error") } catch {
            #expect(error.code == .validation)
            #expect(error.field == "seed")
            #expect(!error.isRetryable)
        }
    }

    @Test func otherContentPartsAndMessageExtrasAreRejected() {
        let audio = ChatRequest(model: "m", messages: [
            Message(role: .user, content: .parts([.text("listen"), .other(["type": "input_audio", "input_audio": ["data": "AAA"]])])),
        ])
        do { _ = try AnthropicWire.messagesBody(audio); Issue.record("expected a validation error") } catch {
            #expect(error.field == "messages[0].content[1]")
            #expect(error.message.contains("input_audio"))
        }
        let named = ChatRequest(model: "m", messages: [Message(role: .user, content: .text("hi"), extra: ["name": "bob"])])
        do { _ = try AnthropicWire.messagesBody(named); Issue.record("expected a validation error") } catch {
            #expect(error.field == "messages[0].name")
        }
    }

    @Test func extraIsMergedLast() throws {
        let c = ChatRequest(model: "m", messages: [.user("Hi")], maxTokens: 10, extra: ["max_tokens": 99, "top_k": 5, "metadata": ["user_id": "u1"]])
        let body = try AnthropicWire.messagesBody(c)
        #expect(body["max_tokens"] == 99)
        #expect(body["top_k"] == 5)
        #expect(body["metadata"]?["user_id"] == "u1")
    }

    @Test func jsonSchemaBecomesAForcedTool() throws {
        let c = ChatRequest(model: "m", messages: [.user("Extract")], responseFormat: .jsonSchema(.init(name: "person info", schema: personSchema, strict: true)))
        let body = try AnthropicWire.messagesBody(c)
        let tool = try #require(body["tools"]?[0])
        #expect(tool["name"] == "person_info")
        #expect(tool["input_schema"] == personSchema)
        #expect(tool["strict"] == true)
        #expect(body["tool_choice"] == ["type": "tool", "name": "person_info"])
        #expect(AnthropicWire.structuredOutputTool(for: c) == "person_info")

        let message: JSONValue = [
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [["type": "tool_use", "id": "toolu_1", "name": "person_info", "input": ["name": "Ada", "age": 36]]],
            "stop_reason": "tool_use", "stop_sequence": nil, "usage": ["input_tokens": 20, "output_tokens": 9],
        ]
        let r = try AnthropicWire.parseMessage(message, structuredOutputTool: "person_info")
        #expect(r.finishReason == .stop)
        let parsed = try JSONValue(parsing: try #require(r.text))
        #expect(parsed == ["name": "Ada", "age": 36])
        // Without knowing the tool: the input is still the text, but the finish reason says tool call.
        let unknown = try AnthropicWire.parseMessage(message)
        #expect(unknown.finishReason == .toolCalls)
        #expect(unknown.text == r.text)
    }

    @Test func jsonSchemaWithOutputConfigAndJSONObject() throws {
        let c = ChatRequest(model: "m", messages: [.user("Extract")], responseFormat: .jsonSchema(.init(name: "p", schema: personSchema)))
        let native = try AnthropicWire.messagesBody(c, structuredOutput: .outputConfig)
        #expect(native["output_config"] == ["format": ["type": "json_schema", "schema": personSchema]])
        #expect(native["tools"] == nil)
        #expect(AnthropicWire.structuredOutputTool(for: c, structuredOutput: .outputConfig) == nil)

        let object = ChatRequest(model: "m", messages: [.user("Extract")], responseFormat: .jsonObject)
        let body = try AnthropicWire.messagesBody(object)
        #expect(body["tool_choice"] == ["type": "tool", "name": "json_object"])
        #expect(body["tools"]?[0]?["input_schema"] == ["type": "object"])

        let arraySchema = ChatRequest(model: "m", messages: [.user("x")], responseFormat: .jsonSchema(.init(name: "list", schema: ["type": "array"])))
        do { _ = try AnthropicWire.messagesBody(arraySchema); Issue.record("expected a validation error") } catch {
            #expect(error.field == "response_format.json_schema.schema")
        }
        let conflicting = ChatRequest(model: "m", messages: [.user("x")], responseFormat: .jsonObject, extra: ["tools": []])
        do { _ = try AnthropicWire.messagesBody(conflicting); Issue.record("expected a validation error") } catch {
            #expect(error.field == "response_format")
        }
    }

    @Test(arguments: [
        ("end_turn", FinishReason.stop), ("stop_sequence", .stop), ("max_tokens", .length), ("tool_use", .toolCalls),
        ("refusal", .contentFilter), ("model_context_window_exceeded", .length), ("pause_turn", FinishReason(rawValue: "pause_turn")),
    ])
    func finishReasons(_ wire: String, _ expected: FinishReason) throws {
        let m: JSONValue = [
            "type": "message", "content": [["type": "text", "text": "a"], ["type": "text", "text": "b"]],
            "stop_reason": .string(wire), "usage": ["input_tokens": 1, "output_tokens": 1],
        ]
        let r = try AnthropicWire.parseMessage(m)
        #expect(r.finishReason == expected)
        #expect(r.text == "ab")
    }

    @Test func usageAddsCacheTokensToInput() throws {
        let m: JSONValue = [
            "type": "message", "model": "claude-sonnet-4-5-20250929", "content": [["type": "text", "text": "Hi!"]],
            "stop_reason": "end_turn",
            "usage": ["input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000],
        ]
        let r = try AnthropicWire.parseMessage(m)
        #expect(r.usage == Usage(inputTokens: 1112, outputTokens: 5, cachedInputTokens: 1000, cacheWriteTokens: 100))
        #expect(r.model == "claude-sonnet-4-5-20250929")
        #expect(r.raw == m)
        #expect(throws: BatchError.self) { try AnthropicWire.parseMessage(["type": "error"]) }
    }

    static func envelope(_ type: String, _ message: String = "boom") -> Data {
        JSONValue.object(["type": "error", "error": ["type": .string(type), "message": .string(message)], "request_id": "req_1"]).serialized()
    }

    @Test(arguments: [
        (400, "invalid_request_error", BatchError.Code.invalidRequest, false),
        (401, "authentication_error", .authentication, false),
        (402, "billing_error", .permission, false),
        (403, "permission_error", .permission, false),
        (404, "not_found_error", .notFound, false),
        (409, "conflict_error", .server, true),
        (413, "request_too_large", .invalidRequest, false),
        (429, "rate_limit_error", .rateLimited, true),
        (500, "api_error", .server, true),
        (504, "timeout_error", .timeout, true),
        (529, "overloaded_error", .overloaded, true),
        (418, "teapot_error", .invalidResponse, false),
    ])
    func errorTypes(_ status: Int, _ type: String, _ code: BatchError.Code, _ retryable: Bool) {
        let e = AnthropicWire.error(status: status, headers: ["retry-after": "3"], body: Self.envelope(type))
        #expect(e.code == code)
        #expect(e.isRetryable == retryable)
        #expect(e.httpStatus == status)
        #expect(e.providerType == type)
        #expect(e.message.contains("boom"))
        #expect(e.message.contains("req_1"))
    }

    @Test func retryAfterSources() {
        let now = Date(timeIntervalSince1970: 1_736_951_000)  // 2025-01-15T14:23:20Z
        let ms = AnthropicWire.error(status: 429, headers: ["retry-after-ms": "1500", "retry-after": "9"], body: Self.envelope("rate_limit_error"), now: now)
        #expect(ms.retryAfter == .milliseconds(1500))
        let reset = AnthropicWire.error(
            status: 429,
            headers: [
                "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2025-01-15T14:24:00Z",
                "anthropic-ratelimit-tokens-limit": "40000", "anthropic-ratelimit-tokens-remaining": "39000",
                "anthropic-ratelimit-tokens-reset": "2025-01-15T14:25:00Z",
            ],
            body: Self.envelope("rate_limit_error"), now: now)
        #expect(reset.retryAfter == .seconds(40))
        #expect(reset.rateLimit?.requests.limit == 50)
        #expect(reset.rateLimit?.tokens.remaining == 39000)
        #expect(reset.isRetryable)
    }

    @Test func retryAfterFromTheTightestBudgetWhenNoneIsAtZero() {
        let now = Date(timeIntervalSince1970: 1_736_951_000)  // 2025-01-15T14:23:20Z
        let e = AnthropicWire.error(
            status: 429,
            headers: [
                "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "40",
                "anthropic-ratelimit-requests-reset": "2025-01-15T14:23:30Z",
                "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "1000",
                "anthropic-ratelimit-input-tokens-reset": "2025-01-15T14:24:20Z",
            ],
            body: Self.envelope("rate_limit_error"), now: now)
        #expect(e.retryAfter == .seconds(60))
    }

    @Test func spendLimitIsNotRetryable() {
        let body = JSONValue.object([
            "type": "error",
            "error": ["type": "rate_limit_error", "message": "You have reached your specified workspace API usage limits.",
                      "details": ["error_code": "enforced_spend_limit_reached"]],
        ]).serialized()
        let e = AnthropicWire.error(status: 429, headers: [:], body: body)
        #expect(e.code == .rateLimited)
        #expect(!e.isRetryable)
        #expect(e.retryAfter == nil)
    }

    @Test func shouldRetryHeaderOverrides() {
        let no = AnthropicWire.error(status: 500, headers: ["x-should-retry": "false"], body: Self.envelope("api_error"))
        #expect(!no.isRetryable)
        let yes = AnthropicWire.error(status: 400, headers: ["x-should-retry": "true"], body: Self.envelope("invalid_request_error"))
        #expect(yes.isRetryable)
    }

    @Test func nonJSONErrorBodies() {
        let e = AnthropicWire.error(status: 413, headers: [:], body: Data("<html>Request Entity Too Large</html>".utf8))
        #expect(e.code == .invalidRequest)
        #expect(e.providerType == "request_too_large")
        let gateway = AnthropicWire.error(status: 502, headers: [:], body: Data("bad gateway".utf8))
        #expect(gateway.code == .server)
        #expect(gateway.isRetryable)
    }

    @Test func invalidRequestNamesTheField() {
        let e = AnthropicWire.error(status: 400, headers: [:], body: Self.envelope("invalid_request_error", "max_tokens: Field required"))
        #expect(e.field == "max_tokens")
    }

    @Test func batchItemErrors() {
        let invalid = AnthropicWire.batchItemError(["type": "error", "error": ["type": "invalid_request_error", "message": "max_tokens: Field required"]])
        #expect(invalid.code == .invalidRequest)
        #expect(!invalid.isRetryable)
        #expect(invalid.field == "max_tokens")
        let server = AnthropicWire.batchItemError(["type": "error", "error": ["type": "api_error", "message": "Internal server error"]])
        #expect(server.code == .server)
        #expect(server.isRetryable)
        let overloaded = AnthropicWire.batchItemError(["type": "error", "error": ["type": "overloaded_error", "message": "Overloaded"]])
        #expect(overloaded.code == .overloaded)
        #expect(overloaded.isRetryable)
    }

    @Test func customIDPattern() {
        #expect(AnthropicBatchBackend.isValidCustomID("q-001_A"))
        #expect(AnthropicBatchBackend.isValidCustomID(String(repeating: "a", count: 64)))
        #expect(!AnthropicBatchBackend.isValidCustomID(String(repeating: "a", count: 65)))
        #expect(!AnthropicBatchBackend.isValidCustomID(""))
        #expect(!AnthropicBatchBackend.isValidCustomID("has space"))
        #expect(!AnthropicBatchBackend.isValidCustomID("dot.id"))
        #expect(!AnthropicBatchBackend.isValidCustomID("é"))
    }

    @Test func messageBatchMapping() throws {
        func batch(_ status: String, counts: [Int], cancel: Bool = false) -> JSONValue {
            [
                "id": "msgbatch_1", "type": "message_batch", "processing_status": .string(status),
                "request_counts": ["processing": .int(counts[0]), "succeeded": .int(counts[1]), "errored": .int(counts[2]),
                                   "canceled": .int(counts[3]), "expired": .int(counts[4])],
                "created_at": "2024-09-24T18:37:24.100435Z", "expires_at": "2024-09-25T18:37:24.100435Z",
                "ended_at": nil, "cancel_initiated_at": cancel ? "2024-09-24T18:40:00.000000Z" : nil, "archived_at": nil,
                "results_url": status == "ended" ? "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results" : nil,
            ]
        }
        let running = try AnthropicBatchBackend.job(from: batch("in_progress", counts: [5, 0, 0, 0, 0]))
        #expect(running.status == .inProgress)
        #expect(running.requestCount == 5)
        #expect(running.metadata["results_url"] == nil)
        #expect(abs((running.createdAt?.timeIntervalSince1970 ?? 0) - 1_727_203_044.100435) < 1e-4)
        #expect(try AnthropicBatchBackend.job(from: batch("canceling", counts: [5, 0, 0, 0, 0], cancel: true)).status == .cancelling)
        let done = try AnthropicBatchBackend.job(from: batch("ended", counts: [0, 3, 2, 0, 0]))
        #expect(done.status == .completed)
        #expect(done.succeededCount == 3)
        #expect(done.failedCount == 2)
        #expect(done.metadata["results_url"]?.hasSuffix("/results") == true)
        #expect(try AnthropicBatchBackend.job(from: batch("ended", counts: [0, 3, 0, 2, 0], cancel: true)).status == .cancelled)
        let expired = try AnthropicBatchBackend.job(from: batch("ended", counts: [0, 3, 0, 0, 2]))
        #expect(expired.status == .expired)
        #expect(expired.failedCount == 2)
    }

    @Test func resultsURLStaysOnTheConfiguredOrigin() throws {
        let c = ProviderConnection.anthropic(
            apiKey: "k", baseURL: URL(string: "https://proxy.example.com/anthropic")!, version: "v", extraHeaders: [:],
            transport: ClosureTransport { _ in HTTPResponse(status: 500) }, timeout: nil)
        let same = try #require(c.serverURL("https://proxy.example.com/anthropic/v1/messages/batches/b/results"))
        #expect(same.absoluteString == "https://proxy.example.com/anthropic/v1/messages/batches/b/results")
        let other = try #require(c.serverURL("https://api.anthropic.com/v1/messages/batches/b/results?x=1"))
        #expect(other.absoluteString == "https://proxy.example.com/anthropic/v1/messages/batches/b/results?x=1")
    }
}
