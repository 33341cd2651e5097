import Synchronization

/// A spending limit in dollars, shared by the requests of a run: each reserves its estimated cost
/// before it is sent and settles on what it really cost once the answer is known.
///
/// ```swift
/// let budget = CostBudget(limit: 5.00)
/// guard budget.reserve(0.002) else { /* would go over: do not send */ }
/// budget.settle(reserved: 0.002, actual: 0.0007)
/// ```
///
/// A reservation is refused when what is spent, plus what is reserved, plus it would exceed the
/// limit; so however many requests are in flight, spending never goes past the limit as long as
/// each costs at most its estimate (the estimate uses the request's maximum output tokens, an upper
/// bound; a request without one uses a guess, see ``CostEstimate``).
package final class CostBudget: Sendable {
    private struct State {
        var spent = 0.0
        var reserved = 0.0
        var refused = 0
    }

    /// The limit, in dollars.
    package let limit: Double
    private let state = Mutex(State())

    /// A budget of `limit` dollars (negative limits count as zero).
    package init(limit: Double) {
        self.limit = max(0, limit)
    }

    /// Dollars spent by settled requests.
    package var spent: Double { state.withLock { $0.spent } }
    /// Dollars reserved by requests not yet settled.
    package var reserved: Double { state.withLock { $0.reserved } }
    /// Dollars neither spent nor reserved.
    package var remaining: Double { state.withLock { max(0, limit - $0.spent - $0.reserved) } }
    /// Reservations refused so far.
    package var refusals: Int { state.withLock { $0.refused } }

    /// Reserves `amount` dollars. Returns `false`, reserving nothing, when that could take
    /// spending over the limit.
    package func reserve(_ amount: Double) -> Bool {
        state.withLock { s in
            // A relative epsilon: sums of small prices must not refuse the reservation that fills
            // the budget exactly.
            guard s.spent + s.reserved + amount <= limit * (1 + 1e-9) else {
                s.refused += 1
                return false
            }
            s.reserved += amount
            return true
        }
    }

    /// Ends a reservation of `reserved` dollars that really cost `actual` (zero when nothing was
    /// billed).
    package func settle(reserved: Double, actual: Double) {
        state.withLock { s in
            s.reserved = max(0, s.reserved - reserved)
            s.spent += max(0, actual)
        }
    }

    /// The error of a request that was not started because it could take spending over the
    /// budget: `budget_exceeded`, not retryable within the run (a rerun with a larger budget
    /// picks it up).
    func exceededError(estimate: Double) -> BatchError {
        let (spent, reserved) = state.withLock { ($0.spent, $0.reserved) }
        return BatchError(
            .budgetExceeded,
            "not started: its estimated cost \(Self.dollars(estimate)) could take spending over the budget of "
                + "\(Self.dollars(limit)) (\(Self.dollars(spent)) spent, \(Self.dollars(reserved)) reserved "
                + "by requests in flight)",
            isRetryable: false)
    }

    /// The error of a request whose model has no price, when a budget needs every price.
    static func unpricedError(_ request: BatchRequest) -> BatchError {
        .validation(
            "no price for model \(request.model ?? "(none)"): a budget (maxCost) needs the price of every model; add it to the price table",
            field: "model")
    }

    /// What `request` is estimated to cost through a batch API (prompt estimate plus its maximum
    /// output tokens, or ``CostEstimate/defaultOutputTokens``, at the batch discount); `nil` when
    /// `prices` has no price for its model.
    static func batchEstimate(of request: BatchRequest, prices: PriceTable) -> Double? {
        guard let model = request.model, let price = prices.price(for: model) else { return nil }
        let usage = Usage(
            inputTokens: TokenEstimator.inputTokens(request),
            outputTokens: TokenEstimator.outputTokens(request, default: CostEstimate.defaultOutputTokens))
        return price.cost(of: usage.asBatch)
    }

    /// Dollars with enough decimals for the small sums a single request costs.
    static func dollars(_ value: Double) -> String {
        value > 0 && value < 0.01 ? "$" + String(format: "%.6f", value) : CostEstimate.dollars(value)
    }
}
