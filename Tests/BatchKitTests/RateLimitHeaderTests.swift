import Foundation
import Testing

@testable import BatchKit

@Suite struct RateLimitHeaderTests {
    @Test(arguments: [
        ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("7.66s", 7.66), ("150us", 0.00015), ("10µs", 0.00001),
        ("5ns", 0.000000005), ("0", 0),
    ])
    func goDurations(_ text: String, _ seconds: Double) throws {
        let d = try #require(RateLimitHeaderParsing.goDuration(text))
        #expect(abs(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 - seconds) < 1e-9)
    }

    @Test(arguments: ["", "5", "abc", "5x", "m5"])
    func badGoDurations(_ text: String) {
        #expect(RateLimitHeaderParsing.goDuration(text) == nil)
    }

    @Test func retryAfterPrefersMilliseconds() {
        let h: HTTPHeaders = ["retry-after": "3", "retry-after-ms": "1500"]
        #expect(RateLimitHeaderParsing.retryAfter(h) == .milliseconds(1500))
        #expect(RateLimitHeaderParsing.retryAfter(["Retry-After": "2.5"]) == .milliseconds(2500))
    }

    @Test func retryAfterHTTPDate() throws {
        let now = Date(timeIntervalSince1970: 1_445_412_470)  // 2015-10-21T07:27:50Z
        let d = try #require(RateLimitHeaderParsing.retryAfter(["retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"], now: now))
        #expect(d == .seconds(10))
    }

    @Test func rfc3339Variants() throws {
        let a = try #require(RateLimitHeaderParsing.rfc3339("2025-01-15T14:24:00Z"))
        #expect(a.timeIntervalSince1970 == 1_736_951_040)
        let b = try #require(RateLimitHeaderParsing.rfc3339("2024-08-20T18:37:24.100435Z"))
        #expect(abs(b.timeIntervalSince1970 - 1_724_179_044.100435) < 1e-5)
        let c = try #require(RateLimitHeaderParsing.rfc3339("2025-01-15T16:24:00+02:00"))
        #expect(c == a)
        let n = try #require(RateLimitHeaderParsing.rfc3339("2025-12-10T10:00:00.123456789Z"))
        #expect(abs(n.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) - 0.123456789) < 1e-6)
        #expect(RateLimitHeaderParsing.rfc3339("2025-01-15 nonsense") == nil)
    }

    @Test func openAIHeaders() throws {
        let h: HTTPHeaders = [
            "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149984", "x-ratelimit-reset-tokens": "6m0s",
        ]
        let info = try #require(RateLimitInfo(headers: h))
        #expect(info.requests.limit == 60)
        #expect(info.requests.remaining == 59)
        #expect(info.requests.resetAfter == .seconds(1))
        #expect(info.tokens.limit == 150_000)
        #expect(info.tokens.resetAfter == .seconds(360))
    }

    @Test func anthropicHeadersAndSentinels() throws {
        let now = try #require(RateLimitHeaderParsing.rfc3339("2025-01-15T14:23:30Z"))
        let h: HTTPHeaders = [
            "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2025-01-15T14:24:00Z",
            "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "39000",
        ]
        let info = try #require(RateLimitInfo(headers: h, now: now))
        #expect(info.requests.limit == 50)
        #expect(info.requests.resetAfter == .seconds(30))
        #expect(info.inputTokens.remaining == 39000)
        #expect(RateLimitInfo(headers: ["x-ratelimit-limit-requests": "-1"]) == nil)
        #expect(RateLimitInfo(headers: ["content-type": "application/json"]) == nil)
    }

    @Test func googleRetryInfo() throws {
        let body = try JSONValue(parsing: #"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.Help"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"29.5s"}]}}"#)
        #expect(RateLimitHeaderParsing.googleRetryDelay(body) == .milliseconds(29500))
        let wrapped = try JSONValue(parsing: #"[{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"}]}}]"#)
        #expect(RateLimitHeaderParsing.googleRetryDelay(wrapped) == .seconds(2))
    }
}
