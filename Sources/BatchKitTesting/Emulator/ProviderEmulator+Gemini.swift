import BatchKit
import Foundation

/// The emulator's Gemini state: uploaded and generated files, uploads in progress, batches.
/// Owned by this file and `GeminiEmulator*.swift`; held in `ProviderEmulator.geminiState`.
struct GeminiEmulatorState {
    var files: [String: GeminiEmulatedFile] = [:]
    var uploads: [String: GeminiPendingUpload] = [:]
    var batches: [String: GeminiEmulatedBatch] = [:]
    /// Batch ids in creation order (lists are served newest first).
    var batchOrder: [String] = []
    /// File ids in creation order.
    var fileOrder: [String] = []
}

/// A Gemini request after its version prefix was removed: `models/gemini-2.5-flash` + verb
/// `generateContent`, `batches/abc`, `files`, ...
struct GeminiRoute {
    /// `v1beta` or `v1`.
    var version: String
    /// `upload`, `download` or empty.
    var area: String
    /// The resource path without the verb.
    var resource: String
    /// The `:verb` suffix, or empty.
    var verb: String

    init?(path: String) {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        area = ""
        if let first = parts.first, first == "upload" || first == "download" {
            area = first
            parts.removeFirst()
        }
        guard let v = parts.first, v == "v1beta" || v == "v1" else { return nil }
        version = v
        parts.removeFirst()
        var rest = parts.joined(separator: "/")
        verb = ""
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            verb = String(rest[rest.index(after: colon)...])
            rest = String(rest[..<colon])
        }
        resource = rest
    }
}

extension ProviderEmulator {
    /// Answers Gemini requests (`/v1beta/...` and `/v1/...`, uploads under `/upload/`, downloads
    /// under `/download/`); `nil` for paths it does not serve (the router answers 404).
    ///
    /// Served: `models/{m}:generateContent`, `:embedContent`, `:batchEmbedContents`,
    /// `:batchGenerateContent`, `:asyncBatchEmbedContent`; `models/{m}` get; `batches` get/list/`:cancel`/delete;
    /// `files` get/list/delete and `:download`; the resumable upload protocol.
    func handleGemini(_ request: EmulatorRequest) async -> EmulatorResponse? {
        guard let route = GeminiRoute(path: request.path) else { return nil }
        // The upload URL handed out by `start` needs no key: its upload_id is the authorisation.
        if route.area == "upload", request.query["upload_id"] != nil {
            return geminiUploadBytes(request)
        }
        let key: String
        switch authenticate(request, .gemini) {
        case .success(let k): key = k
        case .failure(let f): return f.response
        }
        let parts = route.resource.split(separator: "/").map(String.init)
        switch (request.method, route.area, parts.first, parts.count, route.verb) {
        case ("POST", "", "models"?, 2, "generateContent"), ("POST", "", "tunedModels"?, 2, "generateContent"):
            return await geminiGenerateContent(request, key: key, model: route.resource)
        case ("POST", "", "models"?, 2, "streamGenerateContent"), ("POST", "", "tunedModels"?, 2, "streamGenerateContent"):
            return await geminiGenerateContent(request, key: key, model: route.resource, stream: true)
        case ("POST", "", "models"?, 2, "embedContent"):
            return await geminiEmbedContent(request, key: key, model: route.resource)
        case ("POST", "", "models"?, 2, "batchEmbedContents"):
            return await geminiBatchEmbedContents(request, key: key, model: route.resource)
        case ("POST", "", "models"?, 2, "batchGenerateContent"), ("POST", "", "tunedModels"?, 2, "batchGenerateContent"):
            return geminiCreateBatch(request, model: route.resource, kind: .generate)
        case ("POST", "", "models"?, 2, "asyncBatchEmbedContent"):
            return geminiCreateBatch(request, model: route.resource, kind: .embed)
        case ("GET", "", "models"?, 2, ""):
            return geminiGetModel(route.resource, version: route.version)
        case ("GET", "", "models"?, 1, ""):
            return geminiListModels(request)
        case ("POST", "", "models"?, 2, "countTokens"):
            return geminiCountTokens(request)
        case ("GET", "", "batches"?, 1, ""):
            return geminiListBatches(request)
        case ("GET", "", "batches"?, 2, ""):
            return geminiGetBatch(id: parts[1])
        case ("POST", "", "batches"?, 2, "cancel"):
            return geminiCancelBatch(id: parts[1])
        case ("DELETE", "", "batches"?, 2, ""):
            return geminiDeleteBatch(id: parts[1])
        case ("POST", "upload", "files"?, 1, ""):
            return geminiUploadStart(request, version: route.version)
        case ("GET", "", "files"?, 1, ""):
            return geminiListFiles(request)
        case ("GET", "", "files"?, 2, ""):
            return geminiGetFile(id: parts[1])
        case ("DELETE", "", "files"?, 2, ""):
            return geminiDeleteFile(id: parts[1])
        case ("GET", "", "files"?, 2, "download"), ("GET", "download", "files"?, 2, "download"):
            return geminiDownload(id: parts[1])
        default:
            return nil
        }
    }

    // MARK: - Real time

    /// `POST models/{m}:countTokens`: `{"totalTokens", "promptTokensDetails"}` for `contents` (or a
    /// whole `generateContentRequest`), the same count `generateContent` reports as `promptTokenCount`.
    func geminiCountTokens(_ r: EmulatorRequest) -> EmulatorResponse {
        let body: JSONValue
        switch geminiParseBody(r) {
        case .success(let b): body = b
        case .failure(let f): return f.response
        }
        let request = Self.gField(body, "generateContentRequest") ?? body
        guard let contents = Self.gField(request, "contents")?.arrayValue, !contents.isEmpty else {
            return errorResponse(.gemini, status: 400, message: "* CountTokensRequest.contents: contents is not specified", type: "INVALID_ARGUMENT")
        }
        let tokens = Self.syntheticAnswer(prompt: Self.geminiPromptText(request), maxTokens: 1).inputTokens
        return .json(200, ["totalTokens": .int(tokens), "promptTokensDetails": [["modality": "TEXT", "tokenCount": .int(tokens)]]])
    }

    /// `POST models/{m}:generateContent`.
    func geminiGenerateContent(_ r: EmulatorRequest, key: String, model: String, stream: Bool = false) async -> EmulatorResponse {
        let body: JSONValue
        switch geminiParseBody(r) {
        case .success(let b): body = b
        case .failure(let f): return f.response
        }
        if let problem = Self.geminiGenerateProblem(body) {
            return errorResponse(.gemini, status: 400, message: problem, type: "INVALID_ARGUMENT")
        }
        if let id = r.headers["x-client-request-id"] { recordSent(customID: id) }
        let prompt = Self.geminiPromptText(body)
        let maxOut = Self.gField(Self.gField(body, "generationConfig"), "maxOutputTokens")?.intValue
        let decision = await admit(key: key, provider: .gemini, tokens: Self.tokenCount(prompt) + (maxOut ?? 16))
        await modelCall()
        guard decision.allowed else { return rateLimitedResponse(decision, provider: .gemini) }
        let answer = geminiAnswer(body, model: model)
        if stream {
            let (data, contentType) = Self.geminiStream(answer, sse: r.query["alt"] == "sse")
            return .bytes(data, contentType: contentType)
        }
        return .json(200, answer)
    }

    /// `POST models/{m}:embedContent`.
    func geminiEmbedContent(_ r: EmulatorRequest, key: String, model: String) async -> EmulatorResponse {
        let body: JSONValue
        switch geminiParseBody(r) {
        case .success(let b): body = b
        case .failure(let f): return f.response
        }
        if let problem = Self.geminiEmbedProblem(body) {
            return errorResponse(.gemini, status: 400, message: problem, type: "INVALID_ARGUMENT")
        }
        if let id = r.headers["x-client-request-id"] { recordSent(customID: id) }
        let text = Self.geminiContentText(Self.gField(body, "content"))
        let decision = await admit(key: key, provider: .gemini, tokens: Self.tokenCount(text))
        await modelCall()
        guard decision.allowed else { return rateLimitedResponse(decision, provider: .gemini) }
        return .json(200, ["embedding": Self.geminiEmbedding(body)["embedding"] ?? .null])
    }

    /// `POST models/{m}:batchEmbedContents`: one vector per request, in order; each request's
    /// `model` must be the path's model.
    func geminiBatchEmbedContents(_ r: EmulatorRequest, key: String, model: String) async -> EmulatorResponse {
        let body: JSONValue
        switch geminiParseBody(r) {
        case .success(let b): body = b
        case .failure(let f): return f.response
        }
        guard let requests = body["requests"]?.arrayValue, !requests.isEmpty else {
            return errorResponse(.gemini, status: 400, message: "* BatchEmbedContentsRequest.requests: requests is not specified", type: "INVALID_ARGUMENT")
        }
        var text = ""
        for (i, req) in requests.enumerated() {
            if let m = req["model"]?.stringValue, m != model {
                return errorResponse(.gemini, status: 400,
                    message: "Model in request \(i) (\(m)) does not match the model in the URL (\(model)).", type: "INVALID_ARGUMENT")
            }
            if let problem = Self.geminiEmbedProblem(req) {
                return errorResponse(.gemini, status: 400, message: "requests[\(i)]: " + problem, type: "INVALID_ARGUMENT")
            }
            text += Self.geminiContentText(Self.gField(req, "content"))
        }
        if let id = r.headers["x-client-request-id"] { recordSent(customID: id) }
        let decision = await admit(key: key, provider: .gemini, tokens: Self.tokenCount(text))
        await modelCall()
        guard decision.allowed else { return rateLimitedResponse(decision, provider: .gemini) }
        return .json(200, ["embeddings": .array(requests.map { Self.geminiEmbedding($0)["embedding"] ?? .null })])
    }

    // MARK: - Request checks and answers (shared with batches)

    func geminiParseBody(_ r: EmulatorRequest) -> Result<JSONValue, EmulatorFailure> {
        guard !r.body.isEmpty, let json = r.json, case .object = json else {
            return .failure(EmulatorFailure(errorResponse(.gemini, status: 400,
                message: "Invalid JSON payload received. Expected an object.", type: "INVALID_ARGUMENT")))
        }
        return .success(json)
    }

    /// A proto3 JSON field, read under its camelCase or snake_case name.
    static func gField(_ v: JSONValue?, _ camel: String) -> JSONValue? {
        guard let v else { return nil }
        if let x = v[camel] { return x }
        var snake = ""
        for c in camel {
            if c.isUppercase { snake += "_" + c.lowercased() } else { snake.append(c) }
        }
        return v[snake]
    }

    /// Why a `GenerateContentRequest` is invalid, as Gemini words it; `nil` when it is fine.
    static func geminiGenerateProblem(_ body: JSONValue) -> String? {
        // Streaming is an endpoint (`:streamGenerateContent`), not a field.
        if body["stream"] != nil { return "Invalid JSON payload received. Unknown name \"stream\": Cannot find field." }
        if let problem = geminiToolProblem(body) { return problem }
        guard let contents = gField(body, "contents")?.arrayValue, !contents.isEmpty else {
            return "* GenerateContentRequest.contents: contents is not specified"
        }
        for (i, c) in contents.enumerated() {
            if let role = c["role"]?.stringValue, role != "user", role != "model", role != "function" {
                return "Please use a valid role: user, model."
            }
            guard let parts = c["parts"]?.arrayValue, !parts.isEmpty else {
                return "* GenerateContentRequest.contents[\(i)].parts: contents.parts must not be empty."
            }
            for part in parts {
                guard case .object(let o) = part, !o.isEmpty else {
                    return "* GenerateContentRequest.contents[\(i)].parts: required oneof field 'data' must have one initialized field"
                }
            }
        }
        return nil
    }

    /// Why an `EmbedContentRequest` is invalid; `nil` when it is fine.
    static func geminiEmbedProblem(_ body: JSONValue) -> String? {
        guard let parts = gField(body, "content")?["parts"]?.arrayValue, !parts.isEmpty else {
            return "* EmbedContentRequest.content: contents is not specified"
        }
        if let d = gField(body, "outputDimensionality")?.intValue, d <= 0 || d > 3072 {
            return "* EmbedContentRequest.output_dimensionality: must be between 1 and 3072"
        }
        return nil
    }

    static func geminiContentText(_ content: JSONValue?) -> String {
        (content?["parts"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined(separator: "\n")
    }

    /// All text a request asks about (system instruction and contents).
    static func geminiPromptText(_ body: JSONValue) -> String {
        var texts: [String] = []
        if let s = gField(body, "systemInstruction") { texts.append(geminiContentText(s)) }
        for c in gField(body, "contents")?.arrayValue ?? [] { texts.append(geminiContentText(c)) }
        return texts.joined(separator: "\n")
    }

    /// A deterministic `GenerateContentResponse` for a valid request: text (or JSON following
    /// `responseJsonSchema`/`responseSchema` when `responseMimeType` is `application/json`),
    /// `finishReason` `STOP` or `MAX_TOKENS`, `usageMetadata` with int32 counts.
    func geminiAnswer(_ body: JSONValue, model: String) -> JSONValue {
        let prompt = Self.geminiPromptText(body)
        let config = Self.gField(body, "generationConfig")
        let maxOut = Self.gField(config, "maxOutputTokens")?.intValue
        let synthetic = Self.syntheticAnswer(prompt: prompt, maxTokens: maxOut)
        var text = synthetic.text
        var finish = synthetic.truncated ? "MAX_TOKENS" : "STOP"
        var output = synthetic.outputTokens
        if Self.gField(config, "responseMimeType")?.stringValue == "application/json" {
            let schema = Self.gField(config, "responseJsonSchema") ?? Self.gField(config, "responseSchema")
            text = Self.geminiSampleJSON(schema, text: synthetic.text, depth: 0).jsonString
            finish = "STOP"
        }
        var parts: [JSONValue] = [["text": .string(text)]]
        if let function = Self.geminiForcedFunction(body) {
            let args = Self.forcedCallArguments(function.parameters, prompt: prompt, name: function.name).value
            // Gemini answers a forced call with the call alone and finish reason STOP.
            parts = [["functionCall": ["name": .string(function.name), "args": args]]]
            output = Self.tokenCount(args.jsonString) + 6
            finish = "STOP"
            if let maxOut, output > maxOut {
                output = maxOut
                finish = "MAX_TOKENS"
            }
        }
        // Thinking (`thinkingConfig` present, budget not 0): the thought's tokens are
        // `thoughtsTokenCount` (capped by a positive budget, part of the total); with
        // `includeThoughts` the thought comes first as a part marked `thought: true`, and a
        // forced call then carries a `thoughtSignature`.
        var thoughts = 0
        if let thought = Self.geminiThought(config, prompt: prompt) {
            thoughts = thought.tokens
            if thought.include {
                if parts[0]["functionCall"] != nil, case .object(var call) = parts[0] {
                    call["thoughtSignature"] = .string(Data(("sig:" + Self.anthropicStableHex(thought.text, digits: 32)).utf8).base64EncodedString())
                    parts[0] = .object(call)
                }
                parts.insert(["text": .string(thought.text), "thought": true], at: 0)
            }
        }
        // A named cached content is part of the prompt, counted apart as cached.
        var input = synthetic.inputTokens
        var usage: [String: JSONValue] = [:]
        if let name = Self.gField(body, "cachedContent")?.stringValue {
            let cached = Self.geminiCachedContentTokens(name)
            input += cached
            usage["cachedContentTokenCount"] = .int(cached)
            usage["cacheTokensDetails"] = [["modality": "TEXT", "tokenCount": .int(cached)]]
        }
        usage["promptTokenCount"] = .int(input)
        usage["candidatesTokenCount"] = .int(output)
        if thoughts > 0 { usage["thoughtsTokenCount"] = .int(thoughts) }
        usage["totalTokenCount"] = .int(input + output + thoughts)
        usage["promptTokensDetails"] = [["modality": "TEXT", "tokenCount": .int(input)]]
        let modelID = model.split(separator: "/").last.map(String.init) ?? model
        return [
            "candidates": [[
                "content": ["parts": .array(parts), "role": "model"],
                "finishReason": .string(finish), "index": 0,
            ]],
            "usageMetadata": .object(usage),
            "modelVersion": .string(modelID),
            "responseId": .string(newID("", hexDigits: 22)),
        ]
    }

    /// The thought of a request whose `generationConfig.thinkingConfig` asks for thinking (any
    /// config but `thinkingBudget: 0`; without a `thinkingConfig` the emulator does not think):
    /// its text, its tokens (at most a positive `thinkingBudget`), and whether `includeThoughts`
    /// returns it as a part.
    static func geminiThought(_ config: JSONValue?, prompt: String) -> (text: String, tokens: Int, include: Bool)? {
        guard let thinking = gField(config, "thinkingConfig"), thinking.objectValue != nil else { return nil }
        let budget = gField(thinking, "thinkingBudget")?.intValue
        if budget == 0 { return nil }
        let words = prompt.split(whereSeparator: \.isWhitespace).prefix(12).joined(separator: " ")
        let text = "**Answering directly** The user asks: \(words). A short, direct answer fits."
        var tokens = tokenCount(text)
        if let budget, budget > 0 { tokens = min(tokens, budget) }
        return (text, tokens, gField(thinking, "includeThoughts")?.boolValue == true)
    }

    /// A value that satisfies a (JSON or OpenAPI-subset) schema, derived from `text`.
    static func geminiSampleJSON(_ schema: JSONValue?, text: String, depth: Int) -> JSONValue {
        guard let schema, depth < 8 else { return ["answer": .string(text)] }
        if let first = schema["enum"]?[0] { return first }
        var type = schema["type"]?.stringValue?.lowercased()
        if type == nil, let list = schema["type"]?.arrayValue {
            type = list.compactMap(\.stringValue).first { $0 != "null" }?.lowercased()
        }
        if type == nil, schema["properties"] != nil { type = "object" }
        if type == nil, let any = (schema["anyOf"] ?? schema["oneOf"])?[0] { return geminiSampleJSON(any, text: text, depth: depth + 1) }
        switch type {
        case "object":
            var o: [String: JSONValue] = [:]
            for (k, v) in schema["properties"]?.objectValue ?? [:] { o[k] = geminiSampleJSON(v, text: text, depth: depth + 1) }
            return .object(o)
        case "array":
            return [geminiSampleJSON(schema["items"], text: text, depth: depth + 1)]
        case "integer": return 42
        case "number": return 4.5
        case "boolean": return true
        case "null": return .null
        default: return .string(text)
        }
    }

    /// `{"embedding":{"values":[…]}}` for an `EmbedContentRequest` (3,072 dimensions unless
    /// `outputDimensionality` says otherwise).
    static func geminiEmbedding(_ request: JSONValue) -> JSONValue {
        let text = geminiContentText(gField(request, "content"))
        let dims = gField(request, "outputDimensionality")?.intValue ?? 3072
        let v = syntheticEmbedding(text, dimensions: dims)
        return ["embedding": ["values": .array(v.map { .double(Double($0)) })]]
    }
}
