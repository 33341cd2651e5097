import BatchKit
import Foundation

/// The providers' "retrieve a model" endpoints, which `batchkit run` asks before it creates a
/// native batch job (a wrong key or an unknown model then fails before a job is paid for):
///
/// - OpenAI `GET /v1/models/{model}` → `{"id","object":"model","created","owned_by"}`;
///   unknown: 404 `model_not_found`.
/// - Anthropic `GET /v1/models/{model_id}` (told apart from OpenAI's by `x-api-key` or
///   `anthropic-version`) → `{"type":"model","id","display_name","created_at"}`; unknown: 404
///   `not_found_error`.
/// - Gemini `GET /v1beta/models/{model}` → `{"name":"models/…","version","displayName",
///   "inputTokenLimit","outputTokenLimit","supportedGenerationMethods",…}`; unknown: 404
///   `NOT_FOUND`.
///
/// Keys are checked first, as for every route: a wrong key is a 401 (Gemini: 400 with reason
/// `API_KEY_INVALID`). Unknown models are those of ``isUnknownModel(_:)`` (a name containing
/// `does-not-exist` or `nonexistent`), as for model calls.
extension ProviderEmulator {
    /// The models the list endpoints name (any other name is served as well).
    static let listedOpenAIModels = ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small", "text-embedding-3-large"]
    static let listedAnthropicModels = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
    static let listedGeminiModels = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-embedding-001"]

    /// `GET /v1/models` (OpenAI): `{"object":"list","data":[Model…]}`.
    func openAIListModels() -> EmulatorResponse {
        let data = Self.listedOpenAIModels.map { Self.openAIModelJSON($0) }
        return .json(200, ["object": "list", "data": .array(data)], headers: openAIHeaders())
    }

    static func openAIModelJSON(_ model: String) -> JSONValue {
        ["id": .string(model), "object": "model", "created": 1_686_935_002, "owned_by": "system"]
    }

    /// `GET /v1/models` (Anthropic): every listed model on one page (`has_more` false).
    func anthropicListModels() -> EmulatorResponse {
        let data = Self.listedAnthropicModels.map { Self.anthropicModelJSON($0) }
        return .json(
            200, ["data": .array(data), "has_more": false, "first_id": data.first?["id"] ?? .null, "last_id": data.last?["id"] ?? .null],
            headers: ["request-id": newID("req_01", hexDigits: 22)])
    }

    /// A ModelInfo: `lifecycle` is required by the SDK's model (anthropic 2.16).
    static func anthropicModelJSON(_ model: String) -> JSONValue {
        let name = model.split(separator: "-").prefix(3).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
        return [
            "type": "model", "id": .string(model), "display_name": .string(name), "created_at": "2025-05-14T00:00:00Z",
            "lifecycle": "active", "deprecated_at": nil, "retires_at": nil, "max_input_tokens": 200_000, "max_tokens": 64_000,
        ]
    }

    /// `GET {version}/models?pageSize=&pageToken=` (Gemini): `{"models":[…],"nextPageToken"?}`.
    func geminiListModels(_ r: EmulatorRequest) -> EmulatorResponse {
        let (page, next) = Self.geminiPage(Self.listedGeminiModels, r, defaultSize: 50, maxSize: 1000)
        var body: [String: JSONValue] = ["models": .array(page.map { Self.geminiModelJSON("models/" + $0) })]
        if let next { body["nextPageToken"] = .string(next) }
        return .json(200, .object(body))
    }

    /// `GET /v1/models/{model}` (OpenAI).
    func openAIRetrieveModel(_ model: String) -> EmulatorResponse {
        guard !Self.isUnknownModel(model) else {
            return openAIError(
                status: 404, message: "The model '\(model)' does not exist", type: "invalid_request_error", param: "model",
                code: "model_not_found")
        }
        return .json(200, Self.openAIModelJSON(model), headers: openAIHeaders())
    }

    /// `GET /v1/models/{model_id}` (Anthropic).
    func anthropicRetrieveModel(_ model: String) -> EmulatorResponse {
        guard !Self.isUnknownModel(model) else {
            return errorResponse(.anthropic, status: 404, message: "model: \(model)", type: "not_found_error")
        }
        return .json(200, Self.anthropicModelJSON(model), headers: ["request-id": newID("req_01", hexDigits: 22)])
    }

    /// `GET {version}/models/{model}` (Gemini); `resource` is `models/…`.
    func geminiGetModel(_ resource: String, version: String) -> EmulatorResponse {
        let id = String(resource.dropFirst("models/".count))
        guard !Self.isUnknownModel(id) else {
            return errorResponse(
                .gemini, status: 404,
                message: "\(resource) is not found for API version \(version), or is not supported for generateContent. "
                    + "Call ListModels to see the list of available models and their supported methods.",
                type: "NOT_FOUND")
        }
        return .json(200, Self.geminiModelJSON(resource))
    }

    /// A Gemini Model resource for `models/…`.
    static func geminiModelJSON(_ resource: String) -> JSONValue {
        let id = String(resource.dropFirst("models/".count))
        let embedding = id.contains("embedding")
        let methods: [JSONValue] = embedding
            ? ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
            : ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        return [
            "name": .string(resource), "version": "001", "displayName": .string(id),
            "description": .string("The emulator's \(id)."),
            "inputTokenLimit": embedding ? 2048 : 1_048_576, "outputTokenLimit": embedding ? 1 : 65_536,
            "supportedGenerationMethods": .array(methods),
        ]
    }
}
