public import BatchKit
public import Foundation

/// A request as the emulator sees it, whether it came over the loopback server or the
/// in-process transport.
public struct EmulatorRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded (`/v1/batches/batch_abc`).
    public var path: String
    /// Query items (last value wins).
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: Data

    public init(method: String, path: String, query: [String: String] = [:], headers: HTTPHeaders = [:], body: Data = Data()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Builds an emulator request from a transport request (a file body is mapped, not read).
    public init(_ request: HTTPRequest) throws {
        let comps = URLComponents(url: request.url, resolvingAgainstBaseURL: false)
        var query: [String: String] = [:]
        for item in comps?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let body: Data
        switch request.body {
        case .none: body = Data()
        case .data(let d): body = d
        // Mapped, not read: a large upload is never copied into memory (routes that keep a body
        // beyond the request copy it, so no mapping outlives the request).
        case .file(let url): body = try Data(contentsOf: url, options: .alwaysMapped)
        }
        self.init(
            method: request.method.uppercased(), path: comps?.percentEncodedPath.removingPercentEncoding ?? request.url.path,
            query: query, headers: request.headers, body: body)
    }

    /// The body parsed as JSON, or `nil`.
    public var json: JSONValue? { body.isEmpty ? nil : try? JSONValue(parsing: body) }
}

/// A misbehaviour the server applies to one answer.
public enum EmulatorWireFault: Sendable, Hashable {
    /// Close the connection without answering (the in-process transport throws `URLError(.networkConnectionLost)`).
    case resetConnection
    /// Send the headers and only the first `bytes` bytes of the body, then close.
    case truncateBody(bytes: Int)
    /// Send the body slowly, in small pieces spread over `duration`.
    case slowBody(duration: Duration)
}

/// An answer from the emulator.
public struct EmulatorResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// The body (a stored file's contents are read when asked for).
    public var body: Data {
        get { blob?.data ?? storedBody }
        set {
            storedBody = newValue
            blob = nil
        }
    }
    private var storedBody: Data
    /// A stored file answered as it is: the in-process transport copies it to the download file
    /// instead of reading it into memory.
    var blob: EmulatorBlob?
    /// A wire-level misbehaviour to apply when sending this answer.
    public var fault: EmulatorWireFault?

    public init(status: Int, headers: HTTPHeaders = [:], body: Data = Data(), fault: EmulatorWireFault? = nil) {
        self.status = status
        self.headers = headers
        self.storedBody = body
        self.blob = nil
        self.fault = fault
    }

    /// A stored file's contents.
    static func file(_ blob: EmulatorBlob, contentType: String = "application/octet-stream", headers: HTTPHeaders = [:]) -> EmulatorResponse {
        var h = headers
        h["Content-Type"] = contentType
        var response = EmulatorResponse(status: 200, headers: h)
        response.blob = blob
        return response
    }

    /// A JSON answer.
    public static func json(_ status: Int, _ value: JSONValue, headers: HTTPHeaders = [:]) -> EmulatorResponse {
        var h = headers
        h["Content-Type"] = "application/json"
        return EmulatorResponse(status: status, headers: h, body: value.serialized())
    }

    /// A raw-bytes answer.
    public static func bytes(_ data: Data, contentType: String = "application/octet-stream", headers: HTTPHeaders = [:]) -> EmulatorResponse {
        var h = headers
        h["Content-Type"] = contentType
        return EmulatorResponse(status: 200, headers: h, body: data)
    }
}
