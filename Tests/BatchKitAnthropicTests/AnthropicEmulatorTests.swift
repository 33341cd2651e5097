import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitAnthropic

/// The emulator's Anthropic endpoints, checked on the wire (providers.md §2, checklist §2.8).
@Suite(.timeLimit(.minutes(5))) struct AnthropicEmulatorTests {
    let message: JSONValue = ["model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [["role": "user", "content": "Say hi"]]]

    @Test(arguments: Wire.allCases) func messageAnswerShape(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 60, tokensPerMinute: 10_000)) { f in
            let r = try await f.raw("POST", "/v1/messages", body: message)
            #expect(r.status == 200)
            let m = try #require(r.json)
            #expect(Set(m.objectValue?.keys ?? [:].keys) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"])
            #expect(m["id"]?.stringValue?.hasPrefix("msg_") == true)
            #expect(m["type"] == "message")
            #expect(m["role"] == "assistant")
            #expect(m["content"]?[0]?["type"] == "text")
            #expect(m["stop_reason"] == "end_turn")
            #expect(m["stop_sequence"] == .null)
            #expect(m["usage"]?["input_tokens"]?.intValue ?? 0 > 0)
            #expect(m["usage"]?["cache_read_input_tokens"] == 0)
            #expect(r.headers["request-id"]?.hasPrefix("req_") == true)
            #expect(r.headers["anthropic-ratelimit-requests-limit"] == "60")
            #expect(r.headers["anthropic-ratelimit-requests-remaining"] == "59")
            let reset = try #require(r.headers["anthropic-ratelimit-requests-reset"])
            #expect(RateLimitHeaderParsing.rfc3339(reset) != nil)
            #expect(r.headers["anthropic-ratelimit-tokens-limit"] == "10000")
        }
    }

    @Test(arguments: Wire.allCases) func bearerAuthAndOpaqueVersionAreAccepted(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let r = try await f.raw("POST", "/v1/messages", headers: ["Authorization": "Bearer \(secretKey)", "anthropic-version": "2026-10-21"], body: message)
            #expect(r.status == 200)
        }
    }

    @Test(arguments: Wire.allCases) func versionHeaderIsRequired(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let r = try await f.raw("POST", "/v1/messages", headers: ["x-api-key": secretKey], body: message)
            #expect(r.status == 400)
            #expect(r.json?["type"] == "error")
            #expect(r.json?["error"]?["type"] == "invalid_request_error")
            #expect(r.json?["error"]?["message"]?.stringValue?.contains("anthropic-version") == true)
        }
    }

    @Test(arguments: Wire.allCases) func missingKeyIs401(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let r = try await f.raw("POST", "/v1/messages", headers: ["anthropic-version": "2023-06-01"], body: message)
            #expect(r.status == 401)
            #expect(r.json?["error"]?["type"] == "authentication_error")
            #expect(r.json?["request_id"]?.stringValue != nil)
        }
    }

    @Test(arguments: [
        (["model": "m", "messages": [["role": "user", "content": "x"]]] as JSONValue, "max_tokens"),
        (["model": "m", "max_tokens": 0, "messages": [["role": "user", "content": "x"]]] as JSONValue, "max_tokens"),
        (["model": "m", "max_tokens": 5, "messages": []] as JSONValue, "messages"),
        (["model": "m", "max_tokens": 5, "messages": [["role": "system", "content": "x"]]] as JSONValue, "messages.0.role"),
        (["model": "m", "max_tokens": 5, "messages": [["role": "user", "content": "x"]], "seed": 1] as JSONValue, "seed"),
        (["max_tokens": 5, "messages": [["role": "user", "content": "x"]]] as JSONValue, "model"),
    ])
    func messagesValidation(_ body: JSONValue, _ field: String) async throws {
        let f = AnthropicFixture()
        let r = try await f.raw("POST", "/v1/messages", body: body)
        #expect(r.status == 400)
        #expect(r.json?["error"]?["type"] == "invalid_request_error")
        #expect(r.json?["error"]?["message"]?.stringValue?.hasPrefix(field + ":") == true)
    }

    @Test(arguments: Wire.allCases) func rateLimited429Body(_ wire: Wire) async throws {
        try await withFixture(wire, .init(requestsPerMinute: 1)) { f in
            _ = try await f.raw("POST", "/v1/messages", body: message)
            let r = try await f.raw("POST", "/v1/messages", body: message)
            #expect(r.status == 429)
            #expect(r.json?["error"]?["type"] == "rate_limit_error")
            #expect(Int(r.headers["retry-after"] ?? "") == 60)
            #expect(r.headers["anthropic-ratelimit-requests-remaining"] == "0")
        }
    }

    @Test func clientRequestIDIsCounted() async throws {
        let f = AnthropicFixture()
        var h: HTTPHeaders = ["x-api-key": secretKey, "anthropic-version": "2023-06-01"]
        h["x-client-request-id"] = "c-42"
        _ = try await f.raw("POST", "/v1/messages", headers: h, body: message)
        _ = try await f.raw("POST", "/v1/messages", headers: h, body: message)
        #expect(f.emulator.sentCount(customID: "c-42") == 2)
    }

    @Test func stopSequencesAreHonoured() async throws {
        let f = AnthropicFixture()
        let plain = try #require(try await f.raw("POST", "/v1/messages", body: message).json?["content"]?[0]?["text"]?.stringValue)
        // Stop at the answer's last word.
        let last = String(try #require(plain.split(separator: " ").last))
        var body = message.objectValue!
        body["stop_sequences"] = [.string(last)]
        let r = try #require(try await f.raw("POST", "/v1/messages", body: .object(body)).json)
        #expect(r["stop_reason"] == "stop_sequence")
        #expect(r["stop_sequence"] == .string(last))
        #expect(r["content"]?[0]?["text"]?.stringValue?.contains(last) == false)
    }

    @Test(arguments: Wire.allCases) func messageBatchObjectShape(_ wire: Wire) async throws {
        try await withFixture(wire, .init(batchDuration: .seconds(10), publicBaseURL: URL(string: "http://127.0.0.1:8080/")!)) { f in
            let create: JSONValue = ["requests": [["custom_id": "q-1", "params": message], ["custom_id": "q-2", "params": message]]]
            let r = try await f.raw("POST", "/v1/messages/batches", body: create)
            #expect(r.status == 200)
            let b = try #require(r.json)
            #expect(Set(b.objectValue?.keys ?? [:].keys) == [
                "id", "type", "processing_status", "request_counts", "created_at", "expires_at", "ended_at",
                "cancel_initiated_at", "archived_at", "results_url",
            ])
            #expect(b["type"] == "message_batch")
            #expect(b["processing_status"] == "in_progress")
            #expect(b["request_counts"] == ["processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0])
            #expect(b["ended_at"] == .null)
            #expect(b["results_url"] == .null)
            let stamp = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"#
            #expect(b["created_at"]?.stringValue?.range(of: stamp, options: .regularExpression) != nil)
            #expect(b["expires_at"]?.stringValue?.range(of: stamp, options: .regularExpression) != nil)
            let id = try #require(b["id"]?.stringValue)
            #expect(id.hasPrefix("msgbatch_"))

            // Results are not available before the batch ends.
            #expect(try await f.raw("GET", "/v1/messages/batches/\(id)/results").status == 404)

            f.clock.advance(by: .seconds(10))
            let ended = try #require(try await f.raw("GET", "/v1/messages/batches/\(id)").json)
            #expect(ended["processing_status"] == "ended")
            #expect(ended["request_counts"] == ["processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 0])
            #expect(ended["ended_at"]?.stringValue?.range(of: stamp, options: .regularExpression) != nil)
            // The loopback server points publicBaseURL at itself; in process it stays as configured.
            let base = wire != .inProcess ? f.baseURL.absoluteString : "http://127.0.0.1:8080"
            #expect(ended["results_url"] == .string(base + "/v1/messages/batches/\(id)/results"))
            // Stable on re-read.
            f.clock.advance(by: .seconds(100))
            #expect(try await f.raw("GET", "/v1/messages/batches/\(id)").json == ended)

            let results = try await f.raw("GET", "/v1/messages/batches/\(id)/results")
            #expect(results.status == 200)
            var lines: [JSONValue] = []
            try JSONLReader.forEachLine(in: results.body) { line, _ in lines.append(try JSONValue(parsing: line)) }
            #expect(lines.count == 2)
            #expect(lines.map { $0["custom_id"]?.stringValue } == ["q-2", "q-1"])  // not input order
            #expect(lines.allSatisfy { $0["result"]?["type"] == "succeeded" && $0["result"]?["message"]?["type"] == "message" })
        }
    }

    @Test func createValidation() async throws {
        let f = AnthropicFixture()
        func create(_ requests: JSONValue) async throws -> (Int, String?) {
            let r = try await f.raw("POST", "/v1/messages/batches", body: ["requests": requests])
            return (r.status, r.json?["error"]?["message"]?.stringValue)
        }
        let empty = try await create([])
        #expect(empty.0 == 400)
        let badID = try await create([["custom_id": "bad id", "params": message]])
        #expect(badID.0 == 400)
        #expect(badID.1?.contains("custom_id") == true)
        let dup = try await create([["custom_id": "a", "params": message], ["custom_id": "a", "params": message]])
        #expect(dup.0 == 400)
        #expect(dup.1?.contains("Duplicate") == true)
        let noParams = try await create([["custom_id": "a"]])
        #expect(noParams.1?.hasPrefix("requests.0.params") == true)
        #expect(f.emulator.sentCounts.isEmpty)
    }

    @Test(arguments: Wire.allCases) func listCursorsBothWays(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            var ids: [String] = []
            for i in 0..<5 {
                let r = try await f.raw("POST", "/v1/messages/batches", body: ["requests": [["custom_id": .string("l-\(i)"), "params": message]]])
                ids.append(try #require(r.json?["id"]?.stringValue))
            }
            let newest = Array(ids.reversed())
            let page1 = try #require(try await f.raw("GET", "/v1/messages/batches?limit=2").json)
            #expect(page1["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [newest[0], newest[1]])
            #expect(page1["has_more"] == true)
            #expect(page1["first_id"] == .string(newest[0]))
            #expect(page1["last_id"] == .string(newest[1]))
            let page3 = try #require(try await f.raw("GET", "/v1/messages/batches?limit=2&after_id=\(newest[3])").json)
            #expect(page3["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [newest[4]])
            #expect(page3["has_more"] == false)
            let back = try #require(try await f.raw("GET", "/v1/messages/batches?limit=2&before_id=\(newest[4])").json)
            #expect(back["data"]?.arrayValue?.map { $0["id"]?.stringValue } == [newest[2], newest[3]])
            #expect(back["has_more"] == true)
            #expect(try await f.raw("GET", "/v1/messages/batches?limit=5000").status == 400)
            let none = try #require(try await f.raw("GET", "/v1/messages/batches?after_id=\(newest[4])").json)
            #expect(none["first_id"] == .null)
            #expect(none["data"] == [])
        }
    }

    @Test func archivedAfter29Days() async throws {
        let f = AnthropicFixture()
        let r = try await f.raw("POST", "/v1/messages/batches", body: ["requests": [["custom_id": "a", "params": message]]])
        let id = try #require(r.json?["id"]?.stringValue)
        #expect(try await f.raw("GET", "/v1/messages/batches/\(id)/results").status == 200)
        f.clock.advance(by: .seconds(29 * 86_400))
        let b = try #require(try await f.raw("GET", "/v1/messages/batches/\(id)").json)
        #expect(b["archived_at"]?.stringValue != nil)
        #expect(try await f.raw("GET", "/v1/messages/batches/\(id)/results").status == 404)
    }
}
