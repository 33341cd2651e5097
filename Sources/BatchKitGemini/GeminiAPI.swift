import BatchKit
import Foundation

/// Where and how to reach the Gemini Developer API, shared by ``GeminiClient`` and
/// ``GeminiBatchBackend``. The HTTP work is the core's ``ProviderConnection``, configured with
/// the key in `x-goog-api-key` (never the `?key=` query) and Gemini's error classification; this
/// adds Gemini's URL shape, `{base}/{prefix}{version}/{path}`.
struct GeminiAPI: Sendable, CustomStringConvertible, CustomReflectable {
    var connection: ProviderConnection
    /// The path version, `v1beta` or `v1`.
    var apiVersion: String

    init(apiKey: String?, baseURL: URL, apiVersion: String, extraHeaders: HTTPHeaders, transport: any HTTPTransport, timeout: Duration?) {
        // Gemini sends no rate-limit headers: a 429's `RetryInfo` is read by the error decoder.
        self.connection = ProviderConnection(
            baseURL: baseURL, key: APIKey(apiKey, environment: "GEMINI_API_KEY", "GOOGLE_API_KEY"), auth: .header("x-goog-api-key"),
            missingKeyMessage: "no Gemini API key: pass apiKey: or set GEMINI_API_KEY (or GOOGLE_API_KEY)",
            extraHeaders: extraHeaders, transport: transport, timeout: timeout,
            decodeError: { GeminiWire.error(status: $0, headers: $1, body: $2) })
        self.apiVersion = apiVersion
    }

    /// `{base}/{version}`: where calls go.
    var description: String { connection.base + "/" + apiVersion }

    /// What `dump` and debuggers show: the base URL and version, never the key.
    var customMirror: Mirror { Mirror(self, children: ["connection": connection, "apiVersion": apiVersion]) }

    /// `{base}/{version}/{path}`.
    func url(_ path: String, query: [URLQueryItem] = []) -> URL { url(prefix: "", path, query: query) }

    /// `{base}/{prefix}{version}/{path}`, e.g. prefix `upload/` or `download/`. The path is
    /// percent-encoded (a `?`, `#` or `%` in a name never starts a query or fragment).
    func url(prefix: String, _ path: String, query: [URLQueryItem] = []) -> URL {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: Self.pathAllowed) ?? path
        return connection.url("/" + prefix + apiVersion + "/" + encoded, query: query)
    }

    static let pathAllowed: CharacterSet = {
        var c = CharacterSet.urlPathAllowed
        c.remove(charactersIn: "?#%")
        return c
    }()
}
