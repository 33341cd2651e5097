import BatchKit
import BatchKitOpenAI
import Foundation
import Testing

@Suite struct OpenAIRateLimitHeaderTests {
    @Test func openAIHeaders() throws {
        let h: HTTPHeaders = [
            "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149984", "x-ratelimit-reset-tokens": "6m0s",
        ]
        let info = try #require(RateLimitHeaderParser.openAI.parse(h))
        #expect(info.requests.limit == 60)
        #expect(info.requests.remaining == 59)
        #expect(info.requests.resetAfter == .seconds(1))
        #expect(info.tokens.limit == 150_000)
        #expect(info.tokens.resetAfter == .seconds(360))
        #expect(RateLimitHeaderParser.openAI.parse(["x-ratelimit-limit-requests": "-1"]) == nil)
        #expect(RateLimitHeaderParser.openAI.parse(["content-type": "application/json"]) == nil)
        // Another provider's names are not read.
        #expect(RateLimitHeaderParser.openAI.parse(["anthropic-ratelimit-requests-limit": "50"]) == nil)
    }
}
