import BatchKit
import Foundation
import Testing

@testable import BatchKitGemini

/// The output line (journal, `batchkit run --output`) carries what the Gemini decoder produced,
/// not a second reading of the body.
@Suite struct GeminiOutputLineTests {
    static func answer(finishReason: String, functionCall: Bool = false) -> JSONValue {
        var parts: [JSONValue] = [["text": "Bonjour"]]
        if functionCall { parts.append(["functionCall": ["name": "lookup", "args": ["q": "x"]]]) }
        return [
            "candidates": [["content": ["parts": .array(parts), "role": "model"], "finishReason": .string(finishReason)]],
            "usageMetadata": [
                "promptTokenCount": 8, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "toolUsePromptTokenCount": 5,
                "cachedContentTokenCount": 4,
            ],
            "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
        ]
    }

    @Test(arguments: [
        "STOP", "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "LANGUAGE",
    ])
    func decodedFieldsSurviveTheOutputLine(_ finishReason: String) throws {
        let decoded = try GeminiWire.parseGenerateContentResponse(Self.answer(finishReason: finishReason))
        for route in [BatchResult.Route.realtime, .batch] {
            let result = BatchResult(id: "g", outcome: .success(decoded), attempts: 1, usage: decoded.usage, route: route)
            let back = try BatchResult(outputLine: result.outputLine())
            #expect(back.response?.finishReason == decoded.finishReason)
            #expect(back.response?.text == decoded.text)
            #expect(back.response?.model == decoded.model)
            #expect(back.response?.usage == decoded.usage)
        }
    }

    @Test(arguments: ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
    func toolCallFamilyIsToolCalls(_ finishReason: String) throws {
        let decoded = try GeminiWire.parseGenerateContentResponse(Self.answer(finishReason: finishReason))
        #expect(decoded.finishReason == .toolCalls)
        let line = BatchResult(id: "g", outcome: .success(decoded), attempts: 1).outputLine()
        #expect(try BatchResult(outputLine: line).response?.finishReason == .toolCalls)
    }

    @Test func functionCallWithStopIsToolCalls() throws {
        let decoded = try GeminiWire.parseGenerateContentResponse(Self.answer(finishReason: "STOP", functionCall: true))
        #expect(decoded.finishReason == .toolCalls)
        let line = BatchResult(id: "g", outcome: .success(decoded), attempts: 1).outputLine()
        #expect(try BatchResult(outputLine: line).response?.finishReason == .toolCalls)
    }

    @Test func toolUsePromptTokensCountAsInput() throws {
        let decoded = try GeminiWire.parseGenerateContentResponse(Self.answer(finishReason: "STOP"))
        #expect(decoded.usage.inputTokens == 13)
        let line = BatchResult(id: "g", outcome: .success(decoded), attempts: 1, usage: decoded.usage).outputLine()
        #expect(try BatchResult(outputLine: line).response?.usage.inputTokens == 13)
        // A body read on its own (a line without BatchKit's member) counts them too.
        #expect(ModelResponse.parsing(providerBody: Self.answer(finishReason: "STOP")).usage.inputTokens == 13)
    }
}
