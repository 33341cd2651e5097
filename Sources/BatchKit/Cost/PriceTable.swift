import Foundation

/// Prices per model, for estimates before a run and actual cost after.
///
/// (Stub: the full table with dated defaults lands with the cost work.)
public struct PriceTable: Sendable, Hashable {
    /// Prices of one model in US dollars per million tokens.
    public struct Price: Sendable, Hashable, Codable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double
        public var cachedInputPerMillion: Double?
        /// Fraction of the price charged through a batch API (0.5 = half price).
        public var batchMultiplier: Double

        public init(inputPerMillion: Double, outputPerMillion: Double, cachedInputPerMillion: Double? = nil, batchMultiplier: Double = 0.5) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
            self.cachedInputPerMillion = cachedInputPerMillion
            self.batchMultiplier = batchMultiplier
        }
    }

    public var prices: [String: Price]

    public init(_ prices: [String: Price] = [:]) { self.prices = prices }

    /// The price of a model: an exact match, else the longest key that prefixes the model name
    /// (`gpt-4o-mini-2024-07-18` uses `gpt-4o-mini`).
    public func price(for model: String) -> Price? {
        if let p = prices[model] { return p }
        return prices.filter { model.hasPrefix($0.key) }.max { $0.key.count < $1.key.count }?.value
    }

    /// The cost of `usage` spent on `model`, or `nil` when the model has no price.
    public func cost(of usage: Usage, model: String) -> Double? {
        guard let p = price(for: model) else { return nil }
        let cached = min(usage.cachedInputTokens, usage.inputTokens)
        let cachedPrice = p.cachedInputPerMillion ?? p.inputPerMillion
        let batchIn = min(usage.batchInputTokens, usage.inputTokens)
        let batchOut = min(usage.batchOutputTokens, usage.outputTokens)
        let inCost = (Double(usage.inputTokens - cached) * p.inputPerMillion + Double(cached) * cachedPrice) / 1e6
        let outCost = Double(usage.outputTokens) * p.outputPerMillion / 1e6
        // The batch share of each side is billed at the batch multiplier.
        let inShare = usage.inputTokens > 0 ? Double(batchIn) / Double(usage.inputTokens) : 0
        let outShare = usage.outputTokens > 0 ? Double(batchOut) / Double(usage.outputTokens) : 0
        return inCost * (1 - inShare * (1 - p.batchMultiplier)) + outCost * (1 - outShare * (1 - p.batchMultiplier))
    }
}
