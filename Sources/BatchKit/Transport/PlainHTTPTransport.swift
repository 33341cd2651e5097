import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A lean HTTP/1.1 client: local model servers (vLLM, Ollama, llama.cpp, LM Studio), gateways
/// on a private network, the BatchKit emulator, and — on Linux, through the system's OpenSSL —
/// the providers' `https://` endpoints.
///
/// On Linux, URLSession (FoundationNetworking over libcurl) spends most of a millisecond of CPU
/// and about twenty thread switches on every request; with thousands of requests a second
/// against a local server that is the bottleneck, not the server. This transport keeps a pool
/// of keep-alive connections per host and runs them from one thread that waits on all of them
/// at once with `poll(2)`, which costs a few syscalls per request.
///
/// What it does itself, for `http://` and (on Linux) `https://` URLs:
/// - TLS with the system's `libssl.so.3`, loaded at run time (no build-time dependency):
///   certificate chain verified against the system store (plus `SSL_CERT_FILE`, `SSL_CERT_DIR`
///   and ``Configuration/tls`` roots), host name checked against the certificate's DNS and IP
///   names, SNI, TLS 1.2 or later, ALPN `http/1.1`; a TLS failure throws a non-retryable
///   ``BatchError`` with code ``BatchError/Code/tls`` that names the host and the reason;
/// - keep-alive connection pooling, at most ``Configuration/maximumConnectionsPerHost`` per
///   host (requests beyond wait for a free connection, in order);
/// - `Content-Length`, chunked and read-until-close answers; interim 1xx answers skipped;
/// - a deadline for the whole exchange, redirects included (``HTTPRequest/timeout``, else
///   ``Configuration/defaultTimeout``), thrown as `URLError(.timedOut)`;
/// - cancelling the calling task closes the connection and throws `CancellationError`;
/// - a request that meets a pooled connection the server had already closed is sent again on
///   a fresh one (only if not a byte of an answer had arrived);
/// - redirects (301, 302, 303, 307, 308) are followed, dropping the API key (key headers and
///   `key=` query items) when scheme, host or port change, like ``URLSessionTransport``;
/// - file uploads (``HTTPBody/file(_:)``) sent from the file mapped into memory, and downloads
///   (``HTTPRequest/downloadsToFile``) written to a temporary file as they arrive, a megabyte at a
///   time: a native batch job's 200 MB input or results file never sits in memory whole, and
///   with ``Configuration/tls`` roots native jobs reach a server behind a private CA too;
/// - failures are thrown as `URLError(code)` values whose description says what happened and
///   names the host and port, never the path or query (which may hold a key).
///
/// Everything else goes to the `fallback` transport (``URLSessionTransport`` unless given):
/// `https://` URLs when OpenSSL cannot be loaded (or ``Configuration/handlesHTTPS`` is off),
/// and — when the environment names a proxy (`http_proxy`/`HTTP_PROXY` for `http://`,
/// `https_proxy`/`HTTPS_PROXY` for `https://`) — every host that `no_proxy`/`NO_PROXY` does not
/// exempt, so proxied traffic behaves exactly as with URLSession (there is no CONNECT tunnel here). It never asks for compressed answers.
/// On platforms other than Linux every request goes to the fallback, where URLSession is
/// already efficient.
///
/// ```swift
/// // A local vLLM server, thousands of requests a second:
/// let client = OpenAIClient(
///     apiKey: "unused", baseURL: URL(string: "http://127.0.0.1:8000/v1")!, transport: PlainHTTPTransport())
/// ```
public struct PlainHTTPTransport: HTTPTransport {
    /// How the transport is set up.
    public struct Configuration: Sendable {
        /// Deadline for a whole exchange when the request has no ``HTTPRequest/timeout``.
        public var defaultTimeout: Duration
        /// Connections open at once to one host and port; requests beyond wait for one.
        public var maximumConnectionsPerHost: Int
        /// An unused pooled connection is closed after this long.
        public var idleConnectionTimeout: Duration
        /// Redirects followed for one request before `URLError(.httpTooManyRedirects)`.
        public var maximumRedirects: Int
        /// How `https://` servers are verified (trust roots, minimum version).
        public var tls: TLSConfiguration
        /// Whether `https://` is served here, through the system's OpenSSL (`libssl.so.3`, loaded
        /// at run time) on Linux. When `false`, or when OpenSSL cannot be loaded, `https://`
        /// goes to the fallback.
        public var handlesHTTPS: Bool
        /// Where downloads (``HTTPRequest/downloadsToFile``) are written: the temporary directory
        /// unless changed (tests).
        var downloadDirectory = FileManager.default.temporaryDirectory

        /// Creates a configuration.
        public init(
            defaultTimeout: Duration = .seconds(600), maximumConnectionsPerHost: Int = 512,
            idleConnectionTimeout: Duration = .seconds(60), maximumRedirects: Int = 10,
            tls: TLSConfiguration = .init(), handlesHTTPS: Bool = true
        ) {
            self.defaultTimeout = defaultTimeout
            self.maximumConnectionsPerHost = max(1, maximumConnectionsPerHost)
            self.idleConnectionTimeout = idleConnectionTimeout
            self.maximumRedirects = max(0, maximumRedirects)
            self.tls = tls
            self.handlesHTTPS = handlesHTTPS
        }
    }

    /// The configuration the transport was created with.
    package var configuration: Configuration { core.configuration }
    private let core: PlainHTTPCore

    /// Creates a transport. `fallback` carries what this transport does not handle itself
    /// (proxied hosts, and `https://` without OpenSSL); by default a ``URLSessionTransport`` made on
    /// first use with the same default timeout.
    public init(configuration: Configuration = .init(), fallback: (any HTTPTransport)? = nil) {
        self.init(configuration: configuration, fallback: fallback, environment: ProcessInfo.processInfo.environment)
    }

    /// A transport reading proxy settings from `environment` instead of the process's (tests).
    init(configuration: Configuration = .init(), fallback: (any HTTPTransport)? = nil, environment: [String: String]) {
        core = PlainHTTPCore(configuration: configuration, fallback: fallback, proxy: ProxyEnvironment(environment))
    }

    /// Sends one request; see the type's documentation for what is handled here and what goes
    /// to the fallback.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let timeout = request.timeout ?? core.configuration.defaultTimeout
        let deadline = ContinuousClock.now + timeout
        var request = request
        var hops = 0
        while true {
            let secure = request.url.scheme?.lowercased() == "https"
            guard Self.handlesDirectly(request, https: core.servesHTTPS),
                !core.proxy.proxies(request.url.host ?? "", secure: secure)
            else {
                if secure && core.configuration.tls.hasCustomTrust {
                    // URLSession cannot take custom roots on Linux: say so rather than ignore them.
                    throw TLSFailure.handshake(
                        "custom trust roots apply only to requests this transport sends itself, and this one would go to "
                            + "URLSession (an HTTPS proxy, or no libssl.so.3), which cannot use them"
                    ).error(host: TLSFailure.label(for: request.url))
                }
                request.timeout = max(.milliseconds(1), deadline - ContinuousClock.now)
                return try await core.fallback.send(request)
            }
            let response: HTTPResponse
            do {
                response = try await core.exchange(request, deadline: deadline)
            } catch let e as URLError {
                throw e.naming(request.url)
            }
            guard let next = Self.redirect(request, response) else { return response }
            if let file = response.bodyFile { try? FileManager.default.removeItem(at: file) }
            hops += 1
            guard hops <= core.configuration.maximumRedirects else { throw URLError(.httpTooManyRedirects) }
            request = next
        }
    }

    #if canImport(Glibc)
    /// Makes `host:port` resolve to the numeric addresses `literals`, in order (tests).
    func pin(host: String, port: Int, to literals: [String]) throws {
        try core.resolver.pin(PlainHTTPEndpoint(host: host, port: port), to: literals)
    }
    #endif

    /// Whether this transport sends `request` itself rather than through the fallback (`https`:
    /// whether it speaks TLS itself).
    static func handlesDirectly(_ request: HTTPRequest, https: Bool = false) -> Bool {
        #if canImport(Glibc)
        let scheme = request.url.scheme?.lowercased()
        return scheme == "http" || (https && scheme == "https")
        #else
        return false
        #endif
    }

    /// The request that follows a redirect answer, or `nil` when `response` is not one to follow.
    static func redirect(_ request: HTTPRequest, _ response: HTTPResponse) -> HTTPRequest? {
        guard [301, 302, 303, 307, 308].contains(response.status), let location = response.headers["location"],
            let target = URL(string: location, relativeTo: request.url)?.absoluteURL,
            let scheme = target.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return nil }
        var next = request
        next.url = target
        let method = request.method.uppercased()
        if (response.status == 303 && method != "HEAD") || ([301, 302].contains(response.status) && method == "POST") {
            next.method = "GET"
            next.body = nil
            next.headers["Content-Type"] = nil
        }
        if !HTTPRequest.sameOrigin(request.url, target) {
            for name in URLSessionTransport.credentialHeaders { next.headers[name] = nil }
            next.url = URLSessionTransport.strippingKeyQueryItems(target)
        }
        return next
    }

    /// The bytes of `request` on the wire: request line, headers (with `Host`, `Content-Length`,
    /// `User-Agent` and `Accept` added when missing), body. A header with a line break or a
    /// method that is not a token is refused before anything is sent.
    /// With `fileBody` (the mapped file of an ``HTTPBody/file(_:)`` body) the bytes end with the
    /// headers, whose `Content-Length` is the file's size: the file follows them on the wire.
    static func encode(_ request: HTTPRequest, fileBody: Data? = nil) throws -> [UInt8] {
        guard let components = URLComponents(url: request.url, resolvingAgainstBaseURL: true), let host = components.host,
            !host.isEmpty
        else { throw URLError(.badURL) }
        let method = request.method
        guard !method.isEmpty, method.utf8.allSatisfy(isTokenByte) else {
            throw BatchError.validation("the HTTP method is not a token", field: "method")
        }
        var target = components.percentEncodedPath
        if target.isEmpty { target = "/" }
        if let query = components.percentEncodedQuery { target += "?" + query }
        guard !target.utf8.contains(where: { $0 <= 32 || $0 == 127 }) else { throw URLError(.badURL) }

        var head = "\(method) \(target) HTTP/1.1\r\n"
        if request.headers["host"] == nil {
            let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
            head += components.port.map { "Host: \(bracketed):\($0)\r\n" } ?? "Host: \(bracketed)\r\n"
        }
        for field in request.headers {
            guard !field.name.isEmpty, field.name.utf8.allSatisfy(isTokenByte) else {
                throw BatchError.validation("a header name is not a token", field: "headers")
            }
            guard !field.value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                throw BatchError.validation("the value of header \(field.name) contains a line break", field: "headers.\(field.name)")
            }
            let lower = field.name.lowercased()
            if lower == "content-length" || lower == "transfer-encoding" { continue }
            head += "\(field.name): \(field.value)\r\n"
        }
        if request.headers["user-agent"] == nil { head += "User-Agent: BatchKit\r\n" }
        if request.headers["accept"] == nil { head += "Accept: */*\r\n" }
        var bodyBytes: Data?
        if case .data(let data) = request.body { bodyBytes = data }
        if let fileBody {
            head += "Content-Length: \(fileBody.count)\r\n"
        } else if let bodyBytes {
            head += "Content-Length: \(bodyBytes.count)\r\n"
        } else if ["POST", "PUT", "PATCH"].contains(method.uppercased()) {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        var bytes = [UInt8]()
        bytes.reserveCapacity(head.utf8.count + (bodyBytes?.count ?? 0))
        bytes.append(contentsOf: head.utf8)
        if let bodyBytes { bytes.append(contentsOf: bodyBytes) }
        return bytes
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// Owns the event loop and the fallback; stops the loop when the last transport copy goes.
final class PlainHTTPCore: Sendable {
    let configuration: PlainHTTPTransport.Configuration
    let proxy: ProxyEnvironment
    private let givenFallback: (any HTTPTransport)?
    private let madeFallback = Mutex<URLSessionTransport?>(nil)
    #if canImport(Glibc)
    private let loop: PlainHTTPEventLoop
    let resolver = PlainHTTPResolver()
    private let nextID = Atomic<UInt64>(0)
    private let tlsContext = Mutex<TLSContext?>(nil)
    #endif

    /// Whether `https://` is served here (configured so, and OpenSSL loaded).
    var servesHTTPS: Bool {
        #if canImport(Glibc)
        return configuration.handlesHTTPS && OpenSSLLibrary.shared != nil
        #else
        return false
        #endif
    }

    init(configuration: PlainHTTPTransport.Configuration, fallback: (any HTTPTransport)?, proxy: ProxyEnvironment) {
        self.configuration = configuration
        self.proxy = proxy
        self.givenFallback = fallback
        #if canImport(Glibc)
        loop = PlainHTTPEventLoop(configuration: configuration)
        #endif
    }

    deinit {
        #if canImport(Glibc)
        loop.stop()
        #endif
    }

    var fallback: any HTTPTransport {
        if let givenFallback { return givenFallback }
        return madeFallback.withLock { made in
            if let made { return made }
            let transport = URLSessionTransport(configuration: .init(defaultTimeout: configuration.defaultTimeout))
            made = transport
            return transport
        }
    }

    /// One request and its answer on a pooled connection (no redirects).
    func exchange(_ request: HTTPRequest, deadline: ContinuousClock.Instant) async throws -> HTTPResponse {
        #if canImport(Glibc)
        var fileBody: Data?
        if case .file(let url) = request.body { fileBody = try Self.mapped(url) }
        let bytes = try PlainHTTPTransport.encode(request, fileBody: fileBody)
        let secure = request.url.scheme?.lowercased() == "https"
        let port = request.url.port ?? (secure ? 443 : 80)
        guard let host = request.url.host, (1...65535).contains(port) else { throw URLError(.badURL) }
        let endpoint = PlainHTTPEndpoint(host: host, port: port, secure: secure)
        let tls = secure ? try clientTLSContext() : nil
        let addresses = try await resolver.addresses(for: endpoint)
        try Task.checkCancellation()
        let id = nextID.add(1, ordering: .relaxed).newValue
        let token = PlainHTTPJob.Token()
        let isHEAD = request.method.uppercased() == "HEAD"
        let mayResend =
            !request.sendsOnce
            && (["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"].contains(request.method.uppercased())
                || request.headers["Idempotency-Key"] != nil)
        let download = request.downloadsToFile ? try Self.createDownloadFile(in: configuration.downloadDirectory) : nil
        // The loop writes to the download file only until the job ends, which happens before the
        // continuation resumes: closing it after the await is safe.
        defer { if let download { Glibc.close(download.fd) } }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                    loop.submit(
                        .start(
                            PlainHTTPJob(
                                id: id, endpoint: endpoint, addresses: addresses, bytes: bytes, fileBody: fileBody,
                                download: download, isHEAD: isHEAD, deadline: deadline, token: token,
                                continuation: continuation, mayResend: mayResend, tls: tls, idleTimeout: request.idleTimeout)))
                }
            } onCancel: {
                token.cancelled.store(true, ordering: .sequentiallyConsistent)
                loop.submit(.cancel(id))
            }
        } catch {
            if let download { try? FileManager.default.removeItem(at: download.url) }
            throw error
        }
        #else
        return try await fallback.send(request)
        #endif
    }

    #if canImport(Glibc)
    /// The file of an upload, mapped into memory (read from the page cache as it is sent, never
    /// copied whole into the process).
    static func mapped(_ url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw URLError(FileManager.default.fileExists(atPath: url.path) ? .cannotOpenFile : .fileDoesNotExist)
        }
    }

    /// A new, empty file (readable by the owner only) for a download's body.
    static func createDownloadFile(in directory: URL) throws -> PlainHTTPDownload {
        let url = directory.appendingPathComponent("batchkit-download-\(UUID().uuidString)")
        let fd = Glibc.open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw URLError(.cannotCreateFile) }
        return PlainHTTPDownload(fd: fd, url: url)
    }

    /// The client context, made on first use from ``PlainHTTPTransport/Configuration/tls``.
    private func clientTLSContext() throws -> TLSContext {
        try tlsContext.withLock { made in
            if let made { return made }
            guard let library = OpenSSLLibrary.shared else { throw URLError(.secureConnectionFailed) }
            let context = try TLSContext(client: configuration.tls, library: library)
            made = context
            return context
        }
    }
    #endif
}

extension URLSessionTransport {
    /// `url` without `key`, `api-key` or `api_key` query items.
    static func strippingKeyQueryItems(_ url: URL) -> URL {
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: false), let items = components.queryItems,
            items.contains(where: { isKeyQueryItem($0.name) })
        else { return url }
        let kept = items.filter { !isKeyQueryItem($0.name) }
        components.queryItems = kept.isEmpty ? nil : kept
        return components.url ?? url
    }
}

/// The proxy settings of the environment, read the way curl (and so URLSession on Linux) reads
/// them: `http_proxy` (or `HTTP_PROXY`) names the proxy for `http://` URLs, `https_proxy` (or
/// `HTTPS_PROXY`) the one for `https://` URLs; `no_proxy` (or `NO_PROXY`) lists hosts and domain
/// suffixes reached directly, `*` meaning all.
struct ProxyEnvironment: Sendable {
    var proxy: String?
    var httpsProxy: String?
    var exempt: [String]

    init(_ environment: [String: String]) {
        let proxy = environment["http_proxy"] ?? environment["HTTP_PROXY"]
        self.proxy = proxy?.isEmpty == false ? proxy : nil
        let httpsProxy = environment["https_proxy"] ?? environment["HTTPS_PROXY"]
        self.httpsProxy = httpsProxy?.isEmpty == false ? httpsProxy : nil
        exempt = (environment["no_proxy"] ?? environment["NO_PROXY"] ?? "")
            .split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty }
    }

    /// Whether requests to `host` (over TLS when `secure`) must go through a proxy.
    func proxies(_ host: String, secure: Bool = false) -> Bool {
        guard (secure ? httpsProxy : proxy) != nil else { return false }
        var name = host.lowercased()
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        for entry in exempt {
            if entry == "*" { return false }
            var domain = entry.hasPrefix(".") ? String(entry.dropFirst()) : entry
            if domain.hasPrefix("[") && domain.hasSuffix("]") { domain = String(domain.dropFirst().dropLast()) }
            if name == domain || name.hasSuffix("." + domain) { return false }
        }
        return true
    }
}
