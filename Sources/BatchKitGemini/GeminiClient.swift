public import BatchKit
public import Foundation

/// A ``ModelClient`` for the Gemini Developer API's real-time endpoints.
///
/// Chat goes to `POST /{version}/models/{model}:generateContent`; embeddings to
/// `:batchEmbedContents` (all inputs of a request in one call, vectors in input order). The key
/// travels in the `x-goog-api-key` header, never in the URL, and never appears in an error or a
/// description. Each call carries `x-client-request-id: <custom id>` (when the id is a valid
/// header value: visible ASCII, at most 256 bytes). Gemini sends no rate-limit
/// headers; a 429's `RetryInfo.retryDelay` becomes ``BatchError/retryAfter``.
///
/// ```swift
/// let client = GeminiClient()                                   // key from GEMINI_API_KEY, URLSession
/// let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 32))
/// ```
public struct GeminiClient: ModelClient, CustomStringConvertible, CustomReflectable {
    let api: GeminiAPI

    /// - Parameters:
    ///   - apiKey: the key; `nil` reads `GEMINI_API_KEY`, then `GOOGLE_API_KEY`.
    ///   - baseURL: `https://generativelanguage.googleapis.com` (or an emulator's URL).
    ///   - apiVersion: the path version, `v1beta` (default) or `v1`.
    ///   - extraHeaders: added to every request.
    ///   - transport: how requests are sent (URLSession by default).
    ///   - timeout: per request; `nil` uses the transport's default.
    public init(
        apiKey: String? = nil,
        baseURL: URL = URL(string: "https://generativelanguage.googleapis.com")!,
        apiVersion: String = "v1beta",
        extraHeaders: HTTPHeaders = [:],
        transport: any HTTPTransport = URLSessionTransport(),
        timeout: Duration? = .seconds(600)
    ) {
        self.api = GeminiAPI(
            apiKey: apiKey, baseURL: baseURL, apiVersion: apiVersion, extraHeaders: extraHeaders, transport: transport,
            timeout: timeout)
    }

    /// What `dump` and debuggers show: the base URL and version, never the key.
    public var customMirror: Mirror { Mirror(self, children: ["api": api]) }

    /// The base URL and version; never the key.
    public var description: String { "GeminiClient(\(api))" }

    /// Accepts chat and embedding requests Gemini can express; raw (OpenAI-endpoint) requests
    /// and fields without a Gemini form fail with an error naming the field.
    public func validate(_ request: BatchRequest) throws(BatchError) {
        switch request.body {
        case .chat(let chat): _ = try GeminiWire.generateContentBody(chat)
        case .embedding(let e): _ = try GeminiWire.batchEmbedContentsBody(e)
        case .raw(let raw):
            throw .validation(
                "Gemini does not serve OpenAI endpoints such as \(raw.endpoint); use a chat or embedding request", field: "body")
        }
    }

    /// Sends one request and parses the answer.
    public func send(_ request: BatchRequest) async throws -> ModelResponse {
        let (path, body, expected): (String, JSONValue, Int?)
        switch request.body {
        case .chat(let chat):
            path = GeminiWire.modelResource(chat.model) + ":generateContent"
            body = try GeminiWire.generateContentBody(chat)
            expected = nil
        case .embedding(let e):
            path = GeminiWire.modelResource(e.model) + ":batchEmbedContents"
            body = try GeminiWire.batchEmbedContentsBody(e)
            expected = e.inputs.count
        case .raw:
            try validate(request)
            throw BatchError.validation("unreachable", field: "body")
        }
        // The custom id travels as `x-client-request-id` when it is a valid header value.
        let (json, _) = try await api.connection.sendJSON(
            "POST", api.url(path), json: body, headers: ProviderConnection.requestIDHeaders(request.id))
        if let expected { return try GeminiWire.parseBatchEmbedContentsResponse(json, expected: expected) }
        return try GeminiWire.parseGenerateContentResponse(json)
    }
}
