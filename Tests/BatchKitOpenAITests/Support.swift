import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// How the tests reach the emulator.
enum Wire: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The emulator's in-process transport.
    case inProcess
    /// `URLSessionTransport` to the emulator's loopback HTTP server.
    case loopback
    /// `PlainHTTPTransport` to the emulator's loopback HTTP server (file uploads and downloads
    /// go through its URLSession fallback).
    case plainLoopback
    var description: String { rawValue }
}

/// An emulator on a manual clock, reachable through one transport.
struct Harness: Sendable {
    let emulator: ProviderEmulator
    let clock: ManualClock
    let transport: any HTTPTransport
    /// The emulator's root (`http://host:port`), without `/v1`.
    let root: URL
    let server: EmulatorServer?

    var baseURL: URL { root.appendingPathComponent("v1") }

    func client(apiKey: String? = "sk-test-key-123456", extraHeaders: HTTPHeaders = [:]) -> OpenAIClient {
        OpenAIClient(apiKey: apiKey, baseURL: baseURL, extraHeaders: extraHeaders, transport: transport)
    }

    func backend(limits: BatchLimits = OpenAIBatchBackend.defaultLimits) -> OpenAIBatchBackend {
        OpenAIBatchBackend(apiKey: "sk-test-key-123456", baseURL: baseURL, transport: transport, limits: limits)
    }

    /// A raw call to the emulator.
    func call(_ method: String, _ path: String, json: JSONValue? = nil, headers: HTTPHeaders = ["Authorization": "Bearer sk-test"],
              body: Data? = nil) async throws -> (status: Int, json: JSONValue?, headers: HTTPHeaders, body: Data)
    {
        var h = headers
        if json != nil { h["Content-Type"] = "application/json" }
        let url = URL(string: root.absoluteString + path)!
        let data = json?.serialized() ?? body
        let r = try await transport.send(HTTPRequest(method: method, url: url, headers: h, body: data.map { .data($0) }))
        let bytes = try r.bodyData()
        return (r.status, try? JSONValue(parsing: bytes), r.headers, bytes)
    }

    func shutdown() async { await server?.shutdown() }
}

func withHarness(
    _ wire: Wire = .inProcess, _ configuration: EmulatorConfiguration = .init(), _ body: (Harness) async throws -> Void
) async throws {
    let clock = ManualClock()
    let emulator = ProviderEmulator(configuration: configuration, clock: clock)
    let harness: Harness
    switch wire {
    case .inProcess:
        harness = Harness(emulator: emulator, clock: clock, transport: emulator.transport, root: URL(string: "http://emulator.invalid")!, server: nil)
    case .loopback, .plainLoopback:
        let server = try await EmulatorServer.start(emulator: emulator)
        let transport: any HTTPTransport = wire == .loopback ? URLSessionTransport() : PlainHTTPTransport()
        harness = Harness(emulator: emulator, clock: clock, transport: transport, root: server.baseURL, server: server)
    }
    do {
        try await body(harness)
    } catch {
        await harness.shutdown()
        throw error
    }
    await harness.shutdown()
}

func chat(_ id: String, _ text: String, model: String = "gpt-4o-mini", maxTokens: Int? = nil) -> BatchRequest {
    BatchRequest(id: id, chat: ChatRequest(model: model, messages: [.user(text)], maxTokens: maxTokens))
}

/// A multipart upload body for the Files API.
func multipart(purpose: String, filename: String, content: Data, boundary: String = "XyZ123") -> (Data, String) {
    var d = Data()
    d.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n".utf8))
    d.append(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8))
    d.append(content)
    d.append(Data("\r\n--\(boundary)--\r\n".utf8))
    return (d, "multipart/form-data; boundary=\(boundary)")
}

extension Harness {
    /// Uploads JSONL lines as a batch input file; returns the file id.
    func uploadBatchFile(_ lines: [String], filename: String = "input.jsonl", prefix: String = "") async throws -> String {
        let (body, type) = multipart(purpose: "batch", filename: filename, content: Data((lines.joined(separator: "\n") + "\n").utf8))
        let r = try await call("POST", prefix + "/v1/files", headers: ["Authorization": "Bearer sk-test", "api-key": "sk-test", "Content-Type": type], body: body)
        #expect(r.status == 200)
        return try #require(r.json?["id"]?.stringValue)
    }

    func createBatch(fileID: String, endpoint: String = "/v1/chat/completions") async throws -> JSONValue {
        let r = try await call("POST", "/v1/batches", json: ["input_file_id": .string(fileID), "endpoint": .string(endpoint), "completion_window": "24h"])
        #expect(r.status == 200)
        return try #require(r.json)
    }
}

func chatLine(_ id: String, _ text: String, model: String = "gpt-4o-mini", extra: [String: JSONValue] = [:]) -> String {
    var body: [String: JSONValue] = ["model": .string(model), "messages": [["role": "user", "content": .string(text)]]]
    for (k, v) in extra { body[k] = v }
    return JSONValue.object(["custom_id": .string(id), "method": "POST", "url": "/v1/chat/completions", "body": .object(body)]).jsonString
}
