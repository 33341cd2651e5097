import BatchKit
import Foundation
import Testing

@testable import BatchKitTesting

/// Large Anthropic and Gemini batches through the emulator: every result comes back, in the
/// emulator's order, byte for byte what the emulator answered before it stored batch input once
/// (the golden FNV-1a 64 hashes were taken from the implementation that kept parsed items per
/// batch, on the same inputs and seed), and the billing record counts every job.
@Suite(.timeLimit(.minutes(5)))
struct EmulatorLargeBatchTests {
    static let anthropicHeaders: HTTPHeaders = ["x-api-key": "sk-ant-large", "anthropic-version": "2023-06-01"]
    static let geminiHeaders: HTTPHeaders = ["x-goog-api-key": "g-large"]

    static func fnv(_ data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }

    static func send(
        _ e: ProviderEmulator, _ method: String, _ path: String, query: [String: String] = [:], _ headers: HTTPHeaders,
        body: Data = Data()
    ) async -> EmulatorResponse {
        await e.handle(EmulatorRequest(method: method, path: path, query: query, headers: headers, body: body))
    }

    /// Item `i` of an Anthropic batch: prompts of varied length, some with a system prompt, every
    /// 1,000th missing `max_tokens` (an `errored` result).
    static func anthropicRequest(_ i: Int) -> JSONValue {
        var params: [String: JSONValue] = [
            "model": "claude-haiku-4-5",
            "messages": [["role": "user", "content": .string("Request \(i): " + String(repeating: "word ", count: i % 37))]],
        ]
        if i % 1000 != 999 { params["max_tokens"] = .int(8 + i % 60) }
        if i % 7 == 3 { params["system"] = .string("Be brief \(i % 5).") }
        if i % 11 == 5 { params["temperature"] = .double(0.25) }
        return ["custom_id": .string("req-\(i)"), "params": .object(params)]
    }

    static func anthropicBatch(_ e: ProviderEmulator, count: Int) async throws -> String {
        let body: JSONValue = ["requests": .array((0..<count).map(anthropicRequest))]
        let r = await send(e, "POST", "/v1/messages/batches", anthropicHeaders, body: body.serialized())
        try #require(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
        return try #require(try JSONValue(parsing: r.body)["id"]?.stringValue)
    }

    static func anthropicResults(_ e: ProviderEmulator, _ id: String) async throws -> Data {
        let r = await send(e, "GET", "/v1/messages/batches/\(id)/results", anthropicHeaders)
        try #require(r.status == 200)
        return r.body
    }

    /// The results' custom ids, in the order they came.
    static func anthropicIDs(_ data: Data) -> [String] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            (try? JSONValue(parsing: String(line)))?["custom_id"]?.stringValue ?? "?"
        }
    }

    @Test func aLargeAnthropicBatchAnswersEveryRequestAsBefore() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(configuration: .init(batchDuration: .seconds(100)), clock: clock)
        let full = try await Self.anthropicBatch(e, count: 20_000)
        let cancelled = try await Self.anthropicBatch(e, count: 5_000)
        clock.advance(by: .seconds(30))
        let cancel = await Self.send(e, "POST", "/v1/messages/batches/\(cancelled)/cancel", Self.anthropicHeaders)
        #expect(cancel.status == 200)
        clock.advance(by: .seconds(100))

        let state = await Self.send(e, "GET", "/v1/messages/batches/\(full)", Self.anthropicHeaders)
        let counts = try JSONValue(parsing: state.body)["request_counts"]
        #expect(counts?["succeeded"] == 19_980)
        #expect(counts?["errored"] == 20)

        let results = try await Self.anthropicResults(e, full)
        let ids = Self.anthropicIDs(results)
        try #require(ids.count == 20_000)
        // Odd positions first, then even ones.
        let expected = stride(from: 1, to: 20_000, by: 2).map { "req-\($0)" } + stride(from: 0, to: 20_000, by: 2).map { "req-\($0)" }
        #expect(ids == expected)
        #expect(Self.fnv(results) == "12ece61b05c26d71", "got \(Self.fnv(results))")
        // A second download is the same.
        #expect(try await Self.anthropicResults(e, full) == results)

        let partial = try await Self.anthropicResults(e, cancelled)
        let lines = String(decoding: partial, as: UTF8.self).split(separator: "\n")
        try #require(lines.count == 5_000)
        let canceledLines = lines.filter { $0.contains("\"type\":\"canceled\"") }.count
        #expect(canceledLines == 5_000 - 1_550)
        #expect(Self.fnv(partial) == "abc815c784ca006a", "got \(Self.fnv(partial))")

        let billing = e.billing
        try #require(billing.jobs.count == 2)
        #expect(billing.jobs[0].requests == 20_000)
        #expect(billing.jobs[0].billed == 20_000)
        #expect(billing.jobs[1].requests == 5_000)
        #expect(billing.jobs[1].cancelled)
        #expect(billing.jobs[1].billed == 1_550)
        // Ran in both jobs; sent twice, ran once (the cancel came first); in the first job only.
        #expect(billing.jobCount(customID: "req-17") == 2)
        #expect(billing.jobCount(customID: "req-4999") == 1)
        #expect(billing.jobCount(customID: "req-5000") == 1)
        #expect(e.sentCounts["req-4999"] == 2)
        #expect(e.sentCounts["req-17"] == 2)
    }

    @Test func anthropicMalformedResultLinesStayAsBefore() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(
            configuration: .init(faults: [EmulatorFault(.malformedResultLines(3), on: .provider(.anthropic))]), clock: clock)
        let id = try await Self.anthropicBatch(e, count: 2_000)
        clock.advance(by: .seconds(1))
        let results = try await Self.anthropicResults(e, id)
        #expect(Self.fnv(results) == "86e25c0ce257bbe5", "got \(Self.fnv(results))")
    }

    /// The create body is read by spans only when that reads it as the parser would: the same
    /// requests for valid bodies (escapes, brackets in strings, spaces, a repeated member: the
    /// last wins), `nil` (the whole body parsed, the old answers) for everything else.
    @Test(arguments: [
        #"{"requests":[{"custom_id":"a","params":{"s":"]}\"[{,"}},{"custom_id":"b","params":{"n":[1,2.5e3,-0,true,null]}}]}"#,
        " \n{ \"x\" : {\"y\":[\"}\"]} ,\r\n \"requests\" :\t[ {\"custom_id\":\"c\"} , [ ] , 7 , \"s\" ] } \n",
        #"{"requests":[{"custom_id":"old"}],"requests":[{"custom_id":"new"}]}"#,
        #"{"re\u0071uests":[{"k":"\\"}]}"#,
        #"{"requests":[]}"#,
        #"{"requests":[1 2]}"#, #"{"requests":[1,]}"#, #"{"requests":[{"a":1}}"#, #"{"requests":[tru]}"#,
        #"{"requests":[{"a":1}],"other":[1,}"#, #"{"requests":{"a":1}}"#, #"{"other":[]}"#, #"[{"requests":[]}]"#,
        #"{"requests":[{"a":"x}]}"#, #"{"requests":[1]} x"#, #"{"requests":[-]}"#, "",
    ])
    func createBodiesReadBySpansAsByTheParser(_ text: String) throws {
        let body = Data(text.utf8)
        let spans = EmulatorJSONSpans.arrayMember("requests", of: body)
        if let parsed = try? JSONValue(parsing: body), let all = parsed["requests"]?.arrayValue {
            let read = try #require(spans).map { try JSONValue(parsing: body[$0]) }
            #expect(read == all)
        } else {
            #expect(spans == nil)
        }
    }

    /// A pretty-printed create body (read by spans) gives the batch the compact one gives.
    @Test func aPrettyPrintedCreateBodyMakesTheSameBatch() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(configuration: .init(), clock: clock)
        let compact: JSONValue = ["requests": .array((0..<300).map(Self.anthropicRequest))]
        let pretty = try JSONSerialization.data(
            withJSONObject: try JSONSerialization.jsonObject(with: compact.serialized()), options: [.prettyPrinted])
        var ids: [String] = []
        for body in [compact.serialized(), pretty] {
            let r = await Self.send(e, "POST", "/v1/messages/batches", Self.anthropicHeaders, body: body)
            try #require(r.status == 200)
            ids.append(try #require(try JSONValue(parsing: r.body)["id"]?.stringValue))
        }
        clock.advance(by: .seconds(1))
        let first = String(decoding: try await Self.anthropicResults(e, ids[0]), as: UTF8.self)
        let second = String(decoding: try await Self.anthropicResults(e, ids[1]), as: UTF8.self)
        // The same answers; only the batch id (in message and request ids) differs.
        #expect(first.split(separator: "\n").count == 300)
        #expect(Self.anthropicIDs(Data(first.utf8)) == Self.anthropicIDs(Data(second.utf8)))
        let strip: (String) -> [JSONValue] = { text in
            text.split(separator: "\n").compactMap { line in
                guard var o = (try? JSONValue(parsing: String(line)))?.objectValue, var result = o["result"]?.objectValue else { return nil }
                result["message"] = result["message"].map { m in .object((m.objectValue ?? [:]).filter { $0.key != "id" }) }
                result["error"] = nil
                o["result"] = .object(result)
                return .object(o)
            }
        }
        #expect(strip(first) == strip(second))
    }

    // MARK: - Gemini

    /// Line `i` of a Gemini input: every 1,000th has empty `contents` (a per-item error).
    static func geminiRequest(_ i: Int) -> JSONValue {
        let contents: JSONValue =
            i % 1000 == 998 ? [] : [["role": "user", "parts": [["text": .string("Item \(i): " + String(repeating: "tok ", count: i % 23))]]]]
        return ["contents": contents, "generationConfig": ["maxOutputTokens": .int(10 + i % 50)]]
    }

    static func geminiUpload(_ e: ProviderEmulator, _ data: Data) async throws -> String {
        var start = geminiHeaders
        start["X-Goog-Upload-Protocol"] = "resumable"
        start["X-Goog-Upload-Command"] = "start"
        start["X-Goog-Upload-Header-Content-Type"] = "application/jsonl"
        let s = await send(e, "POST", "/upload/v1beta/files", start, body: Data(#"{"file":{"displayName":"large"}}"#.utf8))
        let url = try #require(s.headers["x-goog-upload-url"].flatMap { URLComponents(string: $0) })
        var query: [String: String] = [:]
        for item in url.queryItems ?? [] { query[item.name] = item.value ?? "" }
        var bytes = geminiHeaders
        bytes["X-Goog-Upload-Command"] = "upload, finalize"
        bytes["X-Goog-Upload-Offset"] = "0"
        let f = await send(e, "POST", url.path, query: query, bytes, body: data)
        try #require(f.status == 200)
        return try #require(try JSONValue(parsing: f.body)["file"]?["name"]?.stringValue)
    }

    static func geminiCreate(_ e: ProviderEmulator, _ batch: JSONValue) async throws -> String {
        let r = await send(e, "POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent", geminiHeaders, body: (["batch": batch] as JSONValue).serialized())
        try #require(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
        return try #require(try JSONValue(parsing: r.body)["name"]?.stringValue)
    }

    static func geminiFileResults(_ e: ProviderEmulator, _ name: String) async throws -> Data {
        let op = await send(e, "GET", "/v1beta/" + name, geminiHeaders)
        let file = try #require(try JSONValue(parsing: op.body)["metadata"]?["output"]?["responsesFile"]?.stringValue)
        let d = await send(e, "GET", "/download/v1beta/\(file):download", query: ["alt": "media"], geminiHeaders)
        try #require(d.status == 200)
        return d.body
    }

    @Test func aLargeGeminiFileBatchAnswersEveryRequestAsBefore() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(configuration: .init(batchDuration: .seconds(100)), clock: clock)
        var input = [UInt8]()
        for i in 0..<20_000 {
            (["key": .string("k\(i)"), "request": Self.geminiRequest(i)] as JSONValue).write(into: &input)
            input.append(0x0A)
        }
        let file = try await Self.geminiUpload(e, Data(input))
        let name = try await Self.geminiCreate(e, ["displayName": "large", "inputConfig": ["fileName": .string(file)]])
        clock.advance(by: .seconds(200))
        let results = try await Self.geminiFileResults(e, name)
        let lines = String(decoding: results, as: UTF8.self).split(separator: "\n")
        try #require(lines.count == 20_000)
        let keys = lines.map { (try? JSONValue(parsing: String($0)))?["key"]?.stringValue ?? "?" }
        #expect(keys == (0..<20_000).map { "k\($0)" })
        #expect(lines.filter { $0.contains("\"error\":") }.count == 20)
        #expect(Self.fnv(results) == "7bc60871ceae5770", "got \(Self.fnv(results))")
        #expect(try await Self.geminiFileResults(e, name) == results)

        let billing = e.billing
        try #require(billing.jobs.count == 1)
        #expect(billing.jobs[0].requests == 20_000)
        #expect(billing.jobs[0].billed == 20_000)
        #expect(e.sentCounts["k19999"] == 1)
    }

    @Test func geminiInlineAndMalformedFileResultsStayAsBefore() async throws {
        let clock = ManualClock()
        let e = ProviderEmulator(
            configuration: .init(batchDuration: .seconds(10), faults: [EmulatorFault(.malformedResultLines(3), on: .provider(.gemini))]),
            clock: clock)
        let inline: [JSONValue] = (0..<2_000).map { i in
            var entry: [String: JSONValue] = ["request": Self.geminiRequest(i)]
            if i % 3 != 2 { entry["metadata"] = ["key": .string("in\(i)")] }
            return .object(entry)
        }
        let inlineName = try await Self.geminiCreate(e, ["inputConfig": ["requests": ["requests": .array(inline)]]])
        var input = [UInt8]()
        for i in 0..<2_000 {
            (["key": .string("f\(i)"), "request": Self.geminiRequest(i)] as JSONValue).write(into: &input)
            input.append(0x0A)
        }
        let file = try await Self.geminiUpload(e, Data(input))
        let fileName = try await Self.geminiCreate(e, ["inputConfig": ["fileName": .string(file)]])
        clock.advance(by: .seconds(60))

        let op = await Self.send(e, "GET", "/v1beta/" + inlineName, Self.geminiHeaders)
        let json = try JSONValue(parsing: op.body)
        let responses = try #require(json["response"]?["inlinedResponses"]?["inlinedResponses"]?.arrayValue)
        try #require(responses.count == 2_000)
        #expect(json["metadata"]?["output"]?["inlinedResponses"] == json["response"]?["inlinedResponses"])
        let inlineBytes = JSONValue.array(responses).serialized()
        #expect(Self.fnv(inlineBytes) == "7c2e3816ad7c7e18", "got \(Self.fnv(inlineBytes))")
        // The same answers on a second read; lists leave them out.
        let again = await Self.send(e, "GET", "/v1beta/" + inlineName, Self.geminiHeaders)
        #expect(try JSONValue(parsing: again.body)["response"] == json["response"])
        let list = await Self.send(e, "GET", "/v1beta/batches", Self.geminiHeaders)
        let ops = try #require(try JSONValue(parsing: list.body)["operations"]?.arrayValue)
        try #require(ops.count == 2)
        #expect(ops.allSatisfy { $0["metadata"]?["output"]?["inlinedResponses"] == nil && $0["response"]?["inlinedResponses"] == nil })

        let results = try await Self.geminiFileResults(e, fileName)
        #expect(Self.fnv(results) == "d4a5322c1706c4cd", "got \(Self.fnv(results))")
    }
}
