import Foundation

/// Why one request (or a whole run) failed.
///
/// Equality compares codes only, so `error == .rateLimited` reads naturally in a `switch` or test.
///
/// ```swift
/// if case .failure(let error) = result.outcome, error.code == .rateLimited { ... }
/// ```
public struct BatchError: Error, Sendable, CustomStringConvertible {
    /// A category of failure. Open-ended, compared by name.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// 429: a rate limit was hit.
        public static let rateLimited = Code(rawValue: "rate_limited")
        /// The provider is overloaded (Anthropic 529, 503).
        public static let overloaded = Code(rawValue: "overloaded")
        /// A 5xx server error.
        public static let server = Code(rawValue: "server")
        /// The request took longer than its timeout.
        public static let timeout = Code(rawValue: "timeout")
        /// The connection failed or was reset.
        public static let network = Code(rawValue: "network")
        /// 400: the provider rejected the request.
        public static let invalidRequest = Code(rawValue: "invalid_request")
        /// 401: missing or invalid key.
        public static let authentication = Code(rawValue: "authentication")
        /// 403.
        public static let permission = Code(rawValue: "permission")
        /// 404.
        public static let notFound = Code(rawValue: "not_found")
        /// Output withheld by a safety system.
        public static let contentFiltered = Code(rawValue: "content_filtered")
        /// A batch expired before the request ran.
        public static let expired = Code(rawValue: "expired")
        /// The request or run was cancelled.
        public static let cancelled = Code(rawValue: "cancelled")
        /// The provider's answer could not be understood.
        public static let invalidResponse = Code(rawValue: "invalid_response")
        /// BatchKit refused the request before sending it (bad input, duplicate id, a field the
        /// provider cannot express).
        public static let validation = Code(rawValue: "validation")
        /// The request was not started: its estimated cost could take spending over the run's
        /// budget (`maxCost`). Not retried within the run; rerun with a larger budget.
        public static let budgetExceeded = Code(rawValue: "budget_exceeded")

        /// Whether failures of this code are worth retrying by default.
        package var isRetryableByDefault: Bool {
            switch self {
            case .rateLimited, .overloaded, .server, .timeout, .network, .expired: return true
            default: return false
            }
        }
    }

    public var code: Code
    /// A human-readable explanation. Never contains an API key.
    public var message: String
    /// The HTTP status, when the failure came from an HTTP answer.
    public var httpStatus: Int?
    /// The provider's own error type (`invalid_request_error`, `overloaded_error`, `RESOURCE_EXHAUSTED`...).
    public var providerType: String?
    /// The field at fault, for validation and invalid-request errors.
    public var field: String?
    /// How long the server asked us to wait before trying again (a floor, never ignored).
    public var retryAfter: Duration?
    /// Whether trying again may succeed.
    public var isRetryable: Bool
    /// Rate-limit state reported with the failure (429 headers), if any.
    public var rateLimit: RateLimitInfo? { get { rateLimitBox.value } set { rateLimitBox = Boxed(newValue) } }
    /// Boxed so that values stay small to copy through the event pipeline.
    var rateLimitBox = Boxed<RateLimitInfo>(nil)

    public init(
        _ code: Code, _ message: String, httpStatus: Int? = nil, providerType: String? = nil, field: String? = nil,
        retryAfter: Duration? = nil, isRetryable: Bool? = nil, rateLimit: RateLimitInfo? = nil
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.providerType = providerType
        self.field = field
        self.retryAfter = retryAfter
        self.isRetryable = isRetryable ?? code.isRetryableByDefault
        self.rateLimitBox = Boxed(rateLimit)
    }

    public var description: String {
        var s = "\(code.rawValue)"
        if let httpStatus { s += " (HTTP \(httpStatus))" }
        if let field { s += " [\(field)]" }
        s += ": \(message)"
        return s
    }

    /// A validation error naming the field at fault.
    public static func validation(_ message: String, field: String? = nil) -> BatchError {
        BatchError(.validation, message, field: field, isRetryable: false)
    }

    /// The error for a request or run that was cancelled.
    public static func cancelled(_ message: String = "cancelled") -> BatchError {
        BatchError(.cancelled, message, isRetryable: false)
    }

    /// Maps an HTTP status to a code: 400 → invalidRequest, 401 → authentication, 403 → permission,
    /// 404 → notFound, 408 → timeout, 409 → server, 413/422 → invalidRequest, 429 → rateLimited,
    /// 503/529 → overloaded, other 5xx → server.
    package static func code(forHTTPStatus status: Int) -> Code {
        switch status {
        case 400, 413, 422: return .invalidRequest
        case 401: return .authentication
        case 403: return .permission
        case 404: return .notFound
        case 408: return .timeout
        case 409: return .server
        case 429: return .rateLimited
        case 503, 529: return .overloaded
        case 500...599: return .server
        default: return .invalidResponse
        }
    }
}

extension BatchError: Equatable {
    /// Compares codes only.
    public static func == (lhs: BatchError, rhs: BatchError) -> Bool { lhs.code == rhs.code }
}

extension BatchError {
    /// Wraps any error as a `BatchError`: a `BatchError` passes through, `CancellationError`
    /// becomes `.cancelled`, `URLError`s become network or timeout errors, anything else a
    /// non-retryable `invalidResponse`.
    package init(wrapping error: any Error) {
        if let e = error as? BatchError { self = e; return }
        if error is CancellationError { self = .cancelled(); return }
        if let u = error as? URLError {
            switch u.code {
            case .timedOut: self = BatchError(.timeout, u.readableMessage)
            case .cancelled: self = .cancelled()
            // What happened and the host, when the transport named it: "connection refused by
            // 127.0.0.1:1 (...)", "DNS lookup failed: the host name x.invalid does not resolve".
            default: self = BatchError(.network, u.readableMessage)
            }
            return
        }
        self = BatchError(.invalidResponse, String(describing: error), isRetryable: false)
    }
}
