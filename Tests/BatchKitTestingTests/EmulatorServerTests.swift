import BatchKit
import Foundation
import Synchronization
import Testing
@testable import BatchKitTesting

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Answers with a JSON summary of what arrived.
let echoHandler: EmulatorServer.Handler = { request in
    var query: [String: JSONValue] = [:]
    for (k, v) in request.query { query[k] = .string(v) }
    var headers: [String: JSONValue] = [:]
    for field in request.headers { headers[field.name.lowercased()] = .string(field.value) }
    return .json(200, [
        "method": .string(request.method), "path": .string(request.path), "query": .object(query),
        "headers": .object(headers), "bytes": .int(request.body.count),
        "body": .string(request.body.count <= 4096 ? String(decoding: request.body, as: UTF8.self) : ""),
    ])
}

func json(_ data: Data) throws -> JSONValue { try JSONValue(parsing: data) }

@Suite("EmulatorServer", .timeLimit(.minutes(5)))
struct EmulatorServerTests {
    @Test func servesSeveralRequestsOnOneKeptAliveConnection() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let answers = try await onThread { () -> [RawResponse] in
            let connection = try RawHTTPConnection(port: port)
            var answers: [RawResponse] = []
            for i in 0..<3 {
                try connection.send(rawGET("/v1/items/\(i)%20x?limit=\(i)&name=a%2Bb"))
                answers.append(try connection.readResponse())
            }
            return answers
        }
        #expect(answers.map(\.status) == [200, 200, 200])
        #expect(answers.allSatisfy { $0.headers["connection"] == nil })  // HTTP/1.1: open by default
        let last = try json(answers[2].body)
        #expect(last["path"]?.stringValue == "/v1/items/2 x")
        #expect(last["query"]?["limit"]?.stringValue == "2")
        #expect(last["query"]?["name"]?.stringValue == "a+b")
        #expect(server.requestsServed == 3)
        await server.shutdown()
    }

    @Test func readsChunkedAndContentLengthBodies() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let (chunked, sized) = try await onThread { () -> (RawResponse, RawResponse) in
            let connection = try RawHTTPConnection(port: port)
            try connection.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
            let chunked = try connection.readResponse()
            try connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
            try connection.send("payload")
            return (chunked, try connection.readResponse())
        }
        #expect(try json(chunked.body)["body"]?.stringValue == "hello, world")
        #expect(try json(sized.body)["body"]?.stringValue == "payload")
        await server.shutdown()
    }

    @Test func streamsALargeBodyIntoOneBuffer() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let size = 64 * 1024 * 1024 + 3
        let answer = try await onThread { () -> RawResponse in
            let connection = try RawHTTPConnection(port: port)
            try connection.send("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n")
            try connection.send(Data(repeating: 0x61, count: size))
            return try connection.readResponse()
        }
        #expect(try json(answer.body)["bytes"]?.intValue == size)
        await server.shutdown()
    }

    @Test func answers512ConcurrentConnections() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let statuses = try await onThread { () -> [Int] in
            // All connections are open before any request is sent.
            let connections = try (0..<512).map { _ in try RawHTTPConnection(port: port) }
            for (i, c) in connections.enumerated() { try c.send(rawGET("/c/\(i)")) }
            return try connections.map { try $0.readResponse().status }
        }
        #expect(statuses.count == 512)
        #expect(statuses.allSatisfy { $0 == 200 })
        await server.shutdown()
        #expect(server.connectionCount == 0)
    }

    @Test func honoursHTTP10AndHEAD() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let (head, next, legacy, rest) = try await onThread { () -> (RawResponse, RawResponse, RawResponse, Data) in
            let c = try RawHTTPConnection(port: port)
            try c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
            // A HEAD answer has a Content-Length but no body: the next answer follows at once.
            var head = try c.readResponseHeadOnly()
            try c.send(rawGET("/after-head"))
            let next = try c.readResponse()
            head.body = Data()
            let old = try RawHTTPConnection(port: port)
            try old.send("GET /old HTTP/1.0\r\n\r\n")
            let legacy = try old.readResponse()
            return (head, next, legacy, try old.readToEnd())
        }
        #expect(head.status == 200 && Int(head.headers["content-length"] ?? "0")! > 0)
        #expect(try json(next.body)["path"]?.stringValue == "/after-head")
        #expect(legacy.headers["connection"] == "close")
        #expect(rest.isEmpty, "an HTTP/1.0 connection closes after the answer")
        await server.shutdown()
    }

    @Test func rejectsMalformedRequests() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        let statuses = try await onThread { () -> [Int] in
            var out: [Int] = []
            for raw in [
                "NOT A VALID REQUEST LINE HERE\r\n\r\n",
                "GET / HTTP/1.1\r\nNoColonHere\r\n\r\n",
                "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            ] {
                let c = try RawHTTPConnection(port: port)
                try c.send(raw)
                out.append(try c.readResponse().status)
            }
            return out
        }
        #expect(statuses == [400, 400, 400, 501])
        await server.shutdown()
    }

    @Test func resetFaultIsAClientError() async throws {
        let emulator = ProviderEmulator(configuration: .init(faults: [EmulatorFault(.resetConnection)]))
        let server = try await EmulatorServer.start(emulator: emulator)
        let port = server.port
        let outcome = try await onThread { () -> String in
            let c = try RawHTTPConnection(port: port)
            try c.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test\r\n\r\n")
            do {
                let data = try c.readToEnd()
                return "closed with \(data.count) bytes"
            } catch {
                return "reset"
            }
        }
        #expect(outcome == "reset")
        let transport = URLSessionTransport()
        await #expect(throws: URLError.self) {
            _ = try await transport.send(
                HTTPRequest(url: server.baseURL.appendingPathComponent("v1/models"), headers: ["Authorization": "Bearer test"]))
        }
        await server.shutdown()
    }

    @Test func truncatedBodyFaultIsAClientError() async throws {
        let emulator = ProviderEmulator(configuration: .init(faults: [EmulatorFault(.truncatedBody(bytes: 5))]))
        let server = try await EmulatorServer.start(emulator: emulator)
        let port = server.port
        let received = try await onThread { () -> Data in
            let c = try RawHTTPConnection(port: port)
            try c.send("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test\r\n\r\n")
            return try c.readToEnd()
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 2 && parts[1].utf8.count == 5)
        #expect(text.contains("Content-Length: ") && !text.contains("Content-Length: 5\r\n"))
        let transport = URLSessionTransport()
        await #expect(throws: URLError.self) {
            _ = try await transport.send(
                HTTPRequest(url: server.baseURL.appendingPathComponent("v1/models"), headers: ["Authorization": "Bearer test"]))
        }
        await server.shutdown()
    }

    @Test func slowBodyArrivesWhole() async throws {
        let emulator = ProviderEmulator(configuration: .init(faults: [EmulatorFault(.slowBody(.milliseconds(100)))]))
        let server = try await EmulatorServer.start(emulator: emulator)
        let plain = ProviderEmulator()
        let expected = await plain.handle(EmulatorRequest(method: "GET", path: "/v1/models", headers: ["Authorization": "Bearer test"]))
        let response = try await URLSessionTransport().send(
            HTTPRequest(url: server.baseURL.appendingPathComponent("v1/models"), headers: ["Authorization": "Bearer test"]))
        #expect(response.status == expected.status)
        #expect(response.body == expected.body)
        await server.shutdown()
    }

    @Test func setsThePublicBaseURL() async throws {
        let emulator = ProviderEmulator()
        let server = try await EmulatorServer.start(emulator: emulator)
        #expect(emulator.configuration.publicBaseURL == server.baseURL)
        #expect(server.baseURL.absoluteString == "http://127.0.0.1:\(server.port)")
        await server.shutdown()
    }

    @Test func shutdownClosesListenerAndIdleConnections() async throws {
        let server = try await EmulatorServer.start(handler: echoHandler)
        let port = server.port
        // An idle kept-alive connection stays open until shutdown.
        let connection = try await onThread { () -> Int32 in
            let c = try RawHTTPConnection(port: port)
            try c.send(rawGET("/x"))
            _ = try c.readResponse()
            return dup(c.fd)
        }
        #expect(server.connectionCount == 1)
        await server.shutdown()
        #expect(server.connectionCount == 0)
        let afterShutdown = try await onThread { () -> (Bool, Int) in
            var byte: UInt8 = 0
            let n = recv(connection, &byte, 1, 0)
            _ = close(connection)
            let refused = (try? RawHTTPConnection(port: port)) == nil
            return (refused, n)
        }
        #expect(afterShutdown.0, "connecting after shutdown must fail")
        #expect(afterShutdown.1 <= 0, "the idle connection was closed")
        await server.shutdown()  // a second call returns at once
    }

    @Test func shutdownCancelsAHandlerInFlight() async throws {
        let (entered, enteredContinuation) = AsyncStream<Void>.makeStream()
        let server = try await EmulatorServer.start { _ in
            enteredContinuation.yield()
            // Wait until cancelled (shutdown cancels requests in flight).
            let (never, _) = AsyncStream<Void>.makeStream()
            for await _ in never {}
            return EmulatorResponse(status: 200)
        }
        let port = server.port
        let client = Task {
            try await onThread { () -> String in
                let c = try RawHTTPConnection(port: port)
                try c.send(rawGET("/stall"))
                return (try? c.readResponse()).map { "status \($0.status)" } ?? "closed"
            }
        }
        var iterator = entered.makeAsyncIterator()
        await iterator.next()
        await server.shutdown()
        #expect(try await client.value == "closed")
    }
}

@Suite("MultipartForm")
struct MultipartFormTests {
    @Test func parsesTheOpenAIFilesUpload() throws {
        let body = Data(
            ("--XyZ123\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                + "--XyZ123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch input.jsonl\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n\r\n--XyZ123--\r\n").utf8)
        let parts = try MultipartForm.parse(body: body, contentType: "multipart/form-data; boundary=XyZ123")
        #expect(parts.count == 2)
        #expect(parts[0].name == "purpose" && parts[0].text == "batch" && parts[0].filename == nil)
        #expect(parts[1].name == "file" && parts[1].filename == "batch input.jsonl")
        #expect(parts[1].contentType == "application/octet-stream")
        #expect(parts[1].text == "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n")
    }

    @Test func acceptsAQuotedBoundaryAndBinaryData() throws {
        var body = Data("--a'b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x;y.bin\"\r\n\r\n".utf8)
        let binary = Data((0..<2000).map { UInt8($0 % 256) })
        body += binary
        body += Data("\r\n--a'b--".utf8)
        let parts = try MultipartForm.parse(body: body, contentType: "multipart/form-data; boundary=\"a'b\"")
        #expect(parts.count == 1)
        #expect(parts[0].filename == "x;y.bin")
        #expect(parts[0].data == binary)
    }

    @Test func rejectsBrokenBodies() {
        #expect(throws: MultipartError.self) { try MultipartForm.parse(body: Data(), contentType: "multipart/form-data") }
        #expect(throws: MultipartError.self) {
            try MultipartForm.parse(body: Data("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno end".utf8),
                contentType: "multipart/form-data; boundary=b")
        }
    }
}

/// The server answers from threads of its own: a request is answered while every thread of the
/// shared concurrency pool is blocked. Before, handlers ran on that pool, and a parallel test run
/// on two loaded cores held answers back past clients' timeouts.
@Suite(.timeLimit(.minutes(5)))
struct EmulatorServerIsolationTests {
    @Test func answersWhileEveryPoolThreadIsBlocked() async throws {
        let server = try await EmulatorServer.start { _ in EmulatorResponse(status: 200, body: Data("ok".utf8)) }
        let port = server.port
        let width = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        // One blocker per pool thread (more would only queue). They block synchronously on
        // purpose, and are released by the thread below however the request ends.
        let blockers = (0..<width).map { _ in
            Task.detached {
                entered.signal()
                release.wait()
            }
        }
        let outcome = try await onThread { () -> String in
            defer { for _ in 0..<width { release.signal() } }
            // Every pool thread is then held by a blocker, or by other work in this process that
            // kept a blocker from starting for a minute (a parallel test run at load 10 once did):
            // the pool is saturated either way, and the answer must still come.
            let deadline = DispatchTime.now() + 60
            for _ in 0..<width where entered.wait(timeout: deadline) != .success { break }
            do {
                let connection = try RawHTTPConnection(port: port)
                Socket.setReceiveTimeout(connection.fd, seconds: 20)
                try connection.send(rawGET("/x", close: true))
                let response = try connection.readResponse()
                return "\(response.status) \(String(decoding: response.body, as: UTF8.self))"
            } catch {
                return "no answer while the pool was blocked: \(error)"
            }
        }
        for blocker in blockers { await blocker.value }
        #expect(outcome == "200 ok")
        await server.shutdown()
    }
}
