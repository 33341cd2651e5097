import BatchKit
@testable import BatchKitReport
import BatchKitTesting
import Foundation
import Testing

/// The report's fast reader (``OutputLineScanner``, reading only the members it counts from the
/// bytes) against the reference reader (every line through the JSON parser and
/// `add(line:location:)`): the same report for every kind of line.
@Suite("Report scanner", .timeLimit(.minutes(5)))
struct ReportScannerTests {
    static let t0 = Date(timeIntervalSince1970: 1_764_700_000)

    /// Lines BatchKit writes: real time and batch, successes and failures of every shape, jobs,
    /// rate limits, costs, cache tokens, three providers' bodies.
    static func writtenLines() -> [String] {
        var out: [String] = []
        func add(_ r: BatchResult) { out.append(String(decoding: r.outputLineBytes(), as: UTF8.self)) }
        for (i, line) in ReportTests.fixture(count: 120).lines.enumerated() {
            // The fixture's lines as the journal writes them, and as a JSONValue serialises them.
            out.append(i % 2 == 0 ? line.jsonString : String(decoding: try! BatchResult(outputLine: line).outputLineBytes(), as: UTF8.self))
        }
        // Another provider's body (the model and text in `fields`), a Gemini body (modelVersion),
        // cache reads and writes, a recorded cost, metadata and tool calls.
        let anthropic: JSONValue = [
            "id": "msg_1", "type": "message", "model": "claude-3-5-haiku-20241022",
            "content": [["type": "text", "text": "héllo \"there\"\n"]],
            "usage": ["input_tokens": 30, "output_tokens": 4, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 5],
        ]
        var r = BatchResult(
            id: "anthropic-1",
            outcome: .success(ModelResponse(text: "héllo \"there\"\n", finishReason: .stop, usage: Usage(inputTokens: 30, outputTokens: 4, cachedInputTokens: 20, cacheWriteTokens: 5), model: "claude-3-5-haiku-20241022", raw: anthropic)),
            attempts: 2, usage: Usage(inputTokens: 30, outputTokens: 4, cachedInputTokens: 20, cacheWriteTokens: 5, cacheWrite1hTokens: 2),
            latency: .milliseconds(812), route: .realtime, metadata: ["team": "ä/ß"])
        r.startedAt = t0
        r.endedAt = t0.addingTimeInterval(0.812)
        r.rateLimitedAttempts = 1
        r.cost = 0.000_031_25
        add(r)
        let gemini: JSONValue = [
            "candidates": [["content": ["parts": [["text": "ok"]], "role": "model"], "finishReason": "STOP", "avgLogprobs": -0.012_5]],
            "usageMetadata": ["promptTokenCount": 12, "candidatesTokenCount": 1, "totalTokenCount": 13],
            "modelVersion": "gemini-2.0-flash",
        ]
        r = BatchResult(
            id: "gemini-1", outcome: .success(ModelResponse(text: "ok", usage: Usage(inputTokens: 12, outputTokens: 1), raw: gemini)),
            attempts: 1, usage: Usage(inputTokens: 12, outputTokens: 1).asBatch, latency: .zero, route: .batch)
        r.jobID = "batches/gem-1"
        r.startedAt = t0
        r.endedAt = t0.addingTimeInterval(3600)
        add(r)
        // Failures: an HTTP error, a failure without an answer, an expired batch item.
        r = BatchResult(id: "f-http", outcome: .failure(BatchError(.overloaded, "over <capacity> & \"busy\"", httpStatus: 529)), attempts: 4, latency: .milliseconds(90), route: .realtime)
        r.endedAt = t0.addingTimeInterval(5)
        add(r)
        r = BatchResult(id: "f-net", outcome: .failure(BatchError(.timeout, "timed out after 60 s")), attempts: 3, route: .realtime)
        r.endedAt = t0.addingTimeInterval(6)
        add(r)
        r = BatchResult(id: "f-expired", outcome: .failure(BatchError(.expired, "the batch expired")), attempts: 1, route: .batch)
        r.jobID = "batch_x"
        r.startedAt = t0
        r.endedAt = t0.addingTimeInterval(86_400)
        add(r)
        add(BatchResult(id: "f-validation", outcome: .failure(.validation("no messages", field: "messages")), attempts: 0, route: .none))
        return out
    }

    /// Lines in the format but not as BatchKit writes them today: older lines, downloaded files,
    /// other routes, and JSON spelled in every way the parser accepts.
    static let otherLines: [String] = [
        // A file downloaded from a provider: no batchkit member; usage from the body.
        #"{"id":"batch_req_1","custom_id":"dl-1","response":{"status_code":200,"request_id":"r","body":{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}},"error":null}"#,
        #"{"id":"batch_req_2","custom_id":"dl-2","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}"#,
        #"{"id":"batch_req_3","custom_id":"dl-3","response":{"status_code":400,"request_id":"","body":{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}},"error":null}"#,
        // Older BatchKit lines: no times, job ids or cost; no usage member; no fields.
        #"{"id":"batch_req_4","custom_id":"old-1","response":{"status_code":200,"request_id":"","body":{"model":"gpt-4o","choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}},"error":null,"batchkit":{"route":"batch","attempts":1,"latency_ms":0}}"#,
        #"{"id":"batch_req_5","custom_id":"old-2","response":{"status_code":200,"request_id":"","body":{"type":"message","model":"claude-3-5-sonnet-20241022","content":[{"type":"text","text":"y"}],"usage":{"input_tokens":7,"output_tokens":3}}},"error":null,"batchkit":{"route":"realtime","attempts":1,"latency_ms":40,"usage":{"input":7,"output":3}}}"#,
        // The cache route (a route this version does not write), and cache tokens.
        #"{"custom_id":"cache-1","response":{"status_code":200,"body":{"model":"gpt-4o-mini"}},"batchkit":{"route":"cache","attempts":0,"latency_ms":0,"usage":{"input":100,"output":10,"cached":100},"started_at":1764700001000,"ended_at":1764700001000,"cost":0}}"#,
        // Numbers the parser reads in other ways: doubles, exponents, strings, leading zeros, big.
        #"{"custom_id":"n-1","response":{"status_code":"200","body":{"model":"gpt-4o-mini"}},"batchkit":{"route":"realtime","attempts":2.0,"latency_ms":1.5e2,"rate_limited":"1","usage":{"input":1e2,"output":"7","reasoning":3.5},"started_at":1764700002000.4,"ended_at":17647000025E-1,"cost":2.5e-6}}"#,
        #"{"custom_id":"n-2","response":{"status_code":200.0,"body":{"model":"gpt-4o-mini"}},"batchkit":{"route":"realtime","attempts":007,"latency_ms":-0,"usage":{"input":12345678901234567890,"output":-5},"ended_at":1764700003000,"job_id":"j"}}"#,
        #"{"custom_id":"n-3","response":{"status_code":503,"body":"upstream said no"},"batchkit":{"route":"realtime","attempts":1,"latency_ms":99999999999999999999,"ended_at":1764700004000}}"#,
        #"{"custom_id":"n-5","response":{"status_code":200,"body":{"model":"m"}},"batchkit":{"route":"realtime","attempts":1,"latency_ms":1e300,"started_at":-1e30,"ended_at":1e30}}"#,
        #"{"custom_id":"n-6","response":{"status_code":200,"body":{"model":"m"}},"batchkit":{"route":"realtime","attempts":1e300,"latency_ms":-5,"started_at":1764700000000,"ended_at":-9.3e18,"rate_limited":-1}}"#,
        #"{"custom_id":"n-4","response":{"status_code":500,"body":{"error":"plain string error"}},"error":{"code":"line_code","message":"line message"},"batchkit":{"error":{"retryable":true}}}"#,
        // Whitespace, escapes in values and keys, non-ASCII names, unusual member types.
        "  {\t\"custom_id\" : \"w-1\" ,\r\"response\":{ \"status_code\" : 200 , \"body\" : { \"model\" : \"gpt-4o-mini\" } } , \"batchkit\" : { \"route\" : \"realtime\" , \"attempts\" : 1 , \"latency_ms\" : 12 , \"usage\" : { } } }  ",
        #"{"custom_id":"e-1","response":{"status_code":200,"body":{"model":"gpt\u002d4o-mini"}},"batchkit":{"route":"re\u0061ltime","attempts":1,"latency_ms":5,"job_id":"j\"1","usage":{"input":1,"output":1}}}"#,
        #"{"custom_id":"e-2","response":{"status_code":200,"body":{"model":"modèle-ünïcode"}},"batchkit":{"r\u006fute":"batch","route":"realtime","attempts":1,"latency_ms":5,"usage":{"input":1,"output":1}}}"#,
        #"{"custom_id":"e-3","response":{"status_code":200,"body":{"model":"m","note":"\ud83d\ude00 \ud800 \udc00 \u00e9"}},"batchkit":{"route":"realtime","attempts":1,"latency_ms":5,"usage":{"input":1,"output":1}}}"#,
        #"{"custom_id":"\u0065-4","response":[],"batchkit":{"route":null,"attempts":true,"usage":null,"fields":"x","error":[1]}}"#,
        #"{"custom_id":"t-1","response":{"status_code":200,"body":{"model":"gpt-4o-mini"}},"batchkit":"not an object"}"#,
        #"{"custom_id":"t-2","response":{"status_code":200,"body":[1,2,{"a":[true,false,null]}]},"batchkit":null}"#,
        #"{"custom_id":"t-3","response":{"status_code":429,"body":{"error":{"message":"slow down","code":"rate_limit_exceeded"}}},"batchkit":{"route":"realtime","attempts":5,"latency_ms":10,"rate_limited":5,"started_at":1764700010000,"ended_at":1764700011000,"error":{"code":"rate_limited"},"fields":{"model":"from-fields"}}}"#,
        // Duplicated members: the parser keeps the last.
        #"{"custom_id":"d-1","custom_id":"d-1b","response":{"status_code":500},"response":{"status_code":200,"body":{"model":"m"}},"batchkit":{"route":"batch","route":"realtime","attempts":1,"latency_ms":3}}"#,
        #"{"custom_id":"d-2","batchkit":{"usage":{"input":1,"input":2}},"response":{"status_code":200,"body":{"model":"a","model":"b"}}}"#,
        // Not output lines, and not JSON.
        "not json",
        #"{"custom_id":"cut-1","response":{"status_code":200,"body":{"model":"gpt-4o-mini","choices":[{"mess"#,
        #"[1,2,3]"#,
        #"{"custom_id":5,"response":null}"#,
        #"{"id":"no custom id","response":null}"#,
        #"{}"#,
        #"{"custom_id":"x",}"#,
        #"{"custom_id":"x"} trailing"#,
        #"{"custom_id":"x","a":tru}"#,
        #"{"custom_id":"x","a":nul}"#,
        #"{"custom_id":"x","a":"bad \q escape"}"#,
        #"{"custom_id":"x","a":"bad \u12G4 escape"}"#,
        #"{"custom_id":"x","a":"\ud800\u12"}"#,
        "{\"custom_id\":\"x\",\"a\":\"control \u{01} char\"}",
        #"{"custom_id":"x","a":1.2.3}"#,
        #"{"custom_id":"x","a":-}"#,
        #"{"custom_id":"x","a":+1}"#,
        #"{"custom_id":"x","a":.5}"#,
        #"{"custom_id":"x","a":1e}"#,
        #"{"custom_id":"x","a":0x10}"#,
        #"{"custom_id":"x" "a":1}"#,
        #"{"custom_id":"x","a":[1 2]}"#,
        #"{"custom_id":"x","a":[1,]}"#,
        #"{"custom_id":"x","a":{"b":1,}}"#,
        #"{"custom_id":"x","a":{1:2}}"#,
        "{\"custom_id\":\"x\",\"a\":\"\u{FF}\u{FE} latin\"}",
        #"{"custom_id":"\"#,
        #"{"custom_id":"x","deep":"# + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}",
        #"{"custom_id":"x","deep":"# + String(repeating: "[", count: 300) + String(repeating: "]", count: 300) + "}",
    ]

    /// The reference reading of one line.
    static func reference(_ bytes: [UInt8], location: String, into report: inout BatchReport) {
        bytes.withUnsafeBufferPointer { report.addParsing($0, location: location) }
    }

    /// Everything a report shows, as one comparable text.
    static func fingerprint(_ r: BatchReport) -> String {
        let buckets = r.timeBuckets.map { "\($0.start.timeIntervalSince1970):\($0.bucket)" }.joined(separator: ",")
        // A job's failure codes are a dictionary: described in key order.
        let jobs = r.jobs.map { j in
            "\(j.id) \(String(describing: j.submittedAt)) \(String(describing: j.endedAt)) \(j.succeeded) \(j.failed) "
                + "\(j.displayStatus) \(j.failureCodes.sorted { $0.key < $1.key })"
        }
        let latency = [0.5, 0.9, 0.99].map { "\(String(describing: r.latency.quantile($0)))" }.joined(separator: ",")
        return """
            lines \(r.lines) ok \(r.succeeded) failed \(r.failed) unreadable \(r.unreadable) \(r.unreadableLocations)
            routes \(r.routes.sorted { $0.key < $1.key }) attempts \(r.attempts.sorted { $0.key < $1.key })
            latency \(r.latency.count) \(r.latency.sum) \(String(describing: r.latency.min)) \(String(describing: r.latency.max)) \(latency)
            429s \(r.rateLimitedAnswers) width \(r.bucketMilliseconds) buckets \(buckets) span \(String(describing: r.span))
            errors \(r.errors) models \(r.models) jobs \(jobs) cost \(r.cost) \(r.allRealtimeCost) \(r.allBatchCost)
            missing \(r.missing)
            \(r.text())
            """
    }

    @Test func everyLineReadsAsTheReferenceReadsIt() throws {
        let lines = Self.writtenLines() + Self.otherLines
        var scanned = 0
        for (n, line) in lines.enumerated() {
            let bytes = Array(line.utf8)
            var fast = BatchReport(prices: .defaults)
            fast.add(lineBytes: bytes[...], location: "f:\(n)")
            var reference = BatchReport(prices: .defaults)
            Self.reference(bytes, location: "f:\(n)", into: &reference)
            #expect(Self.fingerprint(fast) == Self.fingerprint(reference), "line \(n): \(line)")
            if bytes.withUnsafeBufferPointer({ OutputLineScanner.scan($0) }) != nil { scanned += 1 }
        }
        // The scanner reads the lines BatchKit writes itself, leaving none of them to the parser.
        for line in Self.writtenLines() {
            let bytes = Array(line.utf8)
            #expect(bytes.withUnsafeBufferPointer { OutputLineScanner.scan($0) } != nil, "left to the parser: \(line)")
        }
        #expect(scanned >= Self.writtenLines().count + 15)
    }

    @Test func theScannerLeavesWhatItCannotReadForCertainToTheParser() {
        for line in [
            #"{"custom_id":"d-1","custom_id":"d-1b"}"#, #"{"custom_id":"x","b\u0061tchkit":{}}"#, "not json",
            #"{"custom_id":"x","a":1.2.3}"#, #"{"custom_id":"x","a":[1,]}"#,
            #"{"custom_id":"x","deep":"# + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}",
        ] {
            let bytes = Array(line.utf8)
            #expect(bytes.withUnsafeBufferPointer { OutputLineScanner.scan($0) } == nil, "\(line)")
        }
    }

    @Test func aFileReadsAsTheReferenceReadsIt() async throws {
        // Every kind of line, many times over (so buckets coarsen and strings repeat), with empty
        // lines, CRLF endings and no newline at the end.
        let kinds = Self.writtenLines() + Self.otherLines
        var text = ""
        var g = SplitMix64(seed: 11)
        for i in 0..<3000 {
            text += kinds[Int.random(in: 0..<kinds.count, using: &g)]
            text += i % 7 == 0 ? "\r\n" : i % 11 == 0 ? "\n\n" : "\n"
        }
        text += kinds[0]
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("report-scanner-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(text.utf8).write(to: url)

        var fast = BatchReport(prices: .defaults)
        try await fast.add(contentsOf: url, name: "every-kind.jsonl")
        var reference = BatchReport(prices: .defaults)
        try await reference.add(parsingEveryLineOf: url, name: "every-kind.jsonl")
        #expect(fast.lines > 2000 && fast.unreadable > 100)
        #expect(Self.fingerprint(fast) == Self.fingerprint(reference))
        let at = Date(timeIntervalSince1970: 1_764_800_000)
        #expect(fast.html(generatedAt: at) == reference.html(generatedAt: at))
    }

    @Test func blocksSmallerThanALineReadTheSameLines() throws {
        let lines = ["a", "", "bb\r", "a line longer than the block of eight bytes", "c"]
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("report-blocks-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        var seen: [String] = []
        try JSONLReader.forEachLineInBlocks(of: url, blockSize: 8) { bytes, number in
            seen.append("\(number):\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(seen == ["1:a", "3:bb", "4:a line longer than the block of eight bytes", "5:c"])
    }
}
