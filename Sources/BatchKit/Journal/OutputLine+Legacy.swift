import Foundation

/// Reads the body of an output line written before lines carried their normalised `fields`
/// (see ``BatchResult/outputLine()``), when that body is not in the line's own format: the
/// answers of the other two providers BatchKit shipped with, recognised by their shape.
///
/// Read-only and frozen: nothing new is written in a way that needs it, so it must not grow. Its
/// finish-reason and usage readings agree with what the provider modules' decoders produce (it
/// includes the cases the earlier copy lacked: a context-window stop, the tool-call failure
/// family, tool-use prompt tokens), so an old line reads as a new one would.
enum LegacyOutputBody {
    /// The fields of a message body (`content[]` of text blocks, `stop_reason`) or of a
    /// generate-content answer (`candidates[0]`, `usageMetadata`), or of that provider's embedding
    /// answers; `nil` for any other shape.
    static func decode(_ body: JSONValue) -> ModelResponse? {
        var r = ModelResponse(raw: body)
        r.model = body["model"]?.stringValue ?? body["modelVersion"]?.stringValue
        if let content = body["content"]?.arrayValue {
            r.text = content.compactMap { $0["type"]?.stringValue == "text" ? $0["text"]?.stringValue : nil }.joined()
            r.finishReason = body["stop_reason"]?.stringValue.map(messageStopReason)
            r.usage = messageUsage(body["usage"])
        } else if let candidate = body["candidates"]?[0] {
            var hasFunctionCall = false
            r.text = candidate["content"]?["parts"]?.arrayValue?.compactMap { part in
                if part["functionCall"] != nil { hasFunctionCall = true }
                return part["thought"]?.boolValue == true ? nil : part["text"]?.stringValue
            }.joined()
            r.finishReason = candidate["finishReason"]?.stringValue.map(candidateFinishReason)
            if hasFunctionCall, r.finishReason == .stop { r.finishReason = .toolCalls }
            r.usage = usageMetadata(body["usageMetadata"])
        } else if let values = body["embedding"]?["values"] {
            r.embeddings = [vector(values)]
        } else if let list = body["embeddings"]?.arrayValue {
            r.embeddings = list.map { vector($0["values"] ?? .null) }
        } else {
            return nil
        }
        return r
    }

    static func messageStopReason(_ s: String) -> FinishReason {
        switch s {
        case "end_turn", "stop_sequence": return .stop
        case "max_tokens", "model_context_window_exceeded": return .length
        case "tool_use": return .toolCalls
        case "refusal": return .contentFilter
        default: return FinishReason(rawValue: s)
        }
    }

    static func candidateFinishReason(_ s: String) -> FinishReason {
        switch s {
        case "STOP": return .stop
        case "MAX_TOKENS": return .length
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY": return .contentFilter
        case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS": return .toolCalls
        default: return FinishReason(rawValue: s.lowercased())
        }
    }

    /// `input_tokens` excludes cache reads and writes there; BatchKit counts cached tokens as a
    /// subset of input.
    static func messageUsage(_ u: JSONValue?) -> Usage {
        guard let u, case .object = u else { return .zero }
        let read = u["cache_read_input_tokens"]?.intValue ?? 0
        let write = u["cache_creation_input_tokens"]?.intValue ?? 0
        return Usage(
            inputTokens: (u["input_tokens"]?.intValue ?? 0) + read + write, outputTokens: u["output_tokens"]?.intValue ?? 0,
            cachedInputTokens: read)
    }

    static func usageMetadata(_ m: JSONValue?) -> Usage {
        guard let m else { return .zero }
        func n(_ k: String) -> Int { m[k]?.intValue ?? 0 }
        let thoughts = n("thoughtsTokenCount")
        return Usage(
            inputTokens: n("promptTokenCount") + n("toolUsePromptTokenCount"), outputTokens: n("candidatesTokenCount") + thoughts,
            cachedInputTokens: n("cachedContentTokenCount"), reasoningTokens: thoughts)
    }

    static func vector(_ value: JSONValue) -> [Float] {
        value.arrayValue?.map { Float($0.doubleValue ?? 0) } ?? []
    }
}
