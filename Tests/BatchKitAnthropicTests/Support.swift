import BatchKit
import BatchKitTesting
import Foundation
import Synchronization

@testable import BatchKitAnthropic

/// A key that must never show up in errors or descriptions.
let secretKey = "sk-ant-TESTSECRET-0123456789abcdef"
let emulatorURL = URL(string: "http://emulator.invalid")!

/// An emulator on a manual clock, and clients/backends wired to it in-process.
/// How tests reach the emulator: its in-process transport, or `URLSessionTransport` or
/// `PlainHTTPTransport` to the loopback `EmulatorServer`.
enum Wire: String, CaseIterable, Sendable {
    case inProcess
    case loopback
    case plainLoopback
}

/// Runs `body` with a fixture reached over `wire`, and stops the loopback server afterwards.
func withFixture(
    _ wire: Wire, _ configuration: EmulatorConfiguration = .init(), _ body: (AnthropicFixture) async throws -> Void
) async throws {
    let f = try await AnthropicFixture.make(configuration, wire)
    do {
        try await body(f)
    } catch {
        await f.shutdown()
        throw error
    }
    await f.shutdown()
}

struct AnthropicFixture {
    let clock = ManualClock()
    let emulator: ProviderEmulator
    let recorder = RequestRecorder()
    /// Where clients send their requests.
    var baseURL = emulatorURL
    /// The transport to the loopback server, when the fixture uses one.
    var wireTransport: (any HTTPTransport)?
    var server: EmulatorServer?

    init(_ configuration: EmulatorConfiguration = .init()) {
        emulator = ProviderEmulator(configuration: configuration, clock: clock)
    }

    static func make(_ configuration: EmulatorConfiguration, _ wire: Wire) async throws -> AnthropicFixture {
        var f = AnthropicFixture(configuration)
        switch wire {
        case .inProcess: return f
        case .loopback, .plainLoopback:
            let server = try await EmulatorServer.start(emulator: f.emulator)
            f.server = server
            f.baseURL = server.baseURL
            f.wireTransport =
                wire == .loopback
                ? URLSessionTransport(configuration: .init(defaultTimeout: .seconds(30)))
                : PlainHTTPTransport(configuration: .init(defaultTimeout: .seconds(30)))
            return f
        }
    }

    func shutdown() async { await server?.shutdown() }

    /// The transport to the emulator, recording every request it carries.
    var transport: any HTTPTransport {
        let inner = wireTransport ?? emulator.transport
        let recorder = self.recorder
        return ClosureTransport { request in
            recorder.record(request)
            return try await inner.send(request)
        }
    }

    func client(
        apiKey: String = secretKey, defaultMaxTokens: Int = 4096, structuredOutput: AnthropicStructuredOutput = .forcedTool
    ) -> AnthropicClient {
        AnthropicClient(
            apiKey: apiKey, baseURL: baseURL, defaultMaxTokens: defaultMaxTokens, structuredOutput: structuredOutput,
            transport: transport)
    }

    func backend(limits: BatchLimits = AnthropicBatchBackend.defaultLimits, apiKey: String = secretKey) -> AnthropicBatchBackend {
        AnthropicBatchBackend(apiKey: apiKey, baseURL: baseURL, transport: transport, limits: limits)
    }

    /// Sends a raw request to the emulator, as any HTTP client would.
    func raw(
        _ method: String, _ path: String, headers: HTTPHeaders = ["x-api-key": secretKey, "anthropic-version": "2023-06-01"],
        body: JSONValue? = nil
    ) async throws -> (status: Int, json: JSONValue?, headers: HTTPHeaders, body: Data) {
        var h = headers
        if body != nil { h["content-type"] = "application/json" }
        let r = try await (wireTransport ?? emulator.transport).send(
            HTTPRequest(method: method, url: URL(string: baseURL.absoluteString + path)!, headers: h, body: body.map { .data($0.serialized()) }))
        let data = try r.bodyData()
        return (r.status, try? JSONValue(parsing: data), r.headers, data)
    }
}

/// Records the requests a transport carries.
final class RequestRecorder: Sendable {
    let requests = Mutex<[HTTPRequest]>([])
    func record(_ r: HTTPRequest) { requests.withLock { $0.append(r) } }
    var all: [HTTPRequest] { requests.withLock { $0 } }
}

func chat(_ id: String, _ text: String = "Hello", model: String = "claude-sonnet-4-5", configure: (inout ChatRequest) -> Void = { _ in })
    -> BatchRequest
{
    var c = ChatRequest(model: model, messages: [.user(text)])
    configure(&c)
    return BatchRequest(id: id, chat: c)
}

/// The error thrown by `body`, as a `BatchError`.
func batchError(_ body: () async throws -> Void) async -> BatchError? {
    do {
        try await body()
        return nil
    } catch let e as BatchError {
        return e
    } catch {
        return BatchError(wrapping: error)
    }
}

let personSchema: JSONValue = [
    "type": "object",
    "properties": ["name": ["type": "string"], "age": ["type": "integer"], "tags": ["type": "array", "items": ["type": "string"]]],
    "required": ["name", "age"], "additionalProperties": false,
]
