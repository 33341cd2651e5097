import BatchKit
import Foundation
import Testing

@testable import BatchKitAnthropic

/// The output line (journal, `batchkit run --output`) carries what the Anthropic decoder produced,
/// not a second reading of the body.
@Suite struct AnthropicOutputLineTests {
    static func message(stopReason: String) -> JSONValue {
        [
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "stop_reason": .string(stopReason), "stop_sequence": nil,
            "content": [["type": "text", "text": "Hi"], ["type": "text", "text": " there"]],
            "usage": ["input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 1],
        ]
    }

    @Test(arguments: ["end_turn", "max_tokens", "model_context_window_exceeded", "refusal", "tool_use", "pause_turn"])
    func decodedFieldsSurviveTheOutputLine(_ stopReason: String) throws {
        let decoded = try AnthropicWire.parseMessage(Self.message(stopReason: stopReason))
        for route in [BatchResult.Route.realtime, .batch] {
            let result = BatchResult(id: "a", outcome: .success(decoded), attempts: 1, usage: decoded.usage, route: route)
            let back = try BatchResult(outputLine: result.outputLine())
            #expect(back.response?.finishReason == decoded.finishReason)
            #expect(back.response?.text == decoded.text)
            #expect(back.response?.model == decoded.model)
            #expect(back.response?.usage == decoded.usage)
            #expect(back.response?.raw == decoded.raw)
        }
    }

    @Test func contextWindowExceededIsLength() throws {
        let decoded = try AnthropicWire.parseMessage(Self.message(stopReason: "model_context_window_exceeded"))
        #expect(decoded.finishReason == .length)
        let line = BatchResult(id: "a", outcome: .success(decoded), attempts: 1).outputLine()
        #expect(try BatchResult(outputLine: line).response?.finishReason == .length)
    }
}
