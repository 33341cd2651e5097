import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKitGemini

/// The shared emulator harness (BatchKitTesting), seen from the Gemini tests.
typealias GeminiHarness = EmulatorHarness

extension EmulatorHarness {
    /// Gemini's base URL is the emulator's root.
    var baseURL: URL { root }
}

/// Runs `body` with a harness and always shuts it down.
func withHarness<T>(
    _ wire: Wire, _ configuration: EmulatorConfiguration, _ body: (GeminiHarness) async throws -> T
) async throws -> T {
    try await withEmulatorHarness(wire, configuration, body)
}

/// A Gemini client against a fresh emulator.
struct GeminiFixture {
    static let key = "AIzaTEST-gemini-key-123"
    let harness: GeminiHarness
    let client: GeminiClient
    var clock: ManualClock { harness.clock }
    var emulator: ProviderEmulator { harness.emulator }

    init(_ harness: GeminiHarness, apiVersion: String = "v1beta", key: String = GeminiFixture.key) {
        self.harness = harness
        client = GeminiClient(apiKey: key, baseURL: harness.baseURL, apiVersion: apiVersion, transport: harness.transport)
    }
}

func withGemini(
    _ wire: Wire, _ configuration: EmulatorConfiguration = .init(), apiVersion: String = "v1beta", key: String = GeminiFixture.key,
    _ body: (GeminiFixture) async throws -> Void
) async throws {
    try await withHarness(wire, configuration) { h in try await body(GeminiFixture(h, apiVersion: apiVersion, key: key)) }
}

/// Forwards to another transport and keeps every request.
final class RecordingTransport: HTTPTransport {
    let base: any HTTPTransport
    private let log = Mutex<[HTTPRequest]>([])
    init(_ base: any HTTPTransport) { self.base = base }
    var requests: [HTTPRequest] { log.withLock { $0 } }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        log.withLock { $0.append(request) }
        return try await base.send(request)
    }
}

/// A Gemini batch backend against a fresh emulator on a manual clock.
struct GeminiBatchFixture {
    let harness: GeminiHarness
    let transport: RecordingTransport
    var backend: GeminiBatchBackend
    var clock: ManualClock { harness.clock }
    var emulator: ProviderEmulator { harness.emulator }

    init(_ harness: GeminiHarness, apiVersion: String = "v1beta", inlineByteLimit: Int? = nil, key: String = GeminiFixture.key) {
        self.harness = harness
        transport = RecordingTransport(harness.transport)
        backend = GeminiBatchBackend(apiKey: key, baseURL: harness.baseURL, apiVersion: apiVersion, transport: transport)
        if let inlineByteLimit { backend.inlineByteLimit = inlineByteLimit }
    }

    func encode(_ requests: [BatchRequest]) throws -> [EncodedBatchItem] { try requests.map { try backend.encode($0) } }

    func results(_ job: BatchJob) async throws -> [String: BatchResult] {
        var out: [String: BatchResult] = [:]
        try await backend.results(of: job) { r in
            #expect(out[r.id] == nil, "result for \(r.id) reported twice")
            out[r.id] = r
        }
        return out
    }
}

func withBatch(
    _ wire: Wire, _ configuration: EmulatorConfiguration = .init(), apiVersion: String = "v1beta", inlineByteLimit: Int? = nil,
    key: String = GeminiFixture.key, _ body: (inout GeminiBatchFixture) async throws -> Void
) async throws {
    try await withHarness(wire, configuration) { h in
        var f = GeminiBatchFixture(h, apiVersion: apiVersion, inlineByteLimit: inlineByteLimit, key: key)
        try await body(&f)
    }
}

func chat(_ id: String, _ text: String, model: String = "gemini-2.5-flash", maxTokens: Int? = nil) -> BatchRequest {
    BatchRequest(id: id, chat: ChatRequest(model: model, messages: [.user(text)], maxTokens: maxTokens))
}

func chats(_ n: Int, prefix: String = "req") -> [BatchRequest] {
    (0..<n).map { chat("\(prefix)-\($0)", "Question number \($0): what is \($0) squared?") }
}

func failure(_ body: () async throws -> Void) async -> BatchError? {
    do {
        try await body()
        return nil
    } catch let e as BatchError {
        return e
    } catch {
        return BatchError(wrapping: error)
    }
}

/// A thread-safe counter for closures.
final class SentCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
