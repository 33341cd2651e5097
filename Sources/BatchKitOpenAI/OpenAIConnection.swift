import BatchKit
import Foundation

/// Where and how to reach an OpenAI-style API: the public API (or any OpenAI-compatible server)
/// or Azure OpenAI. Shared by ``OpenAIClient`` and ``OpenAIBatchBackend``.
struct OpenAIConnection: Sendable, CustomStringConvertible {
    enum Flavor: Sendable {
        /// `Authorization: Bearer`, paths relative to a base URL that includes `/v1`.
        case openAI
        /// `api-key` header, `/openai/deployments/{deployment}/...` and `/openai/files|batches`
        /// under the resource endpoint, `api-version` query on every call.
        case azure(apiVersion: String, deployment: @Sendable (String) -> String)
    }

    var baseURL: URL
    var key: APIKey?
    var organization: String?
    var project: String?
    var extraHeaders: HTTPHeaders
    var transport: any HTTPTransport
    var timeout: Duration?
    var flavor: Flavor

    var isAzure: Bool { if case .azure = flavor { return true } else { return false } }

    var description: String {
        var s = "\(isAzure ? "Azure OpenAI" : "OpenAI") at \(HTTPRequest.redactedURL(baseURL))"
        if let organization { s += ", organization \(organization)" }
        if let project { s += ", project \(project)" }
        s += key == nil ? ", no API key" : ", API key set"
        return s
    }

    /// The URL of an API path given in OpenAI's form (`/v1/files`, `/v1/batches/x/cancel`).
    /// OpenAI: the base URL (which includes `/v1`) plus the path without `/v1`. Azure:
    /// `{endpoint}/openai/{path without /v1}?api-version=`.
    func url(_ path: String, query: [URLQueryItem] = []) -> URL {
        let relative = path.hasPrefix("/v1/") ? String(path.dropFirst(3)) : path
        switch flavor {
        case .openAI:
            return Self.join(baseURL, relative, query: query)
        case .azure(let version, _):
            return Self.join(baseURL, "/openai" + relative, query: [URLQueryItem(name: "api-version", value: version)] + query)
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
            return Self.join(baseURL, "/openai/deployments/\(escaped)" + relative, query: [URLQueryItem(name: "api-version", value: version)])
        }
    }

    static func join(_ base: URL, _ path: String, query: [URLQueryItem]) -> URL {
        var text = base.absoluteString
        while text.hasSuffix("/") { text.removeLast() }
        text += path.hasPrefix("/") ? path : "/" + path
        guard !query.isEmpty, var c = URLComponents(string: text) else { return URL(string: text) ?? base }
        c.queryItems = (c.queryItems ?? []) + query
        return c.url ?? base
    }

    /// Authentication, organization/project and extra headers.
    func headers(contentType: String? = "application/json") -> HTTPHeaders {
        var h = HTTPHeaders()
        if let key {
            switch flavor {
            case .openAI: h["Authorization"] = "Bearer \(key.value)"
            case .azure: h["api-key"] = key.value
            }
        }
        if let organization { h["OpenAI-Organization"] = organization }
        if let project { h["OpenAI-Project"] = project }
        if let contentType { h["Content-Type"] = contentType }
        h["Accept"] = "application/json"
        h["User-Agent"] = "BatchKit"
        for f in extraHeaders { h[f.name] = f.value }
        return h
    }

    /// Sends one request. Transport failures become `BatchError`s: timeouts `.timeout`, anything
    /// else that produced no answer a retryable `.network` error; cancellation stays cancellation.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        do {
            return try await transport.send(request)
        } catch let error as CancellationError {
            throw error
        } catch let error as BatchError {
            throw redact(error)
        } catch let error as URLError {
            switch error.code {
            case .timedOut: throw BatchError(.timeout, "\(request.description) timed out")
            case .cancelled: throw CancellationError()
            default:
                throw BatchError(.network, "\(request.description) failed: network error \(error.code.rawValue)", isRetryable: true)
            }
        } catch {
            throw BatchError(.network, redact("\(request.description) failed: \(error)"), isRetryable: true)
        }
    }

    /// A JSON call: sends, and throws the classified `BatchError` for non-2xx answers.
    func sendJSON(_ method: String, _ url: URL, body: JSONValue? = nil, extra: HTTPHeaders = [:]) async throws -> (JSONValue, HTTPResponse) {
        var headers = self.headers(contentType: body == nil ? nil : "application/json")
        for f in extra { headers[f.name] = f.value }
        let request = HTTPRequest(method: method, url: url, headers: headers, body: body.map { .data($0.serialized()) }, timeout: timeout)
        let response = try await send(request)
        guard response.isSuccess else { throw redact(OpenAIWire.error(status: response.status, headers: response.headers, body: try response.bodyData())) }
        let data = try response.bodyData()
        do {
            return (try JSONValue(parsing: data), response)
        } catch {
            throw BatchError(.invalidResponse, "\(request.description) answered \(response.status) with a body that is not JSON (\(error))", httpStatus: response.status, isRetryable: true)
        }
    }

    /// Removes the key from any text the server or the transport produced.
    func redact(_ text: String) -> String {
        var t = OpenAIWire.redactKeys(text)
        if let key { t = key.redact(t) }
        return t
    }

    func redact(_ error: BatchError) -> BatchError {
        var e = error
        e.message = redact(e.message)
        return e
    }
}

extension OpenAIConnection {
    /// `https://api.openai.com/v1`.
    static let defaultBaseURL = URL(string: "https://api.openai.com/v1")!
}
