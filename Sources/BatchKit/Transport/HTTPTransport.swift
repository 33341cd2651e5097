public import Foundation

/// The one seam between BatchKit and the network.
///
/// The default is ``URLSessionTransport``; tests and benchmarks substitute the emulator's
/// in-process transport, or any closure via ``ClosureTransport``.
public protocol HTTPTransport: Sendable {
    /// Sends one request and returns the complete answer. Throws only when no HTTP answer arrived
    /// (connection failure, timeout, cancellation); HTTP error statuses are returned, not thrown.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

/// Case-insensitive HTTP header fields, order preserved.
public struct HTTPHeaders: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    package private(set) var fields: [(name: String, value: String)]

    public init() { fields = [] }
    public init(_ fields: [(String, String)]) { self.fields = fields.map { (name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    /// The first value of `name`, or `nil`. Setting replaces every value of `name`; `nil` removes it.
    public subscript(name: String) -> String? {
        get {
            for f in fields where Self.sameName(f.name, name) { return f.value }
            return nil
        }
        set {
            fields.removeAll { Self.sameName($0.name, name) }
            if let newValue { fields.append((name: name, value: newValue)) }
        }
    }

    /// Header names compare ASCII-case-insensitively (RFC 9110); no locale-aware comparison,
    /// which showed up in profiles of the emulator.
    static func sameName(_ a: String, _ b: String) -> Bool {
        var a = a.utf8.makeIterator()
        var b = b.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                if x == y { continue }
                let lx = x >= 65 && x <= 90 ? x | 0x20 : x
                let ly = y >= 65 && y <= 90 ? y | 0x20 : y
                if lx != ly { return false }
            default: return false
            }
        }
    }

    /// Adds a value without removing existing ones.
    public mutating func add(_ name: String, _ value: String) { fields.append((name: name, value: value)) }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
    public func hash(into h: inout Hasher) {
        for f in fields { h.combine(f.name); h.combine(f.value) }
    }

    /// Header names whose values are credentials; `description` masks them.
    package static let sensitiveNames: Set<String> = [
        "authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie", "set-cookie",
    ]

    /// The headers with credential values masked: safe to print.
    public var description: String {
        fields.map { f in
            HTTPHeaders.sensitiveNames.contains(f.name.lowercased()) ? "\(f.name): <redacted>" : "\(f.name): \(f.value)"
        }.joined(separator: "\n")
    }
}

/// A request body: bytes in memory, or a file streamed from disk (large uploads).
public enum HTTPBody: Sendable, Hashable {
    case data(Data)
    case file(URL)
}

/// One HTTP request.
public struct HTTPRequest: Sendable, CustomStringConvertible {
    public var method: String
    public var url: URL
    public var headers: HTTPHeaders
    public var body: HTTPBody?
    /// Time allowed for the whole exchange; `nil` uses the transport's default.
    public var timeout: Duration?
    /// When `true` the answer body is written to a temporary file (``HTTPResponse/bodyFile``)
    /// instead of memory: for large downloads such as batch results.
    public var downloadsToFile: Bool
    /// When `true` the request creates something that costs money or is kept (a batch job, an
    /// uploaded file), so a transport must never send it a second time on its own, not even on
    /// a fresh connection after a pooled one closed without an answer. That is what libcurl
    /// does for any method, and so URLSession does on Linux. After a lost answer the caller
    /// looks the job up instead of sending again. ``URLSessionTransport`` sends such a request
    /// on a connection of its own; ``PlainHTTPTransport`` never sends it twice.
    public var sendsOnce = false
    /// The longest the exchange may go without a byte sent or received before it fails as
    /// `URLError(.timedOut)`; `nil`: only ``timeout`` applies. For transfers whose whole-exchange
    /// deadline is long (file uploads and downloads get an hour): a peer that stalls or vanishes
    /// mid-transfer then fails the call after this, not at the end of the hour. Honoured by
    /// ``URLSessionTransport`` and ``PlainHTTPTransport``; the provider connections set it to
    /// their per-call timeout when a call asks for a longer one.
    package var idleTimeout: Duration?

    public init(
        method: String = "GET", url: URL, headers: HTTPHeaders = [:], body: HTTPBody? = nil, timeout: Duration? = nil,
        downloadsToFile: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.downloadsToFile = downloadsToFile
    }

    /// Method and URL with any `key=` query value masked; never the headers' secrets.
    public var description: String { "\(method) \(HTTPRequest.redactedURL(url))" }

    /// Whether `a` and `b` have the same scheme, host and port (default ports filled in): the
    /// test for whether a credential may follow a request from one URL to the other.
    package static func sameOrigin(_ a: URL, _ b: URL) -> Bool {
        func origin(_ u: URL) -> (String, String, Int) {
            let scheme = (u.scheme ?? "").lowercased()
            let port = u.port ?? (scheme == "https" ? 443 : scheme == "http" ? 80 : -1)
            return (scheme, (u.host ?? "").lowercased(), port)
        }
        return origin(a) == origin(b)
    }

    /// The URL with the values of `key` and `api-key` query items replaced by `<redacted>`.
    package static func redactedURL(_ url: URL) -> String {
        guard var c = URLComponents(url: url, resolvingAgainstBaseURL: false), let items = c.queryItems else {
            return url.absoluteString
        }
        c.queryItems = items.map { item in
            ["key", "api-key", "api_key"].contains(item.name.lowercased())
                ? URLQueryItem(name: item.name, value: "<redacted>") : item
        }
        return c.string ?? "<url>"
    }
}

/// One HTTP answer.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// The body, when it was kept in memory.
    public var body: Data
    /// The body, when the request asked for ``HTTPRequest/downloadsToFile``. The caller owns the
    /// file and should remove it when done.
    public var bodyFile: URL?

    public init(status: Int, headers: HTTPHeaders = [:], body: Data = Data(), bodyFile: URL? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyFile = bodyFile
    }

    /// Whether the status is 2xx.
    package var isSuccess: Bool { (200..<300).contains(status) }

    /// The whole body, reading the file if it was downloaded to one.
    package func bodyData() throws -> Data {
        if let bodyFile { return try Data(contentsOf: bodyFile) }
        return body
    }
}

/// An ``HTTPTransport`` backed by a closure: for tests and adapters.
package struct ClosureTransport: HTTPTransport {
    let handler: @Sendable (HTTPRequest) async throws -> HTTPResponse

    package init(_ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        self.handler = handler
    }

    package func send(_ request: HTTPRequest) async throws -> HTTPResponse { try await handler(request) }
}
