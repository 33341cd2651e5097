import BatchKit
import Foundation

/// A seeded schedule of random faults on every route: each call, whatever its path (real-time
/// model calls, file uploads, job creation, status polls, result downloads and pages, cancels,
/// lists), fails with probability ``rate`` in one of the chosen ``kinds``.
///
/// The faults a client must survive when the answer is lost *after* the server acted are part of
/// the schedule: a share (``afterEffectShare``) of the 500, 503, reset and cut-body faults is
/// applied after the request has taken effect — the job was created, the file uploaded, the batch
/// cancelled — and only the answer is lost. A client that retries a create blindly then creates
/// a second job, which ``ProviderEmulator/billing`` shows.
///
/// ```swift
/// // One call in ten fails, every kind of fault, reproducibly for seed 7.
/// let emulator = ProviderEmulator(configuration: .init(
///     faultSchedule: EmulatorFaultSchedule(rate: 0.1), seed: 7))
/// ```
///
/// The draws come from a generator seeded with ``EmulatorConfiguration/seed``, apart from the one
/// that makes ids, so the same seed and the same sequence of calls meet the same faults.
/// Concurrent clients interleave their calls differently from run to run; the schedule is then
/// reproducible in distribution, not call by call.
public struct EmulatorFaultSchedule: Sendable, Hashable {
    /// A fault the schedule can inject.
    public enum Kind: String, Sendable, Hashable, CaseIterable, Comparable {
        /// 500 with the provider's error body.
        case internalError = "500"
        /// 503 with the provider's error body.
        case unavailable = "503"
        /// 429 with the provider's rate-limit body and a `retry-after` of one second. Always
        /// applied before the request takes effect (a 429 means "not processed").
        case rateLimited = "429"
        /// The connection is closed without an answer.
        case reset
        /// The headers promise the whole body; only half of it arrives, then the connection closes.
        /// Always applied after the request took effect (it needs the answer's body).
        case cut
        /// The answer is held back for ``EmulatorFaultSchedule/slowAnswer`` after the request took
        /// effect, then sent whole.
        case slow

        public static func < (a: Kind, b: Kind) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }

        /// Parses the names `batchkit emulator --faults` takes: `500`, `503`, `429`, `reset`,
        /// `cut`, `slow`, or `all`, comma-separated.
        public static func parse(_ list: String) -> Set<Kind>? {
            var kinds = Set<Kind>()
            for word in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
                if word == "all" {
                    kinds.formUnion(allCases)
                } else if let k = Kind(rawValue: word) {
                    kinds.insert(k)
                } else {
                    return nil
                }
            }
            return kinds.isEmpty ? nil : kinds
        }
    }

    /// The probability that one call meets a fault, in 0...1.
    public var rate: Double
    /// The faults to choose from (uniformly) when a call meets one.
    public var kinds: Set<Kind>
    /// How long a ``Kind/slow`` answer is held back (on the emulator's clock).
    public var slowAnswer: Duration
    /// The share of 500, 503 and reset faults applied after the request took effect (the answer
    /// is lost, the effect stays), in 0...1. Cut bodies and slow answers always come after.
    public var afterEffectShare: Double

    public init(
        rate: Double, kinds: Set<Kind> = Set(Kind.allCases), slowAnswer: Duration = .milliseconds(1500),
        afterEffectShare: Double = 0.5
    ) {
        self.rate = min(1, max(0, rate))
        self.kinds = kinds
        self.slowAnswer = slowAnswer
        self.afterEffectShare = min(1, max(0, afterEffectShare))
    }

    /// Paths the schedule never touches: the emulator's own debug routes.
    static func isExempt(_ path: String) -> Bool { path.hasPrefix(ProviderEmulator.debugPathPrefix) }
}

/// One draw from the schedule.
struct ScheduledFault {
    var kind: EmulatorFaultSchedule.Kind
    /// Apply after the request has been handled (its effect stays, the answer is lost or late).
    var afterEffect: Bool
}

extension ProviderEmulator {
    /// Draws the schedule's decision for one call: `nil` when it passes untouched.
    func drawScheduledFault(_ request: EmulatorRequest) -> ScheduledFault? {
        guard let schedule = config.withLock({ $0.faultSchedule }), schedule.rate > 0, !schedule.kinds.isEmpty,
            !EmulatorFaultSchedule.isExempt(request.path)
        else { return nil }
        let kinds = schedule.kinds.sorted()
        return shared.withLock { s -> ScheduledFault? in
            func uniform() -> Double { Double(s.faultRNG.next() >> 11) / Double(1 << 53) }
            guard uniform() < schedule.rate else { return nil }
            let kind = kinds[min(kinds.count - 1, Int(uniform() * Double(kinds.count)))]
            let after: Bool
            switch kind {
            case .rateLimited: after = false
            case .cut, .slow: after = true
            case .internalError, .unavailable, .reset: after = uniform() < schedule.afterEffectShare
            }
            s.scheduledFaults[kind, default: 0] += 1
            return ScheduledFault(kind: kind, afterEffect: after)
        }
    }

    /// Answers a call the schedule picked: before or after handling it, as drawn.
    func answer(_ request: EmulatorRequest, provider: EmulatedProvider, with fault: ScheduledFault) async -> EmulatorResponse {
        func failure() -> EmulatorResponse {
            switch fault.kind {
            case .internalError:
                return errorResponse(provider, status: 500, message: "The server had an error while processing your request.")
            case .unavailable:
                return errorResponse(provider, status: 503, message: "The service is temporarily unavailable.")
            case .rateLimited:
                return errorResponse(
                    provider, status: 429, message: "Too many requests; please retry after 1s.",
                    type: provider == .anthropic ? "rate_limit_error" : provider == .gemini ? "RESOURCE_EXHAUSTED" : nil,
                    code: provider == .openAI ? "rate_limit_exceeded" : nil, headers: ["retry-after": "1"])
            default:
                return EmulatorResponse(status: 500, fault: .resetConnection)
            }
        }
        guard fault.afterEffect else { return failure() }
        var response = await route(request, provider: provider)
        switch fault.kind {
        case .cut:
            response.fault = .truncateBody(bytes: response.body.count / 2)
            if response.body.isEmpty { response.fault = .resetConnection }
        case .slow:
            let wait = config.withLock { $0.faultSchedule?.slowAnswer ?? .zero }
            if wait > .zero { try? await sleepFor(wait) }
        default:
            response = failure()
        }
        return response
    }

    /// How many calls each kind of scheduled fault has hit so far.
    public var scheduledFaultCounts: [EmulatorFaultSchedule.Kind: Int] { shared.withLock { $0.scheduledFaults } }
}
