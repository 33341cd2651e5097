/// The running totals of one run, kept the same way by every processor.
struct RunTotals: Sendable {
    var succeeded = 0
    var failed = 0
    var usage = Usage.zero
    var cost: Double = 0
    /// Whether every result with usage could be priced.
    var costKnown = true
    var retries = 0
    var rateLimited = 0

    /// Counts a result, priced with `prices` (by the answering model, else `model`).
    mutating func add(_ r: BatchResult, model: String? = nil, prices: PriceTable?) {
        if r.isSuccess { succeeded += 1 } else { failed += 1 }
        usage += r.usage
        guard let prices, r.usage != .zero else { return }
        if let c = prices.cost(of: r, model: model) { cost += c } else { costKnown = false }
    }

    /// The cost so far, when a price table was given and knew every model used.
    func cost(priced: Bool) -> Double? { priced && costKnown ? cost : nil }

    func summary(duration: Duration, priced: Bool, jobs: [BatchJob] = []) -> BatchSummary {
        BatchSummary(
            succeeded: succeeded, failed: failed, usage: usage, cost: cost(priced: priced), duration: duration,
            retries: retries, rateLimited: rateLimited, jobs: jobs)
    }
}
