import BatchKit
import BatchKitGemini
import BatchKitTesting
import Foundation
import Testing

/// Raw HTTP against the emulator's Gemini endpoints: the wire shapes of providers.md §3.
struct GeminiRawHTTP {
    let harness: GeminiHarness
    var clock: ManualClock { harness.clock }
    var emulator: ProviderEmulator { harness.emulator }

    func call(
        _ method: String, _ path: String, json: String? = nil, body: Data? = nil, headers: HTTPHeaders = ["x-goog-api-key": "k"]
    ) async throws -> (status: Int, headers: HTTPHeaders, json: JSONValue?, body: Data) {
        var base = harness.baseURL.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        let url = path.hasPrefix("http") ? URL(string: path)! : URL(string: base + path)!
        let data = json.map { Data($0.utf8) } ?? body
        let r = try await harness.transport.send(HTTPRequest(method: method, url: url, headers: headers, body: data.map { .data($0) }))
        let bytes = try r.bodyData()
        return (r.status, r.headers, try? JSONValue(parsing: bytes), bytes)
    }
}

func withRaw(_ wire: Wire, _ configuration: EmulatorConfiguration = .init(), _ body: (GeminiRawHTTP) async throws -> Void) async throws {
    try await withHarness(wire, configuration) { h in try await body(GeminiRawHTTP(harness: h)) }
}

@Suite(.timeLimit(.minutes(5))) struct GeminiEmulatorTests {
    static let inline = """
        {"batch":{"display_name":"snake","input_config":{"requests":{"requests":[
          {"request":{"contents":[{"role":"user","parts":[{"text":"Describe photosynthesis."}]}],"generation_config":{"max_output_tokens":1}},"metadata":{"key":"k1"}},
          {"request":{"contents":[{"parts":[{"text":"Margherita ingredients?"}]}]},"metadata":{"key":"k2"}}
        ]}}}}
        """

    @Test(arguments: Wire.allCases, ["/v1beta", "/v1"])
    func batchOperationWireShape(_ wire: Wire, _ prefix: String) async throws {
        try await withRaw(wire, .init(batchDuration: .seconds(10))) { w in
            let created = try await w.call("POST", "\(prefix)/models/gemini-2.5-flash:batchGenerateContent", json: Self.inline)
            #expect(created.status == 200)
            let op = try #require(created.json)
            let name = try #require(op["name"]?.stringValue)
            #expect(name.hasPrefix("batches/") && name.count == 8 + 36)
            #expect(op["done"] == nil)
            let meta = try #require(op["metadata"])
            #expect(meta["@type"] == "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch")
            #expect(meta["state"] == "BATCH_STATE_PENDING")
            #expect(meta["model"] == "models/gemini-2.5-flash")
            #expect(meta["displayName"] == "snake")
            #expect(meta["batchStats"] == ["requestCount": "2", "pendingRequestCount": "2"])
            let createTime = try #require(meta["createTime"]?.stringValue)
            #expect(createTime.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$"#, options: .regularExpression) != nil)

            w.clock.advance(by: .seconds(5))
            let running = try #require(try await w.call("GET", "\(prefix)/\(name)").json)
            #expect(running["metadata"]?["state"] == "BATCH_STATE_RUNNING")
            #expect(running["metadata"]?["batchStats"] == ["requestCount": "2", "successfulRequestCount": "1", "pendingRequestCount": "1"])
            #expect(running["done"] == nil && running["response"] == nil)

            w.clock.advance(by: .seconds(5))
            let done = try #require(try await w.call("GET", "\(prefix)/\(name)").json)
            #expect(done["done"] == true)
            #expect(done["metadata"]?["state"] == "BATCH_STATE_SUCCEEDED")
            #expect(done["metadata"]?["endTime"] != nil)
            #expect(done["metadata"]?["batchStats"] == ["requestCount": "2", "successfulRequestCount": "2"])
            let response = try #require(done["response"])
            #expect(response["@type"] == "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput")
            let items = try #require(response["inlinedResponses"]?["inlinedResponses"]?.arrayValue)
            #expect(items.count == 2)
            #expect(items[0]["metadata"] == ["key": "k1"])
            #expect(items[0]["response"]?["candidates"]?[0]?["finishReason"] == "MAX_TOKENS")  // snake_case config honoured
            #expect(items[1]["response"]?["usageMetadata"]?["promptTokenCount"]?.intValue != nil)
            #expect(done["metadata"]?["output"]?["inlinedResponses"] == response["inlinedResponses"])
            // A finished batch reads the same every time.
            #expect(try await w.call("GET", "\(prefix)/\(name)").json?["response"] == response)

            // The list leaves inline results out.
            let list = try #require(try await w.call("GET", "\(prefix)/batches?pageSize=10").json)
            let listed = try #require(list["operations"]?[0])
            #expect(listed["name"]?.stringValue == name)
            #expect(listed["metadata"]?["output"] == nil && listed["response"] == nil)
            #expect(list["nextPageToken"] == nil)
            #expect(w.emulator.sentCount(customID: "k1") == 1)

            // Cancel of a finished batch changes nothing; delete answers {} and forgets it.
            #expect(try await w.call("POST", "\(prefix)/\(name):cancel").json == [:])
            #expect(try await w.call("DELETE", "\(prefix)/\(name)").json == [:])
            #expect(try await w.call("GET", "\(prefix)/\(name)").status == 404)
        }
    }

    @Test(arguments: Wire.allCases)
    func resumableUploadProtocol(_ wire: Wire) async throws {
        try await withRaw(wire) { w in
            let lines = #"{"key":"a","request":{"contents":[{"parts":[{"text":"one"}]}]}}"# + "\n"
                + #"{"key":"b","request":{"contents":[{"parts":[{"text":"two"}]}]}}"# + "\n"
            let bytes = Data(lines.utf8)
            let startHeaders: HTTPHeaders = [
                "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": String(bytes.count), "X-Goog-Upload-Header-Content-Type": "application/jsonl",
            ]
            // No key, no upload session.
            #expect(try await w.call("POST", "/upload/v1beta/files", json: #"{"file":{"display_name":"in"}}"#, headers: startHeaders).status == 403)
            var keyed = startHeaders
            keyed["x-goog-api-key"] = "k"
            let start = try await w.call("POST", "/upload/v1beta/files", json: #"{"file":{"display_name":"in"}}"#, headers: keyed)
            #expect(start.status == 200)
            let uploadURL = try #require(start.headers["x-goog-upload-url"])
            // The upload URL points back at the emulator (the loopback server's own address).
            #expect(uploadURL.hasPrefix(w.harness.baseURL.absoluteString.trimmingCharacters(in: ["/"]) + "/upload/v1beta/files?upload_id="))
            let local = uploadURL

            // Two chunks, no key: the upload_id authorises.
            let half = bytes.count / 2
            let first = try await w.call("POST", local, body: bytes.prefix(half),
                                         headers: ["X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"])
            #expect(first.status == 200 && first.headers["x-goog-upload-status"] == "active")
            let wrong = try await w.call("POST", local, body: bytes.suffix(from: half),
                                         headers: ["X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "1"])
            #expect(wrong.status == 400)
            let last = try await w.call("POST", local, body: bytes.suffix(from: half),
                                        headers: ["X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": String(half)])
            #expect(last.status == 200 && last.headers["x-goog-upload-status"] == "final")
            let file = try #require(last.json?["file"])
            let fileName = try #require(file["name"]?.stringValue)
            #expect(file["sizeBytes"] == .string(String(bytes.count)))
            #expect(file["displayName"] == "in")
            #expect(file["mimeType"] == "application/jsonl")
            #expect(file["state"] == "ACTIVE" && file["source"] == "UPLOADED")
            #expect(file["expirationTime"] != nil)

            #expect(try await w.call("GET", "/v1beta/\(fileName)").json?["name"]?.stringValue == fileName)
            #expect(try await w.call("GET", "/download/v1beta/\(fileName):download?alt=media").status == 400)

            // A file batch through /v1/ with snake_case and ?key= auth.
            let created = try await w.call("POST", "/v1/models/gemini-2.5-flash:batchGenerateContent?key=k",
                                           json: #"{"batch":{"input_config":{"file_name":"\#(fileName)"}}}"#, headers: [:])
            #expect(created.status == 200)
            let op = try #require(created.json)
            #expect(op["metadata"]?["inputConfig"]?["fileName"]?.stringValue == fileName)
            let name = try #require(op["name"]?.stringValue)
            let done = try #require(try await w.call("GET", "/v1/\(name)").json)
            let results = try #require(done["response"]?["responsesFile"]?.stringValue)
            #expect(results == "files/batch-" + name.dropFirst(8))
            #expect(done["metadata"]?["output"]?["responsesFile"]?.stringValue == results)
            for path in ["/download/v1beta/\(results):download?alt=media", "/v1/\(results):download?alt=media"] {
                let download = try await w.call("GET", path)
                #expect(download.status == 200)
                let text = String(decoding: download.body, as: UTF8.self)
                let out = text.split(separator: "\n").map { try? JSONValue(parsing: String($0)) }
                #expect(out.count == 2)
                #expect(out.map { $0?["key"]?.stringValue } == ["a", "b"])
                #expect(out.allSatisfy { $0?["response"]?["candidates"] != nil })
            }
            let generated = try #require(try await w.call("GET", "/v1beta/\(results)").json)
            #expect(generated["source"] == "GENERATED")
            let files = try #require(try await w.call("GET", "/v1beta/files?pageSize=1").json)
            #expect(files["files"]?.arrayValue?.count == 1)
            #expect(files["nextPageToken"] != nil)
        }
    }

    @Test(arguments: Wire.allCases)
    func realTimeEndpointsAndValidation(_ wire: Wire) async throws {
        try await withRaw(wire) { w in
            let ok = try await w.call("POST", "/v1/models/gemini-2.5-flash:generateContent",
                                      json: #"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"Be brief."}]}}"#,
                                      headers: ["x-goog-api-key": "k", "x-client-request-id": "rt-1"])
            #expect(ok.status == 200)
            #expect(ok.json?["candidates"]?[0]?["content"]?["role"] == "model")
            #expect(ok.headers["x-ratelimit-limit-requests"] == nil)
            #expect(w.emulator.sentCount(customID: "rt-1") == 1)

            let empty = try await w.call("POST", "/v1beta/models/gemini-2.5-flash:generateContent", json: #"{"contents":[]}"#)
            #expect(empty.status == 400)
            #expect(empty.json?["error"]?["status"] == "INVALID_ARGUMENT")
            #expect(empty.json?["error"]?["code"] == 400)
            let badRole = try await w.call("POST", "/v1beta/models/m:generateContent", json: #"{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}"#)
            #expect(badRole.status == 400)
            let noKey = try await w.call("POST", "/v1beta/models/m:generateContent", json: #"{"contents":[{"parts":[{"text":"x"}]}]}"#, headers: [:])
            #expect(noKey.status == 403)

            let single = try await w.call("POST", "/v1beta/models/gemini-embedding-001:embedContent",
                                          json: #"{"content":{"parts":[{"text":"hello"}]},"outputDimensionality":4}"#)
            #expect(single.json?["embedding"]?["values"]?.arrayValue?.count == 4)
            let many = try await w.call("POST", "/v1beta/models/gemini-embedding-001:batchEmbedContents", json: """
                {"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"hello"}]},"outputDimensionality":4},
                             {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"world"}]},"output_dimensionality":4}]}
                """)
            let vectors = try #require(many.json?["embeddings"]?.arrayValue)
            #expect(vectors.count == 2)
            #expect(vectors[0]["values"] == single.json?["embedding"]?["values"])
            #expect(vectors[0] != vectors[1])
            let mismatch = try await w.call("POST", "/v1beta/models/gemini-embedding-001:batchEmbedContents",
                                            json: #"{"requests":[{"model":"models/other","content":{"parts":[{"text":"x"}]}}]}"#)
            #expect(mismatch.status == 400)
        }
    }

    @Test(arguments: Wire.allCases)
    func inlineBatchCancelledMidWay(_ wire: Wire) async throws {
        try await withRaw(wire, .init(batchDuration: .seconds(10))) { w in
            let created = try await w.call("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", json: Self.inline)
            let name = try #require(created.json?["name"]?.stringValue)
            w.clock.advance(by: .seconds(6))
            #expect(try await w.call("POST", "/v1beta/\(name):cancel").json == [:])
            let op = try #require(try await w.call("GET", "/v1beta/\(name)").json)
            #expect(op["metadata"]?["state"] == "BATCH_STATE_CANCELLED")
            #expect(op["done"] == true)
            #expect(op["error"]?["code"] == 1)
            let items = try #require(op["metadata"]?["output"]?["inlinedResponses"]?["inlinedResponses"]?.arrayValue)
            #expect(items[0]["response"] != nil)
            #expect(items[1]["error"]?["code"] == 1)
            #expect(op["metadata"]?["batchStats"] == ["requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"])
        }
    }

    @Test(arguments: Wire.allCases)
    func expiredBatchHasNoResults(_ wire: Wire) async throws {
        try await withRaw(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(10))) { w in
            let created = try await w.call("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", json: Self.inline)
            let name = try #require(created.json?["name"]?.stringValue)
            w.clock.advance(by: .seconds(11))
            let op = try #require(try await w.call("GET", "/v1beta/\(name)").json)
            #expect(op["metadata"]?["state"] == "BATCH_STATE_EXPIRED")
            #expect(op["done"] == true)
            #expect(op["error"]?["code"] == 4)
            #expect(op["response"] == nil && op["metadata"]?["output"] == nil)
        }
    }

    @Test(arguments: Wire.allCases)
    func rateLimited429CarriesRetryInfo(_ wire: Wire) async throws {
        try await withRaw(wire, .init(requestsPerMinute: 1)) { w in
            let body = #"{"contents":[{"parts":[{"text":"x"}]}]}"#
            #expect(try await w.call("POST", "/v1beta/models/m:generateContent", json: body).status == 200)
            let limited = try await w.call("POST", "/v1beta/models/m:generateContent", json: body)
            #expect(limited.status == 429)
            #expect(limited.json?["error"]?["status"] == "RESOURCE_EXHAUSTED")
            let delay = GeminiWire.retryDelay(try #require(limited.json))
            #expect(delay != nil && delay! > .seconds(59))
        }
    }
}
