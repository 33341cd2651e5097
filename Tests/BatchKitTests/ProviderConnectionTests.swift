import BatchKit
import Foundation
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The one provider HTTP layer: authentication styles, error decoding, transport-failure mapping
/// and redaction, over a closure transport (no provider, no network).
@Suite(.timeLimit(.minutes(5))) struct ProviderConnectionTests {
    static let secret = "secret-key-0123456789"

    /// Records the requests it is given and answers with `answer`.
    final class Recorder: Sendable {
        let requests = Mutex<[HTTPRequest]>([])
        var last: HTTPRequest? { requests.withLock { $0.last } }
    }

    func connection(
        auth: ProviderAuth = .bearer, key: String? = secret, missingKeyMessage: String? = nil, extraHeaders: HTTPHeaders = [:],
        recorder: Recorder = Recorder(), redactor: @escaping @Sendable (String) -> String = { $0 },
        answer: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse = { _ in HTTPResponse(status: 200, body: Data("{}".utf8)) }
    ) -> ProviderConnection {
        ProviderConnection(
            baseURL: URL(string: "https://api.example.com/v1/")!, key: APIKey(key), auth: auth, missingKeyMessage: missingKeyMessage,
            headers: ["Accept": "application/json"], extraHeaders: extraHeaders,
            transport: ClosureTransport { request in
                recorder.requests.withLock { $0.append(request) }
                return try await answer(request)
            },
            timeout: .seconds(7),
            decodeError: { status, _, body in
                BatchError(.invalidRequest, "HTTP \(status): " + String(decoding: body, as: UTF8.self), httpStatus: status)
            },
            redactor: { $0.replacingOccurrences(of: "tok-", with: "tok-<masked>") },
            rateLimitParser: RateLimitHeaderParser { headers, _ in
                headers["limit"].flatMap(Int.init).map { RateLimitInfo(requests: .init(limit: $0)) }
            })
    }

    /// A call allowed longer than the connection's timeout (a file transfer's hour) still fails
    /// once nothing moves for the connection's timeout: a stalled upload answer must not hold a
    /// run for the hour (found by Scripts/proxy-check.py: a truncated upload answer hung a run).
    @Test func aCallAllowedLongerThanTheTimeoutIdlesOutAfterIt() throws {
        let c = connection()
        let url = URL(string: "https://api.example.com/v1/files")!
        let transfer = try c.request("POST", url, body: .data(Data("x".utf8)), timeout: .seconds(3600))
        #expect(transfer.timeout == .seconds(3600))
        #expect(transfer.idleTimeout == .seconds(7))
        let call = try c.request("GET", url)
        #expect(call.timeout == .seconds(7))
        #expect(call.idleTimeout == nil)
        #expect(try c.request("GET", url, timeout: .seconds(2)).idleTimeout == nil)
    }

    @Test func eachAuthStyleCarriesTheKeyWhereItBelongs() async throws {
        let recorder = Recorder()
        _ = try await connection(auth: .bearer, recorder: recorder).sendJSON("GET", URL(string: "https://api.example.com/v1/a")!)
        #expect(recorder.last?.headers["Authorization"] == "Bearer \(Self.secret)")
        _ = try await connection(auth: .header("x-api-key"), recorder: recorder).sendJSON("GET", URL(string: "https://api.example.com/v1/a")!)
        #expect(recorder.last?.headers["x-api-key"] == Self.secret)
        #expect(recorder.last?.headers["Authorization"] == nil)
        _ = try await connection(auth: .query("key"), recorder: recorder).sendJSON("GET", URL(string: "https://api.example.com/v1/a?x=1")!)
        let queried = try #require(recorder.last)
        #expect(URLComponents(url: queried.url, resolvingAgainstBaseURL: false)?.queryItems?.contains(URLQueryItem(name: "key", value: Self.secret)) == true)
        #expect(!queried.description.contains(Self.secret))
        #expect(queried.timeout == .seconds(7))
        #expect(queried.headers["Accept"] == "application/json")
    }

    @Test func aRequiredKeyThatIsMissingFailsBeforeSending() async throws {
        let recorder = Recorder()
        let c = connection(auth: .header("x-api-key"), key: nil, missingKeyMessage: "no key: set K", recorder: recorder)
        await #expect(throws: BatchError(.authentication, "")) { try await c.send("GET", c.url("/a")) }
        #expect(recorder.requests.withLock { $0.isEmpty })
        // Without a required key, calls go out without credentials.
        let open = connection(key: nil, recorder: recorder)
        _ = try await open.send("GET", open.url("/a"))
        #expect(recorder.last?.headers["Authorization"] == nil)
    }

    @Test func headersLayerInOrderAndUnauthenticatedCallsCarryNoCredential() async throws {
        let recorder = Recorder()
        let c = connection(
            extraHeaders: ["Accept": "text/plain", "x-api-key": "also-secret-1", "X-Trace": "t"], recorder: recorder)
        _ = try await c.send("POST", c.url("/a"), body: .data(Data("{}".utf8)), headers: ["X-Trace": "call"])
        let sent = try #require(recorder.last)
        #expect(sent.headers["Content-Type"] == "application/json")
        #expect(sent.headers["Accept"] == "text/plain")  // the caller's extra headers replace BatchKit's
        #expect(sent.headers["X-Trace"] == "call")  // and the call's own replace both
        _ = try await c.send("POST", URL(string: "https://upload.example.com/u?id=1")!, body: .data(Data()), authenticated: false)
        let upload = try #require(recorder.last)
        #expect(upload.headers["Authorization"] == nil)
        #expect(upload.headers["x-api-key"] == nil)
        #expect(upload.headers["X-Trace"] == "t")
    }

    @Test func errorAnswersAreDecodedAndRedacted() async throws {
        let c = connection(answer: { _ in
            HTTPResponse(status: 401, body: Data("bad key \(Self.secret) tok-abc".utf8))
        })
        do {
            _ = try await c.sendJSON("GET", c.url("/a"))
            Issue.record("expected an error")
        } catch let e as BatchError {
            #expect(e.code == .invalidRequest)
            #expect(e.httpStatus == 401)
            #expect(!e.message.contains(Self.secret))
            #expect(e.message.contains("<redacted>"))
            #expect(e.message.contains("tok-<masked>abc"))  // the provider's own redactor ran too
        }
    }

    @Test func aDownloadedErrorBodyIsReadAndItsFileRemoved() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pc-\(UUID().uuidString)")
        try Data("gone".utf8).write(to: file)
        let c = connection(answer: { _ in HTTPResponse(status: 404, bodyFile: file) })
        await #expect(throws: BatchError(.invalidRequest, "")) { _ = try await c.download(c.url("/f")) }
        #expect(!FileManager.default.fileExists(atPath: file.path))
    }

    @Test func downloadsKeptInMemoryLandInATemporaryFile() async throws {
        let c = connection(answer: { _ in HTTPResponse(status: 200, body: Data("a\nb\n".utf8)) })
        let file = try await c.download(c.url("/f"))
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try Data(contentsOf: file) == Data("a\nb\n".utf8))
    }

    @Test(arguments: [
        (URLError(.timedOut) as any Error, BatchError.Code.timeout, true),
        (URLError(.notConnectedToInternet) as any Error, BatchError.Code.network, true),
        (URLError(.cancelled) as any Error, BatchError.Code.network, true),  // not a task cancellation
        (POSIXError(.ECONNRESET) as any Error, BatchError.Code.network, true),
    ])
    func transportFailuresBecomeClassifiedErrors(failure: any Error, code: BatchError.Code, retryable: Bool) async throws {
        let c = connection(answer: { _ in throw failure })
        do {
            _ = try await c.send("GET", c.url("/a"))
            Issue.record("expected an error")
        } catch let e as BatchError {
            #expect(e.code == code)
            #expect(e.isRetryable == retryable)
            #expect(e.message.contains("GET https://api.example.com/v1/a"))
        }
    }

    @Test func cancellationStaysCancellation() async throws {
        let c = connection(answer: { _ in throw CancellationError() })
        await #expect(throws: CancellationError.self) { try await c.send("GET", c.url("/a")) }
    }

    @Test func transportTextThatEchoesTheKeyIsRedacted() async throws {
        struct Echo: Error, CustomStringConvertible { var description: String }
        let c = connection(answer: { _ in throw Echo(description: "proxy refused Bearer \(Self.secret)") })
        do {
            _ = try await c.send("GET", c.url("/a"))
            Issue.record("expected an error")
        } catch let e as BatchError {
            #expect(!e.message.contains(Self.secret))
            #expect(!String(describing: e).contains(Self.secret))
        }
        let thrown = connection(answer: { _ in throw BatchError(.server, "upstream said \(Self.secret)") })
        do {
            _ = try await thrown.send("GET", thrown.url("/a"))
        } catch let e as BatchError {
            #expect(!e.message.contains(Self.secret))
        }
    }

    @Test func aBodyThatIsNotJSONIsARetryableInvalidResponseWithRateLimits() async throws {
        let c = connection(answer: { _ in HTTPResponse(status: 200, headers: ["limit": "9"], body: Data("{cut".utf8)) })
        do {
            _ = try await c.sendJSON("GET", c.url("/a"))
            Issue.record("expected an error")
        } catch let e as BatchError {
            #expect(e.code == .invalidResponse)
            #expect(e.isRetryable)
            #expect(e.httpStatus == 200)
            #expect(e.rateLimit?.requests.limit == 9)
        }
    }

    @Test func urlsJoinAndServerLinksStayOnTheConfiguredOrigin() {
        let c = connection()
        #expect(c.url("batches").absoluteString == "https://api.example.com/v1/batches")
        #expect(c.url("/batches", query: [URLQueryItem(name: "after", value: "a b")]).absoluteString == "https://api.example.com/v1/batches?after=a%20b")
        #expect(c.serverURL("https://api.example.com/v1/r?x=1")?.absoluteString == "https://api.example.com/v1/r?x=1")
        #expect(c.serverURL("https://evil.example.net/v1/r?x=1")?.absoluteString == "https://api.example.com/v1/v1/r?x=1")
        #expect(c.serverURL("/r")?.absoluteString == "https://api.example.com/v1/r")
        #expect(c.serverURL("not a url") == nil)
    }

    @Test func descriptionsAndReflectionsNeverShowTheKey() {
        let c = connection()
        var dumped = ""
        dump(c, to: &dumped)
        for text in [c.description, String(reflecting: c), dumped] {
            #expect(!text.contains(Self.secret))
        }
        #expect(c.description.contains("API key set"))
    }

    @Test func requestIDsTravelOnlyWhenTheyAreValidHeaderValues() {
        #expect(ProviderConnection.requestIDHeaders("req-1")["x-client-request-id"] == "req-1")
        #expect(ProviderConnection.requestIDHeaders("a\r\nInjected: 1").fields.isEmpty)
        #expect(ProviderConnection.requestIDHeaders(String(repeating: "a", count: 257)).fields.isEmpty)
        #expect(ProviderConnection.requestIDHeaders(String(repeating: "a", count: 300), maxBytes: 512).fields.count == 1)
        #expect(ProviderConnection.requestIDHeaders(nil).fields.isEmpty)
    }
}
