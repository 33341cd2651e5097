import BatchKit
import Foundation

/// What the client and the batch backend share: base URL, credentials, version header, transport.
struct AnthropicConnection: Sendable {
    let apiKey: APIKey?
    let baseURL: URL
    let version: String
    let extraHeaders: HTTPHeaders
    let transport: any HTTPTransport
    let timeout: Duration?

    init(apiKey: String?, baseURL: URL, version: String, extraHeaders: HTTPHeaders, transport: any HTTPTransport, timeout: Duration?) {
        self.apiKey = APIKey(apiKey, environment: "ANTHROPIC_API_KEY")
        self.baseURL = baseURL
        self.version = version
        self.extraHeaders = extraHeaders
        self.transport = transport
        self.timeout = timeout
    }

    /// `baseURL` + `path` (the path starts with `/v1/`), with query items.
    func url(_ path: String, query: [(String, String)] = []) -> URL {
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        var c = URLComponents(string: base + path)!
        if !query.isEmpty { c.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        return c.url!
    }

    /// A URL the server handed out (`results_url`). Used verbatim when it is on the base URL's
    /// origin; otherwise its path is re-rooted on the base URL, so that the key only ever goes to
    /// the configured host (and a proxy in front of the API keeps working).
    func serverURL(_ text: String) -> URL? {
        guard let u = URL(string: text), u.host != nil else {
            return text.hasPrefix("/") ? url(text) : nil
        }
        if HTTPRequest.sameOrigin(u, baseURL) { return u }
        var base = baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let comps = URLComponents(url: u, resolvingAgainstBaseURL: false)
        return URL(string: base + (comps?.percentEncodedPath ?? u.path) + (comps?.percentEncodedQuery.map { "?" + $0 } ?? ""))
    }

    /// Sends one request with Anthropic's headers. Returns 2xx answers; throws a ``BatchError``
    /// for every failure: HTTP errors through ``AnthropicWire/error(status:headers:body:now:)``,
    /// transport failures as retryable network or timeout errors. `CancellationError` passes
    /// through. The key is never part of an error.
    func send(
        _ method: String, _ url: URL, body: Data? = nil, customID: String? = nil, downloadsToFile: Bool = false
    ) async throws -> HTTPResponse {
        guard let apiKey else {
            throw BatchError(
                .authentication, "no Anthropic API key: pass apiKey or set ANTHROPIC_API_KEY", isRetryable: false)
        }
        var headers = HTTPHeaders()
        headers["x-api-key"] = apiKey.value
        headers["anthropic-version"] = version
        if body != nil { headers["content-type"] = "application/json" }
        // The results download is JSONL; the SDK asks for it as `application/binary`.
        headers["accept"] = downloadsToFile ? "application/binary" : "application/json"
        if let customID { headers["x-client-request-id"] = customID }
        for f in extraHeaders { headers[f.name] = f.value }
        let request = HTTPRequest(
            method: method, url: url, headers: headers, body: body.map(HTTPBody.data), timeout: timeout,
            downloadsToFile: downloadsToFile)
        let response: HTTPResponse
        do {
            response = try await transport.send(request)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as BatchError {
            throw redacted(error)
        } catch let error as URLError {
            if error.code == .cancelled, Task.isCancelled { throw CancellationError() }
            throw error.code == .timedOut
                ? BatchError(.timeout, "\(method) \(url.path): the request timed out")
                : BatchError(.network, "\(method) \(url.path): connection failed (URLError \(error.code.rawValue))")
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw BatchError(.network, redact("\(method) \(url.path): \(error)"))
        }
        guard response.isSuccess else {
            let data = (try? response.bodyData()) ?? Data()
            if let file = response.bodyFile { try? FileManager.default.removeItem(at: file) }
            throw redacted(AnthropicWire.error(status: response.status, headers: response.headers, body: data))
        }
        return response
    }

    /// Sends and parses a JSON answer.
    func json(_ method: String, _ url: URL, body: Data? = nil, customID: String? = nil) async throws -> (JSONValue, HTTPResponse) {
        let response = try await send(method, url, body: body, customID: customID)
        let data: Data
        do { data = try response.bodyData() } catch { throw BatchError(.network, "could not read the answer body") }
        do {
            return (try JSONValue(parsing: data), response)
        } catch {
            // A 2xx answer that is not JSON was cut or garbled in transit.
            throw BatchError(.invalidResponse, "the answer to \(method) \(url.path) is not valid JSON (\(error))", isRetryable: true)
        }
    }

    func redact(_ text: String) -> String {
        apiKey?.redact(text) ?? text
    }

    func redacted(_ error: BatchError) -> BatchError {
        var e = error
        e.message = redact(e.message)
        return e
    }
}
