#if canImport(Glibc)
import Glibc
@testable import BatchKit
@testable import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// A raw loopback server that answers requests with fixed bytes: for answers and connection
/// behaviour the emulator never shows. With `answersPerConnection` nil it closes each connection
/// right after its first answer (whatever the answer's headers promise); with a number it answers
/// that many requests on a connection and closes it, unanswered, on the next one.
final class CannedServer: Sendable {
    let port: Int
    private let listenFD: Int32
    private let accepted = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)

    var connectionsAccepted: Int { accepted.load(ordering: .sequentiallyConsistent) }
    /// Request heads read, answered or not.
    var requestsRead: Int { requests.load(ordering: .sequentiallyConsistent) }
    var url: URL { URL(string: "http://127.0.0.1:\(port)/canned")! }

    /// `waitsForHead: false` answers as soon as any bytes arrive (a cleartext server meeting a
    /// TLS client). `holdsOpen: true` sends the first answer and then neither answers nor closes
    /// (a peer that stalls after those bytes) until the client closes.
    init(answer: [UInt8], answersPerConnection: Int? = nil, waitsForHead: Bool = true, holdsOpen: Bool = false) throws {
        let (fd, port) = try Socket.listen(host: "127.0.0.1", port: 0)
        listenFD = fd
        self.port = port
        let thread = Thread { [self] in
            while true {
                let connection = accept(fd, nil, nil)
                guard connection >= 0 else { return }  // the listener was shut down
                self.accepted.add(1, ordering: .sequentiallyConsistent)
                // Each connection on a thread of its own: a client may hold one idle in its pool
                // while it opens another.
                Thread { [self] in
                    self.serve(
                        connection, answer: answer, answersPerConnection: answersPerConnection, waitsForHead: waitsForHead,
                        holdsOpen: holdsOpen)
                }
                .start()
            }
        }
        thread.start()
    }

    private func serve(_ connection: Int32, answer: [UInt8], answersPerConnection: Int?, waitsForHead: Bool, holdsOpen: Bool) {
        var answered = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        serving: while true {
            // One request head; a body that did not come with it is read as the start of the
            // next head, which never completes: the connection then ends uncounted.
            var request = [UInt8]()
            repeat {
                let n = recv(connection, &buffer, buffer.count, 0)
                if n <= 0 { break serving }
                request += buffer[0..<n]
            } while waitsForHead && !request.containsHeadEnd
            requests.add(1, ordering: .sequentiallyConsistent)
            if let limit = answersPerConnection, answered >= limit { break }
            _ = answer.withUnsafeBytes { send(connection, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            answered += 1
            if holdsOpen {
                // Whatever else comes (an upload's body) is read and dropped until the client closes.
                while recv(connection, &buffer, buffer.count, 0) > 0 {}
                break
            }
            if answersPerConnection == nil { break }
        }
        _ = close(connection)
    }

    func stop() {
        _ = shutdown(listenFD, Int32(SHUT_RDWR))
        _ = close(listenFD)
    }
}

extension Array where Element == UInt8 {
    /// Whether the bytes hold the blank line that ends a request head.
    fileprivate var containsHeadEnd: Bool {
        count >= 4 && (0...(count - 4)).contains { self[$0] == 13 && self[$0 + 1] == 10 && self[$0 + 2] == 13 && self[$0 + 3] == 10 }
    }
}

/// What only `PlainHTTPTransport` does: pooling, its connection cap and queue, redirects it
/// follows itself, answers framed every way HTTP/1.1 allows, and routing to its fallback. What
/// both transports do is tested over both in `HTTPTransportTests`.
@Suite("PlainHTTPTransport", .timeLimit(.minutes(5)))
struct PlainHTTPTransportTests {
    @Test func sequentialRequestsShareOneConnection() async throws {
        let server = try await EmulatorServer.start { request in .json(200, ["path": .string(request.path)]) }
        let transport = PlainHTTPTransport()
        for i in 0..<20 {
            let response = try await transport.send(HTTPRequest(url: server.baseURL.appendingPathComponent("r\(i)")))
            #expect(try JSONValue(parsing: response.body)["path"]?.stringValue == "/r\(i)")
        }
        #expect(server.connectionsAccepted == 1)
        await server.shutdown()
    }

    @Test func aHostNameIsResolvedAndEachAddressTried() async throws {
        let server = try await EmulatorServer.start { request in .json(200, ["path": .string(request.path)]) }
        let transport = PlainHTTPTransport()
        let byName = try await transport.send(HTTPRequest(url: URL(string: "http://localhost:\(server.port)/by-name")!))
        #expect(try JSONValue(parsing: byName.body)["path"]?.stringValue == "/by-name")
        // A name whose first addresses refuse (nothing listens on ::1 or 127.0.0.2 at this
        // port, as `localhost` often resolves to ::1 first): the next address is tried.
        try transport.pin(host: "several.test", port: server.port, to: ["::1", "127.0.0.2", "127.0.0.1"])
        let tried = try await transport.send(HTTPRequest(url: URL(string: "http://several.test:\(server.port)/third")!))
        #expect(try JSONValue(parsing: tried.body)["path"]?.stringValue == "/third")
        try transport.pin(host: "nowhere.test", port: server.port, to: ["::1", "127.0.0.2"])
        let error = await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(url: URL(string: "http://nowhere.test:\(server.port)/")!))
        }
        #expect(error?.code == .cannotConnectToHost)
        #expect(server.requestsServed == 2)
        await server.shutdown()
    }

    @Test func concurrentRequestsStayWithinTheConnectionCap() async throws {
        let server = try await EmulatorServer.start { request in .json(200, ["path": .string(request.path)]) }
        let transport = PlainHTTPTransport(configuration: .init(maximumConnectionsPerHost: 3))
        let base = server.baseURL
        let paths = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for i in 0..<40 {
                group.addTask {
                    let response = try await transport.send(HTTPRequest(url: base.appendingPathComponent("c\(i)")))
                    return (i, try JSONValue(parsing: response.body)["path"]?.stringValue)
                }
            }
            var paths: [Int: String] = [:]
            for try await (i, path) in group { paths[i] = path }
            return paths
        }
        #expect(paths.count == 40)
        for i in 0..<40 { #expect(paths[i] == "/c\(i)") }
        #expect(server.connectionsAccepted <= 3)
        await server.shutdown()
    }

    @Test func aRequestWaitingForAConnectionTimesOutAndCanBeCancelled() async throws {
        let stall = StallingHandler()
        let server = try await EmulatorServer.start(handler: stall.handler)
        let transport = PlainHTTPTransport(configuration: .init(maximumConnectionsPerHost: 1))
        let url = server.baseURL
        let first = Task { try await transport.send(HTTPRequest(url: url)) }
        var arrivals = stall.entered.makeAsyncIterator()
        await arrivals.next()  // the only connection is busy

        let error = await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(url: url, timeout: .milliseconds(200)))
        }
        #expect(error?.code == .timedOut)
        let queued = Task { try await transport.send(HTTPRequest(url: url)) }
        queued.cancel()
        await #expect(throws: CancellationError.self) { _ = try await queued.value }
        first.cancel()
        await #expect(throws: CancellationError.self) { _ = try await first.value }
        #expect(server.connectionsAccepted == 1)
        await server.shutdown()
    }

    @Test func aRefusedConnectionIsANetworkError() async throws {
        // Port 1 (tcpmux) has no listener on loopback, so the refusal is deterministic; a port freed by
        // a server that just shut down could be taken by another test's listener before the connect.
        let url = URL(string: "http://127.0.0.1:1/")!
        do {
            _ = try await PlainHTTPTransport().send(HTTPRequest(url: url))
            Issue.record("expected a connection error")
        } catch let error as URLError {
            #expect(error.code == .cannotConnectToHost)
            #expect(BatchError(wrapping: error).code == .network)
            #expect(BatchError(wrapping: error).isRetryable)
        }
    }

    @Test func largeBodiesGoBothWays() async throws {
        let server = try await EmulatorServer.start { request in EmulatorResponse.bytes(request.body) }
        let content = Data((0..<(6 * 1024 * 1024 + 3)).map { UInt8(truncatingIfNeeded: $0 &* 29) })
        let response = try await PlainHTTPTransport().send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("echo"), body: .data(content)))
        #expect(response.status == 200)
        #expect(response.body == content)
        await server.shutdown()
    }

    @Test func redirectsFollowTheMethodRules() async throws {
        let server = try await EmulatorServer.start { request in
            switch request.path {
            case "/see-other": return EmulatorResponse(status: 303, headers: ["Location": "/landing"])
            case "/temporary": return EmulatorResponse(status: 307, headers: ["Location": "/landing"])
            case "/loop": return EmulatorResponse(status: 302, headers: ["Location": "/loop"])
            default:
                return .json(200, ["method": .string(request.method), "body": .string(String(decoding: request.body, as: UTF8.self))])
            }
        }
        let transport = PlainHTTPTransport(configuration: .init(maximumRedirects: 3))
        let body = HTTPBody.data(Data("{\"a\":1}".utf8))
        let seeOther = try await transport.send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("see-other"), body: body))
        let afterSeeOther = try JSONValue(parsing: seeOther.body)
        #expect(afterSeeOther["method"]?.stringValue == "GET")
        #expect(afterSeeOther["body"]?.stringValue == "")

        let temporary = try await transport.send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("temporary"), body: body))
        let afterTemporary = try JSONValue(parsing: temporary.body)
        #expect(afterTemporary["method"]?.stringValue == "POST")
        #expect(afterTemporary["body"]?.stringValue == "{\"a\":1}")

        let error = await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(url: server.baseURL.appendingPathComponent("loop")))
        }
        #expect(error?.code == .httpTooManyRedirects)
        #expect(server.requestsServed == 2 + 2 + 4)
        await server.shutdown()
    }

    @Test func aHeaderWithALineBreakIsRefusedBeforeSending() async throws {
        let server = try await EmulatorServer.start { _ in EmulatorResponse(status: 204) }
        do {
            _ = try await PlainHTTPTransport().send(
                HTTPRequest(url: server.baseURL, headers: ["X-Injected": "sk-secret\r\nX-Evil: 1"]))
            Issue.record("expected a validation error")
        } catch let error as BatchError {
            #expect(error.code == .validation)
            #expect(error.field == "headers.X-Injected")
            #expect(!String(describing: error).contains("sk-secret"))
        }
        #expect(server.requestsServed == 0)
        await server.shutdown()
    }

    /// With its own TLS switched off, `https://` goes to the fallback; file uploads and downloads
    /// over `http://` stay here (PlainHTTPFileTransferTests).
    @Test func httpsGoesToTheFallbackWhenNotServedHere() async throws {
        let seen = Mutex<[String]>([])
        let fallback = ClosureTransport { request in
            seen.withLock { $0.append("\(request.method) \(request.url.absoluteString) \(request.downloadsToFile)") }
            return HTTPResponse(status: 299)
        }
        // (TLSTransportTests cover https served here.)
        let transport = PlainHTTPTransport(configuration: .init(handlesHTTPS: false), fallback: fallback)
        let https = try await transport.send(HTTPRequest(url: URL(string: "https://api.example.com/v1/models")!))
        let download = try await transport.send(
            HTTPRequest(url: URL(string: "https://api.example.com/v1/files/f/content")!, downloadsToFile: true))
        #expect(https.status == 299)
        #expect(download.status == 299)
        #expect(seen.withLock { $0 } == ["GET https://api.example.com/v1/models false", "GET https://api.example.com/v1/files/f/content true"])
        let local = await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(url: URL(string: "http://127.0.0.1:9/out.jsonl")!, downloadsToFile: true))
        }
        #expect(local?.code == .cannotConnectToHost)
        #expect(seen.withLock { $0.count } == 2)
    }

    @Test func proxySettingsAreReadLikeCurl() {
        #expect(!ProxyEnvironment([:]).proxies("api.example.com"))
        let proxied = ProxyEnvironment(["http_proxy": "http://proxy.corp:3128", "no_proxy": "localhost, .internal.corp,10.0.0.5,[::1]"])
        #expect(proxied.proxies("api.example.com"))
        #expect(proxied.proxies("corp"))
        for direct in ["localhost", "LOCALHOST", "internal.corp", "gpu1.internal.corp", "10.0.0.5", "::1", "[::1]"] {
            #expect(!proxied.proxies(direct), "\(direct)")
        }
        #expect(ProxyEnvironment(["HTTP_PROXY": "http://p:1"]).proxies("localhost"))
        #expect(!ProxyEnvironment(["HTTP_PROXY": "http://p:1", "NO_PROXY": "*"]).proxies("anything"))
        #expect(!ProxyEnvironment(["http_proxy": ""]).proxies("anything"))
    }

    @Test func proxiedHostsGoToTheFallbackAndExemptOnesDirect() async throws {
        let server = try await EmulatorServer.start { _ in EmulatorResponse(status: 204) }
        let viaFallback = ClosureTransport { _ in HTTPResponse(status: 299) }
        let proxied = PlainHTTPTransport(fallback: viaFallback, environment: ["http_proxy": "http://proxy.invalid:3128"])
        #expect(try await proxied.send(HTTPRequest(url: server.baseURL)).status == 299)
        #expect(server.requestsServed == 0)
        let exempt = PlainHTTPTransport(
            fallback: viaFallback, environment: ["http_proxy": "http://proxy.invalid:3128", "no_proxy": "127.0.0.1"])
        #expect(try await exempt.send(HTTPRequest(url: server.baseURL)).status == 204)
        #expect(server.requestsServed == 1)
        await server.shutdown()
    }

    @Test func aRedirectToHTTPSContinuesOnTheFallbackWithoutTheKey() async throws {
        let seen = Mutex<HTTPRequest?>(nil)
        let fallback = ClosureTransport { request in
            seen.withLock { $0 = request }
            return HTTPResponse(status: 200)
        }
        let server = try await EmulatorServer.start { _ in
            EmulatorResponse(status: 308, headers: ["Location": "https://secure.example.com/v1/x?key=sk-secret&page=1"])
        }
        let response = try await PlainHTTPTransport(configuration: .init(handlesHTTPS: false), fallback: fallback).send(
            HTTPRequest(url: server.baseURL.appendingPathComponent("v1/x"), headers: ["Authorization": "Bearer sk-secret"]))
        #expect(response.status == 200)
        let forwarded = try #require(seen.withLock { $0 })
        #expect(forwarded.url.absoluteString == "https://secure.example.com/v1/x?page=1")
        #expect(forwarded.headers["authorization"] == nil)
        await server.shutdown()
    }

    @Test(arguments: [
        ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: t\r\n\r\n", "Wikipedia in \r\n\r\nchunks."),
        ("until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread me until the end", "read me until the end"),
        ("continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello"),
    ])
    func answersFramedEveryWay(_ name: String, _ answer: String, _ expected: String) async throws {
        let server = try CannedServer(answer: Array(answer.utf8))
        defer { server.stop() }
        let response = try await PlainHTTPTransport().send(HTTPRequest(url: server.url))
        #expect(response.status == 200, "\(name)")
        #expect(String(decoding: response.body, as: UTF8.self) == expected, "\(name)")
    }

    @Test func aConnectionTheServerClosedIsNotReusedBlindly() async throws {
        // The server promises keep-alive but closes after every answer: each request must still
        // succeed, on a new connection.
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8))
        defer { server.stop() }
        let transport = PlainHTTPTransport()
        for _ in 0..<5 {
            let response = try await transport.send(HTTPRequest(method: "POST", url: server.url, body: .data(Data("x".utf8))))
            #expect(String(decoding: response.body, as: UTF8.self) == "ok")
        }
        #expect(server.connectionsAccepted == 5)
    }

    /// libcurl, under URLSession on Linux, sends a request again on a fresh connection when the
    /// pooled one closed without an answer: a POST too (a second batch job), and a file body
    /// then goes out empty (the upload hangs until its timeout; found by an independent mock
    /// that drops the connection after storing an upload). A request marked `sendsOnce` reaches
    /// the server once over both transports, whatever its method, headers or body.
    @Test(arguments: [false, true])
    func aSendsOnceRequestReachesTheServerOnce(fileBody: Bool) async throws {
        // Each connection answers one request and drops the next unanswered.
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".utf8), answersPerConnection: 1)
        defer { server.stop() }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sends-once-\(UUID().uuidString).json")
        try Data("{}".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let transports: [any HTTPTransport] = [URLSessionTransport(), PlainHTTPTransport()]
        for transport in transports {
            // Leaves a pooled connection that the server drops on its next request.
            _ = try await transport.send(HTTPRequest(url: server.url))
            let before = server.requestsRead
            // An Idempotency-Key would let PlainHTTPTransport send it again, but for `sendsOnce`.
            var request = HTTPRequest(
                method: "POST", url: server.url, headers: ["Idempotency-Key": "k-1"],
                body: fileBody ? .file(file) : .data(Data("{}".utf8)),
                timeout: .seconds(30))  // a file body sent again goes out empty and hangs: fail, do not wait
            request.sendsOnce = true
            _ = try? await transport.send(request)
            #expect(server.requestsRead - before == 1, "\(type(of: transport)), file body \(fileBody)")
        }
    }

    @Test func aRequestThatMeetsAClosedPooledConnectionIsSentAgainOnAFreshOne() async throws {
        // Each connection answers one request and drops the next unanswered, as a server does
        // when its keep-alive timeout passes just as a request arrives.
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8), answersPerConnection: 1)
        defer { server.stop() }
        let transport = PlainHTTPTransport()
        for _ in 0..<5 {
            let response = try await transport.send(HTTPRequest(url: server.url))
            #expect(String(decoding: response.body, as: UTF8.self) == "ok")
        }
        #expect(server.connectionsAccepted == 5)
        #expect(server.requestsRead == 9)  // four were sent twice
    }

    @Test func aFreshConnectionThatClosesUnansweredIsNotRetried() async throws {
        let server = try CannedServer(answer: [], answersPerConnection: 0)
        defer { server.stop() }
        let error = await #expect(throws: URLError.self) {
            _ = try await PlainHTTPTransport().send(HTTPRequest(url: server.url))
        }
        #expect(error?.code == .networkConnectionLost)
        #expect(server.requestsRead == 1)
    }

    @Test func underFaultsAndCancellationEveryCallEndsAndThePoolStaysHealthy() async throws {
        // Resets, cut bodies and 500s from the emulator, a connection cap that makes requests
        // queue, and callers cancelled at every stage: each call must end (a lost continuation
        // would hang the test), with an answer or an error that says what happened.
        let emulator = ProviderEmulator(configuration: .init(faults: [
            EmulatorFault(.resetConnection, every: 7), EmulatorFault(.truncatedBody(bytes: 30), every: 11),
            EmulatorFault(.status(500), every: 13),
        ]))
        let server = try await EmulatorServer.start(emulator: emulator)
        let transport = PlainHTTPTransport(configuration: .init(maximumConnectionsPerHost: 12))
        let url = server.baseURL.appendingPathComponent("v1/chat/completions")
        func request(_ i: Int) -> HTTPRequest {
            let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q\#(i)"}],"max_tokens":4}"#
            return HTTPRequest(
                method: "POST", url: url, headers: ["Authorization": "Bearer sk-t", "Content-Type": "application/json"],
                body: .data(Data(body.utf8)))
        }
        enum Outcome: Hashable { case answered(Int), network, cancelled, other }
        let total = 1_200
        let outcomes = await withTaskGroup(of: Outcome.self) { group in
            var outcomes: [Outcome: Int] = [:]
            for i in 0..<total {
                if i >= 48, let done = await group.next() { outcomes[done, default: 0] += 1 }
                let call = Task { () -> Outcome in
                    do {
                        let response = try await transport.send(request(i))
                        if response.status == 200 {
                            #expect(try JSONValue(parsing: response.body)["choices"]?[0]?["message"]?["content"] != nil)
                        }
                        return .answered(response.status)
                    } catch is CancellationError {
                        return .cancelled
                    } catch is URLError {
                        return .network
                    } catch {
                        return .other
                    }
                }
                if i % 17 == 0 { call.cancel() }
                group.addTask { await call.value }
            }
            for await done in group { outcomes[done, default: 0] += 1 }
            return outcomes
        }
        #expect(outcomes.values.reduce(0, +) == total)
        #expect(outcomes[.answered(200), default: 0] > total / 2)
        #expect(outcomes[.answered(500), default: 0] > 0)
        #expect(outcomes[.network, default: 0] > 0)
        #expect(outcomes[.cancelled, default: 0] > 0)
        #expect(outcomes[.other] == nil)
        // Afterwards the pool still works and never went past its cap.
        emulator.update { $0.faults = [] }
        #expect(try await transport.send(request(total)).status == 200)
        #expect(server.connectionCount <= 12)
        await server.shutdown()
    }

    @Test func anAnswerCutShortIsANetworkError() async throws {
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".utf8))
        defer { server.stop() }
        let error = await #expect(throws: URLError.self) {
            _ = try await PlainHTTPTransport().send(HTTPRequest(url: server.url))
        }
        #expect(error?.code == .networkConnectionLost)
    }

    @Test func aMalformedAnswerIsAnError() async throws {
        let server = try CannedServer(answer: Array("SMTP ready\r\n\r\n".utf8))
        defer { server.stop() }
        let error = await #expect(throws: URLError.self) {
            _ = try await PlainHTTPTransport().send(HTTPRequest(url: server.url))
        }
        #expect(error?.code == .cannotParseResponse)
    }
}
#endif
