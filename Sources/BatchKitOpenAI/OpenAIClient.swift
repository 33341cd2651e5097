public import BatchKit
public import Foundation

/// A real-time client for OpenAI and any OpenAI-compatible server (vLLM, Ollama, Groq, Together,
/// OpenRouter, Voyage embeddings...), and for Azure OpenAI through ``azure(endpoint:apiKey:apiVersion:deployment:extraHeaders:transport:timeout:)``.
///
/// It answers chat and embedding requests and posts raw requests (`/v1/responses`,
/// `/v1/completions`, ...) as they are. It does not retry: ``ConcurrentProcessor`` is the one
/// retry layer. Every answer's rate-limit headers reach ``ModelResponse/rateLimit`` (or
/// ``BatchError/rateLimit`` for errors) so the processor can pace itself. Each call carries the
/// request's custom id in `x-client-request-id`.
///
/// ```swift
/// let client = OpenAIClient()                                   // OPENAI_API_KEY, api.openai.com
/// let local = OpenAIClient(apiKey: nil, baseURL: URL(string: "http://localhost:11434/v1")!)
/// let answer = try await client.send(BatchRequest(id: "q1", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Hi")])))
/// ```
///
/// The key never appears in a description, an error or a reflection of the client.
public struct OpenAIClient: ModelClient, CustomStringConvertible, CustomReflectable {
    let api: OpenAIAPI

    /// A client for OpenAI or an OpenAI-compatible server.
    ///
    /// - Parameters:
    ///   - apiKey: the key, sent as `Authorization: Bearer`; `nil` reads `OPENAI_API_KEY`. When
    ///     neither is set, no `Authorization` header is sent (local servers often need none).
    ///   - baseURL: the API base including `/v1` (`https://api.openai.com/v1`, `http://localhost:8000/v1`).
    ///   - organization: sent as `OpenAI-Organization`.
    ///   - project: sent as `OpenAI-Project`.
    ///   - extraHeaders: added to every request (they replace BatchKit's headers of the same name).
    ///   - transport: the HTTP transport (the emulator's `transport` in tests).
    ///   - timeout: time allowed per request; `nil` uses the transport's default.
    public init(
        apiKey: String? = nil, baseURL: URL = URL(string: "https://api.openai.com/v1")!, organization: String? = nil,
        project: String? = nil, extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600)
    ) {
        self.api = OpenAIAPI(
            baseURL: baseURL, key: APIKey(apiKey, environment: "OPENAI_API_KEY"),
            organization: organization, project: project, extraHeaders: extraHeaders,
            transport: transport, timeout: timeout, flavor: .openAI)
    }

    init(api: OpenAIAPI) { self.api = api }

    /// A client for Azure OpenAI (classic API): `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`
    /// with the `api-key` header.
    ///
    /// ```swift
    /// let azure = OpenAIClient.azure(endpoint: URL(string: "https://my-resource.openai.azure.com")!,
    ///                                apiVersion: "2024-10-21", deployment: { model in model == "gpt-4o-mini" ? "mini-prod" : model })
    /// ```
    ///
    /// - Parameters:
    ///   - endpoint: the resource endpoint, without `/openai`.
    ///   - apiKey: the key; `nil` reads `AZURE_OPENAI_API_KEY`.
    ///   - apiVersion: the `api-version` query value.
    ///   - deployment: maps a request's model to its deployment name (default: the model name).
    public static func azure(
        endpoint: URL, apiKey: String? = nil, apiVersion: String = "2024-10-21",
        deployment: (@Sendable (String) -> String)? = nil, extraHeaders: HTTPHeaders = [:],
        transport: any HTTPTransport = URLSessionTransport(), timeout: Duration? = .seconds(600)
    ) -> OpenAIClient {
        OpenAIClient(api: OpenAIAPI(
            baseURL: endpoint, key: APIKey(apiKey, environment: "AZURE_OPENAI_API_KEY"), extraHeaders: extraHeaders,
            transport: transport, timeout: timeout,
            flavor: .azure(apiVersion: apiVersion, deployment: deployment ?? { $0 })))
    }

    /// The base URL requests go to.
    public var baseURL: URL { api.baseURL }

    /// Where the client talks to, never the key.
    public var description: String { "OpenAIClient(\(api.description))" }

    /// A reflection without the key (`dump(client)` is safe to log).
    public var customMirror: Mirror {
        Mirror(self, children: ["baseURL": api.baseURL, "azure": api.isAzure], displayStyle: .struct)
    }

    /// Rejects what no OpenAI endpoint can take: an empty model, a chat without messages or with
    /// a field OpenAI cannot express (``OpenAIWire/validate(_:)``), an embedding without inputs, a
    /// raw endpoint that is not a path.
    public func validate(_ request: BatchRequest) throws(BatchError) {
        switch request.body {
        case .chat(let c):
            if c.model.isEmpty { throw .validation("request \(request.id): the model is empty", field: "model") }
            if c.messages.isEmpty && c.system == nil {
                throw .validation("request \(request.id): a chat request needs at least one message", field: "messages")
            }
            do { try OpenAIWire.validate(c) } catch { throw .validation("request \(request.id): \(error.message)", field: error.field) }
        case .embedding(let e):
            if e.model.isEmpty { throw .validation("request \(request.id): the model is empty", field: "model") }
            if e.inputs.isEmpty { throw .validation("request \(request.id): an embedding request needs at least one input", field: "inputs") }
        case .raw(let r):
            if !r.endpoint.hasPrefix("/") {
                throw .validation("request \(request.id): the endpoint \"\(r.endpoint)\" is not a path such as /v1/responses", field: "endpoint")
            }
        }
    }

    /// Sends one request and parses the answer.
    ///
    /// - Throws: ``BatchError``: the server's error classified by ``OpenAIWire/error(status:headers:body:now:)``
    ///   (with `retryAfter` and `rateLimit`), `.timeout`, a retryable `.network` error when no
    ///   answer arrived, `.invalidResponse` (retryable) when a 2xx body is not the expected JSON.
    public func send(_ request: BatchRequest) async throws -> ModelResponse {
        try validate(request)
        let endpoint = request.endpoint
        let headers = ProviderConnection.requestIDHeaders(request.id, maxBytes: 512)
        var body = OpenAIWire.body(of: request.body)
        if api.isAzure, case .object(var o) = body {
            // Azure names the model through the deployment in the path.
            o["model"] = nil
            body = .object(o)
        }
        let connection = api.connection
        let http = try connection.request(
            "POST", api.modelURL(endpoint: endpoint, model: request.model), body: .data(body.serialized()), headers: headers)
        let response = try await connection.send(http)
        let json = try connection.json(of: response, for: http)
        var parsed: ModelResponse
        do {
            parsed = try OpenAIWire.parseResponse(json, endpoint: endpoint)
        } catch {
            var e = error
            e.httpStatus = response.status
            e.rateLimit = connection.rateLimit(of: response)
            throw e
        }
        parsed.rateLimit = connection.rateLimit(of: response)
        return parsed
    }
}
