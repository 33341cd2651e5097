package import BatchKit
import Foundation

extension RateLimitHeaderParser {
    /// OpenAI's rate-limit headers, `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, with
    /// resets as Go durations (`6m0s`, `20ms`). Many OpenAI-compatible servers send the same.
    ///
    /// Sentinel values some compatible deployments send (`-1`, a limit of `0`) are ignored.
    package static let openAI = RateLimitHeaderParser { headers, _ in
        func budget(_ kind: String) -> RateLimitInfo.Budget {
            RateLimitInfo.Budget(
                headers: headers, limit: "x-ratelimit-limit-\(kind)", remaining: "x-ratelimit-remaining-\(kind)",
                reset: "x-ratelimit-reset-\(kind)", resetAfter: RateLimitHeaderParsing.goDuration)
        }
        return RateLimitInfo(requests: budget("requests"), tokens: budget("tokens"))
    }
}
