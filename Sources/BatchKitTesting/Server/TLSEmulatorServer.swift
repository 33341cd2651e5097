#if canImport(Glibc)
import Glibc
import BatchKit
import Dispatch
public import Foundation
import Synchronization

/// A certificate chain and private key, as PEM files, for a server to present.
public struct TLSServerIdentity: Sendable, Hashable {
    /// The PEM file with the server certificate first, then any intermediates.
    public var certificateChainFile: String
    /// The PEM file with the certificate's private key.
    public var privateKeyFile: String

    /// An identity from two PEM files.
    public init(certificateChainFile: String, privateKeyFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}

/// The emulator over `https://` on loopback: a TLS front that terminates TLS with the system's
/// OpenSSL (loaded at run time, like the client) and relays each connection to a plain
/// ``EmulatorServer`` behind it, so every emulator behaviour and wire fault is served over TLS too
/// (a reset of the inner connection resets the TLS connection).
///
/// ```swift
/// let identity = TLSServerIdentity(certificateChainFile: "good.pem", privateKeyFile: "good.key")
/// let server = try await TLSEmulatorServer.start(emulator: emulator, identity: identity)
/// // server.baseURL is https://127.0.0.1:PORT
/// await server.shutdown()
/// ```
///
/// Linux only (where BatchKit's own TLS client lives); throws when `libssl.so.3` cannot be loaded.
public final class TLSEmulatorServer: Sendable {
    /// The plain server behind the TLS front.
    public let inner: EmulatorServer
    /// The address the TLS front listens on.
    public let host: String
    /// The TLS front's bound port.
    public let port: Int
    private let context: TLSContext
    /// The listener, the accept loop and the front's threads.
    private let threads: ServerThreads
    private let state = Mutex(State())

    private struct State {
        var open: [Int32: Void] = [:]
        var accepted = 0
        var failedHandshakes = 0
    }

    /// `https://HOST:PORT` (for a wildcard host, `https://127.0.0.1:PORT`).
    public var baseURL: URL {
        let visible = host == "0.0.0.0" ? "127.0.0.1" : host
        return URL(string: "https://\(visible):\(port)")!
    }

    /// TLS connections accepted since the start (handshakes that failed included).
    public var connectionsAccepted: Int { state.withLock { $0.accepted } }

    /// TLS connections whose handshake failed (the client refused the certificate, or spoke no TLS).
    public var failedHandshakes: Int { state.withLock { $0.failedHandshakes } }

    /// Requests answered by the emulator behind the front.
    public var requestsServed: Int { inner.requestsServed }

    private init(inner: EmulatorServer, host: String, context: TLSContext, threads: ServerThreads) {
        self.inner = inner
        self.host = host
        self.port = threads.port
        self.context = context
        self.threads = threads
    }

    /// Serves `emulator` over TLS on `host:port` (port 0: ephemeral) with `identity`, and points
    /// the emulator's `publicBaseURL` at the `https://` address. `publicHost` replaces the host
    /// in that URL (for example `localhost`, to match a certificate that names only it).
    public static func start(
        emulator: ProviderEmulator, identity: TLSServerIdentity, host: String = "127.0.0.1", port: Int = 0,
        publicHost: String? = nil
    ) async throws -> TLSEmulatorServer {
        let server = try await start(identity: identity, host: host, port: port) { await emulator.handle($0) }
        var components = URLComponents(url: server.baseURL, resolvingAgainstBaseURL: false)!
        if let publicHost { components.host = publicHost }
        let base = components.url!
        emulator.update { $0.publicBaseURL = base }
        return server
    }

    /// Serves an arbitrary handler over TLS (see ``EmulatorServer/start(host:port:handler:)``).
    public static func start(
        identity: TLSServerIdentity, host: String = "127.0.0.1", port: Int = 0,
        handler: @escaping EmulatorServer.Handler
    ) async throws -> TLSEmulatorServer {
        try await start(identity: identity, maximumVersionTLS12: false, host: host, port: port, handler: handler)
    }

    /// As above; `maximumVersionTLS12` makes the server refuse TLS 1.3 (tests of version errors).
    package static func start(
        identity: TLSServerIdentity, maximumVersionTLS12: Bool, host: String = "127.0.0.1", port: Int = 0,
        handler: @escaping EmulatorServer.Handler
    ) async throws -> TLSEmulatorServer {
        let context = try TLSContext.server(
            certificateChainFile: identity.certificateChainFile, privateKeyFile: identity.privateKeyFile,
            maximumVersionTLS12: maximumVersionTLS12)
        let inner = try await EmulatorServer.start(host: "127.0.0.1", port: 0, handler: handler)
        let threads: ServerThreads
        do {
            threads = try ServerThreads(host: host, port: port)
        } catch {
            await inner.shutdown()
            throw error
        }
        let server = TLSEmulatorServer(inner: inner, host: host, context: context, threads: threads)
        threads.spawn(name: "emulator-tls-accept") { server.acceptLoop() }
        return server
    }

    /// Stops the front and the server behind it; returns when every thread has ended.
    public func shutdown() async {
        let first = state.withLock { s -> Bool in
            let first = threads.beginClosing()
            for fd in s.open.keys { Socket.shutdownBoth(fd) }
            return first
        }
        if first { threads.wake() }
        await threads.drained()
        await inner.shutdown()
    }

    // MARK: - Threads

    /// Admits each accepted connection (non-blocking: OpenSSL's reads and writes poll) and relays
    /// it on its own thread.
    private func acceptLoop() {
        threads.acceptLoop(nonBlocking: true) { fd in
            let admitted = state.withLock { s -> Bool in
                guard !threads.isClosing else { return false }
                s.accepted += 1
                s.open[fd] = ()
                return true
            }
            guard admitted else { return false }
            threads.spawn(name: "emulator-tls-conn") { [self] in relay(client: fd) }
            return true
        }
    }

    private func forget(_ fd: Int32) {
        state.withLock { _ = $0.open.removeValue(forKey: fd) }
    }

    // MARK: - One connection

    /// Waits until `fd` is ready for `events` (or shutdown); `false` on shutdown or error.
    private func wait(_ fd: Int32, _ events: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        while true {
            if threads.closing.load(ordering: .relaxed) { return false }
            let ready = poll(&entry, 1, 250)
            if ready > 0 { return entry.revents & Int16(POLLNVAL) == 0 }
            if ready < 0 && errno != EINTR { return false }
        }
    }

    /// Handshakes with the client, then copies bytes both ways between it and the inner server.
    private func relay(client: Int32) {
        var reset = false
        defer {
            forget(client)
            if reset { Socket.setAbortiveClose(client) }
            _ = close(client)
        }
        guard let session = TLSSession(context: context, fd: client, serverName: nil) else { return }
        handshake: while true {
            switch session.handshake() {
            case .done: break handshake
            case .wantRead: guard wait(client, POLLIN) else { return }
            case .wantWrite: guard wait(client, POLLOUT) else { return }
            default:
                state.withLock { $0.failedHandshakes += 1 }
                return
            }
        }
        guard let backend = try? Socket.connect(host: "127.0.0.1", port: inner.port) else { return }
        let registered = state.withLock { s -> Bool in
            guard !threads.isClosing else { return false }
            s.open[backend] = ()
            return true
        }
        defer {
            forget(backend)
            _ = close(backend)
        }
        guard registered else { return }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var fds = [
            pollfd(fd: client, events: Int16(POLLIN), revents: 0),
            pollfd(fd: backend, events: Int16(POLLIN), revents: 0),
        ]
        while !threads.closing.load(ordering: .relaxed) {
            fds[0].revents = 0
            fds[1].revents = 0
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 {
                // Client → server: everything OpenSSL can decrypt now.
                reading: while true {
                    let progress = buffer.withUnsafeMutableBytes { session.read(into: $0.baseAddress!, count: $0.count) }
                    switch progress {
                    case .bytes(let count):
                        guard buffer.withUnsafeBytes({ Socket.sendAll(backend, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }) else {
                            return
                        }
                    case .wantRead: break reading
                    case .wantWrite: guard wait(client, POLLOUT) else { return }
                    default:
                        return
                    }
                }
            }
            if fds[1].revents != 0 {
                // Server → client.
                let count = buffer.withUnsafeMutableBytes { Socket.receive(backend, into: $0.baseAddress!, count: $0.count) }
                if count < 0 {
                    reset = errno == ECONNRESET
                    return
                }
                if count == 0 {
                    session.shutdown()
                    return
                }
                var offset = 0
                while offset < count {
                    let progress = buffer.withUnsafeBytes { session.write($0.baseAddress! + offset, count: count - offset) }
                    switch progress {
                    case .bytes(let sent): offset += sent
                    case .wantWrite: guard wait(client, POLLOUT) else { return }
                    case .wantRead: guard wait(client, POLLIN) else { return }
                    default: return
                    }
                }
            }
        }
    }
}
#endif
