import BatchKit
import BatchKitAnthropic
import Foundation
import Testing

@Suite struct AnthropicRateLimitHeaderTests {
    @Test func anthropicHeadersAndSentinels() throws {
        let now = try #require(RateLimitHeaderParsing.rfc3339("2025-01-15T14:23:30Z"))
        let h: HTTPHeaders = [
            "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2025-01-15T14:24:00Z",
            "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "39000",
        ]
        let info = try #require(RateLimitHeaderParser.anthropic.parse(h, now: now))
        #expect(info.requests.limit == 50)
        #expect(info.requests.resetAfter == .seconds(30))
        #expect(info.inputTokens.remaining == 39000)
        #expect(RateLimitHeaderParser.anthropic.parse(["anthropic-ratelimit-requests-limit": "-1"]) == nil)
        #expect(RateLimitHeaderParser.anthropic.parse(["x-ratelimit-limit-requests": "60"]) == nil)
    }
}
