import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitAnthropic

@Suite(.timeLimit(.minutes(5))) struct AnthropicClientTests {
    @Test(arguments: Wire.allCases) func happyPath(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 100, tokensPerMinute: 100_000)) { f in
            let client = f.client()
            let r = try await client.send(chat("q-1", "Say hi") { $0.system = "Be brief."; $0.maxTokens = 200 })
            #expect(!(r.text ?? "").isEmpty)
            #expect(r.finishReason == .stop)
            #expect(r.usage.inputTokens > 0)
            #expect(r.usage.outputTokens > 0)
            #expect(r.model == "claude-sonnet-4-5")
            #expect(r.raw["type"] == "message")
            #expect(r.raw["id"]?.stringValue?.hasPrefix("msg_") == true)
            // Rate-limit headers reach the response.
            let rl = try #require(r.rateLimit)
            #expect(rl.requests.limit == 100)
            #expect(rl.requests.remaining == 99)
            #expect(rl.tokens.limit == 100_000)
            #expect(rl.inputTokens.limit == 100_000)
            #expect(rl.requests.resetAfter != nil)
            // Wire: headers as Anthropic expects them, custom id recorded.
            let sent = try #require(f.recorder.all.first)
            #expect(sent.method == "POST")
            #expect(sent.url.absoluteString == f.baseURL.absoluteString + "/v1/messages")
            #expect(sent.headers["x-api-key"] == secretKey)
            #expect(sent.headers["anthropic-version"] == "2023-06-01")
            #expect(sent.headers["content-type"] == "application/json")
            #expect(sent.headers["x-client-request-id"] == "q-1")
            #expect(f.emulator.sentCount(customID: "q-1") == 1)
            // Same prompt, same answer (the emulator is deterministic).
            let again = try await client.send(chat("q-2", "Say hi") { $0.system = "Be brief."; $0.maxTokens = 200 })
            #expect(again.text == r.text)
        }
    }

    @Test func maxTokensLimitsTheAnswer() async throws {
        let f = AnthropicFixture()
        let r = try await f.client(defaultMaxTokens: 1).send(chat("q-1", "Tell me a long story"))
        #expect(r.finishReason == .length)
        let body = try JSONValue(parsing: try #require(f.recorder.all.first?.body.flatMap { if case .data(let d) = $0 { d } else { nil } }))
        #expect(body["max_tokens"] == 1)
    }

    @Test(arguments: Wire.allCases) func imagesAreAccepted(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let plain = try await f.client().send(chat("i-0", "Describe"))
            let request = BatchRequest(id: "i-1", chat: ChatRequest(model: "claude-sonnet-4-5", messages: [
                .user("Describe", images: [.url("data:image/png;base64,iVBORw0KGgo="), .url("https://example.com/cat.jpg")]),
            ]))
            let r = try await f.client().send(request)
            #expect(r.finishReason == .stop)
            #expect(r.usage.inputTokens > plain.usage.inputTokens + 100)  // images count as input
            let sent = try #require(f.recorder.all.last?.body.flatMap { if case .data(let d) = $0 { d } else { nil } })
            let blocks = try JSONValue(parsing: sent)["messages"]?[0]?["content"]?.arrayValue ?? []
            #expect(blocks.compactMap { $0["source"]?["type"]?.stringValue } == ["base64", "url"])
        }
    }

    @Test(arguments: [AnthropicStructuredOutput.forcedTool, .outputConfig])
    func structuredOutput(_ mode: AnthropicStructuredOutput) async throws {
        let f = AnthropicFixture()
        let request = chat("s-1", "Ada Lovelace, 36") { $0.responseFormat = .jsonSchema(.init(name: "person", schema: personSchema)) }
        let r = try await f.client(structuredOutput: mode).send(request)
        #expect(r.finishReason == .stop)
        let json = try JSONValue(parsing: try #require(r.text))
        #expect(json["name"]?.stringValue != nil)
        #expect(json["age"]?.intValue != nil)
        #expect(json["tags"]?.arrayValue != nil)
    }

    @Test(arguments: Wire.allCases) func jsonObjectFormat(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let r = try await f.client().send(chat("j-1", "anything") { $0.responseFormat = .jsonObject })
            #expect(r.finishReason == .stop)
            #expect(try JSONValue(parsing: try #require(r.text)).objectValue != nil)
        }
    }

    @Test func embeddingsAndRawRequestsFailValidationBeforeSending() async throws {
        let f = AnthropicFixture()
        let client = f.client()
        let embedding = BatchRequest(id: "e-1", embedding: EmbeddingRequest(model: "voyage-3", input: "hello"))
        #expect(throws: BatchError.self) { try client.validate(embedding) }
        let e = await batchError { _ = try await client.send(embedding) }
        #expect(e?.code == .validation)
        #expect(e?.field == "body")
        #expect(e?.message.contains("no embeddings endpoint") == true)
        let raw = BatchRequest(id: "r-1", body: .raw(RawRequest(endpoint: "/v1/responses", body: ["model": "x"])))
        #expect(throws: BatchError.self) { try client.validate(raw) }
        let seeded = chat("s-1") { $0.seed = 3 }
        do { try client.validate(seeded); Issue.record("expected a validation error") } catch { #expect(error.field == "seed") }
        #expect(f.recorder.all.isEmpty)
        #expect(f.emulator.modelRequestCount == 0)
    }

    @Test(arguments: Wire.allCases) func invalidRequest400(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let e = await batchError { _ = try await f.client().send(chat("b-1") { $0.extra = ["max_tokens": nil] }) }
            #expect(e?.code == .invalidRequest)
            #expect(e?.httpStatus == 400)
            #expect(e?.providerType == "invalid_request_error")
            #expect(e?.field == "max_tokens")
            #expect(e?.isRetryable == false)
            let extraField = await batchError { _ = try await f.client().send(chat("b-2") { $0.extra = ["frequency_penalty": 1] }) }
            #expect(extraField?.field == "frequency_penalty")
        }
    }

    @Test(arguments: Wire.allCases) func authentication401(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requiredAPIKey: "sk-ant-the-right-one")) { f in
            let e = await batchError { _ = try await f.client().send(chat("a-1")) }
            #expect(e?.code == .authentication)
            #expect(e?.httpStatus == 401)
            #expect(e?.providerType == "authentication_error")
            #expect(e?.isRetryable == false)
            let ok = try await f.client(apiKey: "sk-ant-the-right-one").send(chat("a-2"))
            #expect(ok.text != nil)
        }
    }

    @Test(arguments: [
        (403, BatchError.Code.permission, "permission_error", false),
        (404, .notFound, "not_found_error", false),
        (500, .server, "api_error", true),
        (504, .timeout, "timeout_error", true),
    ])
    func statusErrors(_ status: Int, _ code: BatchError.Code, _ type: String, _ retryable: Bool) async throws {
        for wire in Wire.allCases {
            try await withFixture(wire, .init(faults: [EmulatorFault(.status(status), on: .endpoint("/v1/messages"), firstTimes: 1)])) { f in
                let client = f.client()
                let e = await batchError { _ = try await client.send(chat("x-1")) }
                #expect(e?.code == code)
                #expect(e?.httpStatus == status)
                #expect(e?.providerType == type)
                #expect(e?.isRetryable == retryable)
                // The fault fired once: the next call succeeds.
                let ok = try await client.send(chat("x-1"))
                #expect(ok.text != nil)
            }
        }
    }

    @Test(arguments: Wire.allCases) func overloaded529(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.overloaded, on: .provider(.anthropic), firstTimes: 2)])) { f in
            let client = f.client()
            for _ in 0..<2 {
                let e = await batchError { _ = try await client.send(chat("o-1")) }
                #expect(e?.code == .overloaded)
                #expect(e?.httpStatus == 529)
                #expect(e?.providerType == "overloaded_error")
                #expect(e?.isRetryable == true)
            }
            let ok = try await client.send(chat("o-1"))
            #expect(ok.text != nil)
            #expect(f.emulator.sentCount(customID: "o-1") == 1)  // the two 529s were answered before the route
        }
    }

    @Test(arguments: Wire.allCases) func rateLimited429WithRetryAfterHonoured(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 2)) { f in
            let client = f.client()
            _ = try await client.send(chat("r-1"))
            _ = try await client.send(chat("r-2"))
            let e = try #require(await batchError { _ = try await client.send(chat("r-3")) })
            #expect(e.code == .rateLimited)
            #expect(e.httpStatus == 429)
            #expect(e.providerType == "rate_limit_error")
            #expect(e.isRetryable)
            let wait = try #require(e.retryAfter)
            #expect(wait >= .seconds(29) && wait <= .seconds(30))
            #expect(e.rateLimit?.requests.limit == 2)
            #expect(e.rateLimit?.requests.remaining == 0)
            // Waiting less than retry-after is not enough; waiting it out is.
            f.clock.advance(by: wait / 2)
            #expect(await batchError { _ = try await client.send(chat("r-3")) }?.code == .rateLimited)
            f.clock.advance(by: wait)
            #expect(try await client.send(chat("r-3")).text != nil)
            #expect(f.emulator.rateLimitedCount == 2)
            #expect(f.emulator.modelRequestCount == 5)
        }
    }

    @Test(arguments: Wire.allCases) func resetConnectionIsARetryableNetworkError(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.resetConnection, on: .provider(.anthropic), firstTimes: 1)])) { f in
            let e = await batchError { _ = try await f.client().send(chat("n-1")) }
            #expect(e?.code == .network)
            #expect(e?.isRetryable == true)
        }
    }

    @Test(arguments: Wire.allCases) func truncatedBodyIsARetryableInvalidResponse(_ wire: Wire) async throws {
        try await withFixture(wire, .init(faults: [EmulatorFault(.truncatedBody(bytes: 20), on: .provider(.anthropic), firstTimes: 1)])) { f in
            let e = await batchError { _ = try await f.client().send(chat("t-1")) }
            // In process the cut body arrives and is not JSON; over a socket the connection closes before
            // Content-Length bytes arrived. Either way: retryable.
            #expect(e?.code == (wire == .inProcess ? .invalidResponse : .network))
            #expect(e?.isRetryable == true)
        }
    }

    @Test func transportTimeoutIsARetryableTimeout() async throws {
        let client = AnthropicClient(apiKey: secretKey, transport: ClosureTransport { _ in throw URLError(.timedOut) })
        let e = await batchError { _ = try await client.send(chat("t-1")) }
        #expect(e?.code == .timeout)
        #expect(e?.isRetryable == true)
    }

    @Test func missingKeyFailsWithoutSending() async throws {
        let f = AnthropicFixture()
        let e = await batchError { _ = try await f.client(apiKey: "").send(chat("k-1")) }
        #expect(e?.code == .authentication)
        #expect(f.recorder.all.isEmpty)
    }

    @Test(arguments: Wire.allCases) func keyNeverAppearsInErrorsOrDescriptions(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requiredAPIKey: "another-key", faults: [])) { f in
            let client = f.client()
            var texts: [String] = [String(describing: client), String(reflecting: client), client.description]
            var dumped = ""
            dump(client, to: &dumped)
            texts.append(dumped)
            if let e = await batchError({ _ = try await client.send(chat("k-1")) }) {
                texts += [e.description, e.message, String(describing: e), String(reflecting: e)]
            } else {
                Issue.record("expected a 401")
            }
            // A transport error that echoes the key is redacted too.
            let leaky = AnthropicClient(apiKey: secretKey, transport: ClosureTransport { r in
                struct Leak: Error, CustomStringConvertible { var description: String }
                throw Leak(description: "failed with header \(r.headers["x-api-key"] ?? "")")
            })
            if let e = await batchError({ _ = try await leaky.send(chat("k-2")) }) {
                texts += [e.description, e.message]
                #expect(e.code == .network)
            }
            let backend = f.backend()
            texts += [String(describing: backend), String(reflecting: backend)]
            var dumpedBackend = ""
            dump(backend, to: &dumpedBackend)
            texts.append(dumpedBackend)
            let sentRequest = try #require(f.recorder.all.first)
            texts += [sentRequest.description, sentRequest.headers.description]
            for t in texts { #expect(!t.contains(secretKey), "key leaked in: \(t)") }
        }
    }

    @Test func keyFromEnvironmentByDefault() async throws {
        // A known key in the environment (whatever was there is put back afterwards); the
        // emulator accepts only that key, and the header it arrived in is checked.
        let envKey = "sk-ant-from-environment-0001"
        let previous = getenv("ANTHROPIC_API_KEY").map { String(cString: $0) }
        setenv("ANTHROPIC_API_KEY", envKey, 1)
        defer {
            if let previous { setenv("ANTHROPIC_API_KEY", previous, 1) } else { unsetenv("ANTHROPIC_API_KEY") }
        }
        let emulator = ProviderEmulator(configuration: .init(requiredAPIKey: envKey), clock: ManualClock())
        let recorder = RequestRecorder()
        let inner = emulator.transport
        let client = AnthropicClient(baseURL: emulatorURL, transport: ClosureTransport { request in
            recorder.record(request)
            return try await inner.send(request)
        })
        let response = try await client.send(chat("env-1"))
        #expect(response.text?.isEmpty == false)
        let sent = try #require(recorder.all.first)
        #expect(sent.headers["x-api-key"] == envKey)
        #expect(!client.description.contains(envKey))
        // The other defaults.
        let defaults = AnthropicClient(transport: ClosureTransport { _ in HTTPResponse(status: 200) })
        #expect(defaults.connection.key?.value == envKey)
        #expect(defaults.baseURL.absoluteString == "https://api.anthropic.com")
        #expect(defaults.version == "2023-06-01")
    }
}
