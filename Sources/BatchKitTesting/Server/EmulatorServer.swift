#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import BatchKit
import Dispatch
public import Foundation
import Synchronization

/// A loopback HTTP/1.1 server in front of a ``ProviderEmulator`` (or any handler), with no
/// dependencies: POSIX sockets and one thread per open connection.
///
/// ```swift
/// let emulator = ProviderEmulator()
/// let server = try await EmulatorServer.start(emulator: emulator)
/// let client = OpenAIClient(apiKey: "sk-test", baseURL: server.baseURL.appendingPathComponent("v1"))
/// ...
/// await server.shutdown()
/// ```
///
/// It supports keep-alive, `Content-Length` and chunked request bodies of any size (read straight
/// into one buffer), `Expect: 100-continue`, and applies the emulator's wire faults: a reset
/// closes the socket with a TCP RST, a truncated body is cut after its `Content-Length` header
/// promised more, a slow body is dribbled out. Call ``shutdown()`` when done: it closes the
/// listener and every connection, cancels requests in flight and returns once every server
/// thread has ended.
public final class EmulatorServer: Sendable {
    /// Answers one request: the server calls it once per request, concurrently.
    public typealias Handler = @Sendable (EmulatorRequest) async -> EmulatorResponse

    /// The address the server listens on (`127.0.0.1`).
    public let host: String
    /// The bound TCP port (the ephemeral one chosen by the system when started with port 0).
    public let port: Int
    let handler: Handler
    /// The listener, the accept loop and the server threads.
    private let threads: ServerThreads
    /// Where handlers run: threads of the server's own, so answers never wait for the shared
    /// concurrency pool (see ``ThreadTaskExecutor``).
    private let executor = ThreadTaskExecutor(name: "emulator-handlers")
    /// Connection bookkeeping, touched when connections open and close and at shutdown, never
    /// per request (64 connection threads contending for one lock cost more than the requests).
    let state = Mutex(State())
    let served = Atomic<Int>(0)

    struct State {
        var nextID: UInt64 = 0
        var connections: [UInt64: ConnectionControl] = [:]
        var connectionsAccepted = 0
    }

    /// `http://HOST:PORT` (for a wildcard host, `http://127.0.0.1:PORT`).
    public var baseURL: URL {
        let visible = host == "0.0.0.0" ? "127.0.0.1" : host
        return URL(string: "http://\(visible):\(port)")!
    }

    /// Connections currently open.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Connections accepted since the start.
    public var connectionsAccepted: Int { state.withLock { $0.connectionsAccepted } }

    /// Requests answered so far (faulted answers included). An answer is counted before it is
    /// written, so once a client has read it, it is in this count.
    public var requestsServed: Int { served.load(ordering: .relaxed) }

    private init(host: String, threads: ServerThreads, handler: @escaping Handler) {
        self.host = host
        self.port = threads.port
        self.threads = threads
        self.handler = handler
    }

    /// Starts serving `emulator` on `host:port` (port 0: an ephemeral port) and points the
    /// emulator's `publicBaseURL` at the server, so URLs it hands out (Anthropic `results_url`,
    /// Gemini upload URLs) lead back here.
    public static func start(emulator: ProviderEmulator, host: String = "127.0.0.1", port: Int = 0) async throws
        -> EmulatorServer
    {
        let server = try await start(host: host, port: port) { await emulator.handle($0) }
        let base = server.baseURL
        emulator.update { $0.publicBaseURL = base }
        return server
    }

    /// Starts serving an arbitrary handler: for tests of HTTP clients (redirects, stalls...).
    public static func start(host: String = "127.0.0.1", port: Int = 0, handler: @escaping Handler) async throws
        -> EmulatorServer
    {
        let server = EmulatorServer(host: host, threads: try ServerThreads(host: host, port: port), handler: handler)
        server.threads.spawn(name: "emulator-accept") { server.acceptLoop() }
        return server
    }

    /// Stops the server: closes the listener and every connection, cancels the requests in
    /// flight, and returns when every server thread has ended. Calling it again just waits.
    public func shutdown() async {
        let first = state.withLock { s -> Bool in
            let first = threads.beginClosing()
            // Wake the connection threads while their descriptors are still registered (a
            // thread unregisters before it closes, so these descriptors cannot be reused yet),
            // and cancel the requests in flight.
            for connection in s.connections.values { connection.stop() }
            return first
        }
        if first { threads.wake() }
        await threads.drained()
        executor.shutdown()
    }

    // MARK: - Threads

    /// Admits each accepted connection (blocking: connection threads read and write directly)
    /// and serves it on its own thread.
    private func acceptLoop() {
        threads.acceptLoop(nonBlocking: false) { fd in
            let control = ConnectionControl(fd: fd)
            let id = state.withLock { s -> UInt64? in
                guard !threads.isClosing else { return nil }
                s.nextID += 1
                s.connectionsAccepted += 1
                s.connections[s.nextID] = control
                return s.nextID
            }
            guard let id else { return false }
            threads.spawn(name: "emulator-conn") { [self] in serve(connection: id, control: control) }
            return true
        }
    }

    // MARK: - One connection

    /// How a connection ends.
    private enum Ending {
        case keepOpen
        case close
        case reset
    }

    private func serve(connection id: UInt64, control: ConnectionControl) {
        let fd = control.fd
        let reader = HTTPRequestReader(fd: fd)
        var ending = Ending.close
        defer {
            state.withLock { _ = $0.connections.removeValue(forKey: id) }
            if ending == .reset { Socket.setAbortiveClose(fd) }
            _ = close(fd)
        }
        while true {
            let head: HTTPRequestHead
            let body: Data
            do {
                guard let h = try reader.readHead() else { return }
                head = h
                let framing = head.framing
                if framing != .none && head.expectsContinue {
                    guard Socket.sendAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return }
                }
                switch framing {
                case .none: body = Data()
                case .length(let n): body = try reader.readBody(length: n)
                case .chunked: body = try reader.readChunkedBody()
                }
            } catch {
                if error != .connectionLost { writeError(fd, status: error.status) }
                return
            }
            let (path, query) = head.pathAndQuery()
            let request = EmulatorRequest(
                method: head.method.uppercased(), path: path, query: query, headers: head.headers, body: body)
            guard let response = answer(request, control: control) else { return }
            // Counted before the answer is written: a client that has read an answer must see
            // it counted (counting after the write raced with the client's next look).
            served.add(1, ordering: .relaxed)
            ending = writeAnswer(response, fd: fd, head: head)
            if ending != .keepOpen { return }
        }
    }

    /// Runs the handler on the server's own executor threads (not the shared concurrency pool,
    /// see ``ThreadTaskExecutor``) and blocks this (server-owned) thread until it answers. `nil`
    /// when the server is shutting down.
    private func answer(_ request: EmulatorRequest, control: ConnectionControl) -> EmulatorResponse? {
        let slot = AnswerSlot()
        let handler = self.handler
        let task = Task(executorPreference: executor) {
            slot.fulfil(await handler(request))
        }
        let registered = control.begin(task)
        let response = slot.wait()
        control.end()
        return registered ? response : nil
    }

    private func writeError(_ fd: Int32, status: Int) {
        let head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        Socket.sendAll(fd, Array(head.utf8))
    }

    /// Writes an answer, applying its wire fault. Returns how the connection continues.
    private func writeAnswer(_ response: EmulatorResponse, fd: Int32, head: HTTPRequestHead) -> Ending {
        if response.fault == .resetConnection { return .reset }
        let keepAlive = head.keepAlive && !threads.closing.load(ordering: .relaxed)
        let body = head.method == "HEAD" ? Data() : response.body
        var text = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        for field in response.headers {
            switch field.name.lowercased() {
            case "content-length", "transfer-encoding", "connection": continue
            default: text += "\(field.name): \(field.value)\r\n"
            }
        }
        text += "Content-Length: \(response.body.count)\r\n"
        // HTTP/1.1 keeps connections open by default; every header line costs URLSession clients
        // a timer reset, so `Connection` is only sent when it says something.
        if !keepAlive {
            text += "Connection: close\r\n"
        } else if !head.isHTTP11 {
            text += "Connection: keep-alive\r\n"
        }
        text += "\r\n"
        var headBytes = Array(text.utf8)
        switch response.fault {
        case .truncateBody(let bytes):
            headBytes += body.prefix(max(0, bytes))
            Socket.sendAll(fd, headBytes)
            return .close
        case .slowBody(let duration):
            guard Socket.sendAll(fd, headBytes) else { return .close }
            return dribble(body, over: duration, fd: fd) && keepAlive ? .keepOpen : .close
        default:
            let sent: Bool
            if body.count <= 64 * 1024 {
                headBytes += body
                sent = Socket.sendAll(fd, headBytes)
            } else {
                sent = Socket.sendAll(fd, headBytes) && Socket.sendAll(fd, body)
            }
            return sent && keepAlive ? .keepOpen : .close
        }
    }

    /// Sends `body` in up to 20 pieces spread evenly over `duration` (real time, cut short by shutdown).
    private func dribble(_ body: Data, over duration: Duration, fd: Int32) -> Bool {
        let pieces = max(1, min(20, body.count))
        let pause = duration / pieces
        let size = (body.count + pieces - 1) / max(1, pieces)
        var offset = body.startIndex
        while offset < body.endIndex {
            let next = min(body.endIndex, offset + size)
            guard Socket.sendAll(fd, body[offset..<next]) else { return false }
            offset = next
            if offset < body.endIndex && !pauseUnlessClosing(pause) { return false }
        }
        return true
    }

    /// Sleeps this server thread for `duration` in short slices; `false` if shutdown began.
    private func pauseUnlessClosing(_ duration: Duration) -> Bool {
        var remaining = duration
        while remaining > .zero {
            if threads.closing.load(ordering: .relaxed) { return false }
            let slice = min(remaining, .milliseconds(20))
            let c = slice.components
            usleep(UInt32(c.seconds * 1_000_000 + c.attoseconds / 1_000_000_000_000))
            remaining -= slice
        }
        return !threads.closing.load(ordering: .relaxed)
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 529: return "Site Overloaded"
        default: return "Status \(status)"
        }
    }
}

/// One open connection as shutdown sees it: its descriptor and the request in flight.
/// `Sendable` without `@unchecked`: the mutable part is behind a `Mutex` that only this
/// connection's thread and shutdown ever take (uncontended per request).
final class ConnectionControl: Sendable {
    let fd: Int32
    private let inFlight = Mutex<(task: Task<Void, Never>?, stopped: Bool)>((nil, false))

    init(fd: Int32) { self.fd = fd }

    /// Records the handler task of the request being answered; `false` (and the task
    /// cancelled) when shutdown already began.
    func begin(_ task: Task<Void, Never>) -> Bool {
        let stopped = inFlight.withLock { s -> Bool in
            if !s.stopped { s.task = task }
            return s.stopped
        }
        if stopped { task.cancel() }
        return !stopped
    }

    func end() { inFlight.withLock { $0.task = nil } }

    /// Shutdown: wakes the connection's thread and cancels its request. Called with the
    /// server's lock held, while the descriptor is still registered (so it is still ours).
    func stop() {
        let task = inFlight.withLock { s -> Task<Void, Never>? in
            s.stopped = true
            return s.task
        }
        Socket.shutdownBoth(fd)
        task?.cancel()
    }
}

/// Hands a handler's answer from a Swift task to the server thread blocked waiting for it.
/// `Sendable` without `@unchecked`: the value is behind a `Mutex`, the semaphore orders the hand-off.
final class AnswerSlot: Sendable {
    private let value = Mutex<EmulatorResponse?>(nil)
    private let semaphore = DispatchSemaphore(value: 0)

    func fulfil(_ response: EmulatorResponse) {
        value.withLock { $0 = response }
        semaphore.signal()
    }

    /// Blocks the calling thread (never a Swift concurrency thread) until ``fulfil(_:)``.
    func wait() -> EmulatorResponse {
        semaphore.wait()
        return value.withLock { $0! }
    }
}
