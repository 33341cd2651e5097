#if canImport(Glibc)
import Glibc
@testable import BatchKit
@testable import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// The committed TLS test material (Tests/Fixtures/tls, made by its generate.sh).
enum TLSFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/tls")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The test CA as a trust root.
    static var caBundle: TLSConfiguration { TLSConfiguration(trustRoots: [.file(path("ca.pem"))]) }

    static func identity(_ name: String) -> TLSServerIdentity {
        TLSServerIdentity(certificateChainFile: path("\(name).pem"), privateKeyFile: path("\(name).key"))
    }

    /// A TLS server presenting `name`'s certificate, answering every request with 200 "ok".
    static func server(_ name: String) async throws -> TLSEmulatorServer {
        try #require(OpenSSLLibrary.shared != nil, "libssl.so.3 must be loadable for the TLS tests")
        return try await TLSEmulatorServer.start(identity: identity(name)) { request in
            EmulatorResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Data("ok \(request.path)".utf8))
        }
    }
}

/// https through ``PlainHTTPTransport``'s own TLS client, over real TLS on loopback.
@Suite("TLS transport", .timeLimit(.minutes(5)))
struct TLSTransportTests {
    @Test func roundTripsOverTLSAndReusesTheConnection() async throws {
        let server = try await TLSFixtures.server("good")
        let transport = PlainHTTPTransport(
            configuration: .init(tls: TLSFixtures.caBundle),
            fallback: ClosureTransport { _ in Issue.record("went to the fallback"); return HTTPResponse(status: 599) })
        for host in ["127.0.0.1", "localhost"] {
            for index in 0..<3 {
                let url = URL(string: "https://\(host):\(server.port)/r\(index)")!
                let response = try await transport.send(HTTPRequest(url: url))
                #expect(response.status == 200)
                #expect(String(decoding: response.body, as: UTF8.self) == "ok /r\(index)")
            }
        }
        // One keep-alive connection per host name (they are pooled apart).
        #expect(server.connectionsAccepted == 2)
        #expect(server.requestsServed == 6)
        await server.shutdown()
    }

    @Test func concurrentRequestsOpenAtMostOneConnectionEach() async throws {
        let server = try await TLSFixtures.server("good")
        let transport = PlainHTTPTransport(configuration: .init(tls: TLSFixtures.caBundle))
        let url = URL(string: "https://127.0.0.1:\(server.port)/c")!
        for _ in 0..<3 {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await transport.send(HTTPRequest(url: url)).status } }
                for try await status in group { #expect(status == 200) }
            }
        }
        #expect(server.requestsServed == 24)
        #expect(server.connectionsAccepted <= 8)
        await server.shutdown()
    }

    @Test func postsABodyAndReadsALargeAnswer() async throws {
        try #require(OpenSSLLibrary.shared != nil)
        let big = Data((0..<300_000).map { UInt8($0 % 251) })
        let server = try await TLSEmulatorServer.start(identity: TLSFixtures.identity("good")) { request in
            EmulatorResponse(status: 200, body: request.body + big)
        }
        let transport = PlainHTTPTransport(configuration: .init(tls: TLSFixtures.caBundle))
        let body = Data(repeating: 7, count: 100_000)
        let response = try await transport.send(
            HTTPRequest(method: "POST", url: URL(string: "https://localhost:\(server.port)/echo")!, body: .data(body)))
        #expect(response.body == body + big)
        await server.shutdown()
    }

    /// Each bad certificate gives a readable, non-retryable `.tls` error naming the host and the reason.
    @Test(arguments: [
        ("expired", true, "certificate expired"),
        ("notyetvalid", true, "certificate not yet valid"),
        ("otherhost", true, "hostname mismatch"),
        ("selfsigned", true, "untrusted issuer"),
        ("good", false, "untrusted issuer"),  // the test CA is not in the system store
    ])
    func aBadCertificateFailsReadably(certificate: String, trustTestCA: Bool, reason: String) async throws {
        let server = try await TLSFixtures.server(certificate)
        let transport = PlainHTTPTransport(configuration: .init(tls: trustTestCA ? TLSFixtures.caBundle : .init()))
        let url = URL(string: "https://127.0.0.1:\(server.port)/v1/models")!
        let error = try await #require(throws: BatchError.self) { try await transport.send(HTTPRequest(url: url)) }
        #expect(error.code == .tls)
        #expect(!error.isRetryable)
        #expect(error.message.contains("127.0.0.1:\(server.port)"))
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(server.requestsServed == 0)
        await server.shutdown()
    }

    @Test func aHostnameMismatchIsCaughtForDNSNamesToo() async throws {
        let server = try await TLSFixtures.server("otherhost")
        let transport = PlainHTTPTransport(configuration: .init(tls: TLSFixtures.caBundle))
        let error = try await #require(throws: BatchError.self) {
            try await transport.send(HTTPRequest(url: URL(string: "https://localhost:\(server.port)/")!))
        }
        #expect(error.message.contains("hostname mismatch"), "\(error.message)")
        #expect(error.message.contains("localhost:\(server.port)"))
        await server.shutdown()
    }

    @Test func aServerThatSpeaksNoTLSIsAHandshakeFailure() async throws {
        try #require(OpenSSLLibrary.shared != nil)
        // A cleartext server that answers whatever arrives with an HTTP 400, as web servers do.
        let plain = try CannedServer(answer: Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8), waitsForHead: false)
        let transport = PlainHTTPTransport(configuration: .init(tls: TLSFixtures.caBundle))
        let error = try await #require(throws: BatchError.self) {
            try await transport.send(HTTPRequest(url: URL(string: "https://127.0.0.1:\(plain.port)/")!))
        }
        #expect(error.code == .tls)
        #expect(!error.isRetryable)
        #expect(error.message.contains("handshake failure"), "\(error.message)")
        #expect(error.message.contains("127.0.0.1:\(plain.port)"))
        plain.stop()
    }

    @Test func anOldProtocolVersionIsAHandshakeFailureSayingSo() async throws {
        // The server speaks TLS 1.2 at most; the client asks for 1.3 or later.
        try #require(OpenSSLLibrary.shared != nil)
        let server = try await TLSEmulatorServer.start(identity: TLSFixtures.identity("good"), maximumVersionTLS12: true) { _ in
            EmulatorResponse(status: 200)
        }
        let transport = PlainHTTPTransport(
            configuration: .init(tls: TLSConfiguration(trustRoots: [.file(TLSFixtures.path("ca.pem"))], minimumVersion: .tls13)))
        let error = try await #require(throws: BatchError.self) {
            try await transport.send(HTTPRequest(url: URL(string: "https://127.0.0.1:\(server.port)/")!))
        }
        #expect(error.code == .tls)
        #expect(error.message.contains("protocol version"), "\(error.message)")
        // And TLS 1.2 still works against it.
        let ok = try await PlainHTTPTransport(configuration: .init(tls: TLSFixtures.caBundle)).send(
            HTTPRequest(url: URL(string: "https://127.0.0.1:\(server.port)/")!))
        #expect(ok.status == 200)
        await server.shutdown()
    }

    @Test func anUnreadableTrustRootIsAnErrorNamingTheFile() async throws {
        try #require(OpenSSLLibrary.shared != nil)
        let transport = PlainHTTPTransport(configuration: .init(tls: .init(trustRoots: [.file("/nonexistent/ca.pem")])))
        let error = try await #require(throws: BatchError.self) {
            try await transport.send(HTTPRequest(url: URL(string: "https://127.0.0.1:9/")!))
        }
        #expect(error.code == .tls)
        #expect(error.message.contains("/nonexistent/ca.pem"))
    }

    @Test func withoutTheLeanClientCustomRootsFailInsteadOfBeingIgnored() async throws {
        let transport = PlainHTTPTransport(
            configuration: .init(tls: TLSFixtures.caBundle, handlesHTTPS: false),
            fallback: ClosureTransport { _ in HTTPResponse(status: 200) })
        let error = try await #require(throws: BatchError.self) {
            try await transport.send(HTTPRequest(url: URL(string: "https://127.0.0.1:9/")!))
        }
        #expect(error.code == .tls)
        #expect(error.message.contains("custom trust roots"))
    }

    @Test func anHTTPSProxyInTheEnvironmentSendsHTTPSToTheFallback() async throws {
        let seen = Mutex<[String]>([])
        let fallback = ClosureTransport { request in
            seen.withLock { $0.append(request.url.absoluteString) }
            return HTTPResponse(status: 299)
        }
        let transport = PlainHTTPTransport(
            fallback: fallback, environment: ["HTTPS_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "internal.example"])
        let proxied = try await transport.send(HTTPRequest(url: URL(string: "https://api.example.com/v1/models")!))
        #expect(proxied.status == 299)
        #expect(seen.withLock { $0 } == ["https://api.example.com/v1/models"])
        // NO_PROXY exempts a host: it is served here (and fails to resolve, not via the fallback).
        let exempt = ProxyEnvironment(["HTTPS_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "internal.example"])
        #expect(!exempt.proxies("api.internal.example", secure: true))
        #expect(exempt.proxies("api.example.com", secure: true))
        #expect(!exempt.proxies("api.example.com", secure: false))
    }

    /// OpenSSL writes its socket with write(2), which raises SIGPIPE when the peer has gone; the
    /// default action of SIGPIPE ends the process (this is how whole test runs died). On a thread
    /// that called `BrokenPipe.blockOnThisThread()`, as the transport's loop thread and the TLS
    /// emulator's threads do, the handshake on a closed socket fails as an error instead. Without
    /// the block this test kills the test process.
    @Test func aTLSWriteToAClosedPeerFailsAndDoesNotKillTheProcess() async throws {
        let library = try #require(OpenSSLLibrary.shared)
        let context = try TLSContext(client: TLSFixtures.caBundle, library: library)
        let (progress, signalWasRaised) = await withCheckedContinuation {
            (continuation: CheckedContinuation<(TLSSession.Progress?, Bool), Never>) in
            Thread {
                BrokenPipe.blockOnThisThread()
                var fds: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else {
                    continuation.resume(returning: (nil, false)); return
                }
                close(fds[1])
                let session = TLSSession(context: context, fd: fds[0], serverName: "localhost")
                let progress = session?.handshake()
                var pending = sigset_t()
                sigpending(&pending)
                let raised = sigismember(&pending, SIGPIPE) == 1
                close(fds[0])
                continuation.resume(returning: (progress, raised))
            }.start()
        }
        guard case .failed = try #require(progress) else {
            Issue.record("the handshake on a closed socket was \(String(describing: progress))"); return
        }
        // The write really raised SIGPIPE (held pending on the blocked thread, dropped when it ends).
        #expect(signalWasRaised)
    }
}
#endif
