import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// The emulator's "retrieve a model" routes, in each provider's shape: 200 for a known model,
/// 404 for an unknown one, the provider's answer to a wrong key.
@Suite(.timeLimit(.minutes(5))) struct EmulatorModelsEndpointTests {
    static let key = "sk-models-0001"
    let emulator = ProviderEmulator(configuration: EmulatorConfiguration(requiredAPIKey: Self.key))

    func get(_ path: String, _ headers: HTTPHeaders) async -> (status: Int, json: JSONValue?) {
        let r = await emulator.handle(EmulatorRequest(method: "GET", path: path, headers: headers))
        return (r.status, try? JSONValue(parsing: r.body))
    }

    @Test func openAI() async {
        let ok = await get("/v1/models/gpt-4o-mini", ["Authorization": "Bearer \(Self.key)"])
        #expect(ok.status == 200)
        #expect(ok.json?["id"]?.stringValue == "gpt-4o-mini")
        #expect(ok.json?["object"]?.stringValue == "model")
        #expect(ok.json?["owned_by"]?.stringValue != nil && ok.json?["created"]?.intValue != nil)

        let unknown = await get("/v1/models/gpt-does-not-exist", ["Authorization": "Bearer \(Self.key)"])
        #expect(unknown.status == 404)
        #expect(unknown.json?["error"]?["code"]?.stringValue == "model_not_found")

        let wrongKey = await get("/v1/models/gpt-4o-mini", ["Authorization": "Bearer sk-wrong"])
        #expect(wrongKey.status == 401)
        #expect(wrongKey.json?["error"]?["code"]?.stringValue == "invalid_api_key")
    }

    @Test func anthropic() async {
        let headers: HTTPHeaders = ["x-api-key": Self.key, "anthropic-version": "2023-06-01"]
        let ok = await get("/v1/models/claude-sonnet-4-5", headers)
        #expect(ok.status == 200)
        #expect(ok.json?["type"]?.stringValue == "model")
        #expect(ok.json?["id"]?.stringValue == "claude-sonnet-4-5")
        #expect(ok.json?["display_name"]?.stringValue != nil && ok.json?["created_at"]?.stringValue != nil)

        let unknown = await get("/v1/models/claude-nonexistent-1", headers)
        #expect(unknown.status == 404)
        #expect(unknown.json?["error"]?["type"]?.stringValue == "not_found_error")

        let wrongKey = await get("/v1/models/claude-sonnet-4-5", ["x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"])
        #expect(wrongKey.status == 401)
        #expect(wrongKey.json?["error"]?["type"]?.stringValue == "authentication_error")
    }

    @Test func gemini() async {
        let ok = await get("/v1beta/models/gemini-2.5-flash", ["x-goog-api-key": Self.key])
        #expect(ok.status == 200)
        #expect(ok.json?["name"]?.stringValue == "models/gemini-2.5-flash")
        #expect(ok.json?["supportedGenerationMethods"]?.arrayValue?.contains("batchGenerateContent") == true)
        #expect(ok.json?["inputTokenLimit"]?.intValue != nil)

        let unknown = await get("/v1beta/models/gemini-does-not-exist", ["x-goog-api-key": Self.key])
        #expect(unknown.status == 404)
        #expect(unknown.json?["error"]?["status"]?.stringValue == "NOT_FOUND")

        let wrongKey = await get("/v1beta/models/gemini-2.5-flash", ["x-goog-api-key": "AIza-wrong"])
        #expect(wrongKey.status == 400)
        let reasons = wrongKey.json?["error"]?["details"]?.arrayValue?.compactMap { $0["reason"]?.stringValue } ?? []
        #expect(reasons == ["API_KEY_INVALID"])
    }

    func post(_ path: String, _ headers: HTTPHeaders, _ body: JSONValue) async -> (status: Int, json: JSONValue?) {
        var h = headers
        h["content-type"] = "application/json"
        let r = await emulator.handle(EmulatorRequest(method: "POST", path: path, headers: h, body: body.serialized()))
        return (r.status, try? JSONValue(parsing: r.body))
    }

    /// The list-models and count-tokens calls of the official SDKs (`models.list()`,
    /// `messages.count_tokens`, `models.count_tokens`), each in its provider's shape.
    @Test func listModelsAndCountTokens() async throws {
        let openAI = await get("/v1/models", ["Authorization": "Bearer \(Self.key)"])
        #expect(openAI.status == 200)
        #expect(openAI.json?["object"]?.stringValue == "list")
        let first = try #require(openAI.json?["data"]?[0])
        #expect(first["object"]?.stringValue == "model" && first["owned_by"]?.stringValue != nil)

        let anthropicHeaders: HTTPHeaders = ["x-api-key": Self.key, "anthropic-version": "2023-06-01"]
        let anthropic = await get("/v1/models", anthropicHeaders)
        #expect(anthropic.status == 200)
        #expect(anthropic.json?["has_more"]?.boolValue == false)
        let model = try #require(anthropic.json?["data"]?[0])
        #expect(model["type"]?.stringValue == "model" && model["lifecycle"]?.stringValue == "active")
        #expect(anthropic.json?["first_id"] == model["id"])
        let message: JSONValue = ["model": "claude-sonnet-4-5", "messages": [["role": "user", "content": "hello there, how are you"]]]
        let counted = await post("/v1/messages/count_tokens", anthropicHeaders, message)
        #expect(counted.status == 200)
        let tokens = try #require(counted.json?["input_tokens"]?.intValue)
        var full = message.objectValue ?? [:]
        full["max_tokens"] = 10
        let sent = await post("/v1/messages", anthropicHeaders, .object(full))
        #expect(sent.json?["usage"]?["input_tokens"]?.intValue == tokens)
        let missing = await post("/v1/messages/count_tokens", anthropicHeaders, ["model": "claude-sonnet-4-5"])
        #expect(missing.status == 400)

        let geminiHeaders: HTTPHeaders = ["x-goog-api-key": Self.key]
        let listed = await emulator.handle(EmulatorRequest(method: "GET", path: "/v1beta/models", query: ["pageSize": "2"], headers: geminiHeaders))
        let gemini = (status: listed.status, json: try? JSONValue(parsing: listed.body))
        #expect(gemini.status == 200)
        #expect(gemini.json?["models"]?.arrayValue?.count == 2)
        #expect(gemini.json?["models"]?[0]?["name"]?.stringValue?.hasPrefix("models/") == true)
        #expect(gemini.json?["nextPageToken"]?.stringValue != nil)
        let contents: JSONValue = ["contents": [["role": "user", "parts": [["text": "hello there, how are you"]]]]]
        let g = await post("/v1beta/models/gemini-2.5-flash:countTokens", geminiHeaders, contents)
        #expect(g.status == 200)
        let total = try #require(g.json?["totalTokens"]?.intValue)
        let generated = await post("/v1beta/models/gemini-2.5-flash:generateContent", geminiHeaders, contents)
        #expect(generated.json?["usageMetadata"]?["promptTokenCount"]?.intValue == total)
    }
}
