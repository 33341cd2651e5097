import BatchKit
import BatchKitReport
import Foundation

/// `report`: a 1,000,000-line output file (80 % real time with OpenAI chat bodies, 20 % batch items
/// of 20 jobs, 3 % failures of four codes, attempts and 429s, two hours of end times) read by
/// `BatchReport` in one pass, then drawn as text and HTML. The file is written first, in 64 KiB
/// chunks, so its generation holds no more memory than the report does. Prints
/// `{"scenario":"report","lines":…,"seconds":…,"lines_per_s":…,"mb_per_s":…,"html_kb":…,"peak_rss_mb":…}`;
/// `--report-lines N` (or `BATCHKIT_BENCH_REPORT_LINES`) changes the count; `--report-reader reference`
/// (or `BATCHKIT_BENCH_REPORT_READER`) reads every line through the JSON parser instead of the
/// scanner, the way the report read before (`"reader"` in the line says which).
func runReportBenchmark() async throws {
    let count = benchOption("report-lines", env: "BATCHKIT_BENCH_REPORT_LINES").flatMap(Int.init) ?? 1_000_000
    let reader = benchOption("report-reader", env: "BATCHKIT_BENCH_REPORT_READER") ?? "scanner"
    guard reader == "scanner" || reader == "reference" else {
        throw BatchError(.validation, "--report-reader is scanner or reference, not \(reader)")
    }
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-bench-report-\(UUID().uuidString).jsonl")
    defer { try? FileManager.default.removeItem(at: file) }
    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
    let handle = try FileHandle(forWritingTo: file)
    var buffer = [UInt8]()
    buffer.reserveCapacity(1 << 17)
    var state: UInt64 = 42
    func random() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    let t0 = Date(timeIntervalSince1970: 1_764_700_000)
    var bytes = 0
    for i in 0..<count {
        let batch = i % 5 == 0
        let failed = random() < 0.03
        let usage = Usage(inputTokens: 40 + i % 60, outputTokens: 5 + i % 20)
        let outcome: Result<ModelResponse, BatchError>
        if failed {
            let codes: [(BatchError.Code, Int?)] = [(.rateLimited, 429), (.server, 500), (.timeout, nil), (.invalidRequest, 400)]
            let (code, status) = codes[i % codes.count]
            outcome = .failure(BatchError(code, "request \(i) failed: \(code.rawValue)", httpStatus: status))
        } else {
            let body: JSONValue = [
                "id": .string("chatcmpl-\(i)"), "object": "chat.completion", "created": 1_764_700_000, "model": "gpt-4o-mini-2024-07-18",
                "choices": [["index": 0, "finish_reason": "stop", "message": ["role": "assistant", "content": "billing"]]],
                "usage": ["prompt_tokens": .int(usage.inputTokens), "completion_tokens": .int(usage.outputTokens),
                          "total_tokens": .int(usage.totalTokens)],
            ]
            outcome = .success(ModelResponse(text: "billing", finishReason: .stop, usage: usage, model: "gpt-4o-mini-2024-07-18", raw: body))
        }
        let latencyMs = batch ? 0 : (-log(max(1e-9, random())) * 400).rounded() + 20
        let attempts = failed || random() < 0.05 ? 1 + Int(random() * 4) : 1
        var r = BatchResult(
            id: "request-\(i)", outcome: outcome, attempts: attempts, usage: failed ? .zero : (batch ? usage.asBatch : usage),
            latency: .milliseconds(latencyMs), route: batch ? .batch : .realtime)
        let end = t0.addingTimeInterval(Double(i) / Double(count) * 7200 + random())
        r.endedAt = end
        if batch {
            r.jobID = "batch_\(i % 20)"
            r.startedAt = t0.addingTimeInterval(Double(i % 20) * 60)
        } else {
            r.startedAt = end.addingTimeInterval(-latencyMs / 1000)
            if attempts > 1, random() < 0.5 { r.rateLimitedAttempts = 1 }
        }
        buffer += r.outputLineBytes()
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 {
            bytes += buffer.count
            handle.write(Data(buffer))
            buffer.removeAll(keepingCapacity: true)
        }
    }
    bytes += buffer.count
    handle.write(Data(buffer))
    try handle.close()
    chatter("report: wrote \(count) lines, \(bytes / 1_048_576) MiB; reading")

    let start = ContinuousClock.now
    let cpu0 = cpuSeconds()
    var report = BatchReport(prices: .defaults)
    if reader == "reference" {
        try await report.add(parsingEveryLineOf: file, name: "bench.jsonl")
    } else {
        try await report.add(contentsOf: file, name: "bench.jsonl")
    }
    let text = report.text()
    let html = report.html()
    let seconds = (ContinuousClock.now - start).seconds
    let cpu = cpuSeconds() - cpu0
    guard report.lines == count else {
        throw BatchError(.invalidResponse, "the report counted \(report.lines) lines of \(count)")
    }
    chatter(text.split(separator: "\n").prefix(12).joined(separator: "\n"))
    printJSONLine([
        "scenario": "report", "reader": .string(reader), "lines": .int(count), "mb": .double(round3(Double(bytes) / 1_048_576)),
        "seconds": .double(round3(seconds)), "cpu_seconds": .double(round3(cpu)),
        "lines_per_s": .int(Int(Double(count) / seconds)), "mb_per_s": .double(round3(Double(bytes) / 1_048_576 / seconds)),
        "html_kb": .int(html.utf8.count / 1024), "peak_rss_mb": .double(round3(peakRSSMegabytes())),
    ])
}
