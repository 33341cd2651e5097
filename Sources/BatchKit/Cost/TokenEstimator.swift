import Foundation

/// Quick token estimates for a request, before it is sent: used by the cost estimate and by
/// `ConcurrentProcessor`'s tokens-per-minute admission.
///
/// The estimate is deliberately simple and cheap (no tokenizer, O(number of strings)): about four
/// UTF-8 bytes per token over all text the model reads, a few tokens of framing per message, and
/// a fixed amount per image. Real usage, known after the answer, corrects it.
///
/// ```swift
/// let cost = TokenEstimator.inputTokens(request) + TokenEstimator.outputTokens(request, default: 256)
/// ```
public enum TokenEstimator {
    /// UTF-8 bytes per token assumed for text.
    public static let bytesPerToken = 4
    /// Tokens of framing counted per chat message (role and separators).
    public static let tokensPerMessage = 4
    /// Tokens counted per image with `detail: "low"`.
    public static let tokensPerLowDetailImage = 85
    /// Tokens counted per image otherwise (a typical high-detail 512×512 tile set).
    public static let tokensPerImage = 765
    /// The output guess used when a chat request sets no maximum and the caller gives no default.
    public static let defaultOutputTokens = 256

    /// The estimated number of input tokens of `request`.
    public static func inputTokens(_ request: BatchRequest) -> Int {
        switch request.body {
        case .chat(let chat):
            var bytes = chat.system?.utf8.count ?? 0
            var fixed = chat.system == nil ? 0 : tokensPerMessage
            for message in chat.messages {
                fixed += tokensPerMessage
                switch message.content {
                case .text(let s): bytes += s.utf8.count
                case .parts(let parts):
                    for part in parts {
                        switch part {
                        case .text(let s): bytes += s.utf8.count
                        case .image(let image):
                            fixed += image.detail == "low" ? tokensPerLowDetailImage : tokensPerImage
                        case .other(let value): bytes += textBytes(in: value)
                        }
                    }
                }
            }
            if case .jsonSchema(let format) = chat.responseFormat {
                bytes += textBytes(in: format.schema)
            }
            return tokens(forBytes: bytes) + fixed
        case .embedding(let embedding):
            var bytes = 0
            for input in embedding.inputs { bytes += input.utf8.count }
            return tokens(forBytes: bytes)
        case .raw(let raw):
            // Count the text the model reads, not the JSON framing: the request's messages,
            // input, or prompt members when present, else every string of the body.
            let body = raw.body
            if let readable = body["messages"] ?? body["input"] ?? body["prompt"] ?? body["contents"] {
                return tokens(forBytes: textBytes(in: readable) + textBytes(in: body["instructions"] ?? .null))
            }
            return tokens(forBytes: textBytes(in: body))
        }
    }

    /// The estimated number of output tokens of `request`: its maximum output tokens when set,
    /// else `defaultTokens`; zero for embeddings.
    public static func outputTokens(_ request: BatchRequest, default defaultTokens: Int = defaultOutputTokens) -> Int {
        switch request.body {
        case .chat(let chat): return chat.maxTokens ?? defaultTokens
        case .embedding: return 0
        case .raw(let raw):
            if raw.endpoint.hasSuffix("/embeddings") { return 0 }
            let body = raw.body
            return (body["max_completion_tokens"] ?? body["max_tokens"] ?? body["max_output_tokens"])?.intValue
                ?? defaultTokens
        }
    }

    /// Input plus output estimate: what a request may spend against a tokens-per-minute budget.
    public static func totalTokens(_ request: BatchRequest, defaultOutput: Int = defaultOutputTokens) -> Int {
        inputTokens(request) + outputTokens(request, default: defaultOutput)
    }

    /// Tokens for a number of UTF-8 bytes of text, rounded up.
    public static func tokens(forBytes bytes: Int) -> Int { (bytes + bytesPerToken - 1) / bytesPerToken }

    /// UTF-8 bytes of all strings (not keys) inside a JSON value.
    static func textBytes(in value: JSONValue) -> Int {
        switch value {
        case .string(let s): return s.utf8.count
        case .array(let a): return a.reduce(0) { $0 + textBytes(in: $1) }
        case .object(let o): return o.values.reduce(0) { $0 + textBytes(in: $1) }
        case .null, .bool, .int, .double: return 0
        }
    }
}
