import BatchKit
import Foundation

/// The emulator's OpenAI state: the Files store and the batches. Owned by the OpenAI files.
struct OpenAIEmulatorState {
    /// Files by id, and their ids in creation order.
    var files: [String: OpenAIFileRecord] = [:]
    var fileOrder: [String] = []
    /// Batches by id, and their ids in creation order.
    var batches: [String: OpenAIBatchRecord] = [:]
    var batchOrder: [String] = []
}

/// How a request reached the OpenAI routes: the public API, or Azure OpenAI's `/openai/` paths.
struct OpenAIRoute {
    /// Azure OpenAI (`/openai/deployments/...`, `/openai/files`, `/openai/batches`, `api-key`, `api-version`).
    var azure: Bool
    /// The caller's key (rate limits are per key).
    var key: String
    /// The path in OpenAI's form (`/v1/...`).
    var path: String
}

extension ProviderEmulator {
    /// Answers OpenAI requests; `nil` for paths it does not serve (the router answers 404).
    ///
    /// Public API paths are `/v1/...`. Azure OpenAI is served under `/openai/` (classic API:
    /// `/openai/deployments/{deployment}/chat/completions?api-version=...`, `/openai/files`,
    /// `/openai/batches`, with the `api-key` header and a required `api-version` query) and
    /// `/openai/v1/...` (Azure's v1 API, no `api-version`).
    func handleOpenAI(_ request: EmulatorRequest) async -> EmulatorResponse? {
        var path = request.path
        var azure = false
        if path.hasPrefix("/openai/v1/") {
            path = String(path.dropFirst("/openai".count))
        } else if path.hasPrefix("/openai/") {
            azure = true
            guard let version = request.query["api-version"], !version.isEmpty else {
                // What Azure answers when the api-version query is missing.
                return .json(404, ["error": ["code": "404", "message": "Resource not found"]])
            }
            guard Self.isAzureAPIVersion(version) else {
                return .json(400, ["error": ["code": "BadRequest", "message": "API version not supported"]])
            }
            path = "/v1" + path.dropFirst("/openai".count)
        }
        guard path.hasPrefix("/v1/") else { return nil }

        let key: String
        if azure {
            guard let k = Self.apiKey(of: request, provider: .openAI), !k.isEmpty,
                config.withLock({ $0.requiredAPIKey }).map({ $0 == k }) ?? true
            else {
                return .json(401, ["error": [
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
                ]])
            }
            key = k
        } else {
            switch authenticate(request, .openAI) {
            case .success(let k): key = k
            case .failure(let f): return f.response
            }
        }
        let route = OpenAIRoute(azure: azure, key: key, path: path)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)  // ["v1", ...]
        let method = request.method

        // Model endpoints: /v1/{endpoint} or /v1/deployments/{name}/{endpoint}.
        var deployment: String?
        var modelPath = Array(parts.dropFirst())
        if modelPath.first == "deployments", modelPath.count >= 3 {
            deployment = modelPath[1]
            modelPath = Array(modelPath.dropFirst(2))
        }
        let endpoint = "/v1/" + modelPath.joined(separator: "/")
        if method == "POST", Self.openAIModelEndpoints.contains(endpoint), deployment != nil || !azure {
            return await openAIModelRequest(request, route: route, endpoint: endpoint, deployment: deployment)
        }
        if deployment != nil { return nil }

        switch (method, Array(parts.dropFirst())) {
        case ("GET", ["models"]): return openAIListModels()
        case ("GET", let p) where p.count == 2 && p[0] == "models": return openAIRetrieveModel(p[1])
        case ("POST", ["files"]): return openAIUploadFile(request, route: route)
        case ("GET", ["files"]): return openAIListFiles(request)
        case ("GET", let p) where p.count == 2 && p[0] == "files": return openAIRetrieveFile(p[1])
        case ("GET", let p) where p.count == 3 && p[0] == "files" && p[2] == "content": return openAIFileContent(p[1])
        case ("DELETE", let p) where p.count == 2 && p[0] == "files": return openAIDeleteFile(p[1])
        case ("POST", ["batches"]): return openAICreateBatch(request, route: route)
        case ("GET", ["batches"]): return openAIListBatches(request, route: route)
        case ("GET", let p) where p.count == 2 && p[0] == "batches": return openAIRetrieveBatch(p[1])
        case ("POST", let p) where p.count == 3 && p[0] == "batches" && p[2] == "cancel": return openAICancelBatch(p[1])
        default: return nil
        }
    }

    /// The model endpoints the emulator answers (real time, and as batch line URLs).
    static let openAIModelEndpoints: Set<String> = [
        "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses", "/v1/moderations",
    ]

    /// `2024-10-21`, `2025-04-01-preview`...
    static func isAzureAPIVersion(_ v: String) -> Bool {
        v.range(of: #"^\d{4}-\d{2}-\d{2}(-preview)?$"#, options: .regularExpression) != nil || v == "latest" || v == "preview"
    }

    /// OpenAI's error envelope as a value (for batch error lines).
    static func openAIErrorBody(_ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil)
        -> JSONValue
    {
        ["error": [
            "message": .string(message), "type": .string(type), "param": param.map(JSONValue.string) ?? .null,
            "code": code.map(JSONValue.string) ?? .null,
        ]]
    }

    /// OpenAI's error answer (`{"error":{"message","type","param","code"}}`).
    func openAIError(status: Int, message: String, type: String? = nil, param: String? = nil, code: String? = nil) -> EmulatorResponse {
        errorResponse(.openAI, status: status, message: message, type: type, code: code, param: param)
    }

    /// The common OpenAI response headers.
    func openAIHeaders(processing: Duration = .zero) -> HTTPHeaders {
        var h = HTTPHeaders()
        h["x-request-id"] = newID("req_", hexDigits: 32)
        h["openai-processing-ms"] = String(Int(processing.seconds * 1000))
        h["openai-version"] = "2020-10-01"
        return h
    }

    /// Current time as Unix seconds.
    var unixNow: Int { Int(now.timeIntervalSince1970) }
}
