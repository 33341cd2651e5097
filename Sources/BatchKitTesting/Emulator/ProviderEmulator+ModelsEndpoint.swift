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
    /// `GET /v1/models/{model}` (OpenAI).
    func openAIRetrieveModel(_ model: String) -> EmulatorResponse {
        guard !Self.isUnknownModel(model) else {
            return openAIError(
                status: 404, message: "The model '\(model)' does not exist", type: "invalid_request_error", param: "model",
                code: "model_not_found")
        }
        return .json(
            200, ["id": .string(model), "object": "model", "created": 1_686_935_002, "owned_by": "system"],
            headers: openAIHeaders())
    }

    /// `GET /v1/models/{model_id}` (Anthropic).
    func anthropicRetrieveModel(_ model: String) -> EmulatorResponse {
        guard !Self.isUnknownModel(model) else {
            return errorResponse(.anthropic, status: 404, message: "model: \(model)", type: "not_found_error")
        }
        let name = model.split(separator: "-").prefix(3).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
        return .json(
            200, ["type": "model", "id": .string(model), "display_name": .string(name), "created_at": "2025-05-14T00:00:00Z"],
            headers: ["request-id": newID("req_01", hexDigits: 22)])
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
        let embedding = id.contains("embedding")
        let methods: [JSONValue] = embedding
            ? ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
            : ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        return .json(
            200,
            [
                "name": .string(resource), "version": "001", "displayName": .string(id),
                "description": .string("The emulator's \(id)."),
                "inputTokenLimit": embedding ? 2048 : 1_048_576, "outputTokenLimit": embedding ? 1 : 65_536,
                "supportedGenerationMethods": .array(methods),
            ])
    }
}
