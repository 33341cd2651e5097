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

extension CostEstimate: CustomStringConvertible {
    /// The estimate as a plain-text table: one row per model, a total row, and the models without
    /// a price.
    ///
    /// ```
    /// model          requests  input tokens  output tokens  real-time     batch
    /// gpt-4o-mini        1000        52,000        100,000    $0.0678   $0.0339
    /// total              1000        52,000        100,000    $0.0678   $0.0339
    /// ```
    public var description: String {
        let header = ["model", "requests", "input tokens", "output tokens", "real-time", "batch"]
        var rows: [[String]] = byModel.map { m in
            [m.model, String(m.requests), Self.grouped(m.inputTokens), Self.grouped(m.outputTokens),
             m.realtimeCost.map(Self.dollars) ?? "-", m.batchCost.map(Self.dollars) ?? "-"]
        }
        rows.append([
            "total", String(requests), Self.grouped(inputTokens), Self.grouped(outputTokens), Self.dollars(realtimeCost),
            Self.dollars(batchCost),
        ])
        let all = [header] + rows
        let widths = (0..<header.count).map { column in all.map { $0[column].count }.max() ?? 0 }
        var lines = all.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        if !unpricedModels.isEmpty {
            lines.append("no price for: \(unpricedModels.joined(separator: ", ")) (not in the totals)")
        }
        return lines.joined(separator: "\n")
    }

    /// `$` and four decimals (two from a dollar up).
    package static func dollars(_ value: Double) -> String {
        value >= 1 ? "$" + String(format: "%.2f", value) : "$" + String(format: "%.4f", value)
    }

    /// Thousands separated by commas.
    package static func grouped(_ n: Int) -> String {
        let digits = Array(String(n.magnitude))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return n < 0 ? "-" + out : out
    }
}
