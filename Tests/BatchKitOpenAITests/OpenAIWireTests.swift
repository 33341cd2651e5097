import BatchKit
import Foundation
import Testing

@testable import BatchKitOpenAI

@Suite struct OpenAIWireTests {
    // MARK: - Responses

    @Test func parsesChatResponse() throws {
        let body = try JSONValue(parsing: #"""
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"length"}],
         "usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}
        """#)
        let r = try OpenAIWire.parseChatResponse(body)
        #expect(r.text == "Hello!")
        #expect(r.finishReason == .length)
        #expect(r.usage == Usage(inputTokens: 9, outputTokens: 7, cachedInputTokens: 4, reasoningTokens: 2))
        #expect(r.model == "gpt-4o-mini-2024-07-18")
        #expect(r.raw == body)
        #expect(OpenAIWire.finishReason("tool_calls") == .toolCalls)
        #expect(OpenAIWire.finishReason("content_filter") == .contentFilter)
        #expect(OpenAIWire.finishReason("stop") == .stop)
        #expect(OpenAIWire.finishReason("weird").rawValue == "weird")

        let refusal: JSONValue = ["choices": [["message": ["role": "assistant", "content": nil, "refusal": "no"], "finish_reason": "stop"]]]
        let rr = try OpenAIWire.parseChatResponse(refusal)
        #expect(rr.text == nil)
        #expect(rr.finishReason == .contentFilter)

        #expect(throws: BatchError.self) { try OpenAIWire.parseChatResponse(["object": "list"]) }
    }

    @Test func parsesEmbeddingsFloatAndBase64() throws {
        let values: [Float] = [0.5, -1.25, 3.0e-3]
        var data = Data()
        for f in values { withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        let body: JSONValue = [
            "object": "list", "model": "text-embedding-3-small",
            "data": [
                ["object": "embedding", "index": 1, "embedding": .string(data.base64EncodedString())],
                ["object": "embedding", "index": 0, "embedding": [0.25, 1, -0.5]],
            ],
            "usage": ["prompt_tokens": 8, "total_tokens": 8],
        ]
        let r = try OpenAIWire.parseEmbeddingResponse(body)
        #expect(r.embeddings?.count == 2)
        #expect(r.embeddings?[0] == [0.25, 1, -0.5])
        #expect(r.embeddings?[1] == values)
        #expect(r.usage.inputTokens == 8)
        #expect(r.model == "text-embedding-3-small")
        #expect(throws: BatchError.self) {
            try OpenAIWire.parseEmbeddingResponse(["data": [["index": 0, "embedding": "!!notbase64"]]])
        }
    }

    @Test func parsesRawResponses() {
        let responses: JSONValue = [
            "model": "gpt-4.1", "status": "completed",
            "output": [["type": "message", "content": [["type": "output_text", "text": "Hi there"]]]],
            "usage": ["input_tokens": 5, "output_tokens": 3, "input_tokens_details": ["cached_tokens": 1],
                      "output_tokens_details": ["reasoning_tokens": 2], "total_tokens": 8],
        ]
        let r = OpenAIWire.parseRawResponse(responses)
        #expect(r.text == "Hi there")
        #expect(r.finishReason == .stop)
        #expect(r.usage == Usage(inputTokens: 5, outputTokens: 3, cachedInputTokens: 1, reasoningTokens: 2))
        let completion: JSONValue = ["choices": [["text": "done", "finish_reason": "length"]], "usage": ["prompt_tokens": 2, "completion_tokens": 1]]
        let c = OpenAIWire.parseRawResponse(completion)
        #expect(c.text == "done")
        #expect(c.finishReason == .length)
    }

    // MARK: - Errors

    @Test func classifiesErrors() {
        func body(_ message: String, _ type: String, code: String? = nil, param: String? = nil) -> Data {
            JSONValue.object(["error": ["message": .string(message), "type": .string(type),
                                        "param": param.map(JSONValue.string) ?? .null,
                                        "code": code.map(JSONValue.string) ?? .null]]).serialized()
        }
        let bad = OpenAIWire.error(status: 400, headers: [:], body: body("bad max_tokens", "invalid_request_error", param: "max_tokens"))
        #expect(bad.code == .invalidRequest)
        #expect(bad.field == "max_tokens")
        #expect(bad.providerType == "invalid_request_error")
        #expect(!bad.isRetryable)
        #expect(bad.httpStatus == 400)

        let auth = OpenAIWire.error(status: 401, headers: [:],
            body: body("Incorrect API key provided: sk-proj-abc*********************xyz9. You can find...", "invalid_request_error", code: "invalid_api_key"))
        #expect(auth.code == .authentication)
        #expect(!auth.message.contains("abc"))
        #expect(!auth.message.contains("xyz9"))
        #expect(auth.message.contains("invalid_api_key"))

        let limited = OpenAIWire.error(status: 429, headers: ["retry-after": "3", "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"],
                                       body: body("Rate limit reached", "requests", code: "rate_limit_exceeded"))
        #expect(limited.code == .rateLimited)
        #expect(limited.isRetryable)
        #expect(limited.retryAfter == .seconds(3))
        #expect(limited.rateLimit?.requests.limit == 60)
        #expect(limited.rateLimit?.requests.remaining == 0)

        let fallback = OpenAIWire.error(status: 429, headers: ["x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
                                                              "x-ratelimit-remaining-tokens": "0", "x-ratelimit-remaining-requests": "10"],
                                        body: body("Rate limit reached", "tokens", code: "rate_limit_exceeded"))
        #expect(fallback.retryAfter == .seconds(360))
        let byRemaining = OpenAIWire.error(status: 429, headers: ["x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s",
                                                                 "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "5"],
                                           body: Data())
        #expect(byRemaining.retryAfter == .milliseconds(20))

        let quota = OpenAIWire.error(status: 429, headers: [:], body: body("You exceeded your current quota", "insufficient_quota", code: "insufficient_quota"))
        #expect(quota.code == .rateLimited)
        #expect(!quota.isRetryable)

        let server = OpenAIWire.error(status: 500, headers: [:], body: Data("<html>oops</html>".utf8))
        #expect(server.code == .server)
        #expect(server.isRetryable)
        #expect(server.message.contains("oops"))

        let overloaded = OpenAIWire.error(status: 503, headers: ["x-should-retry": "false"], body: Data())
        #expect(overloaded.code == .overloaded)
        #expect(!overloaded.isRetryable)
        let forced = OpenAIWire.error(status: 400, headers: ["x-should-retry": "true"], body: Data())
        #expect(forced.isRetryable)

        let filtered = OpenAIWire.error(status: 400, body: ["error": ["message": "filtered", "type": nil, "param": "prompt", "code": "content_filter"]])
        #expect(filtered.code == .contentFiltered)
        let flat = OpenAIWire.error(status: 400, body: ["object": "error", "message": "bad prompt", "type": "BadRequestError", "code": 400])
        #expect(flat.message == "bad prompt")
        #expect(flat.providerType == "BadRequestError")
        let notFound = OpenAIWire.error(status: 404, headers: [:], body: body("The model `x` does not exist", "invalid_request_error", code: "model_not_found"))
        #expect(notFound.code == .notFound)
    }

    @Test func redactsKeyLikeText() {
        #expect(OpenAIWire.redactKeys("key sk-abc123 and sk-proj-XY_z*** end") == "key sk-<redacted> and sk-<redacted> end")
        #expect(OpenAIWire.redactKeys("task-1 sk-") == "task-1 sk-")
        #expect(OpenAIWire.redactKeys("nothing here") == "nothing here")
    }
}
