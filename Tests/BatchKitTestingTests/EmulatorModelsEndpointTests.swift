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
}
