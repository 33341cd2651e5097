package import Foundation

/// Reads one provider's rate-limit response headers into a ``RateLimitInfo``.
///
/// The core knows no provider's header names: each provider module offers its parser (for
/// example `RateLimitHeaderParser.openAI` in BatchKitOpenAI, `.anthropic` in BatchKitAnthropic) and
/// hands it to the code that reads its answers. A server that sends no such headers uses
/// ``none``.
///
/// ```swift
/// let parser = RateLimitHeaderParser { headers, now in
///     var info = RateLimitInfo()
///     info.requests = RateLimitInfo.Budget(
///         headers: headers, limit: "x-my-limit", remaining: "x-my-remaining", reset: "x-my-reset",
///         resetAfter: { Double($0).map { .seconds($0) } })
///     return info.isEmpty ? nil : info
/// }
/// let info = parser.parse(response.headers)
/// ```
package struct RateLimitHeaderParser: Sendable {
    private let body: @Sendable (HTTPHeaders, Date) -> RateLimitInfo?

    /// A parser from a closure that returns `nil` when the headers carry no rate-limit state.
    /// `now` is the instant reset times given as dates are measured against.
    package init(_ parse: @escaping @Sendable (_ headers: HTTPHeaders, _ now: Date) -> RateLimitInfo?) {
        self.body = parse
    }

    /// The rate-limit state in `headers`, or `nil` when they carry none.
    package func parse(_ headers: HTTPHeaders, now: Date = Date()) -> RateLimitInfo? {
        guard let info = body(headers, now), !info.isEmpty else { return nil }
        return info
    }

    /// Reads nothing: for servers that send no rate-limit headers.
    package static let none = RateLimitHeaderParser { _, _ in nil }
}

extension RateLimitInfo.Budget {
    /// A budget read from three headers: the limit, what remains, and the reset (read by
    /// `resetAfter`). Negative or non-numeric counts and a limit of `0` (sentinels some
    /// deployments send) count as absent.
    package init(
        headers: HTTPHeaders, limit: String, remaining: String, reset: String,
        resetAfter: (String) -> Duration?
    ) {
        func count(_ name: String) -> Int? {
            guard let v = headers[name]?.trimmingCharacters(in: .whitespaces), let i = Int(v), i >= 0 else { return nil }
            return i
        }
        self.init(
            limit: count(limit).flatMap { $0 > 0 ? $0 : nil }, remaining: count(remaining),
            resetAfter: headers[reset].flatMap(resetAfter))
    }
}
