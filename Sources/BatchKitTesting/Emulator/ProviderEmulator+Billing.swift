public import BatchKit
import Foundation

/// The batch jobs the emulator has accepted, and the share of each that ran (and so would be paid).
struct BillingLedger {
    struct Job {
        var provider: EmulatedProvider
        /// The custom ids in the order the job runs them (on disk when large: a million cost no memory).
        var customIDs: EmulatorIDList
        /// How many of them ran before a cancel; `nil` while the job was not cancelled (all run).
        var ranBeforeCancel: Int?
    }

    var jobs: [String: Job] = [:]
    var order: [String] = []
    /// Real-time model calls answered 200: their `x-client-request-id`s, one entry per call (on
    /// disk when large; counted when ``ProviderEmulator/billing`` is read).
    var realtime = EmulatorIDLog()
}

/// What the emulator's batch jobs would cost, per custom id: the number of jobs that ran it.
///
/// A job runs all of its items unless it is cancelled; a cancelled job runs the items that
/// finished before the cancel took effect (its cancel drain included), and the rest never. A job
/// still running counts in full: nothing will stop it; so does an expired job (the refund of the
/// items an expiry left unprocessed is not modelled). A deleted job keeps its entry (and a
/// Gemini batch deleted while running counts as cancelled at the delete). Real-time calls are
/// not jobs and do not appear here (``ProviderEmulator/sentCounts`` counts them).
///
/// ```swift
/// let billing = emulator.billing
/// #expect(billing.paidTwice.isEmpty, "\(billing.paidTwice)")
/// ```
public struct EmulatorBilling: Sendable, Hashable {
    /// One accepted batch job.
    public struct Job: Sendable, Hashable {
        /// The provider's job id (`batch_…`, `msgbatch_…`, `batches/…`).
        public var id: String
        public var provider: EmulatedProvider
        /// Items in the job.
        public var requests: Int
        /// Items that ran (all of them unless cancelled).
        public var billed: Int
        /// Whether the job was cancelled (or, for Gemini, deleted while running).
        public var cancelled: Bool
    }

    /// Every job accepted, in creation order.
    public var jobs: [Job]
    /// For each custom id that ran in a job, the ids of the jobs that ran it, in creation order.
    public var jobsPerCustomID: [String: [String]]
    /// Real-time model calls the emulator answered with 200 (and so would bill), per custom id
    /// (`x-client-request-id`). Counted when the answer was produced, even if a fault then lost it.
    public var realtimeCalls: [String: Int]

    /// The number of jobs that ran `customID` (0 when none did).
    public func jobCount(customID: String) -> Int { jobsPerCustomID[customID]?.count ?? 0 }

    /// The custom ids run by more than one job (paid more than once), with those jobs.
    public var paidTwice: [String: [String]] { jobsPerCustomID.filter { $0.value.count > 1 } }

    /// The custom ids run by a batch job and also answered in real time (a hybrid run that
    /// collected a job's result should not send it again).
    public var paidInJobAndRealtime: [String] { jobsPerCustomID.keys.filter { realtimeCalls[$0] != nil }.sorted() }

    /// The ledger as JSON: `{"jobs":[{"id","provider","requests","billed","cancelled"}],
    /// "billed":{"<custom id>":<jobs>}, "paid_twice":{"<custom id>":["<job id>",…]}}`, keys sorted.
    public var json: JSONValue {
        .object([
            "jobs": .array(jobs.map { j in
                ["id": .string(j.id), "provider": .string(j.provider.rawValue), "requests": .int(j.requests),
                 "billed": .int(j.billed), "cancelled": .bool(j.cancelled)]
            }),
            "billed": .object(jobsPerCustomID.mapValues { .int($0.count) }),
            "paid_twice": .object(paidTwice.mapValues { .array($0.map(JSONValue.string)) }),
            "realtime": .object(realtimeCalls.mapValues { .int($0) }),
            "job_and_realtime": .array(paidInJobAndRealtime.map(JSONValue.string)),
        ])
    }
}

extension ProviderEmulator {
    /// Where the emulator's own routes live (never faulted, no key needed):
    /// `GET /_emulator/billing` answers ``EmulatorBilling/json``.
    public static let debugPathPrefix = "/_emulator/"

    /// What the batch jobs accepted so far would be billed, per custom id.
    public var billing: EmulatorBilling {
        shared.withLock { s in
            var jobs: [EmulatorBilling.Job] = []
            var perID: [String: [String]] = [:]
            for id in s.ledger.order {
                guard let job = s.ledger.jobs[id] else { continue }
                let billed = min(job.customIDs.count, job.ranBeforeCancel ?? job.customIDs.count)
                jobs.append(.init(
                    id: id, provider: job.provider, requests: job.customIDs.count, billed: billed,
                    cancelled: job.ranBeforeCancel != nil))
                for customID in job.customIDs.prefix(billed) { perID[customID, default: []].append(id) }
            }
            return EmulatorBilling(jobs: jobs, jobsPerCustomID: perID, realtimeCalls: s.ledger.realtime.counts())
        }
    }

    /// Records an accepted job and the ids it will run, in order.
    func billJob(_ id: String, provider: EmulatedProvider, customIDs: [String]) {
        billJob(id, provider: provider, customIDs: EmulatorIDList(customIDs))
    }

    /// Records an accepted job and the ids it will run, in order.
    func billJob(_ id: String, provider: EmulatedProvider, customIDs: EmulatorIDList) {
        shared.withLock { s in
            guard s.ledger.jobs[id] == nil else { return }
            s.ledger.jobs[id] = .init(provider: provider, customIDs: customIDs)
            s.ledger.order.append(id)
        }
    }

    /// Records that a job was cancelled after `ran` of its items ran (the first cancel counts).
    func billCancel(_ id: String, ran: Int) {
        shared.withLock { s in
            guard s.ledger.jobs[id] != nil, s.ledger.jobs[id]?.ranBeforeCancel == nil else { return }
            s.ledger.jobs[id]?.ranBeforeCancel = max(0, ran)
        }
    }

    /// Counts a real-time model call answered 200 for its `x-client-request-id`.
    func billRealtime(_ request: EmulatorRequest, provider: EmulatedProvider, status: Int) {
        guard status == 200, request.method == "POST", let id = request.headers["x-client-request-id"], !id.isEmpty,
            Self.isRealtimeModelCall(request.path, provider: provider)
        else { return }
        shared.withLock { $0.ledger.realtime.append(id) }
    }

    static func isRealtimeModelCall(_ path: String, provider: EmulatedProvider) -> Bool {
        switch provider {
        case .openAI:
            return ["/chat/completions", "/embeddings", "/completions", "/responses"].contains { path.hasSuffix($0) }
        case .anthropic:
            return path == "/v1/messages"
        case .gemini:
            return [":generateContent", ":embedContent", ":batchEmbedContents"].contains { path.hasSuffix($0) }
        }
    }

    /// The emulator's own routes (``debugPathPrefix``).
    func debugRoute(_ request: EmulatorRequest) -> EmulatorResponse {
        switch (request.method, request.path) {
        case ("GET", Self.debugPathPrefix + "billing"):
            return .json(200, billing.json)
        default:
            return .json(404, ["error": .string("unknown emulator route \(request.method) \(request.path)")])
        }
    }
}
