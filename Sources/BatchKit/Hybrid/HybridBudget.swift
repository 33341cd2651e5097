import Synchronization

/// The spending limit of a hybrid run (``HybridProcessor``'s `maxCost`), over both of its paths.
///
/// - Before submission, each request reserves its estimated **batch** cost (prompt estimate plus
///   its maximum output tokens, at batch prices, as ``NativeBatchProcessor`` estimates); one whose
///   estimate does not fit is not submitted and waits for the real-time phase.
/// - Each batch result reported adds what it cost (its usage at batch prices) to what is spent;
///   the job's reservation stays until the batch phase ends.
/// - When the batch phase ends, the reservation of each job whose results were read in full from
///   a terminal state is released (what it billed is known: the results reported); a job that may
///   still bill (its cancellation had not taken effect within the grace, its download failed or
///   skipped unreadable lines, a result could not be priced) keeps its whole reservation, and so
///   does a chunk whose job may have been created although the create call failed.
/// - The real-time phase then runs with what remains as its own `maxCost`.
///
/// So spending over both paths never exceeds the limit, as long as each request costs at most its
/// estimate (the premise of every BatchKit budget: see ``CostBudget``).
final class HybridBudget: Sendable {
    private struct State {
        /// Reservations of created jobs, by job id, until the batch phase ends.
        var jobs: [String: Double] = [:]
        /// Jobs whose results were read in full from a terminal state.
        var downloaded = Set<String>()
        /// Jobs that reported a result that could not be priced: their reservations stay.
        var unpriced = Set<String>()
        /// A batch result that named no job could not be priced: every reservation stays.
        var keepAll = false
    }

    let budget: CostBudget
    /// The prices of the estimates and of the batch results.
    let prices: PriceTable
    private let state = Mutex(State())

    init(limit: Double, prices: PriceTable) {
        budget = CostBudget(limit: limit)
        self.prices = prices
    }

    /// Whether `request` goes into a job: its batch estimate is reserved if it fits; a request of
    /// a model without a price is refused.
    func admit(_ request: BatchRequest) -> BatchAdmission {
        guard let estimate = CostBudget.batchEstimate(of: request, prices: prices) else {
            return .reject(CostBudget.unpricedError(request))
        }
        return budget.reserve(estimate) ? .submit(estimate: estimate) : .hold
    }

    /// A job was created for requests that reserved `estimate` in all.
    func jobCreated(_ id: String, estimate: Double) {
        state.withLock { $0.jobs[id, default: 0] += estimate }
    }

    /// No job was created for requests that reserved `estimate` in all. The reservation is
    /// released unless the job may exist all the same (the create call may have reached the
    /// provider, or a created job could not be recorded and was cancelled): then it stays spent.
    func chunkFailed(estimate: Double, error: BatchError) {
        let mayExist = error.mayHaveReachedServer || error.code == .io
        budget.settle(reserved: estimate, actual: mayExist ? estimate : 0)
    }

    /// Counts what a batch result cost.
    func settle(_ r: BatchResult) {
        guard r.usage != .zero else { return }
        if let cost = r.cost ?? prices.cost(of: r) {
            budget.settle(reserved: 0, actual: cost)
        } else {
            state.withLock { s in
                if let job = r.jobID { s.unpriced.insert(job) } else { s.keepAll = true }
            }
        }
    }

    /// A job's results were read to the end.
    func noteDownloaded(_ job: BatchJob, summary: BatchResultsSummary?) {
        guard job.status.isTerminal else { return }
        // Lines that could not be read may be requests that ran (and are billed) without a result.
        if let summary, summary.malformedLines > 0 || summary.unreadableLines > 0 { return }
        _ = state.withLock { $0.downloaded.insert(job.id) }
    }

    /// Whether job `id`'s results were read to the end from a terminal state.
    func wasDownloaded(_ id: String) -> Bool { state.withLock { $0.downloaded.contains(id) } }

    /// Ends the batch phase: releases the reservations of the jobs whose billing is known.
    ///
    /// - Returns: dollars neither spent nor reserved, for the real-time phase.
    func endBatchPhase() -> Double {
        let released = state.withLock { s -> [Double] in
            guard !s.keepAll else { return [] }
            let known = s.jobs.filter { s.downloaded.contains($0.key) && !s.unpriced.contains($0.key) }
            for id in known.keys { s.jobs[id] = nil }
            return Array(known.values)
        }
        for reserved in released { budget.settle(reserved: reserved, actual: 0) }
        return budget.remaining
    }
}
