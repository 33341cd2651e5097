import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitGemini

@Suite(.timeLimit(.minutes(5))) struct GeminiClientTests {
    @Test(arguments: Wire.allCases, ["v1beta", "v1"])
    func generateContentHappyPath(_ wire: Wire, _ version: String) async throws {
        try await withGemini(wire, apiVersion: version) { f in
            let r = try await f.client.send(chat("q-1", "What is the capital of France?"))
            #expect(r.text?.hasPrefix("Echo(") == true)
            #expect(r.finishReason == .stop)
            #expect(r.usage.inputTokens > 0)
            #expect(r.usage.outputTokens > 0)
            #expect(r.model == "gemini-2.5-flash")
            #expect(r.raw["candidates"]?[0]?["content"]?["role"] == "model")
            // The real-time call carried its custom id.
            #expect(f.emulator.sentCount(customID: "q-1") == 1)
            #expect(f.emulator.modelRequestCount == 1)
            // Same prompt, same answer; different prompt, different answer.
            let again = try await f.client.send(chat("q-2", "What is the capital of France?"))
            let other = try await f.client.send(chat("q-3", "Name a prime number."))
            #expect(again.text == r.text)
            #expect(other.text != r.text)
        }
    }

    @Test(arguments: Wire.allCases)
    func maxTokensGivesLength(_ wire: Wire) async throws {
        try await withGemini(wire) { f in
            let r = try await f.client.send(chat("q", "Tell me a long story about the sea", maxTokens: 1))
            #expect(r.finishReason == .length)
        }
    }

    @Test(arguments: Wire.allCases)
    func structuredOutputFollowsTheSchema(_ wire: Wire) async throws {
        try await withGemini(wire) { f in
            let schema: JSONValue = [
                "type": "object", "properties": ["city": ["type": "string"], "population": ["type": "integer"]],
                "required": ["city", "population"], "additionalProperties": false,
            ]
            let request = BatchRequest(id: "s", chat: ChatRequest(
                model: "gemini-2.5-flash", messages: [.user("Largest city in Japan?")],
                responseFormat: .jsonSchema(JSONSchemaFormat(name: "city", schema: schema))))
            let r = try await f.client.send(request)
            let json = try JSONValue(parsing: try #require(r.text))
            #expect(json["city"]?.stringValue != nil)
            #expect(json["population"]?.intValue != nil)
        }
    }

    @Test(arguments: Wire.allCases)
    func embeddingsInOrderAndDistinct(_ wire: Wire) async throws {
        try await withGemini(wire) { f in
            let inputs = ["apple", "banana", "cherry", "apple"]
            let r = try await f.client.send(BatchRequest(
                id: "e", embedding: EmbeddingRequest(model: "gemini-embedding-001", inputs: inputs, dimensions: 16)))
            let vectors = try #require(r.embeddings)
            #expect(vectors.count == 4)
            #expect(vectors.allSatisfy { $0.count == 16 })
            #expect(vectors[0] == vectors[3])
            #expect(vectors[0] != vectors[1])
            #expect(vectors[1] != vectors[2])
            // Order: each vector equals the one of its input alone.
            let single = try await f.client.send(BatchRequest(
                id: "e2", embedding: EmbeddingRequest(model: "gemini-embedding-001", input: "cherry", dimensions: 16)))
            #expect(single.embeddings?[0] == vectors[2])
        }
    }

    @Test(arguments: Wire.allCases)
    func validationBeforeSending(_ wire: Wire) async throws {
        try await withGemini(wire) { f in
            let raw = BatchRequest(id: "r", body: .raw(RawRequest(endpoint: "/v1/responses", body: ["model": "x"])))
            #expect(throws: BatchError(.validation, "")) { try f.client.validate(raw) }
            let image = BatchRequest(id: "i", chat: ChatRequest(model: "m", messages: [.user("x", images: [.url("https://example.com/a.png")])]))
            do {
                try f.client.validate(image)
                Issue.record("expected a validation error")
            } catch let error as BatchError {
                #expect(error.field == "messages[0].content[1]")
            }
            #expect(f.emulator.modelRequestCount == 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func emptyContentsIsInvalidArgument(_ wire: Wire) async throws {
        // Bypass the client's own checks to see the emulator's 400.
        try await withGemini(wire) { f in
            let response = try await f.harness.transport.send(HTTPRequest(
                method: "POST", url: f.harness.baseURL.appendingPathComponent("v1beta/models/gemini-2.5-flash:generateContent"),
                headers: ["x-goog-api-key": GeminiFixture.key], body: .data(Data(#"{"contents":[]}"#.utf8))))
            #expect(response.status == 400)
            let e = GeminiWire.error(status: response.status, headers: response.headers, body: response.body)
            #expect(e.code == .invalidRequest)
            #expect(e.providerType == "INVALID_ARGUMENT")
        }
    }

    @Test(arguments: Wire.allCases)
    func rateLimitedWithRetryInfoDelay(_ wire: Wire) async throws {
        try await withGemini(wire, .init(requestsPerMinute: 1)) { f in
            _ = try await f.client.send(chat("a", "one"))
            let e = try #require(await failure { _ = try await f.client.send(chat("b", "two")) })
            #expect(e.code == .rateLimited)
            #expect(e.httpStatus == 429)
            #expect(e.isRetryable)
            let delay = try #require(e.retryAfter)
            #expect(delay > .seconds(59) && delay <= .seconds(60))
            #expect(f.emulator.rateLimitedCount == 1)
            // Waiting the delay on the emulator's clock admits the next call.
            f.clock.advance(by: delay)
            _ = try await f.client.send(chat("c", "three"))
        }
    }

    @Test(arguments: Wire.allCases, [
        (EmulatorFault.Kind.overloaded, BatchError.Code.overloaded, 503),
        (.status(500), .server, 500),
        (.status(504), .timeout, 504),
        (.status(404), .notFound, 404),
        (.status(403), .permission, 403),
    ])
    func errorClasses(_ wire: Wire, _ fault: (EmulatorFault.Kind, BatchError.Code, Int)) async throws {
        let (kind, code, status) = fault
        try await withGemini(wire, .init(faults: [EmulatorFault(kind, on: .endpoint(":generateContent"), firstTimes: 1)])) { f in
            let e = try #require(await failure { _ = try await f.client.send(chat("a", "x")) })
            #expect(e.code == code)
            #expect(e.httpStatus == status)
            #expect(e.isRetryable == code.isRetryableByDefault)
            // The fault fired once; the next call succeeds.
            _ = try await f.client.send(chat("b", "x"))
        }
    }

    @Test(arguments: Wire.allCases)
    func connectionResetIsRetryableNetworkError(_ wire: Wire) async throws {
        try await withGemini(wire, .init(faults: [EmulatorFault(.resetConnection, on: .provider(.gemini), firstTimes: 1)])) { f in
            let e = try #require(await failure { _ = try await f.client.send(chat("a", "x")) })
            #expect(e.code == .network)
            #expect(e.isRetryable)
        }
    }

    @Test(arguments: Wire.allCases)
    func truncatedBodyIsRetryableInvalidResponse(_ wire: Wire) async throws {
        try await withGemini(wire, .init(faults: [EmulatorFault(.truncatedBody(bytes: 20), on: .provider(.gemini), firstTimes: 1)])) { f in
            let e = try #require(await failure { _ = try await f.client.send(chat("a", "x")) })
            // In process the cut body arrives; over loopback the short body is a lost connection.
            #expect(e.code == .invalidResponse || (wire != .inProcess && e.code == .network))
            #expect(e.isRetryable)
        }
    }

    @Test(arguments: Wire.allCases)
    func wrongKeyIsAuthenticationAndNeverShown(_ wire: Wire) async throws {
        let secret = "AIzaSECRET-do-not-print-42"
        try await withGemini(wire, .init(requiredAPIKey: "the-right-key"), key: secret) { f in
            let e = try #require(await failure { _ = try await f.client.send(chat("a", "x")) })
            #expect(e.code == .authentication)
            #expect(e.httpStatus == 400)
            #expect(!e.description.contains(secret))
            #expect(!String(describing: f.client).contains(secret))
            #expect(!String(reflecting: e).contains(secret))
        }
    }

    @Test func keyTravelsInHeaderOnlyAndIsRedactedFromEchoedErrors() async throws {
        let secret = "AIzaSECRET-echo-77"
        let transport = ClosureTransport { request in
            #expect(request.headers["x-goog-api-key"] == secret)
            #expect(!request.url.absoluteString.contains(secret))
            #expect(request.headers["x-client-request-id"] == "echo-1")
            let body = #"{"error":{"code":400,"message":"bad key \#(secret)","status":"INVALID_ARGUMENT"}}"#
            return HTTPResponse(status: 400, body: Data(body.utf8))
        }
        let client = GeminiClient(apiKey: secret, transport: transport)
        let e = try #require(await failure { _ = try await client.send(chat("echo-1", "x")) })
        #expect(e.code == .invalidRequest)
        #expect(!e.message.contains(secret))
        #expect(e.message.contains("<redacted>"))
    }

    @Test func oddModelNamesAndIDsAreSafe() async throws {
        let seen = Mutex<[HTTPRequest]>([])
        let client = GeminiClient(apiKey: "k", transport: ClosureTransport { request in
            seen.withLock { $0.append(request) }
            return HTTPResponse(status: 200, body: Data(#"{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}"#.utf8))
        })
        _ = try await client.send(chat("line\nbreak", "x", model: "my model?v=1"))
        let request = try #require(seen.withLock { $0.first })
        #expect(request.url.absoluteString == "https://generativelanguage.googleapis.com/v1beta/models/my%20model%3Fv=1:generateContent")
        #expect(request.headers["x-client-request-id"] == nil)
    }

    @Test func timeoutsAndConnectionFailuresAreRetryable() async throws {
        for (error, code) in [(URLError(.timedOut), BatchError.Code.timeout), (URLError(.cannotConnectToHost), .network)] {
            let client = GeminiClient(apiKey: "k", transport: ClosureTransport { _ in throw error })
            let e = try #require(await failure { _ = try await client.send(chat("a", "x")) })
            #expect(e.code == code)
            #expect(e.isRetryable)
        }
    }

    @Test func keyFromTheEnvironment() async throws {
        let seen = Mutex<String?>(nil)
        setenv("GEMINI_API_KEY", "env-key-1", 1)
        defer { unsetenv("GEMINI_API_KEY") }
        let client = GeminiClient(transport: ClosureTransport { request in
            seen.withLock { $0 = request.headers["x-goog-api-key"] }
            return HTTPResponse(status: 200, body: Data(#"{"candidates":[{"content":{"parts":[{"text":"ok"}]}}]}"#.utf8))
        })
        #expect(try await client.send(chat("a", "x")).text == "ok")
        #expect(seen.withLock { $0 } == "env-key-1")
        #expect(!client.description.contains("env-key-1"))
        var dumped = ""
        dump(client, to: &dumped)
        dump(NativeBatchProcessor.gemini(apiKey: "env-key-1", transport: ClosureTransport { _ in HTTPResponse(status: 500) }), to: &dumped)
        #expect(!dumped.contains("env-key-1"))
        #expect(dumped.contains("<redacted>"))
    }

    @Test func missingKeyFailsBeforeSending() async throws {
        let sent = SentCounter()
        let client = GeminiClient(apiKey: "", transport: ClosureTransport { _ in
            sent.increment()
            return HTTPResponse(status: 200)
        })
        // An explicit empty key is "no key" (the environment is not consulted for it).
        let e = try #require(await failure { _ = try await client.send(chat("a", "x")) })
        #expect(e.code == .authentication)
        #expect(sent.value == 0)
    }
}
