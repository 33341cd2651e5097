import Dispatch
public import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The default ``HTTPTransport``: URLSession (FoundationNetworking on Linux).
///
/// - Each request gets a deadline for the whole exchange (``HTTPRequest/timeout``, else
///   ``Configuration/defaultTimeout``); when it passes the task is cancelled and
///   `URLError(.timedOut)` is thrown.
/// - Cancelling the calling Swift task cancels the URLSession task and throws `CancellationError`.
/// - A request marked ``HTTPRequest/sendsOnce``, and every `.file` body, goes on a session of its
///   own, so libcurl never sends it again after a pooled connection closed unanswered.
/// - `.file` bodies are streamed from disk (`uploadTask(with:fromFile:)`); requests with
///   ``HTTPRequest/downloadsToFile`` are downloaded to a temporary file that the caller owns.
/// - A redirect to another scheme, host or port drops the API key: `Authorization`, `x-api-key`,
///   `api-key`, `x-goog-api-key` and any `key=` query item.
/// - Failures are thrown as `URLError(code)` values naming the host (and port) but never the URL
///   (see `URLError.readableMessage`), so no key in a query can
///   leak through an error; ``BatchError/init(wrapping:)`` maps them.
///
/// ```swift
/// let transport = URLSessionTransport(configuration: .init(defaultTimeout: .seconds(120)))
/// let response = try await transport.send(HTTPRequest(method: "GET", url: url))
/// ```
public struct URLSessionTransport: HTTPTransport {
    /// How the transport's session is set up.
    public struct Configuration: Sendable {
        /// Deadline for a whole exchange when the request has no ``HTTPRequest/timeout``.
        public var defaultTimeout: Duration
        /// Connection pool size per host (high, for many concurrent requests).
        public var maximumConnectionsPerHost: Int
        /// Where downloads (``HTTPRequest/downloadsToFile``) are written.
        public var downloadDirectory: URL

        /// Creates a configuration.
        public init(
            defaultTimeout: Duration = .seconds(600), maximumConnectionsPerHost: Int = 512,
            downloadDirectory: URL = FileManager.default.temporaryDirectory
        ) {
            self.defaultTimeout = defaultTimeout
            self.maximumConnectionsPerHost = maximumConnectionsPerHost
            self.downloadDirectory = downloadDirectory
        }
    }

    /// The configuration the transport was created with.
    package let configuration: Configuration
    private let owner: SessionOwner

    /// Creates a transport with its own `URLSession` (ephemeral: no cookies, no cache).
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.owner = SessionOwner(configuration: configuration)
    }

    /// Sends one request; see the type's documentation for timeouts, cancellation and errors.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try Task.checkCancellation()
        // libcurl sends a request again, on a fresh connection, when the pooled connection it
        // used closed before any answer: for a POST too, and with an empty body when the body
        // comes from a file. A request that must go once, and every file body, gets a session
        // of its own, whose first connection is never a pooled one.
        var isFile = false
        if case .file = request.body { isFile = true }
        let owner = request.sendsOnce || isFile ? SessionOwner(configuration: configuration) : self.owner
        defer { withExtendedLifetime(owner) {} }
        let session = owner.session
        var urlRequest = URLRequest(url: request.url)
        urlRequest.httpMethod = request.method
        for field in request.headers { urlRequest.addValue(field.value, forHTTPHeaderField: field.name) }
        let timeout = request.timeout ?? configuration.defaultTimeout
        urlRequest.timeoutInterval = max(0.001, timeout.timeInterval)
        let task: URLSessionTask
        switch (request.body, request.downloadsToFile) {
        case (.none, false):
            task = session.dataTask(with: urlRequest)
        case (.data(let data), false):
            urlRequest.httpBody = data
            task = session.dataTask(with: urlRequest)
        case (.file(let file), false):
            task = session.uploadTask(with: urlRequest, fromFile: file)
        case (.none, true):
            task = session.downloadTask(with: urlRequest)
        case (.data(let data), true):
            urlRequest.httpBody = data
            task = session.downloadTask(with: urlRequest)
        case (.file(let file), true):
            guard let stream = InputStream(url: file) else { throw URLError(.fileDoesNotExist) }
            if urlRequest.value(forHTTPHeaderField: "Content-Length") == nil,
                let size = try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int
            {
                urlRequest.setValue(String(size), forHTTPHeaderField: "Content-Length")
            }
            urlRequest.httpBodyStream = stream
            task = session.downloadTask(with: urlRequest)
        }
        let exchange = Exchange(
            task: task, deadline: .now + timeout, idleTimeout: request.idleTimeout,
            downloadDirectory: configuration.downloadDirectory)
        owner.delegate.register(exchange, for: task.taskIdentifier)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                exchange.start(continuation)
            }
        } onCancel: {
            exchange.cancel()
        }
    }
}

// MARK: - Session and delegate

/// Owns the session; invalidates it (releasing its delegate) when the last transport copy goes.
private final class SessionOwner: Sendable {
    let session: URLSession
    let delegate: SessionDelegate

    init(configuration: URLSessionTransport.Configuration) {
        let config = URLSessionConfiguration.ephemeral
        config.httpMaximumConnectionsPerHost = configuration.maximumConnectionsPerHost
        config.httpCookieStorage = nil
        config.httpShouldSetCookies = false
        // `.never` also skips FoundationNetworking's per-header-line cookie parsing.
        config.httpCookieAcceptPolicy = .never
        config.urlCache = nil
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        // Our own deadline governs; these only must not fire first.
        config.timeoutIntervalForRequest = max(60, configuration.defaultTimeout.timeInterval)
        config.timeoutIntervalForResource = 7 * 24 * 3600
        delegate = SessionDelegate()
        let queue = OperationQueue()
        queue.name = "BatchKit.URLSessionTransport"
        queue.maxConcurrentOperationCount = 1
        session = URLSession(configuration: config, delegate: delegate, delegateQueue: queue)
    }

    deinit { session.finishTasksAndInvalidate() }
}

/// The session's delegate: routes task callbacks to their ``Exchange``, guards redirects, and
/// enforces deadlines. `Sendable`: its one stored property is a `Mutex`.
///
/// Deadlines use one timer per session, not one per request: while requests are in flight it
/// ticks every ``tick`` and times out the exchanges past their deadline (so a deadline is met
/// within one tick); with nothing in flight it is disarmed.
private final class SessionDelegate: NSObject, URLSessionDataDelegate, URLSessionDownloadDelegate, Sendable {
    static let tick = DispatchTimeInterval.milliseconds(20)

    private struct Registry {
        var exchanges: [Int: Exchange] = [:]
        /// Created, armed, disarmed and cancelled under the lock only.
        var timer: (any DispatchSourceTimer)?
        var armed = false
    }

    private let registry = Mutex(Registry())

    override init() {
        super.init()
        registry.withLock { r in
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.setEventHandler { [weak self] in self?.sweep() }
            timer.schedule(deadline: .distantFuture, repeating: .never)
            timer.resume()
            r.timer = timer
        }
    }

    deinit { registry.withLock { $0.timer?.cancel() } }

    func register(_ exchange: Exchange, for id: Int) {
        registry.withLock { r in
            r.exchanges[id] = exchange
            if !r.armed {
                r.armed = true
                r.timer?.schedule(deadline: .now() + Self.tick, repeating: Self.tick)
            }
        }
    }

    /// Times out every exchange past its deadline; disarms the timer when none is in flight.
    private func sweep() {
        let now = ContinuousClock.now
        let expired = registry.withLock { r -> [Exchange] in
            if r.exchanges.isEmpty {
                r.armed = false
                r.timer?.schedule(deadline: .distantFuture, repeating: .never)
                return []
            }
            return r.exchanges.values.filter { $0.deadline <= now || $0.isIdle(at: now) }
        }
        for exchange in expired { exchange.timeOut() }
    }

    private func exchange(_ task: URLSessionTask) -> Exchange? { registry.withLock { $0.exchanges[task.taskIdentifier] } }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        exchange(dataTask)?.append(data)
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        exchange(dataTask)?.moved()
        completionHandler(.allow)
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, didSendBodyData bytesSent: Int64, totalBytesSent: Int64,
        totalBytesExpectedToSend: Int64
    ) {
        exchange(task)?.moved()
    }

    func urlSession(
        _ session: URLSession, downloadTask: URLSessionDownloadTask, didWriteData bytesWritten: Int64, totalBytesWritten: Int64,
        totalBytesExpectedToWrite: Int64
    ) {
        exchange(downloadTask)?.moved()
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {
        // The file is deleted when this returns: move it somewhere the caller owns.
        exchange(downloadTask)?.takeDownload(at: location)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let exchange = registry.withLock { $0.exchanges.removeValue(forKey: task.taskIdentifier) }
        exchange?.complete(response: task.response as? HTTPURLResponse, error: error)
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(URLSessionTransport.redirectRequest(request, from: response.url ?? task.currentRequest?.url))
    }
}

extension URLSessionTransport {
    /// Header fields that carry an API key.
    static let credentialHeaders = ["Authorization", "x-api-key", "api-key", "x-goog-api-key"]

    /// The request to follow a redirect with: unchanged within one origin, stripped of every
    /// credential (key headers and `key=` query items) when scheme, host or port change.
    static func redirectRequest(_ request: URLRequest, from: URL?) -> URLRequest {
        guard let to = request.url, let from, !HTTPRequest.sameOrigin(from, to) else { return request }
        var stripped = request
        for name in credentialHeaders { stripped.setValue(nil, forHTTPHeaderField: name) }
        stripped.url = strippingKeyQueryItems(to)
        return stripped
    }

    static func isKeyQueryItem(_ name: String) -> Bool {
        ["key", "api-key", "api_key"].contains(name.lowercased())
    }
}

// MARK: - One exchange

/// The state of one request: a small state machine behind a `Mutex`. The continuation is
/// resumed exactly once, always outside the lock.
private final class Exchange: Sendable {
    private enum Phase {
        case created
        case running(CheckedContinuation<HTTPResponse, any Error>)
        case finished
    }

    private struct State {
        var phase = Phase.created
        var cancelled = false
        var timedOut = false
        var body = Data()
        var file: URL?
        var fileFailed = false
        /// When a byte last moved either way (or the exchange started).
        var lastActivity = ContinuousClock.now
    }

    private let task: URLSessionTask
    /// When the whole exchange must have finished.
    let deadline: ContinuousClock.Instant
    /// How long the exchange may go without a byte moving (``HTTPRequest/idleTimeout``).
    private let idleTimeout: Duration?
    private let downloadDirectory: URL
    private let state = Mutex(State())

    init(task: URLSessionTask, deadline: ContinuousClock.Instant, idleTimeout: Duration?, downloadDirectory: URL) {
        self.task = task
        self.deadline = deadline
        self.idleTimeout = idleTimeout
        self.downloadDirectory = downloadDirectory
    }

    /// Whether nothing moved for the idle timeout (never without one).
    func isIdle(at now: ContinuousClock.Instant) -> Bool {
        guard let idleTimeout else { return false }
        return state.withLock { now - $0.lastActivity >= idleTimeout }
    }

    /// Bytes moved (an answer head, body bytes, upload progress): the idle clock restarts.
    func moved() {
        guard idleTimeout != nil else { return }
        state.withLock { $0.lastActivity = .now }
    }

    func start(_ continuation: CheckedContinuation<HTTPResponse, any Error>) {
        let early = state.withLock { s -> (any Error)? in
            if s.cancelled || s.timedOut {
                s.phase = .finished
                return s.timedOut ? URLError(.timedOut) : CancellationError()
            }
            s.phase = .running(continuation)
            s.lastActivity = .now
            return nil
        }
        if let early {
            continuation.resume(throwing: early)
            return
        }
        task.resume()
    }

    func cancel() {
        let running = state.withLock { s -> Bool in
            s.cancelled = true
            if case .running = s.phase { return true }
            return false
        }
        if running { task.cancel() }
    }

    /// Called by the session's sweep once the deadline has passed.
    func timeOut() {
        let running = state.withLock { s -> Bool in
            guard !s.timedOut else { return false }
            s.timedOut = true
            if case .running = s.phase { return true }
            return false
        }
        if running { task.cancel() }
    }

    func append(_ data: Data) {
        state.withLock {
            $0.body.append(data)
            $0.lastActivity = .now
        }
    }

    func takeDownload(at location: URL) {
        let destination = downloadDirectory.appendingPathComponent("batchkit-download-\(UUID().uuidString)")
        do {
            try FileManager.default.moveItem(at: location, to: destination)
            state.withLock { $0.file = destination }
        } catch {
            do {
                try FileManager.default.copyItem(at: location, to: destination)
                state.withLock { $0.file = destination }
            } catch {
                state.withLock { $0.fileFailed = true }
            }
        }
    }

    func complete(response: HTTPURLResponse?, error: (any Error)?) {
        let (continuation, result, leftover) = state.withLock {
            s -> (CheckedContinuation<HTTPResponse, any Error>?, Result<HTTPResponse, any Error>, URL?) in
            guard case .running(let continuation) = s.phase else { return (nil, .failure(CancellationError()), s.file) }
            s.phase = .finished
            let body = s.body
            s.body = Data()
            let result: Result<HTTPResponse, any Error>
            if s.timedOut {
                result = .failure(URLError.naming(.timedOut, url: task.originalRequest?.url))
            } else if s.cancelled {
                result = .failure(CancellationError())
            } else if let error {
                // A TLS failure becomes a readable, non-retryable `.tls` error naming the host.
                result = .failure(
                    TLSFailure.fromURLSession(error, url: task.originalRequest?.url)
                        ?? Self.sanitized(error, url: task.originalRequest?.url))
            } else if let response {
                if s.fileFailed {
                    result = .failure(URLError(.cannotMoveFile))
                } else {
                    result = .success(
                        HTTPResponse(
                            status: response.statusCode, headers: Self.headers(of: response), body: body, bodyFile: s.file))
                    s.file = nil
                }
            } else {
                result = .failure(URLError(.badServerResponse))
            }
            let leftover = s.file
            s.file = nil
            return (continuation, result, leftover)
        }
        if let leftover { try? FileManager.default.removeItem(at: leftover) }
        continuation?.resume(with: result)
    }

    /// A `URLError` with its code and the host of `url` only: URLSession's user info may hold the
    /// request URL, whose query may hold a key.
    private static func sanitized(_ error: any Error, url: URL?) -> any Error {
        if let urlError = error as? URLError { return URLError.naming(urlError.code, url: url) }
        let ns = error as NSError
        if ns.domain == NSURLErrorDomain { return URLError.naming(URLError.Code(rawValue: ns.code) ?? .unknown, url: url) }
        return URLError.naming(.unknown, url: url)
    }

    private static func headers(of response: HTTPURLResponse) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (name, value) in response.allHeaderFields {
            headers.add(String(describing: name), String(describing: value))
        }
        return headers
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    fileprivate var timeInterval: TimeInterval {
        let c = components
        return TimeInterval(c.seconds) + TimeInterval(c.attoseconds) / 1e18
    }
}
