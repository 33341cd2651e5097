import BatchKit
import BatchKitTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A handler that signals when a request arrives and then answers only when cancelled (the
/// server cancels it at shutdown). Tests wait on `entered` instead of sleeping.
struct StallingHandler: Sendable {
    let entered: AsyncStream<Void>
    private let enteredContinuation: AsyncStream<Void>.Continuation

    init() { (entered, enteredContinuation) = AsyncStream<Void>.makeStream() }

    var handler: EmulatorServer.Handler {
        { [enteredContinuation] _ in
            enteredContinuation.yield()
            let (never, _) = AsyncStream<Void>.makeStream()
            for await _ in never {}
            return EmulatorResponse(status: 204)
        }
    }
}

/// Echoes the credentials and query a request arrived with.
let credentialEcho: EmulatorServer.Handler = { request in
    var seen: [String: JSONValue] = [:]
    for name in ["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-other"] {
        if let v = request.headers[name] { seen[name] = .string(v) }
    }
    for (k, v) in request.query { seen["query." + k] = .string(v) }
    seen["path"] = .string(request.path)
    return .json(200, .object(seen))
}

/// The two real transports. Every test below runs over both: `PlainHTTPTransport` must behave
/// like `URLSessionTransport` (and hands file bodies and downloads to it).
enum TransportKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case urlSession
    case plain

    func make(defaultTimeout: Duration = .seconds(600)) -> any HTTPTransport {
        switch self {
        case .urlSession: URLSessionTransport(configuration: .init(defaultTimeout: defaultTimeout))
        case .plain: PlainHTTPTransport(configuration: .init(defaultTimeout: defaultTimeout))
        }
    }

    var testDescription: String { rawValue }
}

@Suite("HTTP transports", .timeLimit(.minutes(5)))
struct HTTPTransportTests {
    @Test(arguments: TransportKind.allCases) func sendsAndReceivesJSON(_ kind: TransportKind) async throws {
        let server = try await EmulatorServer.start(handler: credentialEcho)
        let transport = kind.make()
        let response = try await transport.send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("v1/x"),
                headers: ["Authorization": "Bearer sk-1", "Content-Type": "application/json"], body: .data(Data("{}".utf8))))
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "application/json")
        let seen = try JSONValue(parsing: response.body)
        #expect(seen["authorization"]?.stringValue == "Bearer sk-1")
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func timesOutTheWholeExchange(_ kind: TransportKind) async throws {
        let stall = StallingHandler()
        let server = try await EmulatorServer.start(handler: stall.handler)
        let transport = kind.make()
        let started = ContinuousClock.now
        do {
            _ = try await transport.send(HTTPRequest(url: server.baseURL, timeout: .milliseconds(300)))
            Issue.record("expected a timeout")
        } catch let error as URLError {
            #expect(error.code == .timedOut)
            #expect(BatchError(wrapping: error).code == .timeout)
        }
        // The 300 ms timeout, not the 600 s default, ended it. The bound is loose (any time well
        // under the default tells them apart): on a loaded 2-core machine the whole test process
        // can be starved for tens of seconds (45 s failed at 50 s).
        #expect(ContinuousClock.now - started < .seconds(240))
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func usesTheDefaultTimeoutWhenTheRequestHasNone(_ kind: TransportKind) async throws {
        let stall = StallingHandler()
        let server = try await EmulatorServer.start(handler: stall.handler)
        let transport = kind.make(defaultTimeout: .milliseconds(200))
        let error = await #expect(throws: URLError.self) { _ = try await transport.send(HTTPRequest(url: server.baseURL)) }
        #expect(error?.code == .timedOut)
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func cancellingTheCallerCancelsTheRequest(_ kind: TransportKind) async throws {
        let stall = StallingHandler()
        let server = try await EmulatorServer.start(handler: stall.handler)
        let transport = kind.make()
        let url = server.baseURL
        let call = Task { try await transport.send(HTTPRequest(url: url)) }
        var arrivals = stall.entered.makeAsyncIterator()
        await arrivals.next()  // the request reached the server
        call.cancel()
        await #expect(throws: CancellationError.self) { _ = try await call.value }
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func aCancelledCallerSendsNothing(_ kind: TransportKind) async throws {
        let server = try await EmulatorServer.start(handler: credentialEcho)
        let transport = kind.make()
        let url = server.baseURL
        let call = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await transport.send(HTTPRequest(url: url))
        }
        await #expect(throws: CancellationError.self) { _ = try await call.value }
        #expect(server.requestsServed == 0)
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func uploadsAFileBody(_ kind: TransportKind) async throws {
        let server = try await EmulatorServer.start { request in
            EmulatorResponse.bytes(request.body)
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("upload-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let content = Data((0..<(3 * 1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try content.write(to: file)
        let response = try await kind.make().send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("upload"), body: .file(file)))
        #expect(response.status == 200)
        #expect(response.body == content)
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func downloadsToAFileTheCallerOwns(_ kind: TransportKind) async throws {
        let content = Data((0..<(2 * 1024 * 1024 + 17)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let server = try await EmulatorServer.start { _ in EmulatorResponse.bytes(content) }
        let response = try await kind.make().send(
            HTTPRequest(url: server.baseURL.appendingPathComponent("results.jsonl"), downloadsToFile: true))
        let file = try #require(response.bodyFile)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(try Data(contentsOf: file) == content)
        #expect(try response.bodyData() == content)
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func uploadsAFileAndDownloadsTheAnswerToAFile(_ kind: TransportKind) async throws {
        let server = try await EmulatorServer.start { request in EmulatorResponse.bytes(request.body) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("roundtrip-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        let content = Data((0..<(1024 * 1024 + 5)).map { UInt8(truncatingIfNeeded: $0 &* 13) })
        try content.write(to: file)
        let response = try await kind.make().send(
            HTTPRequest(method: "POST", url: server.baseURL.appendingPathComponent("echo"), body: .file(file),
                downloadsToFile: true))
        let downloaded = try #require(response.bodyFile)
        defer { try? FileManager.default.removeItem(at: downloaded) }
        #expect(try Data(contentsOf: downloaded) == content)
        await server.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func aRedirectToAnotherHostDropsTheKey(_ kind: TransportKind) async throws {
        let other = try await EmulatorServer.start(handler: credentialEcho)
        let target = other.baseURL.absoluteString + "/landing?key=sk-secret&page=2"
        let origin = try await EmulatorServer.start { request in
            if request.path == "/same" {
                return EmulatorResponse(status: 302, headers: ["Location": "/echo"])
            }
            if request.path == "/echo" { return await credentialEcho(request) }
            return EmulatorResponse(status: 307, headers: ["Location": target])
        }
        let headers: HTTPHeaders = [
            "Authorization": "Bearer sk-secret", "x-api-key": "sk-secret", "api-key": "sk-secret",
            "x-goog-api-key": "sk-secret", "x-other": "kept",
        ]
        let transport = kind.make()
        let crossed = try await transport.send(
            HTTPRequest(url: origin.baseURL.appendingPathComponent("start"), headers: headers))
        #expect(crossed.status == 200)
        let seen = try JSONValue(parsing: crossed.body)
        #expect(seen["path"]?.stringValue == "/landing")
        #expect(seen["x-other"]?.stringValue == "kept")
        #expect(seen["query.page"]?.stringValue == "2")
        #expect(!String(decoding: crossed.body, as: UTF8.self).contains("sk-secret"))

        // Within one origin the key stays.
        let same = try await transport.send(HTTPRequest(url: origin.baseURL.appendingPathComponent("same"), headers: headers))
        #expect(try JSONValue(parsing: same.body)["authorization"]?.stringValue == "Bearer sk-secret")
        await origin.shutdown()
        await other.shutdown()
    }

    @Test(arguments: TransportKind.allCases) func errorsNeverCarryTheKey(_ kind: TransportKind) async throws {
        // Port 1 on loopback: nothing listens there, so the connection is refused. (A port freed by
        // shutting a test server down could be taken by another test's server in the meantime.)
        let url = URL(string: "http://127.0.0.1:1/v1beta/models/x:generateContent?key=AIza-secret")!
        do {
            _ = try await kind.make().send(HTTPRequest(url: url, headers: ["x-goog-api-key": "AIza-secret"]))
            Issue.record("expected a connection error")
        } catch {
            let texts = [String(describing: error), String(reflecting: error), error.localizedDescription,
                         String(describing: BatchError(wrapping: error))]
            for text in texts { #expect(!text.contains("AIza-secret"), "\(text)") }
            #expect(error is URLError)
        }
    }

    /// A refused connection says so and names the host, through the transport's own error, the
    /// wrapped `BatchError` and a provider connection's error; never a bare code like -1004.
    @Test(arguments: TransportKind.allCases) func aRefusedConnectionSaysSoAndNamesTheHost(_ kind: TransportKind) async throws {
        let url = URL(string: "http://127.0.0.1:1/v1/chat/completions?api-key=sk-secret")!
        let error = await failure(of: kind, HTTPRequest(method: "POST", url: url, headers: ["Authorization": "Bearer sk-secret"]))
        let urlError = try #require(error as? URLError)
        #expect(urlError.code == .cannotConnectToHost)
        let connection = ProviderConnection(
            baseURL: URL(string: "http://127.0.0.1:1/v1")!, key: APIKey("sk-secret"), auth: .bearer, transport: kind.make(),
            timeout: nil, decodeError: { s, _, _ in BatchError(.server, "HTTP \(s)") })
        let viaConnection = connection.transportError(error, for: HTTPRequest(method: "POST", url: url))
        for text in [urlError.localizedDescription, String(describing: BatchError(wrapping: error)), String(describing: viaConnection)] {
            #expect(text.contains("refused"), "\(text)")
            #expect(text.contains("127.0.0.1:1"), "\(text)")
            #expect(!text.contains("-1004") && !text.contains("1004"), "\(text)")
            #expect(!text.contains("sk-secret"), "\(text)")
        }
        #expect(BatchError(wrapping: error).code == .network)
    }

    /// A name that cannot resolve (the reserved `.invalid` top-level domain) says "DNS" and names it.
    @Test(arguments: TransportKind.allCases) func anUnresolvableHostSaysDNSAndNamesIt(_ kind: TransportKind) async throws {
        let url = URL(string: "http://batchkit-test.invalid:8080/v1/models?key=AIza-secret")!
        var request = HTTPRequest(url: url)
        request.timeout = .seconds(20)
        let error = await failure(of: kind, request)
        let urlError = try #require(error as? URLError)
        #expect(urlError.code == .cannotFindHost || urlError.code == .dnsLookupFailed)
        for text in [urlError.localizedDescription, String(describing: BatchError(wrapping: error))] {
            #expect(text.contains("DNS"), "\(text)")
            #expect(text.contains("batchkit-test.invalid:8080"), "\(text)")
            #expect(!text.contains("AIza-secret"), "\(text)")
            #expect(!text.contains("-1003"), "\(text)")
        }
    }

    /// A server that never answers: the timeout names the host.
    @Test(arguments: TransportKind.allCases) func aTimeoutNamesTheHost(_ kind: TransportKind) async throws {
        let stalling = StallingHandler()
        let server = try await EmulatorServer.start(handler: stalling.handler)
        var request = HTTPRequest(url: server.baseURL.appendingPathComponent("slow"))
        request.timeout = .milliseconds(300)
        let error = await failure(of: kind, request)
        await server.shutdown()
        let batchError = BatchError(wrapping: error)
        #expect(batchError.code == .timeout)
        let host = "127.0.0.1:\(server.baseURL.port ?? 0)"
        #expect(batchError.description.contains("timed out waiting for \(host)"), "\(batchError)")
    }

    /// The error `request` fails with (a success is recorded as an issue).
    private func failure(of kind: TransportKind, _ request: HTTPRequest) async -> any Error {
        do {
            _ = try await kind.make().send(request)
            Issue.record("expected \(request.url) to fail")
            return CancellationError()
        } catch {
            return error
        }
    }
}
