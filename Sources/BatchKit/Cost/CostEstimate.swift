import Foundation

/// What a set of requests should cost, before running them: real-time against native batch,
/// from token estimates (``TokenEstimator``: prompt size at about four bytes per token, plus each
/// request's maximum output tokens or a default guess).
///
/// ```swift
/// let estimate = CostEstimate.estimate(requests, prices: .defaults)
/// print("real-time $\(estimate.realtimeCost), batch $\(estimate.batchCost)")
/// for m in estimate.byModel { print(m.model, m.requests, m.realtimeCost ?? .nan) }
/// ```
///
/// The totals cover the models with a price; ``unpricedModels`` lists the others. Output is an
/// upper bound when requests set a maximum (models often stop earlier), and a guess otherwise.
/// To estimate a stream without holding it, start from `CostEstimate()` and ``add(_:prices:defaultOutputTokens:)``
/// each request.
public struct CostEstimate: Sendable, Hashable {
    /// The estimate for one model.
    public struct ModelEstimate: Sendable, Hashable {
        /// The model as the requests name it.
        public var model: String
        public var requests: Int
        /// Estimated input tokens.
        public var inputTokens: Int
        /// Estimated output tokens.
        public var outputTokens: Int
        /// The price used, `nil` when the table has none for the model.
        public var price: PriceTable.Price?

        /// Cost through real-time endpoints, `nil` without a price.
        public var realtimeCost: Double? { price?.cost(of: usage) }
        /// Cost through the provider's batch API, `nil` without a price.
        public var batchCost: Double? { price?.cost(of: usage.asBatch) }
        /// The estimated tokens as a ``Usage``.
        public var usage: Usage { Usage(inputTokens: inputTokens, outputTokens: outputTokens) }
    }

    /// The output guess for chat requests that set no maximum.
    public static let defaultOutputTokens = 256

    private var perModel: [String: ModelEstimate] = [:]

    /// An empty estimate, to ``add(_:prices:defaultOutputTokens:)`` requests to.
    public init() {}

    /// Requests counted.
    public var requests: Int { perModel.values.reduce(0) { $0 + $1.requests } }
    /// Estimated input tokens over all requests.
    public var inputTokens: Int { perModel.values.reduce(0) { $0 + $1.inputTokens } }
    /// Estimated output tokens over all requests.
    public var outputTokens: Int { perModel.values.reduce(0) { $0 + $1.outputTokens } }
    /// Cost through real-time endpoints, over the priced models.
    public var realtimeCost: Double { perModel.values.reduce(0) { $0 + ($1.realtimeCost ?? 0) } }
    /// Cost through native batch APIs, over the priced models.
    public var batchCost: Double { perModel.values.reduce(0) { $0 + ($1.batchCost ?? 0) } }
    /// What native batch saves over real-time.
    public var savings: Double { realtimeCost - batchCost }
    /// One estimate per model, by model name.
    public var byModel: [ModelEstimate] { perModel.values.sorted { $0.model < $1.model } }
    /// Models the price table does not know (not counted in the costs), by name.
    public var unpricedModels: [String] { perModel.values.filter { $0.price == nil }.map(\.model).sorted() }

    /// Counts one request.
    ///
    /// - Parameter defaultOutputTokens: the output guess for chat requests without a maximum.
    public mutating func add(
        _ request: BatchRequest, prices: PriceTable, defaultOutputTokens: Int = CostEstimate.defaultOutputTokens
    ) {
        let model = request.model ?? "(no model)"
        let input = TokenEstimator.inputTokens(request)
        let output = TokenEstimator.outputTokens(request, default: defaultOutputTokens)
        if perModel[model] == nil {
            perModel[model] = ModelEstimate(
                model: model, requests: 0, inputTokens: 0, outputTokens: 0, price: prices.price(for: model))
        }
        perModel[model]!.requests += 1
        perModel[model]!.inputTokens += input
        perModel[model]!.outputTokens += output
    }

    /// Estimates `requests` (iterated once, never held).
    public static func estimate(
        _ requests: some Sequence<BatchRequest>, prices: PriceTable,
        defaultOutputTokens: Int = CostEstimate.defaultOutputTokens
    ) -> CostEstimate {
        var estimate = CostEstimate()
        for request in requests { estimate.add(request, prices: prices, defaultOutputTokens: defaultOutputTokens) }
        return estimate
    }
}
