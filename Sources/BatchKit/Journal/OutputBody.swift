import Foundation

/// The response half of the interchange format: the `response.body` of a batch output line when
/// it is in the line's own format (a chat completion, a completion, a Responses-API answer or an
/// embedding list), read into the normalized fields and written from them.
///
/// The OpenAI-compatible provider module decodes its answers with these same functions, so the
/// interchange vocabulary has one definition.
package enum OutputBody {
    /// A `finish_reason` of the interchange format in BatchKit's vocabulary (`function_call`
    /// counts as `tool_calls`; unknown values pass through).
    package static func finishReason(_ raw: String) -> FinishReason {
        switch raw {
        case "stop": return .stop
        case "length": return .length
        case "tool_calls", "function_call": return .toolCalls
        case "content_filter": return .contentFilter
        default: return FinishReason(rawValue: raw)
        }
    }

    /// Token usage in any of the format's shapes: chat (`prompt_tokens`, `completion_tokens`,
    /// `*_tokens_details`), embeddings (`prompt_tokens`), responses (`input_tokens`, `output_tokens`).
    package static func usage(_ u: JSONValue?) -> Usage {
        guard let u, case .object = u else { return .zero }
        let input = u["prompt_tokens"]?.intValue ?? u["input_tokens"]?.intValue ?? 0
        let output = u["completion_tokens"]?.intValue ?? u["output_tokens"]?.intValue ?? 0
        let cached = (u["prompt_tokens_details"] ?? u["input_tokens_details"])?["cached_tokens"]?.intValue ?? 0
        let reasoning = (u["completion_tokens_details"] ?? u["output_tokens_details"])?["reasoning_tokens"]?.intValue ?? 0
        return Usage(inputTokens: input, outputTokens: output, cachedInputTokens: cached, reasoningTokens: reasoning)
    }

    /// Decodes base64 of little-endian float32 values; `nil` when not base64 or not a whole number
    /// of floats.
    package static func decodeBase64Floats(_ text: String) -> [Float]? {
        guard let data = Data(base64Encoded: text), data.count % 4 == 0 else { return nil }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { i in Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        }
    }

    /// The text fields of a body: `usage`, `model`, and the text and finish reason of chat choices,
    /// completion choices (`choices[0].text`) or Responses-API `output_text` items.
    package static func decodeText(_ body: JSONValue) -> ModelResponse {
        var text: String?
        var finish: FinishReason?
        var calls: [ToolCall] = []
        if let choice = body["choices"]?[0] {
            text = choice["message"]?["content"]?.stringValue ?? choice["text"]?.stringValue
            finish = choice["finish_reason"]?.stringValue.map(finishReason)
            calls = toolCalls(choice["message"]?["tool_calls"])
        } else if let t = body["output_text"]?.stringValue {
            text = t
        } else if case .array(let output)? = body["output"] {
            var pieces: [String] = []
            for item in output {
                for part in item["content"]?.arrayValue ?? [] where part["type"]?.stringValue == "output_text" {
                    if let t = part["text"]?.stringValue { pieces.append(t) }
                }
            }
            if !pieces.isEmpty { text = pieces.joined() }
            if body["status"]?.stringValue == "completed" { finish = .stop }
            if body["incomplete_details"]?["reason"]?.stringValue == "max_output_tokens" { finish = .length }
        }
        return ModelResponse(
            text: text, finishReason: finish, usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body,
            toolCalls: calls)
    }

    /// The function calls of a chat message's `tool_calls` (`[{"id","type":"function","function":{"name","arguments"}}]`),
    /// arguments parsed from their JSON text; items of other types (custom tools) are skipped.
    package static func toolCalls(_ v: JSONValue?) -> [ToolCall] {
        guard case .array(let list)? = v else { return [] }
        return list.compactMap { item in
            guard let f = item["function"], let name = f["name"]?.stringValue else { return nil }
            let arguments: JSONValue
            switch f["arguments"] {
            case .string(let text)?: arguments = ToolCall.arguments(parsing: text)
            case let other?: arguments = other
            case nil: arguments = .object([:])
            }
            return ToolCall(id: item["id"]?.stringValue ?? "", name: name, arguments: arguments)
        }
    }

    /// Everything the format's body holds: ``decodeText(_:)``, or for an embedding list
    /// (`{"object":"list","data":[{"embedding":…}]}`) one vector per item, given as numbers or as
    /// base64 float32. Never throws: what is not there stays `nil`.
    package static func decode(_ body: JSONValue) -> ModelResponse {
        if body["choices"] == nil, body["object"]?.stringValue == "list", let data = body["data"]?.arrayValue {
            var r = ModelResponse(usage: usage(body["usage"]), model: body["model"]?.stringValue, raw: body)
            r.embeddings = data.map { item in
                switch item["embedding"] {
                case .array(let numbers)?: return numbers.map { Float($0.doubleValue ?? 0) }
                case .string(let b64)?: return decodeBase64Floats(b64) ?? []
                default: return []
                }
            }
            return r
        }
        return decodeText(body)
    }

    /// A body in the format written from the normalized fields, for a response that carries no
    /// raw body of its own (a client that returned `ModelResponse(text:)`).
    package static func encode(_ r: ModelResponse) -> JSONValue {
        let usage: JSONValue = [
            "prompt_tokens": .int(r.usage.inputTokens), "completion_tokens": .int(r.usage.outputTokens),
            "total_tokens": .int(r.usage.totalTokens),
        ]
        if let embeddings = r.embeddings {
            return [
                "object": "list", "model": r.model.map(JSONValue.string) ?? .null,
                "data": .array(embeddings.enumerated().map { i, v in
                    ["object": "embedding", "index": .int(i), "embedding": .array(v.map { .double(Double($0)) })]
                }),
                "usage": usage,
            ]
        }
        return [
            "object": "chat.completion", "model": r.model.map(JSONValue.string) ?? .null,
            "choices": [[
                "index": 0,
                "message": ["role": "assistant", "content": r.text.map(JSONValue.string) ?? .null],
                "finish_reason": r.finishReason.map { .string($0.rawValue) } ?? .null,
            ]],
            "usage": usage,
        ]
    }
}
