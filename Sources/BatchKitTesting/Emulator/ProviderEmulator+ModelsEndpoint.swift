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
    /// Anthropic's listed models with their release dates, newest first (the order its list answers in).
    static let listedAnthropicModels: [(id: String, created: String, name: String)] = [
        ("claude-opus-4-5", "2025-11-24T00:00:00Z", "Claude Opus 4.5"),
        ("claude-haiku-4-5", "2025-10-15T00:00:00Z", "Claude Haiku 4.5"),
        ("claude-sonnet-4-5", "2025-09-29T00:00:00Z", "Claude Sonnet 4.5"),
        ("claude-opus-4-1", "2025-08-05T00:00:00Z", "Claude Opus 4.1"),
        ("claude-sonnet-4", "2025-05-14T00:00:00Z", "Claude Sonnet 4"),
    ]
    static let listedGeminiModels = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-embedding-001"]

    /// `GET /v1/models` (OpenAI): `{"object":"list","data":[Model…]}`.
    func openAIListModels() -> EmulatorResponse {
        let data = Self.listedOpenAIModels.map { Self.openAIModelJSON($0) }
        return .json(200, ["object": "list", "data": .array(data)], headers: openAIHeaders())
    }

    static func openAIModelJSON(_ model: String) -> JSONValue {
        ["id": .string(model), "object": "model", "created": 1_686_935_002, "owned_by": "system"]
    }

    /// `GET /v1/models?limit=&after_id=&before_id=` (Anthropic): newest first, `limit` 1–1000
    /// (default 20), `{"data","has_more","first_id","last_id"}` (ids null on an empty page).
    /// `after_id` pages towards older models, `before_id` towards newer ones (the page just before
    /// that id); a cursor that names no listed model is a 400.
    func anthropicListModels(_ request: EmulatorRequest) -> EmulatorResponse {
        var limit = 20
        if let text = request.query["limit"] {
            guard let l = Int(text), (1...1000).contains(l) else {
                return errorResponse(.anthropic, status: 400, message: "limit: Input should be between 1 and 1000", type: "invalid_request_error")
            }
            limit = l
        }
        let ids = Self.listedAnthropicModels.map(\.id)
        let after = request.query["after_id"].flatMap { $0.isEmpty ? nil : $0 }
        let before = request.query["before_id"].flatMap { $0.isEmpty ? nil : $0 }
        var slice: ArraySlice<String>
        let hasMore: Bool
        if let cursor = before ?? after {
            guard let i = ids.firstIndex(of: cursor) else {
                return errorResponse(
                    .anthropic, status: 400, message: "\(before != nil ? "before_id" : "after_id"): Invalid model id '\(cursor)'",
                    type: "invalid_request_error")
            }
            if before != nil {
                let candidates = ids[..<i]
                slice = candidates.suffix(limit)
                hasMore = candidates.count > limit
            } else {
                slice = ids[(i + 1)...].prefix(limit)
                hasMore = ids.count - (i + 1) > limit
            }
        } else {
            slice = ids.prefix(limit)
            hasMore = ids.count > limit
        }
        let data = slice.map { Self.anthropicModelJSON($0) }
        return .json(
            200, ["data": .array(data), "has_more": .bool(hasMore), "first_id": data.first?["id"] ?? .null, "last_id": data.last?["id"] ?? .null],
            headers: ["request-id": newID("req_01", hexDigits: 22)])
    }

    /// A ModelInfo: `lifecycle` is required by the SDK's model (anthropic 2.16). A listed model
    /// carries its release date and name; any other is served with a derived name.
    static func anthropicModelJSON(_ model: String) -> JSONValue {
        let listed = listedAnthropicModels.first { $0.id == model }
        let name = listed?.name
            ?? model.split(separator: "-").prefix(3).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
        return [
            "type": "model", "id": .string(model), "display_name": .string(name),
            "created_at": .string(listed?.created ?? "2025-05-14T00:00:00Z"),
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
