import BatchKit
import BatchKitOpenAI
import Foundation

/// `jsonl`: encode 50,000 chat requests to OpenAI batch JSONL, and parse 50,000 output lines
/// (a file read in chunks by `JSONLReader`, each line parsed into a `BatchResult` by the same code
/// the OpenAI backend uses). Prints `{"scenario":"jsonl","encode_mb_per_s":...,"parse_mb_per_s":...}`;
/// each figure is the median of five runs.
func runJSONLBenchmark() async throws {
    let count = 50_000
    let requests = (0..<count).map { i in
        BatchRequest(id: "request-\(i)", chat: ChatRequest(
            model: "gpt-4o-mini",
            messages: [.user("Summarise the following product review in one sentence. Review #\(i): The blender arrived quickly, works well on ice, but is louder than expected and the lid is hard to clean.")],
            system: "You are a concise assistant.", maxTokens: 100, temperature: 0.2))
    }

    // Encode: requests → one JSONL buffer.
    var encodeRates: [Double] = []
    var encodedBytes = 0
    for _ in 0..<5 {
        let start = ContinuousClock.now
        var out = [UInt8]()
        out.reserveCapacity(count * 512)
        for r in requests {
            r.writeBatchLine(into: &out)
            out.append(0x0A)
        }
        let seconds = (ContinuousClock.now - start).seconds
        encodedBytes = out.count
        encodeRates.append(Double(out.count) / 1_048_576 / seconds)
    }

    // Parse: an output file as OpenAI writes it → BatchResults.
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-bench-\(UUID().uuidString).jsonl")
    defer { try? FileManager.default.removeItem(at: file) }
    var output = [UInt8]()
    output.reserveCapacity(count * 900)
    for i in 0..<count {
        let line: JSONValue = [
            "id": .string("batch_req_\(String(i, radix: 16))5f2c9e8a1b3d4c6e"), "custom_id": .string("request-\(i)"), "error": nil,
            "response": [
                "status_code": 200, "request_id": .string("req_8a1b2c3d4e\(i)"),
                "body": [
                    "id": .string("chatcmpl-9x7Y\(i)"), "object": "chat.completion", "created": 1_718_001_000, "model": "gpt-4o-mini-2024-07-18",
                    "choices": [[
                        "index": 0, "logprobs": nil, "finish_reason": "stop",
                        "message": ["role": "assistant", "refusal": nil, "annotations": [],
                                    "content": .string("The blender is fast and strong on ice, but loud and its lid is hard to clean (review \(i)).")],
                    ]],
                    "usage": ["prompt_tokens": 52, "completion_tokens": 24, "total_tokens": 76,
                              "prompt_tokens_details": ["cached_tokens": 0, "audio_tokens": 0],
                              "completion_tokens_details": ["reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0]],
                    "service_tier": "default", "system_fingerprint": "fp_0ba0d124f1",
                ],
            ],
        ]
        line.write(into: &output)
        output.append(0x0A)
    }
    try Data(output).write(to: file)
    var parseRates: [Double] = []
    for _ in 0..<5 {
        let start = ContinuousClock.now
        var succeeded = 0
        try await JSONLReader.forEachLine(in: file) { line, _ in
            if let r = OpenAIBatchBackend.result(line: line), r.isSuccess { succeeded += 1 }
        }
        let seconds = (ContinuousClock.now - start).seconds
        guard succeeded == count else { throw BatchError(.invalidResponse, "parsed \(succeeded) of \(count) lines") }
        parseRates.append(Double(output.count) / 1_048_576 / seconds)
    }
    func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
    chatter("jsonl: encoded \(encodedBytes) bytes, parsed \(output.count) bytes, \(count) lines each")
    printJSONLine([
        "scenario": "jsonl", "encode_mb_per_s": .double(round3(median(encodeRates))), "parse_mb_per_s": .double(round3(median(parseRates))),
    ])
}
