package import Foundation

/// How a provider wants its API key presented.
package enum ProviderAuth: Sendable, Hashable {
    /// `Authorization: Bearer <key>`.
    case bearer
    /// The key as the whole value of a header (`x-api-key`, `api-key`, `x-goog-api-key`...).
    case header(String)
    /// The key as a query item (`?key=`). Only for servers that take nothing else: a URL reaches
    /// logs more easily than a header (``HTTPRequest/description`` masks `key`, `api-key` and
    /// `api_key`, and ``ProviderConnection/redact(_:)-(String)`` masks the value anywhere).
    case query(String)
}

/// The one HTTP layer the provider modules configure: where calls go, how the key travels,
/// what every call carries, how an error answer is classified, and what must never be printed.
///
/// It does the four jobs every provider needs, once:
/// - **authentication**: the key in the configured ``ProviderAuth`` form, or an `authentication`
///   error before anything is sent when the provider requires a key and none is set;
/// - **transport failures**: cancellation stays cancellation; timeouts become `.timeout`, any
///   other failure without an answer a retryable `.network` error;
/// - **error answers**: every non-2xx answer goes through the provider's error decoder;
/// - **redaction**: every string that can reach an error passes the redactor and loses the key.
///
/// A provider keeps only a small configuration (its header names, error decoder, rate-limit
/// header parser) and its URL shapes. Nothing here names a provider.
package struct ProviderConnection: Sendable, CustomStringConvertible, CustomReflectable {
    /// Classifies an error answer: status, headers and the body (possibly empty).
    package typealias ErrorDecoder = @Sendable (_ status: Int, _ headers: HTTPHeaders, _ body: Data) -> BatchError

    /// The API base; paths are appended to it (trailing slashes are ignored).
    package var baseURL: URL
    /// The key, if any.
    package var key: APIKey?
    /// How the key travels.
    package var auth: ProviderAuth
    /// When set, a call without a key fails with this `authentication` message before anything is
    /// sent; when `nil`, such calls go without credentials (local servers often need none).
    package var missingKeyMessage: String?
    /// Headers every call carries (version, organization, user agent, accept...).
    package var headers: HTTPHeaders
    /// The caller's headers: added to every call, replacing BatchKit's of the same name.
    package var extraHeaders: HTTPHeaders
    /// How requests are sent.
    package var transport: any HTTPTransport
    /// Time allowed per call unless the call says otherwise; `nil` uses the transport's.
    package var timeout: Duration?
    /// The provider's error classification.
    package var decodeError: ErrorDecoder
    /// Extra masking beyond the key itself (for example patterns of key-like text a server
    /// echoes). Applied before the key is masked.
    package var redactor: @Sendable (String) -> String
    /// The provider's rate-limit header parser (``RateLimitHeaderParser/none`` for a provider
    /// that sends no such headers).
    package var rateLimitParser: RateLimitHeaderParser

    /// A connection. See the properties for the meaning of each part.
    package init(
        baseURL: URL, key: APIKey?, auth: ProviderAuth, missingKeyMessage: String? = nil, headers: HTTPHeaders = [:],
        extraHeaders: HTTPHeaders = [:], transport: any HTTPTransport, timeout: Duration?,
        decodeError: @escaping ErrorDecoder, redactor: @escaping @Sendable (String) -> String = { $0 },
        rateLimitParser: RateLimitHeaderParser = .none
    ) {
        self.baseURL = baseURL
        self.key = key
        self.auth = auth
        self.missingKeyMessage = missingKeyMessage
        self.headers = headers
        self.extraHeaders = extraHeaders
        self.transport = transport
        self.timeout = timeout
        self.decodeError = decodeError
        self.redactor = redactor
        self.rateLimitParser = rateLimitParser
    }

    /// The base URL and whether a key is set; never the key.
    package var description: String {
        "\(HTTPRequest.redactedURL(baseURL)), \(key == nil ? "no API key" : "API key set")"
    }

    /// What `dump` and debuggers show: where calls go, never the key.
    package var customMirror: Mirror {
        Mirror(
            self, children: ["baseURL": HTTPRequest.redactedURL(baseURL), "apiKey": key == nil ? "<none>" : "<redacted>"],
            displayStyle: .struct)
    }

    // MARK: - URLs

    /// The base URL without trailing slashes.
    package var base: String {
        var text = baseURL.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// `base` + `path` (a `/` is put between them when `path` has none), with `query` appended to
    /// any query the base already has.
    package func url(_ path: String, query: [URLQueryItem] = []) -> URL {
        let text = base + (path.hasPrefix("/") ? path : "/" + path)
        guard !query.isEmpty, var c = URLComponents(string: text) else { return URL(string: text) ?? baseURL }
        c.queryItems = (c.queryItems ?? []) + query
        return c.url ?? baseURL
    }

    /// A URL the server handed out (a results link). Used verbatim when it is on the base URL's
    /// origin; otherwise its path and query are re-rooted on the base URL, so that the key only
    /// ever goes to the configured host (and a proxy in front of the API keeps working). A bare
    /// path is appended to the base URL; anything else is `nil`.
    package func serverURL(_ text: String) -> URL? {
        guard let u = URL(string: text), u.host != nil else {
            return text.hasPrefix("/") ? URL(string: base + text) : nil
        }
        if HTTPRequest.sameOrigin(u, baseURL) { return u }
        let comps = URLComponents(url: u, resolvingAgainstBaseURL: false)
        return URL(string: base + (comps?.percentEncodedPath ?? u.path) + (comps?.percentEncodedQuery.map { "?" + $0 } ?? ""))
    }

    // MARK: - Requests

    /// The request a call sends: credentials (unless `authenticated` is `false`, which sends none,
    /// not even one among the caller's extra headers), the connection's headers, a content type
    /// when there is a body, the caller's extra headers, then the call's own `headers`.
    package func request(
        _ method: String, _ url: URL, body: HTTPBody? = nil, contentType: String? = "application/json",
        headers callHeaders: HTTPHeaders = [:], timeout: Duration? = nil, downloadsToFile: Bool = false,
        authenticated: Bool = true
    ) throws(BatchError) -> HTTPRequest {
        var url = url
        var h = HTTPHeaders()
        if authenticated {
            if let key {
                switch auth {
                case .bearer: h["Authorization"] = "Bearer \(key.value)"
                case .header(let name): h[name] = key.value
                case .query(let name):
                    if var c = URLComponents(url: url, resolvingAgainstBaseURL: false) {
                        c.queryItems = (c.queryItems ?? []) + [URLQueryItem(name: name, value: key.value)]
                        url = c.url ?? url
                    }
                }
            } else if let missingKeyMessage {
                throw BatchError(.authentication, missingKeyMessage, isRetryable: false)
            }
        }
        for f in headers { h[f.name] = f.value }
        if body != nil, let contentType { h["Content-Type"] = contentType }
        for f in extraHeaders where authenticated || !HTTPHeaders.sensitiveNames.contains(f.name.lowercased()) {
            h[f.name] = f.value
        }
        for f in callHeaders { h[f.name] = f.value }
        var request = HTTPRequest(
            method: method, url: url, headers: h, body: body, timeout: timeout ?? self.timeout, downloadsToFile: downloadsToFile)
        // A transfer allowed longer than a call (an hour for a file) still fails once nothing
        // moves for a call's time: a stalled peer must not hold the run for the hour.
        if let timeout, let callTimeout = self.timeout, timeout > callTimeout { request.idleTimeout = callTimeout }
        return request
    }

    /// Sends one call and returns its 2xx answer. Every failure is a ``BatchError`` with the key
    /// removed: error answers through the provider's decoder (a downloaded error body is read and
    /// its file removed), transport failures through ``transportError(_:for:)``.
    /// `CancellationError` passes through.
    package func send(
        _ method: String, _ url: URL, body: HTTPBody? = nil, contentType: String? = "application/json",
        headers callHeaders: HTTPHeaders = [:], timeout: Duration? = nil, downloadsToFile: Bool = false,
        authenticated: Bool = true
    ) async throws -> HTTPResponse {
        let request = try request(
            method, url, body: body, contentType: contentType, headers: callHeaders, timeout: timeout,
            downloadsToFile: downloadsToFile, authenticated: authenticated)
        return try await send(request)
    }

    /// Sends a request built by ``request(_:_:body:contentType:headers:timeout:downloadsToFile:authenticated:)``
    /// and returns its 2xx answer (see ``send(_:_:body:contentType:headers:timeout:downloadsToFile:authenticated:)``).
    package func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let response: HTTPResponse
        do {
            response = try await transport.send(request)
        } catch {
            throw transportError(error, for: request)
        }
        guard response.isSuccess else { throw errorAnswer(response) }
        return response
    }

    /// Sends one call and parses its 2xx answer as JSON.
    package func sendJSON(
        _ method: String, _ url: URL, body: HTTPBody? = nil, contentType: String? = "application/json",
        headers callHeaders: HTTPHeaders = [:], timeout: Duration? = nil, authenticated: Bool = true
    ) async throws -> (JSONValue, HTTPResponse) {
        let request = try request(
            method, url, body: body, contentType: contentType, headers: callHeaders, timeout: timeout, authenticated: authenticated)
        let response = try await send(request)
        return (try json(of: response, for: request), response)
    }

    /// Sends a call that creates something paid for or kept (a batch job, an uploaded file) and
    /// parses its 2xx answer as JSON. The request is marked ``HTTPRequest/sendsOnce``: no
    /// transport sends it a second time, and a lost answer is the caller's to look up.
    package func sendJSONOnce(
        _ method: String, _ url: URL, body: HTTPBody, contentType: String? = "application/json",
        headers callHeaders: HTTPHeaders = [:], timeout: Duration? = nil, authenticated: Bool = true
    ) async throws -> (JSONValue, HTTPResponse) {
        var request = try request(
            method, url, body: body, contentType: contentType, headers: callHeaders, timeout: timeout, authenticated: authenticated)
        request.sendsOnce = true
        let response = try await send(request)
        return (try json(of: response, for: request), response)
    }

    /// Sends one call with a JSON body and parses its 2xx answer as JSON.
    package func sendJSON(
        _ method: String, _ url: URL, json body: JSONValue, headers callHeaders: HTTPHeaders = [:]
    ) async throws -> (JSONValue, HTTPResponse) {
        try await sendJSON(method, url, body: .data(body.serialized()), headers: callHeaders)
    }

    /// Downloads a 2xx answer body to a temporary file the caller owns (and removes).
    package func download(
        _ url: URL, method: String = "GET", headers callHeaders: HTTPHeaders = [:], timeout: Duration? = nil
    ) async throws -> URL {
        let response = try await send(method, url, headers: callHeaders, timeout: timeout, downloadsToFile: true)
        if let file = response.bodyFile { return file }
        // The transport kept the body in memory (an in-process emulator, a closure).
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-download-\(UUID().uuidString).jsonl")
        do {
            try response.body.write(to: file)
        } catch {
            throw BatchError(.invalidRequest, "cannot write the download to \(file.path): \(error)", isRetryable: false)
        }
        return file
    }

    // MARK: - Answers and errors

    /// The JSON of a 2xx answer. A body that is not JSON was cut or garbled in transit more often
    /// than not: a retryable `invalidResponse` error carrying the status and rate-limit state.
    package func json(of response: HTTPResponse, for request: HTTPRequest) throws(BatchError) -> JSONValue {
        let data: Data
        do {
            data = try response.bodyData()
        } catch {
            throw BatchError(.network, redact("\(request.description): could not read the answer body (\(error))"), isRetryable: true)
        }
        do {
            return try JSONValue(parsing: data)
        } catch {
            throw BatchError(
                .invalidResponse, redact("\(request.description) answered \(response.status) with a body that is not JSON (\(error))"),
                httpStatus: response.status, isRetryable: true, rateLimit: rateLimit(of: response))
        }
    }

    /// The rate-limit state an answer reports, through the provider's parser.
    package func rateLimit(of response: HTTPResponse) -> RateLimitInfo? { rateLimitParser.parse(response.headers) }

    /// The classified, redacted error of a non-2xx answer. A body downloaded to a file is read
    /// and the file removed.
    package func errorAnswer(_ response: HTTPResponse) -> BatchError {
        let data = (try? response.bodyData()) ?? response.body
        if let file = response.bodyFile { try? FileManager.default.removeItem(at: file) }
        return redact(decodeError(response.status, response.headers, data))
    }

    /// What a transport failure becomes: `CancellationError` stays (and so does a URL-loading
    /// cancellation while the task is cancelled); a ``BatchError`` loses the key; a timeout becomes
    /// `.timeout`; anything else that produced no answer a retryable `.network` error, its text
    /// redacted.
    package func transportError(_ error: any Error, for request: HTTPRequest) -> any Error {
        switch error {
        case is CancellationError:
            return error
        case let e as BatchError:
            return redact(e)
        case let e as URLError:
            if e.code == .cancelled, Task.isCancelled { return CancellationError() }
            let named = e.naming(request.url)
            if e.code == .timedOut { return BatchError(.timeout, "\(request.description): \(named.readableMessage)") }
            return BatchError(.network, "\(request.description) failed: \(named.readableMessage)", isRetryable: true)
        default:
            if Task.isCancelled { return CancellationError() }
            return BatchError(.network, redact("\(request.description) failed: \(error)"), isRetryable: true)
        }
    }

    // MARK: - Redaction

    /// `text` with the provider's key-like patterns and the key itself masked.
    package func redact(_ text: String) -> String {
        let t = redactor(text)
        return key?.redact(t) ?? t
    }

    /// `error` with its message redacted.
    package func redact(_ error: BatchError) -> BatchError {
        var e = error
        e.message = redact(e.message)
        return e
    }
}

extension ProviderConnection {
    /// The per-call headers carrying a custom id as `x-client-request-id`: empty when the id
    /// cannot travel as a header value (see ``HTTPHeaders/isSafeValue(_:maxBytes:)``).
    package static func requestIDHeaders(_ id: String?, maxBytes: Int = 256) -> HTTPHeaders {
        guard let id, HTTPHeaders.isSafeValue(id, maxBytes: maxBytes) else { return [:] }
        return ["x-client-request-id": id]
    }
}

extension HTTPHeaders {
    /// Whether `value` can travel as a header value: visible ASCII, no line breaks, 1 to
    /// `maxBytes` bytes. Used for the custom id sent as `x-client-request-id`.
    package static func isSafeValue(_ value: String, maxBytes: Int = 256) -> Bool {
        !value.isEmpty && value.utf8.count <= maxBytes && value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }
}
