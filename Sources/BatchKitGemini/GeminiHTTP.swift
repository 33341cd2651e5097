import BatchKit
import Foundation

/// The HTTP plumbing shared by ``GeminiClient`` and ``GeminiBatchBackend``: URLs, the
/// `x-goog-api-key` header (never the `?key=` query), error translation, and redaction of the
/// key from anything that could be printed.
struct GeminiHTTP: Sendable, CustomReflectable {
    let apiKey: APIKey?
    /// The base URL without a trailing slash.
    let base: String
    let apiVersion: String
    let extraHeaders: HTTPHeaders
    let transport: any HTTPTransport
    let timeout: Duration?

    init(apiKey: String?, baseURL: URL, apiVersion: String, extraHeaders: HTTPHeaders, transport: any HTTPTransport, timeout: Duration?) {
        self.apiKey = APIKey(apiKey, environment: "GEMINI_API_KEY", "GOOGLE_API_KEY")
        var b = baseURL.absoluteString
        while b.hasSuffix("/") { b.removeLast() }
        self.base = b
        self.apiVersion = apiVersion
        self.extraHeaders = extraHeaders
        self.transport = transport
        self.timeout = timeout
    }

    /// `{base}/{version}/{path}`.
    func url(_ path: String, query: [(String, String)] = []) -> URL { url(prefix: "", path, query: query) }

    /// `{base}/{prefix}{version}/{path}`, e.g. prefix `upload/` or `download/`.
    func url(prefix: String, _ path: String, query: [(String, String)] = []) -> URL {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: Self.pathAllowed) ?? path
        var s = base + "/" + prefix + apiVersion + "/" + encoded
        if !query.isEmpty {
            var c = URLComponents()
            c.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
            s += "?" + (c.percentEncodedQuery ?? "")
        }
        return URL(string: s)!
    }

    static let pathAllowed: CharacterSet = {
        var c = CharacterSet.urlPathAllowed
        c.remove(charactersIn: "?#%")
        return c
    }()

    /// Whether a custom id can travel as a header value (visible ASCII, no line breaks).
    static func isHeaderSafe(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 256 && s.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// Headers of an authenticated call.
    func headers(json: Bool) throws(BatchError) -> HTTPHeaders {
        guard let apiKey else {
            throw BatchError(
                .authentication, "no Gemini API key: pass apiKey: or set GEMINI_API_KEY (or GOOGLE_API_KEY)", isRetryable: false)
        }
        var h = extraHeaders
        h["x-goog-api-key"] = apiKey.value
        if json { h["Content-Type"] = "application/json" }
        return h
    }

    /// Sends a request (authenticated unless `authenticated` is `false`) and returns the 2xx
    /// answer; transport failures and error statuses become ``BatchError``s with the key removed.
    func send(
        _ method: String, _ url: URL, body: HTTPBody? = nil, json: Bool = true, authenticated: Bool = true,
        headers extra: HTTPHeaders = [:], downloadsToFile: Bool = false
    ) async throws -> HTTPResponse {
        var h: HTTPHeaders
        if authenticated {
            h = try headers(json: json && body != nil)
        } else {
            // Unauthenticated calls (the resumable-upload URL) carry no credential at all, not
            // even one a caller put among the extra headers.
            h = HTTPHeaders(extraHeaders.fields.filter { !HTTPHeaders.sensitiveNames.contains($0.name.lowercased()) }.map { ($0.name, $0.value) })
        }
        for f in extra { h[f.name] = f.value }
        let request = HTTPRequest(method: method, url: url, headers: h, body: body, timeout: timeout, downloadsToFile: downloadsToFile)
        let response: HTTPResponse
        do {
            response = try await transport.send(request)
        } catch let e as BatchError {
            throw redact(e)
        } catch is CancellationError {
            throw CancellationError()
        } catch let e as URLError {
            throw redact(BatchError(wrapping: e))
        } catch {
            throw BatchError(.network, "Gemini transport failure: \(redact(String(describing: error)))")
        }
        guard response.isSuccess else {
            let data = (try? response.bodyData()) ?? response.body
            if let f = response.bodyFile { try? FileManager.default.removeItem(at: f) }
            throw redact(GeminiWire.error(status: response.status, headers: response.headers, body: data))
        }
        return response
    }

    /// Sends and parses a JSON answer.
    func sendJSON(_ method: String, _ url: URL, body: JSONValue? = nil) async throws -> JSONValue {
        let response = try await send(method, url, body: body.map { .data($0.serialized()) })
        return try Self.parse(response.body)
    }

    static func parse(_ data: Data) throws(BatchError) -> JSONValue {
        do {
            return try JSONValue(parsing: data)
        } catch {
            // A cut or garbled body is a transport accident more often than a server bug.
            throw BatchError(.invalidResponse, "the Gemini answer is not valid JSON (\(error))", isRetryable: true)
        }
    }

    /// Mirrors (`dump`, debuggers) show where calls go, never the key.
    var customMirror: Mirror {
        Mirror(self, children: ["base": base, "apiVersion": apiVersion, "apiKey": apiKey == nil ? "<none>" : "<redacted>"])
    }

    func redact(_ e: BatchError) -> BatchError {
        var e = e
        e.message = redact(e.message)
        return e
    }

    func redact(_ s: String) -> String {
        guard let apiKey else { return s }
        return apiKey.redact(s)
    }
}
