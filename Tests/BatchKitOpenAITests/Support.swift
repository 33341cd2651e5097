import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// The shared emulator harness (BatchKitTesting), seen from the OpenAI tests.
typealias Harness = EmulatorHarness

extension EmulatorHarness {
    /// The emulator's OpenAI base URL (`…/v1`).
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
        let r = try await send(method, path, headers: h, body: json?.serialized() ?? body)
        let bytes = try r.bodyData()
        return (r.status, try? JSONValue(parsing: bytes), r.headers, bytes)
    }
}

/// Runs `body` with an emulator on a manual clock reached over `wire`.
func withHarness(
    _ wire: Wire = .inProcess, _ configuration: EmulatorConfiguration = .init(), _ body: (Harness) async throws -> Void
) async throws {
    try await withEmulatorHarness(wire, configuration, body)
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
