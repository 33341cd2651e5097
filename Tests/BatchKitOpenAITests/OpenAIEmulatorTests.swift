import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

@Suite(.timeLimit(.minutes(5))) struct OpenAIEmulatorTests {
    static let batchKeys: Set<String> = [
        "id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window", "status", "output_file_id",
        "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at",
        "expired_at", "cancelling_at", "cancelled_at", "request_counts", "usage", "metadata",
    ]

    // MARK: - Real-time endpoints

    @Test(arguments: Wire.allCases)
    func chatCompletionShapeAndDeterminism(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let body: JSONValue = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": "Say hello"]], "max_completion_tokens": 50]
            let a = try await h.call("POST", "/v1/chat/completions", json: body)
            let b = try await h.call("POST", "/v1/chat/completions", json: body)
            #expect(a.status == 200)
            let json = try #require(a.json)
            #expect(json["object"] == "chat.completion")
            #expect(json["model"] == "gpt-4o-mini")
            #expect(json["choices"]?[0]?["message"]?["role"] == "assistant")
            #expect(json["choices"]?[0]?["finish_reason"] == "stop")
            #expect(json["choices"]?[0]?["message"]?["content"] == b.json?["choices"]?[0]?["message"]?["content"])
            let usage = try #require(json["usage"])
            #expect(usage["total_tokens"]?.intValue == (usage["prompt_tokens"]?.intValue ?? 0) + (usage["completion_tokens"]?.intValue ?? 0))
            #expect(usage["prompt_tokens_details"]?["cached_tokens"] == 0)
            #expect(a.headers["x-request-id"]?.hasPrefix("req_") == true)
            #expect(a.headers["openai-version"] == "2020-10-01")
            #expect(h.emulator.modelRequestCount == 2)

            let other = try await h.call("POST", "/v1/chat/completions", json: ["model": "m", "messages": [["role": "user", "content": "Something else entirely"]]])
            #expect(other.json?["choices"]?[0]?["message"]?["content"] != json["choices"]?[0]?["message"]?["content"])

            let short = try await h.call("POST", "/v1/chat/completions", json: ["model": "m", "messages": [["role": "user", "content": "x"]], "max_tokens": 1])
            #expect(short.json?["choices"]?[0]?["finish_reason"] == "length")
        }
    }

    struct Invalid: Sendable, CustomStringConvertible {
        var body: JSONValue
        var status: Int
        var param: String?
        var code: String?
        var description: String { body.jsonString }
    }

    static let invalidChats: [Invalid] = [
        Invalid(body: ["model": "m", "messages": []], status: 400, param: "messages", code: "empty_array"),
        Invalid(body: ["messages": [["role": "user", "content": "x"]]], status: 400, param: nil, code: nil),
        Invalid(body: ["model": "m"], status: 400, param: "messages", code: "missing_required_parameter"),
        Invalid(body: ["model": "m", "messages": "hi"], status: 400, param: "messages", code: "invalid_type"),
        Invalid(body: ["model": "m", "messages": [["content": "x"]]], status: 400, param: "messages[0].role", code: "missing_required_parameter"),
        Invalid(body: ["model": "m", "messages": [["role": "wizard", "content": "x"]]], status: 400, param: "messages[0].role", code: "invalid_value"),
        Invalid(body: ["model": "m", "messages": [["role": "user", "content": "x"]], "max_tokens": 1_000_000], status: 400, param: "max_tokens", code: "invalid_value"),
        Invalid(body: ["model": "m", "messages": [["role": "user", "content": "x"]], "temperature": 3], status: 400, param: "temperature", code: "decimal_above_max_value"),
        Invalid(body: ["model": "gpt-does-not-exist", "messages": [["role": "user", "content": "x"]]], status: 404, param: nil, code: "model_not_found"),
    ]

    @Test(arguments: invalidChats)
    func chatValidation(_ invalid: Invalid) async throws {
        try await withHarness { h in
            let r = try await h.call("POST", "/v1/chat/completions", json: invalid.body)
            #expect(r.status == invalid.status)
            let error = try #require(r.json?["error"])
            #expect(error["param"] == (invalid.param.map(JSONValue.string) ?? .null))
            #expect(error["code"] == (invalid.code.map(JSONValue.string) ?? .null))
            #expect(error["type"] == "invalid_request_error")
            #expect(error["message"]?.stringValue?.isEmpty == false)
        }
    }

    @Test(arguments: Wire.allCases)
    func malformedJSONBody(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let r = try await h.call("POST", "/v1/chat/completions", headers: ["Authorization": "Bearer k", "Content-Type": "application/json"], body: Data("{nope".utf8))
            #expect(r.status == 400)
            #expect(r.json?["error"]?["message"]?.stringValue?.contains("parse the JSON body") == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func authenticationOnEveryEndpoint(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "sk-right")) { h in
            for (method, path) in [("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/files"), ("GET", "/v1/batches"),
                                   ("POST", "/v1/batches"), ("GET", "/v1/files/file-x/content")] {
                let missing = try await h.call(method, path, json: method == "POST" ? [:] : nil, headers: [:])
                #expect(missing.status == 401, "\(path)")
                #expect(missing.json?["error"]?["code"] == "missing_api_key")
                let wrong = try await h.call(method, path, json: method == "POST" ? [:] : nil, headers: ["Authorization": "Bearer sk-wrong"])
                #expect(wrong.status == 401)
                #expect(wrong.json?["error"]?["code"] == "invalid_api_key")
            }
            let ok = try await h.call("GET", "/v1/files", headers: ["Authorization": "Bearer sk-right"])
            #expect(ok.status == 200)
        }
    }

    @Test(arguments: Wire.allCases)
    func embeddingsFloatBase64AndDimensions(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let float = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": ["a cat", "a dog"]])
            #expect(float.status == 200)
            let data = try #require(float.json?["data"]?.arrayValue)
            #expect(data.count == 2)
            #expect(data[0]["embedding"]?.arrayValue?.count == 1536)
            #expect(data[0]["embedding"] != data[1]["embedding"])
            #expect(data[1]["index"] == 1)
            #expect(float.json?["usage"]?["prompt_tokens"]?.intValue ?? 0 > 0)

            let b64 = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": "a cat", "encoding_format": "base64", "dimensions": 8])
            let text = try #require(b64.json?["data"]?[0]?["embedding"]?.stringValue)
            let floats = try #require(OpenAIWire.decodeBase64Floats(text))
            #expect(floats.count == 8)
            let small = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": "a cat", "dimensions": 8])
            #expect(small.json?["data"]?[0]?["embedding"]?.arrayValue?.map { Float($0.doubleValue!) } == floats)

            let large = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-large", "input": "x"])
            #expect(large.json?["data"]?[0]?["embedding"]?.arrayValue?.count == 3072)
            let tooBig = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": "x", "dimensions": 5000])
            #expect(tooBig.status == 400)
            #expect(tooBig.json?["error"]?["param"] == "dimensions")
            let empty = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small", "input": ""])
            #expect(empty.status == 400)
            let missing = try await h.call("POST", "/v1/embeddings", json: ["model": "text-embedding-3-small"])
            #expect(missing.json?["error"]?["param"] == "input")
        }
    }

    @Test(arguments: Wire.allCases)
    func rawEndpoints(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let responses = try await h.call("POST", "/v1/responses", json: ["model": "gpt-4.1", "input": "Tell me a joke"])
            #expect(responses.status == 200)
            #expect(responses.json?["object"] == "response")
            #expect(responses.json?["output"]?[0]?["content"]?[0]?["type"] == "output_text")
            let completions = try await h.call("POST", "/v1/completions", json: ["model": "gpt-3.5-turbo-instruct", "prompt": "Say this"])
            #expect(completions.json?["choices"]?[0]?["text"]?.stringValue?.isEmpty == false)
            let moderation = try await h.call("POST", "/v1/moderations", json: ["input": ["hello", "I will kill"]])
            #expect(moderation.json?["results"]?[1]?["flagged"] == true)
            #expect(moderation.json?["results"]?[0]?["flagged"] == false)
        }
    }

    @Test(arguments: Wire.allCases)
    func rateLimitHeadersAnd429(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requestsPerMinute: 2, tokensPerMinute: 10_000)) { h in
            let body: JSONValue = ["model": "m", "messages": [["role": "user", "content": "hi"]]]
            let first = try await h.call("POST", "/v1/chat/completions", json: body)
            #expect(first.status == 200)
            #expect(first.headers["x-ratelimit-limit-requests"] == "2")
            #expect(first.headers["x-ratelimit-remaining-requests"] == "1")
            #expect(first.headers["x-ratelimit-limit-tokens"] == "10000")
            #expect(first.headers["x-ratelimit-reset-requests"] != nil)
            _ = try await h.call("POST", "/v1/chat/completions", json: body)
            let limited = try await h.call("POST", "/v1/chat/completions", json: body)
            #expect(limited.status == 429)
            #expect(limited.json?["error"]?["code"] == "rate_limit_exceeded")
            #expect(limited.json?["error"]?["type"] == "requests")
            #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1)
            #expect(limited.headers["x-ratelimit-remaining-requests"] == "0")
            #expect(h.emulator.rateLimitedCount == 1)
            h.clock.advance(by: .seconds(30))
            let again = try await h.call("POST", "/v1/chat/completions", json: body)
            #expect(again.status == 200)
        }
    }

    @Test(arguments: Wire.allCases)
    func clientRequestIDIsCounted(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let body: JSONValue = ["model": "m", "messages": [["role": "user", "content": "hi"]]]
            _ = try await h.call("POST", "/v1/chat/completions", json: body, headers: ["Authorization": "Bearer k", "x-client-request-id": "item-7"])
            _ = try await h.call("POST", "/v1/embeddings", json: ["model": "e", "input": "x"], headers: ["Authorization": "Bearer k", "x-client-request-id": "item-8"])
            #expect(h.emulator.sentCount(customID: "item-7") == 1)
            #expect(h.emulator.sentCount(customID: "item-8") == 1)
            #expect(h.emulator.sentCount(customID: "item-9") == 0)
        }
    }

    @Test(arguments: Wire.allCases)
    func structuredOutputFollowsSchema(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let schema: JSONValue = ["type": "object", "properties": ["name": ["type": "string"], "age": ["type": "integer"],
                                                                      "tags": ["type": "array", "items": ["type": "string"]],
                                                                      "kind": ["type": "string", "enum": ["a", "b"]]],
                                     "required": ["name", "age", "tags", "kind"], "additionalProperties": false]
            let r = try await h.call("POST", "/v1/chat/completions", json: [
                "model": "m", "messages": [["role": "user", "content": "Who?"]],
                "response_format": ["type": "json_schema", "json_schema": ["name": "person", "schema": schema, "strict": true]],
            ])
            let text = try #require(r.json?["choices"]?[0]?["message"]?["content"]?.stringValue)
            let value = try JSONValue(parsing: text)
            #expect(value["name"]?.stringValue != nil)
            #expect(value["age"]?.intValue != nil)
            #expect(value["tags"]?.arrayValue?.count == 1)
            #expect(value["kind"] == "a")
        }
    }

    // MARK: - Files

    @Test(arguments: Wire.allCases)
    func filesLifecycle(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let content = Data((chatLine("a", "hi") + "\n").utf8)
            let (body, type) = multipart(purpose: "batch", filename: "batchinput.jsonl", content: content)
            let up = try await h.call("POST", "/v1/files", headers: ["Authorization": "Bearer k", "Content-Type": type], body: body)
            #expect(up.status == 200)
            let file = try #require(up.json)
            #expect(Set(file.objectValue?.keys.map { $0 } ?? []) == ["id", "object", "bytes", "created_at", "expires_at", "filename", "purpose", "status", "status_details"])
            #expect(file["bytes"]?.intValue == content.count)
            #expect(file["purpose"] == "batch")
            #expect(file["status_details"] == .null)
            #expect((file["expires_at"]?.intValue ?? 0) - (file["created_at"]?.intValue ?? 0) == 30 * 86_400)
            let id = try #require(file["id"]?.stringValue)
            #expect(id.hasPrefix("file-"))

            let got = try await h.call("GET", "/v1/files/\(id)")
            #expect(got.json == file)
            let bytes = try await h.call("GET", "/v1/files/\(id)/content")
            #expect(bytes.body == content)

            var ids = [id]
            for i in 0..<3 {
                let (b, t) = multipart(purpose: i == 2 ? "user_data" : "batch", filename: "f\(i).jsonl", content: Data("{}\n".utf8))
                let r = try await h.call("POST", "/v1/files", headers: ["Authorization": "Bearer k", "Content-Type": t], body: b)
                ids.append(try #require(r.json?["id"]?.stringValue))
            }
            let page1 = try await h.call("GET", "/v1/files?limit=2")
            #expect(page1.json?["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [ids[3], ids[2]])
            #expect(page1.json?["has_more"] == true)
            #expect(page1.json?["first_id"] == .string(ids[3]))
            let last = try #require(page1.json?["last_id"]?.stringValue)
            let page2 = try await h.call("GET", "/v1/files?limit=2&after=\(last)")
            #expect(page2.json?["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [ids[1], ids[0]])
            #expect(page2.json?["has_more"] == false)
            let asc = try await h.call("GET", "/v1/files?order=asc&purpose=batch")
            #expect(asc.json?["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [ids[0], ids[1], ids[2]])

            let deleted = try await h.call("DELETE", "/v1/files/\(id)")
            #expect(deleted.json == ["id": .string(id), "object": "file", "deleted": true])
            let gone = try await h.call("GET", "/v1/files/\(id)")
            #expect(gone.status == 404)
            #expect(gone.json?["error"]?["message"]?.stringValue?.contains("No such File object") == true)
        }
    }

    @Test(arguments: Wire.allCases)
    func uploadValidation(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let (txt, t1) = multipart(purpose: "batch", filename: "input.txt", content: Data("{}".utf8))
            let notJSONL = try await h.call("POST", "/v1/files", headers: ["Authorization": "Bearer k", "Content-Type": t1], body: txt)
            #expect(notJSONL.status == 400)
            #expect(notJSONL.json?["error"]?["message"] == "Invalid file format for Batch API. Must be .jsonl")
            var noPurpose = Data("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{}\r\n--B--\r\n".utf8)
            let r = try await h.call("POST", "/v1/files", headers: ["Authorization": "Bearer k", "Content-Type": "multipart/form-data; boundary=B"], body: noPurpose)
            #expect(r.status == 400)
            #expect(r.json?["error"]?["param"] == "purpose")
            noPurpose = Data("garbage".utf8)
            let garbage = try await h.call("POST", "/v1/files", headers: ["Authorization": "Bearer k", "Content-Type": "multipart/form-data; boundary=B"], body: noPurpose)
            #expect(garbage.status == 400)
        }
    }

    // MARK: - Batches

    @Test(arguments: Wire.allCases)
    func batchCompletesWithOutputAndErrorFiles(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let lines = [
                chatLine("ok-1", "first"), chatLine("bad", "second", extra: ["max_tokens": 1_000_000]), chatLine("ok-2", "third"),
            ]
            let fileID = try await h.uploadBatchFile(lines)
            let created = try await h.createBatch(fileID: fileID)
            #expect(Set(created.objectValue?.keys.map { $0 } ?? []) == Self.batchKeys)
            #expect(created["status"] == "validating")
            #expect(created["request_counts"] == ["total": 0, "completed": 0, "failed": 0])
            #expect(created["in_progress_at"] == .null)
            #expect(created["output_file_id"] == .null)
            #expect(created["metadata"] == .null)
            #expect((created["expires_at"]?.intValue ?? 0) - (created["created_at"]?.intValue ?? 0) == 86_400)
            let id = try #require(created["id"]?.stringValue)
            #expect(id.hasPrefix("batch_"))
            #expect(h.emulator.sentCount(customID: "ok-1") == 1)
            #expect(h.emulator.sentCount(customID: "bad") == 1)

            let done = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(Set(done.objectValue?.keys.map { $0 } ?? []) == Self.batchKeys)
            #expect(done["status"] == "completed")
            #expect(done["request_counts"] == ["total": 3, "completed": 2, "failed": 1])
            #expect(done["model"] == "gpt-4o-mini")
            #expect(done["completed_at"] != .null)
            #expect(done["finalizing_at"] != .null)
            #expect(done["failed_at"] == .null)
            #expect((done["usage"]?["input_tokens"]?.intValue ?? 0) > 0)

            let outID = try #require(done["output_file_id"]?.stringValue)
            let errID = try #require(done["error_file_id"]?.stringValue)
            let outFile = try await h.call("GET", "/v1/files/\(outID)")
            #expect(outFile.json?["purpose"] == "batch_output")
            let output = try await h.call("GET", "/v1/files/\(outID)/content")
            let outLines = String(decoding: output.body, as: UTF8.self).split(separator: "\n").map { try! JSONValue(parsing: String($0)) }
            try #require(outLines.count == 2)
            #expect(Set(outLines.compactMap { $0["custom_id"]?.stringValue }) == ["ok-1", "ok-2"])
            let first = outLines[0]
            #expect(Set(first.objectValue?.keys.map { $0 } ?? []) == ["id", "custom_id", "response", "error"])
            #expect(first["id"]?.stringValue?.hasPrefix("batch_req_") == true)
            #expect(first["error"] == .null)
            #expect(first["response"]?["status_code"] == 200)
            #expect(first["response"]?["request_id"]?.stringValue?.hasPrefix("req_") == true)
            #expect(first["response"]?["body"]?["object"] == "chat.completion")

            let errors = try await h.call("GET", "/v1/files/\(errID)/content")
            let errLine = try JSONValue(parsing: String(decoding: errors.body, as: UTF8.self).trimmingCharacters(in: .newlines))
            #expect(errLine["custom_id"] == "bad")
            #expect(errLine["error"] == .null)
            #expect(errLine["response"]?["status_code"] == 400)
            #expect(errLine["response"]?["body"]?["error"]?["param"] == "max_tokens")

            // Reading again does not rewrite the files.
            let again = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(again["output_file_id"] == done["output_file_id"])
        }
    }

    @Test(arguments: Wire.allCases)
    func batchAdvancesOverTime(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            let fileID = try await h.uploadBatchFile((0..<10).map { chatLine("r\($0)", "q\($0)") })
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            let start = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(start["status"] == "in_progress")
            #expect(start["in_progress_at"] != .null)
            #expect(start["request_counts"]?["total"] == 10)
            #expect(start["request_counts"]?["completed"] == 0)
            h.clock.advance(by: .seconds(45))
            let half = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(half["status"] == "in_progress")
            #expect(half["request_counts"]?["completed"] == 5)
            #expect(half["output_file_id"] == .null)
            h.clock.advance(by: .seconds(50))
            let finalizing = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(finalizing["status"] == "finalizing")
            #expect(finalizing["finalizing_at"] != .null)
            #expect(finalizing["completed_at"] == .null)
            h.clock.advance(by: .seconds(5))
            let done = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(done["status"] == "completed")
            #expect(done["request_counts"] == ["total": 10, "completed": 10, "failed": 0])
            #expect(done["error_file_id"] == .null)
            #expect(done["in_progress_at"] == start["in_progress_at"])
            #expect((done["completed_at"]?.intValue ?? 0) - (done["created_at"]?.intValue ?? 0) == 100)
        }
    }

    @Test(arguments: Wire.allCases)
    func batchValidationFailsWithLineErrors(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let lines = [
                chatLine("a", "x"),
                "{not json",
                chatLine("a", "dup"),
                #"{"custom_id":"u","method":"POST","url":"/v1/embeddings","body":{"model":"gpt-4o-mini","input":"x"}}"#,
                chatLine("m", "x", model: "gpt-4o"),
            ]
            let fileID = try await h.uploadBatchFile(lines)
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            let failed = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(failed["status"] == "failed")
            #expect(failed["failed_at"] != .null)
            #expect(failed["in_progress_at"] == .null)
            #expect(failed["output_file_id"] == .null)
            #expect(failed["error_file_id"] == .null)
            #expect(failed["request_counts"] == ["total": 0, "completed": 0, "failed": 0])
            let errors = try #require(failed["errors"]?["data"]?.arrayValue)
            #expect(failed["errors"]?["object"] == "list")
            #expect(errors.map { $0["code"]?.stringValue ?? "" } == ["invalid_json_line", "duplicate_custom_id", "url_mismatch", "model_mismatch"])
            #expect(errors.map { $0["line"]?.intValue ?? 0 } == [2, 3, 4, 5])
            #expect(Set(errors[0].objectValue?.keys.map { $0 } ?? []) == ["code", "message", "param", "line"])

            let emptyID = try await h.uploadBatchFile([], filename: "empty.jsonl")
            let emptyBatch = try #require(try await h.createBatch(fileID: emptyID)["id"]?.stringValue)
            let empty = try #require(try await h.call("GET", "/v1/batches/\(emptyBatch)").json)
            #expect(empty["errors"]?["data"]?[0]?["code"] == "empty_file")
        }
    }

    @Test(arguments: Wire.allCases)
    func batchCreateValidation(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let fileID = try await h.uploadBatchFile([chatLine("a", "x")])
            let noFile = try await h.call("POST", "/v1/batches", json: ["endpoint": "/v1/chat/completions", "completion_window": "24h"])
            #expect(noFile.status == 400)
            #expect(noFile.json?["error"]?["param"] == "input_file_id")
            let badWindow = try await h.call("POST", "/v1/batches", json: ["input_file_id": .string(fileID), "endpoint": "/v1/chat/completions", "completion_window": "48h"])
            #expect(badWindow.status == 400)
            #expect(badWindow.json?["error"]?["param"] == "completion_window")
            let badEndpoint = try await h.call("POST", "/v1/batches", json: ["input_file_id": .string(fileID), "endpoint": "/v1/fine_tuning", "completion_window": "24h"])
            #expect(badEndpoint.json?["error"]?["param"] == "endpoint")
            let unknownFile = try await h.call("POST", "/v1/batches", json: ["input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h"])
            #expect(unknownFile.status == 404)
            let meta = try await h.call("POST", "/v1/batches", json: ["input_file_id": .string(fileID), "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": ["job": "nightly"]])
            #expect(meta.json?["metadata"] == ["job": "nightly"])
            let missing = try await h.call("GET", "/v1/batches/batch_nope")
            #expect(missing.status == 404)
        }
    }

    @Test(arguments: Wire.allCases)
    func cancelMidway(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100))) { h in
            let fileID = try await h.uploadBatchFile((0..<10).map { chatLine("c\($0)", "q\($0)") })
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            h.clock.advance(by: .seconds(27))  // 3 of 10 finished
            let cancelling = try await h.call("POST", "/v1/batches/\(id)/cancel")
            #expect(cancelling.status == 200)
            #expect(cancelling.json?["status"] == "cancelling")
            #expect(cancelling.json?["cancelling_at"] != .null)
            #expect(cancelling.json?["cancelled_at"] == .null)
            h.clock.advance(by: .seconds(20))
            let cancelled = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(cancelled["status"] == "cancelled")
            #expect(cancelled["cancelling_at"] == cancelling.json?["cancelling_at"])
            #expect(cancelled["request_counts"] == ["total": 10, "completed": 3, "failed": 7])
            let out = try await h.call("GET", "/v1/files/\(cancelled["output_file_id"]?.stringValue ?? "")/content")
            #expect(String(decoding: out.body, as: UTF8.self).split(separator: "\n").count == 3)
            let err = try await h.call("GET", "/v1/files/\(cancelled["error_file_id"]?.stringValue ?? "")/content")
            let errLines = String(decoding: err.body, as: UTF8.self).split(separator: "\n").map { try! JSONValue(parsing: String($0)) }
            #expect(errLines.count == 7)
            #expect(errLines.allSatisfy { $0["error"]?["code"] == "batch_cancelled" && $0["response"] == .null })

            let again = try await h.call("POST", "/v1/batches/\(id)/cancel")
            #expect(again.status == 400)
        }
    }

    @Test(arguments: Wire.allCases)
    func expiryReportsUnfinishedLines(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(batchDuration: .seconds(100), batchExpiry: .seconds(45))) { h in
            let fileID = try await h.uploadBatchFile((0..<10).map { chatLine("e\($0)", "q\($0)") })
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            h.clock.advance(by: .seconds(60))
            let expired = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(expired["status"] == "expired")
            #expect((expired["expired_at"]?.intValue ?? 0) - (expired["created_at"]?.intValue ?? 0) == 45)
            #expect(expired["request_counts"] == ["total": 10, "completed": 5, "failed": 5])
            let err = try await h.call("GET", "/v1/files/\(expired["error_file_id"]?.stringValue ?? "")/content")
            let errLines = String(decoding: err.body, as: UTF8.self).split(separator: "\n").map { try! JSONValue(parsing: String($0)) }
            #expect(errLines.map { $0["custom_id"]?.stringValue ?? "" } == ["e5", "e6", "e7", "e8", "e9"])
            #expect(errLines.allSatisfy { $0["error"]?["code"] == "batch_expired" })
        }
    }

    @Test(arguments: Wire.allCases)
    func listBatchesNewestFirst(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let fileID = try await h.uploadBatchFile([chatLine("a", "x")])
            var ids: [String] = []
            for _ in 0..<5 { ids.append(try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)) }
            let page1 = try #require(try await h.call("GET", "/v1/batches?limit=2").json)
            #expect(page1["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [ids[4], ids[3]])
            #expect(page1["first_id"] == .string(ids[4]))
            #expect(page1["last_id"] == .string(ids[3]))
            #expect(page1["has_more"] == true)
            let page3 = try #require(try await h.call("GET", "/v1/batches?limit=2&after=\(ids[1])").json)
            #expect(page3["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [ids[0]])
            #expect(page3["has_more"] == false)
            #expect(Set(page1["data"]?[0]?.objectValue?.keys.map { $0 } ?? []) == Self.batchKeys)
            let all = try #require(try await h.call("GET", "/v1/batches").json)
            #expect(all["data"]?.arrayValue?.count == 5)
            let bad = try await h.call("GET", "/v1/batches?limit=500")
            #expect(bad.status == 400)
        }
    }

    @Test(arguments: Wire.allCases)
    func malformedResultLinesFault(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.malformedResultLines(2), on: .provider(.openAI))])) { h in
            let fileID = try await h.uploadBatchFile((0..<5).map { chatLine("g\($0)", "q\($0)") })
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            let done = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            let out = try await h.call("GET", "/v1/files/\(done["output_file_id"]?.stringValue ?? "")/content")
            let lines = String(decoding: out.body, as: UTF8.self).split(separator: "\n")
            #expect(lines.count == 5)
            #expect(lines.filter { (try? JSONValue(parsing: String($0))) == nil }.count == 2)
        }
    }

    @Test(arguments: Wire.allCases)
    func errorFileOnlyFault(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(faults: [EmulatorFault(.errorFileOnly)])) { h in
            let fileID = try await h.uploadBatchFile((0..<4).map { chatLine("f\($0)", "q\($0)") })
            let id = try #require(try await h.createBatch(fileID: fileID)["id"]?.stringValue)
            let done = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(done["status"] == "completed")
            #expect(done["output_file_id"] == .null)
            #expect(done["request_counts"] == ["total": 4, "completed": 0, "failed": 4])
            let err = try await h.call("GET", "/v1/files/\(done["error_file_id"]?.stringValue ?? "")/content")
            let lines = String(decoding: err.body, as: UTF8.self).split(separator: "\n").map { try! JSONValue(parsing: String($0)) }
            #expect(lines.count == 4)
            #expect(lines.allSatisfy { $0["response"]?["status_code"] == 500 && $0["response"]?["body"]?["error"]?["type"] == "server_error" })
        }
    }

    @Test(arguments: Wire.allCases)
    func embeddingBatch(_ wire: Wire) async throws {
        try await withHarness(wire) { h in
            let lines = [
                #"{"custom_id":"e1","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":["a","b"],"dimensions":4}}"#,
                #"{"custom_id":"e2","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":"c","dimensions":4}}"#,
            ]
            let fileID = try await h.uploadBatchFile(lines)
            let id = try #require(try await h.createBatch(fileID: fileID, endpoint: "/v1/embeddings")["id"]?.stringValue)
            let done = try #require(try await h.call("GET", "/v1/batches/\(id)").json)
            #expect(done["request_counts"] == ["total": 2, "completed": 2, "failed": 0])
            let out = try await h.call("GET", "/v1/files/\(done["output_file_id"]?.stringValue ?? "")/content")
            let first = try JSONValue(parsing: String(String(decoding: out.body, as: UTF8.self).split(separator: "\n")[0]))
            #expect(first["response"]?["body"]?["data"]?[1]?["embedding"]?.arrayValue?.count == 4)
        }
    }

    // MARK: - Azure

    @Test(arguments: Wire.allCases)
    func azurePaths(_ wire: Wire) async throws {
        try await withHarness(wire, EmulatorConfiguration(requiredAPIKey: "azure-key")) { h in
            let body: JSONValue = ["messages": [["role": "user", "content": "hi"]]]
            let ok = try await h.call("POST", "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21", json: body, headers: ["api-key": "azure-key"])
            #expect(ok.status == 200)
            #expect(ok.json?["model"] == "gpt4o-prod")
            let noVersion = try await h.call("POST", "/openai/deployments/gpt4o-prod/chat/completions", json: body, headers: ["api-key": "azure-key"])
            #expect(noVersion.status == 404)
            #expect(noVersion.json?["error"]?["message"] == "Resource not found")
            let badVersion = try await h.call("POST", "/openai/deployments/gpt4o-prod/chat/completions?api-version=yesterday", json: body, headers: ["api-key": "azure-key"])
            #expect(badVersion.status == 400)
            let noKey = try await h.call("POST", "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21", json: body, headers: [:])
            #expect(noKey.status == 401)
            #expect(noKey.json?["error"]?["code"] == "401")
            let emb = try await h.call("POST", "/openai/deployments/emb/embeddings?api-version=2024-10-21", json: ["input": "x"], headers: ["api-key": "azure-key"])
            #expect(emb.status == 200)

            // Files and batches under /openai/ with Azure's `/chat/completions` URLs.
            let line = #"{"custom_id":"z1","method":"POST","url":"/chat/completions","body":{"model":"gpt4o-batch","messages":[{"role":"user","content":"hi"}]}}"#
            let (upload, type) = multipart(purpose: "batch", filename: "in.jsonl", content: Data((line + "\n").utf8))
            let file = try await h.call("POST", "/openai/files?api-version=2024-10-21", headers: ["api-key": "azure-key", "Content-Type": type], body: upload)
            let fileID = try #require(file.json?["id"]?.stringValue)
            let batch = try await h.call("POST", "/openai/batches?api-version=2024-10-21",
                                         json: ["input_file_id": .string(fileID), "endpoint": "/chat/completions", "completion_window": "24h"],
                                         headers: ["api-key": "azure-key"])
            #expect(batch.status == 200)
            let id = try #require(batch.json?["id"]?.stringValue)
            let done = try await h.call("GET", "/openai/batches/\(id)?api-version=2024-10-21", headers: ["api-key": "azure-key"])
            #expect(done.json?["status"] == "completed")
            #expect(done.json?["request_counts"]?["completed"] == 1)
            let listed = try await h.call("GET", "/openai/batches?api-version=2024-10-21", headers: ["api-key": "azure-key"])
            #expect(listed.json?["data"]?.arrayValue?.count == 1)
            let publicList = try await h.call("GET", "/v1/batches", headers: ["Authorization": "Bearer azure-key"])
            #expect(publicList.json?["data"]?.arrayValue?.count == 0)
        }
    }
}
