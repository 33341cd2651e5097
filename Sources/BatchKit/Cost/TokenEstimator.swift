import Foundation

/// Rough token counts for rate limiting and cost estimates, without a tokenizer: about four
/// bytes of text per token, which is close for English with all three providers' tokenizers.
/// Real usage corrects the estimate after each answer.
package enum TokenEstimator {
    /// Bytes per token assumed for text.
    package static let bytesPerToken = 4
    /// Tokens assumed for one image part.
    package static let tokensPerImage = 765

    /// Estimated prompt tokens of a request.
    package static func inputTokens(_ request: BatchRequest) -> Int {
        switch request.body {
        case .chat(let c):
            var bytes = c.system?.utf8.count ?? 0
            var images = 0
            for m in c.messages {
                bytes += 4  // role and framing
                switch m.content {
                case .text(let t): bytes += t.utf8.count
                case .parts(let parts):
                    for p in parts {
                        switch p {
                        case .text(let t): bytes += t.utf8.count
                        case .image: images += 1
                        case .other(let v): bytes += v.jsonString.utf8.count
                        }
                    }
                }
            }
            return max(1, (bytes + bytesPerToken - 1) / bytesPerToken + images * tokensPerImage)
        case .embedding(let e):
            return max(1, e.inputs.reduce(0) { $0 + ($1.utf8.count + bytesPerToken - 1) / bytesPerToken })
        case .raw(let r):
            return max(1, r.body.jsonString.utf8.count / bytesPerToken)
        }
    }

    /// Estimated output tokens: the request's max tokens, else `default` (0 for embeddings).
    package static func outputTokens(_ request: BatchRequest, default defaultOutput: Int = 256) -> Int {
        switch request.body {
        case .chat(let c): return c.maxTokens ?? defaultOutput
        case .embedding: return 0
        case .raw(let r):
            return r.body["max_output_tokens"]?.intValue ?? r.body["max_tokens"]?.intValue ?? defaultOutput
        }
    }
}
