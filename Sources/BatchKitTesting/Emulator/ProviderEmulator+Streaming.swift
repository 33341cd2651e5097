import BatchKit
import Foundation

/// `stream: true` as the providers answer it in real time: server-sent events carrying the same
/// answer the plain call would give (the whole stream is sent as one body). Inside batch bodies,
/// Anthropic rejects `stream` (see `anthropicValidate`) and Gemini has no such field.
extension ProviderEmulator {
    /// Server-sent events: `event:` (when named) and `data:` lines, a blank line after each.
    static func sse(_ events: [(name: String?, data: String)], separator: String = "\n") -> Data {
        var out = ""
        for e in events {
            if let name = e.name { out += "event: \(name)\(separator)" }
            out += "data: \(e.data)\(separator)\(separator)"
        }
        return Data(out.utf8)
    }

    /// The text in pieces of a word or so, as deltas come.
    static func streamPieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for c in text {
            current.append(c)
            if c == " " {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    static func eventStream(_ data: Data, headers: HTTPHeaders) -> EmulatorResponse {
        var h = headers
        h["Content-Type"] = "text/event-stream; charset=utf-8"
        h["Cache-Control"] = "no-cache"
        return EmulatorResponse(status: 200, headers: h, body: data)
    }

    /// A chat completion as `chat.completion.chunk` events and `data: [DONE]`; the usage chunk
    /// (empty `choices`) only with `stream_options.include_usage`.
    static func openAIStream(_ completion: JSONValue, includeUsage: Bool) -> Data {
        var base: [String: JSONValue] = [
            "id": completion["id"] ?? "", "object": "chat.completion.chunk", "created": completion["created"] ?? 0,
            "model": completion["model"] ?? "", "system_fingerprint": completion["system_fingerprint"] ?? .null,
        ]
        if includeUsage { base["usage"] = .null }
        func chunk(_ delta: JSONValue, finish: JSONValue = .null) -> (name: String?, data: String) {
            var o = base
            o["choices"] = [["index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish]]
            return (nil, JSONValue.object(o).jsonString)
        }
        let choice = completion["choices"]?[0]
        let message = choice?["message"]
        var events = [chunk(["role": "assistant", "content": "", "refusal": nil])]
        for piece in streamPieces(message?["content"]?.stringValue ?? "") { events.append(chunk(["content": .string(piece)])) }
        for (i, call) in (message?["tool_calls"]?.arrayValue ?? []).enumerated() {
            events.append(chunk(["tool_calls": [[
                "index": .int(i), "id": call["id"] ?? "", "type": "function",
                "function": ["name": call["function"]?["name"] ?? "", "arguments": ""],
            ]]]))
            events.append(chunk(["tool_calls": [["index": .int(i), "function": ["arguments": call["function"]?["arguments"] ?? ""]]]]))
        }
        events.append(chunk([:], finish: choice?["finish_reason"] ?? "stop"))
        if includeUsage {
            var o = base
            o["choices"] = []
            o["usage"] = completion["usage"] ?? .null
            events.append((nil, JSONValue.object(o).jsonString))
        }
        events.append((nil, "[DONE]"))
        return sse(events)
    }

    /// A Response as the Responses API streams it: named events, each with a `sequence_number`
    /// from 0 — `response.created` and `response.in_progress` (status `in_progress`, no output, no
    /// usage); per output item `response.output_item.added` (the item `in_progress`, empty), then
    /// for a message `response.content_part.added`, `response.output_text.delta`s,
    /// `response.output_text.done`, `response.content_part.done`, and for a function call
    /// `response.function_call_arguments.delta`s and `.done`; `response.output_item.done` (the
    /// whole item); last `response.completed` (or `response.incomplete`) with the whole Response.
    /// No `[DONE]` follows (that is Chat Completions').
    static func openAIResponsesStream(_ response: JSONValue) -> Data {
        var events: [(name: String?, data: String)] = []
        func add(_ type: String, _ fields: [String: JSONValue]) {
            var o = fields
            o["type"] = .string(type)
            o["sequence_number"] = .int(events.count)
            events.append((type, JSONValue.object(o).jsonString))
        }
        var start = response.objectValue ?? [:]
        start["status"] = "in_progress"
        start["output"] = []
        start["usage"] = .null
        start["completed_at"] = .null
        start["incomplete_details"] = .null
        add("response.created", ["response": .object(start)])
        add("response.in_progress", ["response": .object(start)])
        for (i, item) in (response["output"]?.arrayValue ?? []).enumerated() {
            let index = JSONValue.int(i)
            let id = item["id"] ?? ""
            var opened = item.objectValue ?? [:]
            opened["status"] = "in_progress"
            if item["type"] == "function_call" {
                opened["arguments"] = ""
                add("response.output_item.added", ["output_index": index, "item": .object(opened)])
                let arguments = item["arguments"]?.stringValue ?? ""
                for piece in argumentPieces(arguments) {
                    add("response.function_call_arguments.delta", ["item_id": id, "output_index": index, "delta": .string(piece)])
                }
                add("response.function_call_arguments.done", ["item_id": id, "output_index": index, "arguments": .string(arguments)])
            } else if item["type"] == "message" {
                opened["content"] = []
                add("response.output_item.added", ["output_index": index, "item": .object(opened)])
                for (c, part) in (item["content"]?.arrayValue ?? []).enumerated() {
                    let place: [String: JSONValue] = ["item_id": id, "output_index": index, "content_index": .int(c)]
                    var empty = part.objectValue ?? [:]
                    empty["text"] = ""
                    add("response.content_part.added", place.merging(["part": .object(empty)]) { $1 })
                    let text = part["text"]?.stringValue ?? ""
                    for piece in streamPieces(text) {
                        add("response.output_text.delta", place.merging(["delta": .string(piece), "logprobs": []]) { $1 })
                    }
                    add("response.output_text.done", place.merging(["text": .string(text), "logprobs": []]) { $1 })
                    add("response.content_part.done", place.merging(["part": part]) { $1 })
                }
            } else {
                add("response.output_item.added", ["output_index": index, "item": .object(opened)])
            }
            add("response.output_item.done", ["output_index": index, "item": item])
        }
        add(response["status"] == "incomplete" ? "response.incomplete" : "response.completed", ["response": response])
        return sse(events)
    }

    /// Function-call arguments in pieces of up to 8 characters, as argument deltas come.
    static func argumentPieces(_ arguments: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for c in arguments {
            current.append(c)
            if current.count == 8 {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    /// A Message as Anthropic's events: `message_start`, per block `content_block_start`,
    /// `content_block_delta` (`text_delta` / `input_json_delta`), `content_block_stop`, then
    /// `message_delta` (stop reason, output tokens) and `message_stop`.
    static func anthropicStream(_ message: JSONValue) -> Data {
        var start = message.objectValue ?? [:]
        start["content"] = []
        start["stop_reason"] = .null
        start["stop_sequence"] = .null
        if case .object(var usage)? = start["usage"] {
            usage["output_tokens"] = 1
            start["usage"] = .object(usage)
        }
        var events: [(name: String?, data: String)] = [("message_start", JSONValue.object(["type": "message_start", "message": .object(start)]).jsonString)]
        func add(_ name: String, _ value: JSONValue) { events.append((name, value.jsonString)) }
        for (i, block) in (message["content"]?.arrayValue ?? []).enumerated() {
            let index = JSONValue.int(i)
            if block["type"] == "tool_use" {
                add("content_block_start", ["type": "content_block_start", "index": index,
                    "content_block": ["type": "tool_use", "id": block["id"] ?? "", "name": block["name"] ?? "", "input": [:]]])
                add("content_block_delta", ["type": "content_block_delta", "index": index,
                    "delta": ["type": "input_json_delta", "partial_json": .string((block["input"] ?? [:]).jsonString)]])
            } else if block["type"] == "thinking" {
                add("content_block_start", ["type": "content_block_start", "index": index,
                    "content_block": ["type": "thinking", "thinking": "", "signature": ""]])
                for piece in streamPieces(block["thinking"]?.stringValue ?? "") {
                    add("content_block_delta", ["type": "content_block_delta", "index": index,
                        "delta": ["type": "thinking_delta", "thinking": .string(piece)]])
                }
                add("content_block_delta", ["type": "content_block_delta", "index": index,
                    "delta": ["type": "signature_delta", "signature": block["signature"] ?? ""]])
            } else {
                add("content_block_start", ["type": "content_block_start", "index": index, "content_block": ["type": "text", "text": ""]])
                for piece in streamPieces(block["text"]?.stringValue ?? "") {
                    add("content_block_delta", ["type": "content_block_delta", "index": index, "delta": ["type": "text_delta", "text": .string(piece)]])
                }
            }
            add("content_block_stop", ["type": "content_block_stop", "index": index])
        }
        add("message_delta", ["type": "message_delta",
            "delta": ["stop_reason": message["stop_reason"] ?? .null, "stop_sequence": message["stop_sequence"] ?? .null],
            "usage": ["output_tokens": message["usage"]?["output_tokens"] ?? 0]])
        add("message_stop", ["type": "message_stop"])
        return sse(events)
    }

    /// A `GenerateContentResponse` as `streamGenerateContent` answers it: with `alt=sse`, one
    /// `data:` event per chunk (CRLF-separated, as Google sends them); without, a JSON array. Text
    /// parts (thoughts first, still marked `thought: true`) come a word or so per chunk, other
    /// parts (function calls) whole; the last chunk carries `finishReason` and `usageMetadata`.
    static func geminiStream(_ response: JSONValue, sse asEvents: Bool) -> (Data, contentType: String) {
        var chunks: [JSONValue] = []
        var pieces: [JSONValue] = []
        for part in response["candidates"]?[0]?["content"]?["parts"]?.arrayValue ?? [] {
            guard case .object(let o) = part, let text = o["text"]?.stringValue, !text.isEmpty else {
                pieces.append(part)
                continue
            }
            for piece in streamPieces(text) {
                var p = o
                p["text"] = .string(piece)
                pieces.append(.object(p))
            }
        }
        for (i, piece) in pieces.enumerated() {
            var candidate: [String: JSONValue] = ["content": ["role": "model", "parts": [piece]], "index": 0]
            var chunk: [String: JSONValue] = ["modelVersion": response["modelVersion"] ?? .null, "responseId": response["responseId"] ?? .null]
            if i == pieces.count - 1 {
                candidate["finishReason"] = response["candidates"]?[0]?["finishReason"] ?? "STOP"
                chunk["usageMetadata"] = response["usageMetadata"] ?? .null
            }
            chunk["candidates"] = [.object(candidate)]
            chunks.append(.object(chunk))
        }
        if chunks.isEmpty { chunks = [response] }
        if asEvents { return (sse(chunks.map { (nil, $0.jsonString) }, separator: "\r\n"), "text/event-stream") }
        return (JSONValue.array(chunks).serialized(), "application/json; charset=UTF-8")
    }
}
