import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run` with tool-calling input lines that carry their own metadata: for every provider,
/// real time and native, the output line's `batchkit` member has the tool calls in one shape and
/// the input line's metadata.
@Suite(.timeLimit(.minutes(5))) struct CLIToolTests {
    static func lines(_ count: Int) -> String {
        (0..<count).map { i in
            #"{"custom_id":"t\#(i)","method":"POST","url":"/v1/chat/completions","metadata":{"row":"\#(i)","batch":"nightly"},"body":{"model":"gpt-4o-mini","max_tokens":200,"messages":[{"role":"user","content":"Extract the city from ticket \#(i)"}],"tools":[{"type":"function","function":{"name":"record_city","description":"Record the city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"required"}}"#
        }.joined(separator: "\n") + "\n"
    }

    @Test(arguments: [
        ("openai", "realtime", "gpt-4o-mini"), ("openai", "native", "gpt-4o-mini"),
        ("anthropic", "realtime", "claude-haiku-4-5"), ("anthropic", "native", "claude-haiku-4-5"),
        ("gemini", "realtime", "gemini-2.5-flash"), ("gemini", "native", "gemini-2.5-flash"),
    ])
    func toolCallsAndMetadataReachTheOutputLine(_ provider: String, _ mode: String, _ model: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Self.lines(4))
        try await withEmulator { _, url in
            let result = try await CLI.run(
                [
                    "run", "in.jsonl", "--output", "out.jsonl", "--provider", provider, "--mode", mode, "--model", model,
                    "--poll-interval", "50ms", "--base-url", url,
                ],
                in: dir.url,
                environment: ["OPENAI_API_KEY": "sk-cli-test-key-0001", "ANTHROPIC_API_KEY": "ak-test-0001", "GEMINI_API_KEY": "gk-test-0001"])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(lines.count == 4)
            for line in lines {
                let id = try #require(line["custom_id"]?.stringValue)
                let member = try #require(line["batchkit"])
                let call = try #require(member["tool_calls"]?[0], "\(provider) \(mode) \(id): \(line.jsonString)")
                #expect(call["name"] == "record_city")
                #expect(call["arguments"]?["city"]?.stringValue != nil)
                #expect(call["id"]?.stringValue?.isEmpty == false)
                #expect(member["metadata"] == ["row": .string(String(id.dropFirst())), "batch": "nightly"])
            }
        }
    }
}
