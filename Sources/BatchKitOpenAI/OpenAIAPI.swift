import BatchKit
import Foundation

/// Where and how to reach an OpenAI-style API: the public API (or any OpenAI-compatible server)
/// or Azure OpenAI. Shared by ``OpenAIClient`` and ``OpenAIBatchBackend``. The HTTP work is the
/// core's ``ProviderConnection``; this adds only OpenAI's configuration of it and its URL shapes.
struct OpenAIAPI: Sendable, CustomStringConvertible {
    enum Flavor: Sendable {
        /// `Authorization: Bearer`, paths relative to a base URL that includes `/v1`.
        case openAI
        /// `api-key` header, `/openai/deployments/{deployment}/...` and `/openai/files|batches`
        /// under the resource endpoint, `api-version` query on every call.
        case azure(apiVersion: String, deployment: @Sendable (String) -> String)
    }

    var connection: ProviderConnection
    var flavor: Flavor

    /// OpenAI's configuration: the key (optional: local servers often need none) as a bearer
    /// token or Azure's `api-key`, organization and project headers, OpenAI's error
    /// classification, rate-limit headers and key-pattern redaction.
    init(
        baseURL: URL, key: APIKey?, organization: String? = nil, project: String? = nil, extraHeaders: HTTPHeaders,
        transport: any HTTPTransport, timeout: Duration?, flavor: Flavor
    ) {
        var headers: HTTPHeaders = ["Accept": "application/json", "User-Agent": "BatchKit"]
        if let organization { headers["OpenAI-Organization"] = organization }
        if let project { headers["OpenAI-Project"] = project }
        let auth: ProviderAuth
        switch flavor {
        case .openAI: auth = .bearer
        case .azure: auth = .header("api-key")
        }
        self.connection = ProviderConnection(
            baseURL: baseURL, key: key, auth: auth, headers: headers, extraHeaders: extraHeaders, transport: transport,
            timeout: timeout, decodeError: { OpenAIWire.error(status: $0, headers: $1, body: $2) },
            redactor: OpenAIWire.redactKeys, rateLimitParser: .openAI)
        self.flavor = flavor
    }

    var baseURL: URL { connection.baseURL }
    var timeout: Duration? { connection.timeout }
    var isAzure: Bool { if case .azure = flavor { return true } else { return false } }

    var description: String {
        var s = "\(isAzure ? "Azure OpenAI" : "OpenAI") at \(HTTPRequest.redactedURL(baseURL))"
        if let organization = connection.headers["OpenAI-Organization"] { s += ", organization \(organization)" }
        if let project = connection.headers["OpenAI-Project"] { s += ", project \(project)" }
        s += connection.key == nil ? ", no API key" : ", API key set"
        return s
    }

    /// The URL of an API path given in OpenAI's form (`/v1/files`, `/v1/batches/x/cancel`).
    /// OpenAI: the base URL (which includes `/v1`) plus the path without `/v1`. Azure:
    /// `{endpoint}/openai/{path without /v1}?api-version=`.
    func url(_ path: String, query: [URLQueryItem] = []) -> URL {
        let relative = path.hasPrefix("/v1/") ? String(path.dropFirst(3)) : path
        switch flavor {
        case .openAI:
            return connection.url(relative, query: query)
        case .azure(let version, _):
            return connection.url("/openai" + relative, query: [URLQueryItem(name: "api-version", value: version)] + query)
        }
    }

    /// The URL of a model call. Azure routes model endpoints through the deployment:
    /// `/openai/deployments/{deployment}/chat/completions`.
    func modelURL(endpoint: String, model: String?) -> URL {
        switch flavor {
        case .openAI:
            return url(endpoint)
        case .azure(let version, let deployment):
            let relative = endpoint.hasPrefix("/v1/") ? String(endpoint.dropFirst(3)) : endpoint
            let name = deployment(model ?? "")
            let escaped = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? name
            return connection.url(
                "/openai/deployments/\(escaped)" + relative, query: [URLQueryItem(name: "api-version", value: version)])
        }
    }

    /// `https://api.openai.com/v1`.
    static let defaultBaseURL = URL(string: "https://api.openai.com/v1")!
}
