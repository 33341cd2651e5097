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

    @Test func parserHookAndBudgetHeaders() throws {
        let parser = RateLimitHeaderParser { headers, _ in
            RateLimitInfo(requests: RateLimitInfo.Budget(
                headers: headers, limit: "x-l", remaining: "x-r", reset: "x-t", resetAfter: RateLimitHeaderParsing.goDuration))
        }
        let info = try #require(parser.parse(["x-l": "60", "x-r": "59", "x-t": "1s"]))
        #expect(info.requests == RateLimitInfo.Budget(limit: 60, remaining: 59, resetAfter: .seconds(1)))
        // Sentinels (-1, a limit of 0) and unrelated headers read as nothing.
        #expect(parser.parse(["x-l": "-1"]) == nil)
        #expect(parser.parse(["x-l": "0"]) == nil)
        #expect(parser.parse(["content-type": "application/json"]) == nil)
        #expect(RateLimitHeaderParser.none.parse(["x-l": "60"]) == nil)
    }
}
