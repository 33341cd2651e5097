#if canImport(Glibc)
import Glibc
import Dispatch
import Foundation
import Synchronization

/// A host and port connections are pooled by.
struct PlainHTTPEndpoint: Hashable, Sendable {
    var host: String
    var port: Int
    /// Whether connections speak TLS (`https://`); pooled apart from cleartext ones.
    var secure = false
}

/// One resolved socket address (`sockaddr_in` or `sockaddr_in6` bytes).
struct PlainHTTPAddress: Sendable {
    var family: Int32
    var bytes: [UInt8]
}

/// One request in flight: what the loop needs to send it and to answer the caller.
struct PlainHTTPJob: Sendable {
    /// Set by the caller's cancellation handler; read by the loop when the job starts, so a
    /// cancel that overtakes its start is not lost.
    final class Token: Sendable {
        let cancelled = Atomic<Bool>(false)
    }

    let id: UInt64
    let endpoint: PlainHTTPEndpoint
    let addresses: [PlainHTTPAddress]
    /// The request line, the headers and an in-memory body, as sent.
    let bytes: [UInt8]
    /// A file body (an upload), sent after ``bytes``: the file mapped into memory, so a
    /// 200 MB upload is read from the page cache as it goes out instead of being copied.
    var fileBody: Data? = nil
    /// Where the answer's body goes when the request downloads to a file; `nil`: in memory.
    var download: PlainHTTPDownload? = nil
    let isHEAD: Bool
    let deadline: ContinuousClock.Instant
    let token: Token
    let continuation: CheckedContinuation<HTTPResponse, any Error>
    /// Whether the job may be sent again when a pooled connection fails without an answer: only
    /// idempotent methods, or a request with an `Idempotency-Key` (RFC 9110 §9.2.2). A POST that
    /// creates something (a batch job) may have been processed before the connection dropped.
    let mayResend: Bool
    /// Whether the job was already sent again after a pooled connection turned out closed.
    var resent = false
    /// The TLS context for `https://` jobs; `nil` for cleartext.
    var tls: TLSContext? = nil
    /// How long the exchange may go without a byte moving (``HTTPRequest/idleTimeout``).
    var idleTimeout: Duration? = nil

    /// Bytes of the whole request: ``bytes`` then ``fileBody``.
    var count: Int { bytes.count + (fileBody?.count ?? 0) }

    /// Calls `body` with the unsent part of the segment (``bytes`` or ``fileBody``) that holds
    /// byte `offset` of the request (`offset < count`). Segments are never joined: a write that
    /// OpenSSL asks to repeat gets the same pointer and length again.
    func withUnsent<R>(from offset: Int, _ body: (UnsafeRawPointer, Int) -> R) -> R {
        if offset < bytes.count {
            return bytes.withUnsafeBytes { body($0.baseAddress! + offset, $0.count - offset) }
        }
        let start = offset - bytes.count
        return fileBody!.withUnsafeBytes { body($0.baseAddress! + start, $0.count - start) }
    }
}

/// The file an answer's body is written to (``HTTPRequest/downloadsToFile``). The caller of the
/// exchange opens it before the job starts and closes it after the job ended; in between only the
/// loop thread writes to it.
struct PlainHTTPDownload: Sendable {
    let fd: Int32
    let url: URL

    /// The body is written in pieces of at least this size (and at the end), so a large download
    /// holds about this much in memory.
    static let writeThreshold = 1 << 20

    /// Writes all of `bytes`; `false` when the file cannot take them (disk full, I/O error).
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }
}

/// Resolves host names with `getaddrinfo` off the Swift concurrency pool, caching answers for
/// a minute.
final class PlainHTTPResolver: Sendable {
    private struct Entry {
        var addresses: [PlainHTTPAddress]
        var resolvedAt: ContinuousClock.Instant
    }
    private let cache = Mutex<[PlainHTTPEndpoint: Entry]>([:])
    private static let lifetime = Duration.seconds(60)

    func addresses(for endpoint: PlainHTTPEndpoint) async throws -> [PlainHTTPAddress] {
        let now = ContinuousClock.now
        if let hit = cache.withLock({ $0[endpoint] }), now - hit.resolvedAt < Self.lifetime { return hit.addresses }
        let resolved: [PlainHTTPAddress] = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Self.resolve(endpoint) })
            }
        }
        cache.withLock { $0[endpoint] = Entry(addresses: resolved, resolvedAt: now) }
        return resolved
    }

    /// Makes `endpoint` resolve to the addresses of `literals` (numeric hosts), in that order,
    /// for the next minute: for tests of names with several addresses.
    func pin(_ endpoint: PlainHTTPEndpoint, to literals: [String]) throws {
        let addresses = try literals.flatMap { try Self.resolve(PlainHTTPEndpoint(host: $0, port: endpoint.port)) }
        cache.withLock { $0[endpoint] = Entry(addresses: addresses, resolvedAt: .now) }
    }

    private static func resolve(_ endpoint: PlainHTTPEndpoint) throws -> [PlainHTTPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let host = endpoint.host.hasPrefix("[") && endpoint.host.hasSuffix("]")
            ? String(endpoint.host.dropFirst().dropLast()) : endpoint.host
        let status = getaddrinfo(host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            throw URLError(.cannotFindHost, userInfo: [URLError.detailKey: String(cString: gai_strerror(status)).lowercased()])
        }
        defer { freeaddrinfo(first) }
        var addresses: [PlainHTTPAddress] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            let entry = info.pointee
            if let address = entry.ai_addr, entry.ai_family == AF_INET || entry.ai_family == AF_INET6 {
                let bytes = UnsafeRawBufferPointer(start: address, count: Int(entry.ai_addrlen))
                addresses.append(PlainHTTPAddress(family: entry.ai_family, bytes: Array(bytes)))
            }
            next = entry.ai_next
        }
        guard !addresses.isEmpty else { throw URLError(.cannotFindHost) }
        return addresses
    }
}

/// The thread that owns every socket of one ``PlainHTTPTransport``.
///
/// Callers talk to it only through ``submit(_:)`` (a queue behind a `Mutex`, plus a pipe that
/// wakes the thread when it is asleep in `poll`). All connection state lives in a
/// ``PlainHTTPWorker`` that exists only on the loop's thread, so it needs no locks.
final class PlainHTTPEventLoop: Sendable {
    enum Command: Sendable {
        case start(PlainHTTPJob)
        case cancel(UInt64)
        case stop
    }

    struct Inbox {
        var commands: [Command] = []
        /// The thread is (about to be) blocked in `poll` and must be woken through the pipe.
        var sleeping = false
        var threadStarted = false
        var stopped = false
    }

    let configuration: PlainHTTPTransport.Configuration
    let inbox = Mutex(Inbox())
    /// Read end (polled by the loop) and write end (written by submitters) of the wake pipe.
    let wakeRead: Int32
    let wakeWrite: Int32

    init(configuration: PlainHTTPTransport.Configuration) {
        self.configuration = configuration
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        if wakeRead >= 0 { _ = close(wakeRead) }
        if wakeWrite >= 0 { _ = close(wakeWrite) }
    }

    /// Hands a command to the loop thread, starting the thread on first use.
    func submit(_ command: Command) {
        enum Action { case none, wake, startThread, refuse }
        let action = inbox.withLock { inbox -> Action in
            if inbox.stopped { return .refuse }
            inbox.commands.append(command)
            if case .stop = command { inbox.stopped = true }
            if !inbox.threadStarted {
                if case .stop = command { return .none }
                inbox.threadStarted = true
                return .startThread
            }
            if inbox.sleeping {
                inbox.sleeping = false
                return .wake
            }
            return .none
        }
        switch action {
        case .none: break
        case .wake: wake()
        case .startThread: startThread()
        case .refuse:
            if case .start(let job) = command { job.continuation.resume(throwing: CancellationError()) }
        }
    }

    /// Ends the thread: every request still in flight fails with `CancellationError`.
    func stop() { submit(.stop) }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func startThread() {
        guard wakeRead >= 0 else {
            // No pipe: nothing can be served; fail what was queued.
            let queued = inbox.withLock { inbox -> [Command] in
                inbox.stopped = true
                defer { inbox.commands = [] }
                return inbox.commands
            }
            for case .start(let job) in queued { job.continuation.resume(throwing: URLError(.cannotConnectToHost)) }
            return
        }
        let thread = Thread { [self] in
            BrokenPipe.blockOnThisThread()
            PlainHTTPWorker(loop: self).run()
        }
        thread.name = "BatchKit.PlainHTTPTransport"
        thread.start()
    }
}

/// The loop thread's state and work: connections, the idle pool, requests waiting for a
/// connection, deadlines. Used only on the loop thread.
final class PlainHTTPWorker {
    private final class Connection {
        let fd: Int32
        let endpoint: PlainHTTPEndpoint
        var job: PlainHTTPJob?
        var parser = HTTP1ResponseParser()
        var written = 0
        var connecting = false
        /// Which of the job's addresses this socket is connecting to.
        var addressIndex = 0
        /// Whether an earlier answer came over this connection.
        var reused = false
        var idleSince = ContinuousClock.now
        /// When a byte of the current job last moved either way (or the job was assigned).
        var lastActivity = ContinuousClock.now
        /// The TLS session of an `https://` connection (set once the socket connects).
        var tls: TLSSession?
        /// The TLS handshake is under way.
        var handshaking = false
        /// OpenSSL asked to be called again when the socket is writable.
        var tlsWantsWrite = false

        init(fd: Int32, endpoint: PlainHTTPEndpoint) {
            self.fd = fd
            self.endpoint = endpoint
        }

        var wantsWrite: Bool {
            if connecting || tlsWantsWrite { return true }
            if handshaking { return false }
            return job.map { written < $0.count } ?? false
        }
    }

    private let loop: PlainHTTPEventLoop
    private let maximumPerHost: Int
    private let idleTimeout: Duration
    private var connections: [Int32: Connection] = [:]
    private var idle: [PlainHTTPEndpoint: [Connection]] = [:]
    private var openCount: [PlainHTTPEndpoint: Int] = [:]
    private var waiting: [PlainHTTPEndpoint: [PlainHTTPJob]] = [:]
    private var waitingCount = 0
    private var pollSet: [pollfd] = []
    private var pollConnections: [Connection?] = []
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var nextSweep = ContinuousClock.now
    private static let sweepInterval = Duration.milliseconds(25)
    private static let idleSweepInterval = Duration.seconds(1)

    /// Whole milliseconds from now until `instant`, rounded up; 0 when it has passed.
    private static func milliseconds(until instant: ContinuousClock.Instant) -> Int32 {
        let left = instant - ContinuousClock.now
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
    }

    init(loop: PlainHTTPEventLoop) {
        self.loop = loop
        self.maximumPerHost = loop.configuration.maximumConnectionsPerHost
        self.idleTimeout = loop.configuration.idleConnectionTimeout
    }

    func run() {
        while true {
            let commands = loop.inbox.withLock { inbox -> [Command] in
                defer { inbox.commands.removeAll(keepingCapacity: true) }
                return inbox.commands
            }
            for (index, command) in commands.enumerated() {
                switch command {
                case .start(let job): start(job)
                case .cancel(let id): cancel(id)
                case .stop:
                    shutDown(alsoFailing: commands[(index + 1)...])
                    return
                }
            }

            pollSet.removeAll(keepingCapacity: true)
            pollConnections.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: loop.wakeRead, events: Int16(POLLIN), revents: 0))
            pollConnections.append(nil)
            var jobsInFlight = waitingCount > 0
            for connection in connections.values {
                let events = Int16(POLLIN) | (connection.wantsWrite ? Int16(POLLOUT) : 0)
                pollSet.append(pollfd(fd: connection.fd, events: events, revents: 0))
                pollConnections.append(connection)
                if connection.job != nil { jobsInFlight = true }
            }

            // Deadlines are checked every `sweepInterval` while requests are in flight; idle
            // connections only need a check a second; with nothing open, sleep until woken.
            var timeout: Int32 = -1
            if jobsInFlight || !connections.isEmpty {
                let now = ContinuousClock.now
                nextSweep =
                    jobsInFlight
                    ? min(nextSweep, now + Self.sweepInterval) : max(nextSweep, now + Self.idleSweepInterval)
                timeout = Self.milliseconds(until: nextSweep)
            }
            let mayBlock = loop.inbox.withLock { inbox -> Bool in
                if !inbox.commands.isEmpty { return false }
                inbox.sleeping = true
                return true
            }
            let ready = poll(&pollSet, nfds_t(pollSet.count), mayBlock ? timeout : 0)
            if mayBlock { loop.inbox.withLock { $0.sleeping = false } }

            if ready > 0 {
                if pollSet[0].revents != 0 { drainWakePipe() }
                for index in 1..<pollSet.count where pollSet[index].revents != 0 {
                    guard let connection = pollConnections[index], connections[connection.fd] === connection else { continue }
                    handle(connection, revents: pollSet[index].revents)
                }
            }
            if ContinuousClock.now >= nextSweep {
                sweep()
                nextSweep = ContinuousClock.now + Self.sweepInterval
            }
        }
    }

    private typealias Command = PlainHTTPEventLoop.Command

    private func drainWakePipe() {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(loop.wakeRead, &scratch, scratch.count) > 0 {}
    }

    // MARK: Starting and ending jobs

    private func start(_ job: PlainHTTPJob, fresh: Bool = false) {
        if job.token.cancelled.load(ordering: .sequentiallyConsistent) {
            job.continuation.resume(throwing: CancellationError())
            return
        }
        if job.deadline <= ContinuousClock.now {
            job.continuation.resume(throwing: URLError(.timedOut))
            return
        }
        if !fresh, let connection = idle[job.endpoint]?.popLast() {
            if idle[job.endpoint]?.isEmpty == true { idle[job.endpoint] = nil }
            assign(job, to: connection)
            return
        }
        if fresh, openCount[job.endpoint, default: 0] >= maximumPerHost, let spare = idle[job.endpoint]?.first {
            // A request sent again needs a new connection: an idle one gives up its slot.
            release(spare)
        }
        if openCount[job.endpoint, default: 0] < maximumPerHost {
            open(for: job, from: 0)
            return
        }
        waiting[job.endpoint, default: []].append(job)
        waitingCount += 1
    }

    private func assign(_ job: PlainHTTPJob, to connection: Connection) {
        connection.job = job
        connection.lastActivity = .now
        connection.parser = HTTP1ResponseParser(isHEAD: job.isHEAD)
        connection.written = 0
        flush(connection)
    }

    /// The error of a connection that no address accepted, with what the last attempt met
    /// (`connect`'s or `SO_ERROR`'s errno) in words.
    static func connectFailure(_ error: Int32) -> URLError {
        let detail: String?
        switch error {
        case ECONNREFUSED: detail = "connection refused"
        case ENETUNREACH: detail = "network unreachable"
        case EHOSTUNREACH: detail = "host unreachable"
        case ETIMEDOUT: detail = "the connection attempt timed out"
        case 0: detail = nil
        default: detail = String(cString: strerror(error)).lowercased()
        }
        return URLError(.cannotConnectToHost, userInfo: detail.map { [URLError.detailKey: $0] } ?? [:])
    }

    /// Opens a non-blocking socket to the first of the job's addresses from `index` on that
    /// accepts or may still accept; fails the job when none does (and returns `false`).
    @discardableResult
    private func open(for job: PlainHTTPJob, from index: Int, lastError: Int32 = 0) -> Bool {
        var index = index
        var lastError = lastError
        while index < job.addresses.count {
            let address = job.addresses[index]
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 {  // e.g. no IPv6 here: try the next address
                index += 1
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let result = address.bytes.withUnsafeBytes { raw in
                Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            if result == 0 || errno == EINPROGRESS {
                let connection = Connection(fd: fd, endpoint: job.endpoint)
                connection.connecting = result != 0
                connection.addressIndex = index
                connections[fd] = connection
                openCount[job.endpoint, default: 0] += 1
                connection.job = job
                connection.parser = HTTP1ResponseParser(isHEAD: job.isHEAD)
                if !connection.connecting { connected(connection) }
                return true
            }
            lastError = errno
            _ = Glibc.close(fd)
            index += 1
        }
        job.continuation.resume(throwing: Self.connectFailure(lastError))
        return false
    }

    /// Closes `connection` and forgets it, freeing its slot.
    private func release(_ connection: Connection) {
        guard connections[connection.fd] === connection else { return }
        connections[connection.fd] = nil
        _ = Glibc.close(connection.fd)
        if let list = idle[connection.endpoint], let at = list.firstIndex(where: { $0 === connection }) {
            idle[connection.endpoint]!.remove(at: at)
            if idle[connection.endpoint]!.isEmpty { idle[connection.endpoint] = nil }
        }
        let remaining = openCount[connection.endpoint, default: 1] - 1
        openCount[connection.endpoint] = remaining == 0 ? nil : remaining
    }

    /// Closes `connection`; its slot goes to the longest-waiting request for the host, if any.
    private func close(_ connection: Connection) {
        guard connections[connection.fd] === connection else { return }
        release(connection)
        serveWaiting(for: connection.endpoint)
    }

    /// Gives free connection slots for `endpoint` to the requests waiting for one, in order.
    private func serveWaiting(for endpoint: PlainHTTPEndpoint) {
        while openCount[endpoint, default: 0] < maximumPerHost, let next = nextWaiting(for: endpoint) {
            start(next, fresh: true)
        }
    }

    /// Takes the longest-waiting request for `endpoint` off the queue.
    private func nextWaiting(for endpoint: PlainHTTPEndpoint) -> PlainHTTPJob? {
        guard var queue = waiting[endpoint], !queue.isEmpty else { return nil }
        let next = queue.removeFirst()
        waiting[endpoint] = queue.isEmpty ? nil : queue
        waitingCount -= 1
        return next
    }

    /// The job on `connection` ends with `result`; the connection is pooled when it can be.
    private func finish(_ connection: Connection, _ result: Result<HTTPResponse, any Error>, reusable: Bool) {
        guard let job = connection.job else { return }
        connection.job = nil
        job.continuation.resume(with: result)
        guard reusable else {
            close(connection)
            return
        }
        connection.reused = true
        while let next = nextWaiting(for: connection.endpoint) {
            if next.token.cancelled.load(ordering: .sequentiallyConsistent) {
                next.continuation.resume(throwing: CancellationError())
            } else if next.deadline <= ContinuousClock.now {
                next.continuation.resume(throwing: URLError(.timedOut))
            } else {
                assign(next, to: connection)
                return
            }
        }
        connection.idleSince = ContinuousClock.now
        idle[connection.endpoint, default: []].append(connection)
    }

    /// The connection failed before a whole answer arrived: a request that met a pooled
    /// connection the server had closed, with no byte of an answer, is sent again on a fresh
    /// connection; anything else fails with `code`.
    private func fail(_ connection: Connection, _ code: URLError.Code) {
        fail(connection, URLError(code))
    }

    private func fail(_ connection: Connection, _ error: any Error) {
        guard var job = connection.job else {
            close(connection)
            return
        }
        connection.job = nil
        close(connection)
        if connection.reused && !connection.parser.receivedAnyBytes && !job.resent && job.mayResend {
            job.resent = true
            start(job, fresh: true)
        } else {
            job.continuation.resume(throwing: error)
        }
    }

    private func cancel(_ id: UInt64) {
        if let connection = connections.values.first(where: { $0.job?.id == id }) {
            let job = connection.job!
            connection.job = nil
            close(connection)
            job.continuation.resume(throwing: CancellationError())
            return
        }
        for (endpoint, queue) in waiting {
            if let at = queue.firstIndex(where: { $0.id == id }) {
                var queue = queue
                let job = queue.remove(at: at)
                waiting[endpoint] = queue.isEmpty ? nil : queue
                waitingCount -= 1
                job.continuation.resume(throwing: CancellationError())
                return
            }
        }
    }

    /// Times out jobs past their deadline and closes connections idle for too long.
    private func sweep() {
        let now = ContinuousClock.now
        for connection in Array(connections.values) {
            if let job = connection.job,
                job.deadline <= now || job.idleTimeout.map({ now - connection.lastActivity >= $0 }) == true
            {
                connection.job = nil
                close(connection)
                job.continuation.resume(throwing: URLError(.timedOut))
            } else if connection.job == nil, now - connection.idleSince >= idleTimeout {
                close(connection)
            }
        }
        guard waitingCount > 0 else { return }
        for (endpoint, queue) in waiting {
            let expired = queue.filter { $0.deadline <= now }
            guard !expired.isEmpty else { continue }
            let kept = queue.filter { $0.deadline > now }
            waiting[endpoint] = kept.isEmpty ? nil : kept
            waitingCount -= expired.count
            for job in expired { job.continuation.resume(throwing: URLError(.timedOut)) }
        }
    }

    private func shutDown(alsoFailing orphans: ArraySlice<Command>) {
        for connection in Array(connections.values) {
            let job = connection.job
            connection.job = nil
            _ = Glibc.close(connection.fd)
            job?.continuation.resume(throwing: CancellationError())
        }
        connections = [:]
        idle = [:]
        for queue in waiting.values {
            for job in queue { job.continuation.resume(throwing: CancellationError()) }
        }
        waiting = [:]
        // Commands that raced the stop: answer them too.
        let late = loop.inbox.withLock { inbox -> [Command] in
            defer { inbox.commands = [] }
            return inbox.commands
        }
        for case .start(let job) in orphans + late { job.continuation.resume(throwing: CancellationError()) }
    }

    // MARK: I/O

    private func handle(_ connection: Connection, revents: Int16) {
        if connection.connecting {
            guard revents & Int16(POLLOUT | POLLERR | POLLHUP) != 0 else { return }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(connection.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 {
                // Try the next address, if the name had more than one.
                guard let job = connection.job else {
                    close(connection)
                    return
                }
                // The slot passes to the next address; if none connects, to whoever waits.
                connection.job = nil
                release(connection)
                if !open(for: job, from: connection.addressIndex + 1, lastError: error) { serveWaiting(for: job.endpoint) }
                return
            }
            connection.connecting = false
            connected(connection)
            return
        }
        if connection.handshaking {
            advanceHandshake(connection)
            return
        }
        if connection.tlsWantsWrite && revents & Int16(POLLOUT) != 0 {
            // OpenSSL wanted to write during a read: read again now that it can.
            connection.tlsWantsWrite = false
            receive(connection)
            guard connections[connection.fd] === connection else { return }
        }
        if revents & Int16(POLLOUT) != 0 && connection.wantsWrite {
            flush(connection)
            guard connections[connection.fd] === connection else { return }
        }
        if revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0 {
            receive(connection)
        }
    }

    /// The socket connected: start TLS for an `https://` job, else send the request.
    private func connected(_ connection: Connection) {
        guard let context = connection.job?.tls else {
            flush(connection)
            return
        }
        guard let session = TLSSession(context: context, fd: connection.fd, serverName: connection.endpoint.host) else {
            fail(connection, TLSFailure.handshake("OpenSSL could not set up the session").error(host: label(connection.endpoint)))
            return
        }
        connection.tls = session
        connection.handshaking = true
        advanceHandshake(connection)
    }

    /// Moves the TLS handshake on; sends the request when it is done.
    private func advanceHandshake(_ connection: Connection) {
        guard let session = connection.tls else { return }
        switch session.handshake() {
        case .done:
            connection.handshaking = false
            connection.tlsWantsWrite = false
            flush(connection)
        case .wantRead:
            connection.tlsWantsWrite = false
        case .wantWrite:
            connection.tlsWantsWrite = true
        case .failed(let failure):
            let reason = failure ?? .handshake("the connection closed during the handshake")
            fail(connection, reason.error(host: label(connection.endpoint)))
        case .bytes, .closed:
            fail(connection, TLSFailure.handshake("the connection closed during the handshake").error(host: label(connection.endpoint)))
        }
    }

    /// `host:port` as TLS errors name it (the port only when it is not 443).
    private func label(_ endpoint: PlainHTTPEndpoint) -> String {
        let host = endpoint.host.contains(":") && !endpoint.host.hasPrefix("[") ? "[\(endpoint.host)]" : endpoint.host
        return endpoint.port == 443 ? host : "\(host):\(endpoint.port)"
    }

    /// Writes what the TLS session takes of the job's request.
    private func flushTLS(_ connection: Connection, _ session: TLSSession, _ job: PlainHTTPJob) {
        while connection.written < job.count {
            let progress = job.withUnsent(from: connection.written) { session.write($0, count: $1) }
            switch progress {
            case .bytes(let sent):
                connection.written += sent
                connection.lastActivity = .now
                connection.tlsWantsWrite = false
            case .wantWrite:
                connection.tlsWantsWrite = true
                return
            case .wantRead:
                return
            case .done, .closed, .failed:
                fail(connection, .networkConnectionLost)
                return
            }
        }
    }

    /// Writes what the socket takes of the job's request.
    private func flush(_ connection: Connection) {
        guard let job = connection.job else { return }
        if let session = connection.tls {
            flushTLS(connection, session, job)
            return
        }
        while connection.written < job.count {
            let sent = job.withUnsent(from: connection.written) { Glibc.send(connection.fd, $0, $1, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                connection.written += sent
                connection.lastActivity = .now
            } else if sent < 0 && errno == EINTR {
                continue
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return
            } else {
                fail(connection, .networkConnectionLost)
                return
            }
        }
    }

    /// Reads what has arrived; ends the job when its answer is whole or the connection ends.
    private func receive(_ connection: Connection) {
        guard connection.job != nil else {
            // An idle connection is readable only when the server closed it (or misbehaved), or,
            // over TLS, sent a post-handshake message (a session ticket), which OpenSSL consumes.
            if let session = connection.tls,
                readBuffer.withUnsafeMutableBytes({ session.read(into: $0.baseAddress!, count: $0.count) }) == .wantRead
            {
                return
            }
            close(connection)
            return
        }
        if let session = connection.tls {
            receiveTLS(connection, session)
            return
        }
        while true {
            let count = readBuffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress!, $0.count, 0) }
            if count > 0 {
                connection.lastActivity = .now
                if answerEnded(connection, afterReading: count) { return }
                if count < readBuffer.count { return }
            } else if count == 0 {
                endOfStream(connection)
                return
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                fail(connection, .networkConnectionLost)
                return
            }
        }
    }

    /// ``receive(_:)`` over TLS: reads until OpenSSL has nothing more (it may hold decrypted bytes
    /// the socket no longer signals).
    private func receiveTLS(_ connection: Connection, _ session: TLSSession) {
        while true {
            let progress = readBuffer.withUnsafeMutableBytes { session.read(into: $0.baseAddress!, count: $0.count) }
            switch progress {
            case .bytes(let count):
                connection.lastActivity = .now
                if answerEnded(connection, afterReading: count) { return }
            case .closed:
                endOfStream(connection)
                return
            case .wantRead:
                return
            case .wantWrite:
                connection.tlsWantsWrite = true
                return
            case .done, .failed:
                fail(connection, .networkConnectionLost)
                return
            }
        }
    }

    /// Feeds `count` bytes of `readBuffer` to the connection's parser; `true` when the exchange
    /// ended (the answer completed, or could not be parsed and the connection failed).
    private func answerEnded(_ connection: Connection, afterReading count: Int) -> Bool {
        let complete: Bool
        do {
            complete = try readBuffer.withUnsafeBytes { try connection.parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        } catch {
            fail(connection, .cannotParseResponse)
            return true
        }
        if let download = connection.job?.download,
            complete || connection.parser.body.count >= PlainHTTPDownload.writeThreshold
        {
            let written = connection.parser.body.withUnsafeBytes { download.write($0) }
            connection.parser.removeBody()
            guard written else {
                fail(connection, .cannotWriteToFile)
                return true
            }
        }
        if complete { completeAnswer(on: connection) }
        return complete
    }

    /// The peer closed: an answer delimited by the end of the stream completes; anything else is lost.
    private func endOfStream(_ connection: Connection) {
        if connection.parser.finishAtEndOfStream() {
            if let download = connection.job?.download {
                let written = connection.parser.body.withUnsafeBytes { download.write($0) }
                connection.parser.removeBody()
                guard written else {
                    fail(connection, .cannotWriteToFile)
                    return
                }
            }
            completeAnswer(on: connection)
        } else {
            fail(connection, .networkConnectionLost)
        }
    }

    private func completeAnswer(on connection: Connection) {
        let parser = connection.parser
        let download = connection.job?.download
        let response = HTTPResponse(
            status: parser.status, headers: parser.headers, body: download == nil ? Data(parser.body) : Data(),
            bodyFile: download?.url)
        let wholeRequestSent = connection.job.map { connection.written == $0.count } ?? false
        connection.parser = HTTP1ResponseParser()
        finish(connection, .success(response), reusable: parser.keepAlive && parser.leftover.isEmpty && wholeRequestSent)
    }
}
#endif
