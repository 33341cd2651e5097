package import BatchKit
import Foundation

extension RateLimitHeaderParser {
    /// Anthropic's rate-limit headers,
    /// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
    /// with resets as RFC 3339 instants measured against `now`.
    package static let anthropic = RateLimitHeaderParser { headers, now in
        func budget(_ kind: String) -> RateLimitInfo.Budget {
            RateLimitInfo.Budget(
                headers: headers, limit: "anthropic-ratelimit-\(kind)-limit",
                remaining: "anthropic-ratelimit-\(kind)-remaining", reset: "anthropic-ratelimit-\(kind)-reset",
                resetAfter: { RateLimitHeaderParsing.rfc3339($0).map { .seconds(max(0, $0.timeIntervalSince(now))) } })
        }
        return RateLimitInfo(
            requests: budget("requests"), tokens: budget("tokens"), inputTokens: budget("input-tokens"),
            outputTokens: budget("output-tokens"))
    }
}
