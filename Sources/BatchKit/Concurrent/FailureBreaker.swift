import Synchronization

extension BatchError.Code {
    /// A run stopped starting requests because ``ConcurrentProcessor/Configuration/maxConsecutiveFailures``
    /// results in a row failed the same way (a wrong key, a missing model, an untrusted certificate,
    /// the same refusal of every request), or a native run's first request was refused by the
    /// provider's models endpoint before any job was created. The error's `message` says what
    /// failed, gives an example and how to fix it; `httpStatus` and `providerType` are the
    /// example's. Requests that were never started have no item: a rerun over a journal sends them.
    public static let systematicFailure = BatchError.Code(rawValue: "systematic_failure")
}

extension BatchError {
    /// The class of a failure that repeats for every request until something outside the
    /// requests is fixed, or `nil` for a failure that says nothing about the next request.
    ///
    /// Classes: `authentication`, `permission`, `not_found`, `tls` (certificate verification), and
    /// `invalid_request` with its message (the same refusal every time). Retryable failures and
    /// failures of one request's own making (validation, content filtering, an unreadable answer)
    /// have no class.
    public var systematicClass: String? {
        guard !isRetryable else { return nil }
        switch code {
        case .authentication, .permission, .notFound, .tls:
            return code.rawValue
        case .invalidRequest:
            return code.rawValue + ": " + message
        default:
            return nil
        }
    }

    /// What to do about a failure of a systematic class, in one sentence.
    var systematicFixHint: String {
        switch code {
        case .authentication:
            return "Check the API key: is it set, current, and meant for this provider and base URL?"
        case .permission:
            return "The key may not use this model or endpoint: check its project, organization or region permissions."
        case .notFound:
            return "Check the model name and the endpoint (the base URL and each request's url)."
        case .tls:
            return "The server's certificate could not be verified: check the URL, or trust its CA (TLSConfiguration trust roots)."
        default:
            return "Every request is refused with the same message: fix the input (or the model override)."
        }
    }

    /// The error a run ends with when `count` results in a row failed like `example`.
    static func systematicFailure(count: Int, exampleID: String, example: BatchError) -> BatchError {
        let what = example.code == .invalidRequest ? "were refused with the same message" : "failed with \(example.code.rawValue) errors"
        let message =
            "\(count) requests in a row \(what); no new requests were started (they have no result). "
            + "Example, request \"\(exampleID)\": \(example.description). " + example.systematicFixHint
        return BatchError(
            .systematicFailure, message, httpStatus: example.httpStatus, providerType: example.providerType, field: example.field,
            isRetryable: false)
    }
}

/// Counts results that fail the same systematic way in a row (a value state machine: one event,
/// one answer; ``FailureBreaker`` holds it behind a lock).
///
/// - A failure of a systematic class (``BatchError/systematicClass``) continues the streak when
///   its class is the streak's, or starts a new one;
/// - a success, or a failure of no class (a 500 after its retries, a timeout), ends the streak;
/// - requests that never reached the client (`attempts == 0`: validation) and cancelled ones
///   leave it as it is: they say nothing about the server.
struct FailureStreak: Sendable {
    /// Results in a row that trip the breaker (at least 1).
    let threshold: Int
    private(set) var count = 0
    private(set) var signature: String?
    private(set) var example: (id: String, error: BatchError)?
    /// Set once, when the streak reaches the threshold.
    private(set) var tripped: BatchError?

    init(threshold: Int) { self.threshold = max(1, threshold) }

    /// Records one finished result. Returns the run's error the one time the streak trips.
    mutating func record(_ result: BatchResult) -> BatchError? {
        guard tripped == nil else { return nil }
        switch result.outcome {
        case .success:
            count = 0
            signature = nil
            return nil
        case .failure(let error):
            if result.attempts == 0 || error.code == .cancelled { return nil }
            guard let cls = error.systematicClass else {
                count = 0
                signature = nil
                return nil
            }
            if cls == signature {
                count += 1
            } else {
                signature = cls
                count = 1
                example = (result.id, error)
            }
            guard count >= threshold, let example else { return nil }
            let e = BatchError.systematicFailure(count: count, exampleID: example.id, example: example.error)
            tripped = e
            return e
        }
    }
}

/// The breaker of one ``ConcurrentProcessor`` run: workers record each result; once tripped, no
/// worker starts another request.
final class FailureBreaker: Sendable {
    private let streak: Mutex<FailureStreak>
    /// Read on every worker turn without taking the lock.
    private let isOpen = Atomic<Bool>(false)

    init(threshold: Int) { streak = Mutex(FailureStreak(threshold: threshold)) }

    /// Whether the breaker tripped: no new request may start.
    var isTripped: Bool { isOpen.load(ordering: .acquiring) }

    /// The error the run ends with, once tripped.
    var error: BatchError? { streak.withLock { $0.tripped } }

    func record(_ result: BatchResult) {
        if streak.withLock({ $0.record(result) }) != nil { isOpen.store(true, ordering: .releasing) }
    }
}
