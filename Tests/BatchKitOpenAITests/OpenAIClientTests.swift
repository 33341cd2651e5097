import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(5))) struct OpenAIClientTests {
    static let key = "sk-test-key-123456"

    @Test(arguments: Wire.allCases)
    func chatHappyPath(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requestsPerMinute: 100, tokensPerMinute: 100_000)) { h in
            let client = h.client()
            let r = try await client.send(BatchRequest(id: "q-1", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Say hello")], system: "Be brief.", maxTokens: 50)))
            #expect(r.text?.isEmpty == false)
            #expect(r.finishReason == .stop)
            #expect(r.usage.inputTokens > 0)
            #expect(r.usage.outputTokens > 0)
            #expect(r.model == "gpt-4o-mini")
            #expect(r.raw["object"] == "chat.completion")
            #expect(r.rateLimit?.requests.limit == 100)
            #expect(r.rateLimit?.requests.remaining == 99)
            #expect(r.rateLimit?.tokens.limit == 100_000)
            #expect(r.rateLimit?.requests.resetAfter != nil)
            #expect(h.emulator.sentCount(customID: "q-1") == 1)
        }
    }

    @Test(arguments: Wire.allCases)
    func embeddingsFloatAndBase64(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let client = h.client()
            let float = try await client.send(BatchRequest(id: "e1", embedding: EmbeddingRequest(model: "text-embedding-3-small", inputs: ["a", "b"], dimensions: 16)))
            #expect(float.embeddings?.count == 2)
            #expect(float.embeddings?[0].count == 16)
            #expect(float.embeddings?[0] != float.embeddings?[1])
            #expect(float.usage.inputTokens > 0)
            let b64 = try await client.send(BatchRequest(id: "e2", embedding: EmbeddingRequest(model: "text-embedding-3-small", inputs: ["a", "b"], dimensions: 16, extra: ["encoding_format": "base64"])))
            #expect(b64.raw["data"]?[0]?["embedding"]?.stringValue != nil)
            #expect(b64.embeddings == float.embeddings)
            let single = try await client.send(BatchRequest(id: "e3", embedding: EmbeddingRequest(model: "text-embedding-3-small", input: "a", dimensions: 16)))
            #expect(single.embeddings?.first == float.embeddings?.first)
        }
    }

    @Test(arguments: Wire.allCases)
    func structuredOutput(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let schema: JSONValue = ["type": "object", "properties": ["city": ["type": "string"], "population": ["type": "integer"]],
                                     "required": ["city", "population"], "additionalProperties": false]
            let chat = ChatRequest(model: "gpt-4o", messages: [.user("Largest city in France?")],
                                   responseFormat: .jsonSchema(JSONSchemaFormat(name: "city", schema: schema, strict: true)))
            let r = try await h.client().send(BatchRequest(id: "s1", chat: chat))
            let value = try JSONValue(parsing: try #require(r.text))
            #expect(value["city"]?.stringValue != nil)
            #expect(value["population"]?.intValue != nil)
            let obj = try await h.client().send(BatchRequest(id: "s2", chat: ChatRequest(model: "m", messages: [.user("x")], responseFormat: .jsonObject)))
            #expect((try? JSONValue(parsing: obj.text ?? ""))?.objectValue != nil)
        }
    }

    @Test(arguments: Wire.allCases)
    func rawRequests(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let r = try await h.client().send(BatchRequest(id: "raw", body: .raw(RawRequest(endpoint: "/v1/responses", body: ["model": "gpt-4.1", "input": "Hi"]))))
            #expect(r.text?.isEmpty == false)
            #expect(r.usage.inputTokens > 0)
            #expect(r.raw["object"] == "response")
            let c = try await h.client().send(BatchRequest(id: "raw2", body: .raw(RawRequest(endpoint: "/v1/completions", body: ["model": "i", "prompt": "Hi", "max_tokens": 1]))))
            #expect(c.finishReason == .length)
        }
    }

    // MARK: - Errors

    @Test(arguments: Wire.allCases)
    func invalidRequest400(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let error = await #expect(throws: BatchError.self) {
                try await h.client().send(chat("bad", "x", maxTokens: 1_000_000))
            }
            #expect(error?.code == .invalidRequest)
            #expect(error?.httpStatus == 400)
            #expect(error?.field == "max_completion_tokens")
            #expect(error?.providerType == "invalid_request_error")
            #expect(error?.isRetryable == false)
        }
    }

    @Test(arguments: Wire.allCases)
    func authentication401NeverShowsKey(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "sk-the-right-one")) { h in
            let client = h.client(apiKey: "sk-wrong-secret-999")
            let error = await #expect(throws: BatchError.self) { try await client.send(chat("a", "x")) }
            #expect(error?.code == .authentication)
            #expect(error?.isRetryable == false)
            let text = "\(String(describing: error)) \(error?.message ?? "") \(client) \(String(reflecting: client))"
            #expect(!text.contains("sk-wrong-secret-999"))
            var dumped = ""
            dump(client, to: &dumped)
            #expect(!dumped.contains("sk-wrong-secret-999"))
            #expect(!String(describing: h.backend()).contains(Self.key))
            var dumpedBackend = ""
            dump(h.backend(), to: &dumpedBackend)
            #expect(!dumpedBackend.contains(Self.key))
        }
    }

    @Test func serverEchoingTheKeyIsRedacted() async throws {
        let secret = "sk-proj-abcdefghijklmnop"
        let transport = ClosureTransport { request in
            let auth = request.headers["Authorization"] ?? ""
            let body = JSONValue.object(["error": ["message": .string("Incorrect API key provided: \(auth.dropFirst(7)). Or maybe sk-proj-abc****mnop."),
                                                   "type": "invalid_request_error", "param": nil, "code": "invalid_api_key"]])
            return HTTPResponse(status: 401, body: body.serialized())
        }
        let client = OpenAIClient(apiKey: secret, baseURL: URL(string: "https://example.invalid/v1")!, transport: transport)
        let error = await #expect(throws: BatchError.self) { try await client.send(chat("a", "x")) }
        #expect(error.map { !$0.description.contains("abcdefghij") } == true)
        #expect(error.map { !$0.message.contains("mnop") } == true)
    }

    @Test(arguments: Wire.allCases)
    func notFound404(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let error = await #expect(throws: BatchError.self) { try await h.client().send(chat("a", "x", model: "gpt-does-not-exist")) }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("model_not_found") == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func rateLimited429HonoursRetryAfter(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requestsPerMinute: 1)) { h in
            let client = h.client()
            _ = try await client.send(chat("a", "x"))
            let error = await #expect(throws: BatchError.self) { try await client.send(chat("b", "y")) }
            #expect(error?.code == .rateLimited)
            #expect(error?.isRetryable == true)
            let wait = try #require(error?.retryAfter)
            #expect(wait >= .seconds(1))
            #expect(wait <= .seconds(60))
            #expect(error?.rateLimit?.requests.remaining == 0)
            #expect(error?.rateLimit?.requests.limit == 1)
            #expect(h.emulator.sentCount(customID: "b") == 1)
            h.clock.advance(by: wait)
            let ok = try await client.send(chat("b", "y"))
            #expect(ok.text != nil)
        }
    }

    @Test(arguments: Wire.allCases)
    func server500And503(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.status(500), firstTimes: 1), EmulatorFault(.overloaded, on: .endpoint("/v1/embeddings"))])) { h in
            let client = h.client()
            let e500 = await #expect(throws: BatchError.self) { try await client.send(chat("a", "x")) }
            #expect(e500?.code == .server)
            #expect(e500?.httpStatus == 500)
            #expect(e500?.isRetryable == true)
            _ = try await client.send(chat("a", "x"))
            let e503 = await #expect(throws: BatchError.self) {
                try await client.send(BatchRequest(id: "e", embedding: EmbeddingRequest(model: "m", input: "x")))
            }
            #expect(e503?.code == .overloaded)
            #expect(e503?.httpStatus == 503)
            #expect(e503?.isRetryable == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func resetConnectionIsRetryableNetworkError(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.resetConnection)])) { h in
            let error = await #expect(throws: BatchError.self) { try await h.client().send(chat("a", "x")) }
            #expect(error?.code == .network)
            #expect(error?.isRetryable == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func truncatedBodyIsRetryableInvalidResponse(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.truncatedBody(bytes: 40))])) { h in
            let error = await #expect(throws: BatchError.self) { try await h.client().send(chat("a", "x")) }
            // In process the cut body arrives and is not JSON; over a socket the connection closes
            // before Content-Length bytes arrived, a network error. Both are worth retrying.
            #expect(error?.code == (wire == .inProcess ? .invalidResponse : .network))
            #expect(error?.isRetryable == true)
        }
    }

    @Test func timeoutsAndTransportFailures() async throws {
        let timeout = OpenAIClient(apiKey: "k", transport: ClosureTransport { _ in throw URLError(.timedOut) })
        let e1 = await #expect(throws: BatchError.self) { try await timeout.send(chat("a", "x")) }
        #expect(e1?.code == .timeout)
        #expect(e1?.isRetryable == true)
        struct Weird: Error {}
        let other = OpenAIClient(apiKey: "k", transport: ClosureTransport { _ in throw Weird() })
        let e2 = await #expect(throws: BatchError.self) { try await other.send(chat("a", "x")) }
        #expect(e2?.code == .network)
        #expect(e2?.isRetryable == true)
    }

    @Test func headersAndURLs() async throws {
        let seen = Mutex<[HTTPRequest]>([])
        let transport = ClosureTransport { request in
            seen.withLock { $0.append(request) }
            return HTTPResponse(status: 200, body: JSONValue.object(["choices": [["message": ["content": "ok"], "finish_reason": "stop"]]]).serialized())
        }
        let client = OpenAIClient(apiKey: "sk-abc", baseURL: URL(string: "http://localhost:8000/v1/")!, organization: "org-1", project: "proj-1",
                                  extraHeaders: ["X-Custom": "yes"], transport: transport)
        _ = try await client.send(chat("id-1", "x"))
        let azure = OpenAIClient.azure(endpoint: URL(string: "https://res.openai.azure.com")!, apiKey: "az-key", apiVersion: "2024-10-21",
                                       deployment: { $0 == "gpt-4o-mini" ? "mini-prod" : $0 }, transport: transport)
        _ = try await azure.send(chat("id-2", "x"))
        let requests = seen.withLock { $0 }
        #expect(requests[0].url.absoluteString == "http://localhost:8000/v1/chat/completions")
        #expect(requests[0].headers["Authorization"] == "Bearer sk-abc")
        #expect(requests[0].headers["OpenAI-Organization"] == "org-1")
        #expect(requests[0].headers["OpenAI-Project"] == "proj-1")
        #expect(requests[0].headers["X-Custom"] == "yes")
        #expect(requests[0].headers["x-client-request-id"] == "id-1")
        #expect(requests[1].url.absoluteString == "https://res.openai.azure.com/openai/deployments/mini-prod/chat/completions?api-version=2024-10-21")
        #expect(requests[1].headers["api-key"] == "az-key")
        #expect(requests[1].headers["Authorization"] == nil)
        #expect(!client.description.contains("sk-abc"))
        #expect(!azure.description.contains("az-key"))
        // No key given and none in the environment (whatever is there is put back): no header.
        let previous = getenv("OPENAI_API_KEY").map { String(cString: $0) }
        unsetenv("OPENAI_API_KEY")
        let noKey = OpenAIClient(apiKey: nil, baseURL: URL(string: "http://localhost:11434/v1")!, transport: transport)
        if let previous { setenv("OPENAI_API_KEY", previous, 1) }
        _ = try await noKey.send(chat("id-3", "x"))
        #expect(seen.withLock { $0.last?.headers["x-client-request-id"] } == "id-3")
        #expect(seen.withLock { $0.last?.headers["Authorization"] } == nil)
        // An explicit empty key sends none, whatever the environment holds.
        let explicitlyNone = OpenAIClient(apiKey: "", baseURL: URL(string: "http://localhost:11434/v1")!, transport: transport)
        _ = try await explicitlyNone.send(chat("id-4", "x"))
        #expect(seen.withLock { $0.last?.headers["Authorization"] } == nil)
    }

    @Test(arguments: Wire.allCases)
    func azureAgainstEmulator(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "azure-key")) { h in
            let client = OpenAIClient.azure(endpoint: h.root, apiKey: "azure-key", deployment: { "dep-\($0)" }, transport: h.transport)
            let r = try await client.send(chat("az", "hello"))
            #expect(r.model == "dep-gpt-4o-mini")
            let e = try await client.send(BatchRequest(id: "aze", embedding: EmbeddingRequest(model: "emb", input: "x", dimensions: 4)))
            #expect(e.embeddings?.first?.count == 4)
            let wrong = OpenAIClient.azure(endpoint: h.root, apiKey: "nope", transport: h.transport)
            let error = await #expect(throws: BatchError.self) { try await wrong.send(chat("az", "hello")) }
            #expect(error?.code == .authentication)
        }
    }

    @Test func validationBeforeSending() {
        let client = OpenAIClient(apiKey: "k", transport: ClosureTransport { _ in Issue.record("sent"); throw URLError(.badURL) })
        #expect(throws: BatchError.self) { try client.validate(BatchRequest(id: "a", chat: ChatRequest(model: "", messages: [.user("x")]))) }
        #expect(throws: BatchError.self) { try client.validate(BatchRequest(id: "a", chat: ChatRequest(model: "m", messages: []))) }
        #expect(throws: BatchError.self) { try client.validate(BatchRequest(id: "a", embedding: EmbeddingRequest(model: "m", inputs: []))) }
        #expect(throws: BatchError.self) { try client.validate(BatchRequest(id: "a", body: .raw(RawRequest(endpoint: "v1/x", body: [:])))) }
        #expect(throws: Never.self) { try client.validate(chat("a", "x")) }
    }
}
