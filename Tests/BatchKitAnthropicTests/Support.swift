import BatchKit
import BatchKitTesting
import Foundation
import Synchronization

@testable import BatchKitAnthropic

/// A key that must never show up in errors or descriptions.
let secretKey = "sk-ant-TESTSECRET-0123456789abcdef"
let emulatorURL = URL(string: "http://emulator.invalid")!

/// Runs `body` with a fixture reached over `wire`, and stops the loopback server afterwards.
func withFixture(
    _ wire: Wire, _ configuration: EmulatorConfiguration = .init(), _ body: (AnthropicFixture) async throws -> Void
) async throws {
    try await withEmulatorHarness(wire, configuration) { h in try await body(AnthropicFixture(harness: h)) }
}

/// The shared emulator harness (BatchKitTesting) with Anthropic clients and backends, every
/// request they send recorded.
struct AnthropicFixture {
    let harness: EmulatorHarness
    let recorder = RequestRecorder()

    var clock: ManualClock { harness.clock }
    var emulator: ProviderEmulator { harness.emulator }
    /// Where clients send their requests.
    var baseURL: URL { harness.root }

    init(harness: EmulatorHarness) { self.harness = harness }

    /// An in-process fixture.
    init(_ configuration: EmulatorConfiguration = .init()) { self.init(harness: .inProcess(configuration)) }

    /// The transport to the emulator, recording every request it carries.
    var transport: any HTTPTransport {
        let inner = harness.transport
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
        let r = try await harness.send(method, path, headers: h, body: body?.serialized())
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
