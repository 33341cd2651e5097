public import Foundation

/// Prices per model, for estimates before a run (``CostEstimate``) and the actual cost after
/// (``cost(of:model:)``).
///
/// ```swift
/// let prices = PriceTable.defaults.merging(try PriceTable(contentsOf: URL(filePath: "prices.json")))
/// let dollars = prices.cost(of: summary.usage, model: "gpt-4o-mini")
/// ```
///
/// A model is looked up by exact name, else by the longest key that prefixes it, so dated
/// snapshots (`gpt-4o-mini-2024-07-18`, `claude-haiku-4-5-20251001`) use their family's price. A
/// leading `models/` (Gemini's resource names) is ignored.
public struct PriceTable: Sendable, Hashable {
    /// Prices of one model in US dollars per million tokens.
    public struct Price: Sendable, Hashable, Codable {
        /// Uncached input tokens.
        public var inputPerMillion: Double
        /// Output tokens (reasoning tokens included).
        public var outputPerMillion: Double
        /// Input tokens served from the prompt cache; `nil` bills them as ordinary input.
        public var cachedInputPerMillion: Double?
        /// Fraction of the price charged through a batch API (0.5 = half price).
        public var batchMultiplier: Double
        /// The batch fraction for cached input tokens, when it differs from ``batchMultiplier``
        /// (Gemini bills cache hits in a batch like non-batch traffic: 1). `nil` means
        /// ``batchMultiplier`` (OpenAI, and Anthropic where the discounts stack).
        public var cachedInputBatchMultiplier: Double?
        /// Input tokens written to the prompt cache with the default lifetime (Anthropic's five
        /// minutes: 1.25× input); `nil` bills them as ordinary input. The batch discount applies.
        public var cacheWritePerMillion: Double?
        /// Input tokens written to the prompt cache with a one-hour lifetime (Anthropic: 2× input);
        /// `nil` uses ``cacheWritePerMillion``. The batch discount applies.
        public var cacheWrite1hPerMillion: Double?

        public init(
            inputPerMillion: Double, outputPerMillion: Double, cachedInputPerMillion: Double? = nil,
            batchMultiplier: Double = 0.5, cachedInputBatchMultiplier: Double? = nil,
            cacheWritePerMillion: Double? = nil, cacheWrite1hPerMillion: Double? = nil
        ) {
            self.cacheWritePerMillion = cacheWritePerMillion
            self.cacheWrite1hPerMillion = cacheWrite1hPerMillion
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
            self.cachedInputPerMillion = cachedInputPerMillion
            self.batchMultiplier = batchMultiplier
            self.cachedInputBatchMultiplier = cachedInputBatchMultiplier
        }

        /// The cost of `usage` at this price. The batch share of each side (``Usage/batchInputTokens``,
        /// ``Usage/batchOutputTokens``) is billed at the batch multiplier. Input splits into cache
        /// reads (``cachedInputPerMillion``), cache writes (``cacheWritePerMillion``, the one-hour
        /// ones at ``cacheWrite1hPerMillion``) and the rest (``inputPerMillion``).
        public func cost(of usage: Usage) -> Double {
            let input = max(0, usage.inputTokens)
            let cached = min(max(0, usage.cachedInputTokens), input)
            let writes = min(max(0, usage.cacheWriteTokens), input - cached)
            let writes1h = min(max(0, usage.cacheWrite1hTokens), writes)
            let uncached = input - cached - writes
            let inShare = input > 0 ? Double(min(usage.batchInputTokens, input)) / Double(input) : 0
            let outShare = usage.outputTokens > 0
                ? Double(min(usage.batchOutputTokens, usage.outputTokens)) / Double(usage.outputTokens) : 0
            func discounted(_ dollars: Double, share: Double, multiplier: Double) -> Double {
                dollars * (1 - share * (1 - multiplier))
            }
            let uncachedCost = discounted(
                Double(uncached) * inputPerMillion / 1e6, share: inShare, multiplier: batchMultiplier)
            let cachedCost = discounted(
                Double(cached) * (cachedInputPerMillion ?? inputPerMillion) / 1e6, share: inShare,
                multiplier: cachedInputBatchMultiplier ?? batchMultiplier)
            let writeRate = cacheWritePerMillion ?? inputPerMillion
            let writeCost = discounted(
                (Double(writes - writes1h) * writeRate + Double(writes1h) * (cacheWrite1hPerMillion ?? writeRate)) / 1e6,
                share: inShare, multiplier: batchMultiplier)
            let outputCost = discounted(
                Double(usage.outputTokens) * outputPerMillion / 1e6, share: outShare, multiplier: batchMultiplier)
            return uncachedCost + cachedCost + writeCost + outputCost
        }
    }

    /// Prices by model name (or name prefix).
    public var prices: [String: Price]

    public init(_ prices: [String: Price] = [:]) { self.prices = prices }

    /// The price of a model: an exact match, else the longest key that prefixes the model name
    /// (`gpt-4o-mini-2024-07-18` uses `gpt-4o-mini`).
    public func price(for model: String) -> Price? {
        let name = model.hasPrefix("models/") ? String(model.dropFirst(7)) : model
        if let p = prices[name] { return p }
        var best: (key: String, price: Price)?
        for (key, price) in prices where name.hasPrefix(key) && key.count > (best?.key.count ?? 0) {
            best = (key, price)
        }
        return best?.price
    }

    /// The cost of `usage` spent on `model`, or `nil` when the model has no price.
    public func cost(of usage: Usage, model: String) -> Double? {
        price(for: model)?.cost(of: usage)
    }

    /// The cost of one result, priced by the model that answered (or `model` when the answer does not
    /// name one); `nil` when neither has a price. Failures cost their usage (usually zero).
    public func cost(of result: BatchResult, model: String? = nil) -> Double? {
        if let answered = result.response?.model, let c = cost(of: result.usage, model: answered) { return c }
        guard let model else { return result.usage.totalTokens == 0 ? 0 : nil }
        return cost(of: result.usage, model: model)
    }

    /// This table with `other`'s prices added; `other` wins for models in both.
    public func merging(_ other: PriceTable) -> PriceTable {
        PriceTable(prices.merging(other.prices) { _, theirs in theirs })
    }
}

// MARK: - Defaults

extension PriceTable {
    /// The date the default prices were checked.
    public static let pricesAsOf = "2026-11-22"
    /// The date the default cache rates (reads and writes) were checked.
    public static let cachePricesAsOf = "2026-12-02"

    /// Standard (pay-as-you-go, global) list prices of a few current models as of ``pricesAsOf``,
    /// with each provider's 50 % batch discount. Prices change: override them with
    /// ``merging(_:)`` or a file (``init(contentsOf:)``) for billing-grade figures.
    ///
    /// Cache rates (checked ``cachePricesAsOf``): OpenAI and Gemini cache hits at each model's
    /// cached-input rate, no per-request write charge (Gemini's cache *storage* is billed per hour
    /// outside any request, and is not modelled); Anthropic hits at 0.1× input, writes at 1.25×
    /// (five minutes) or 2× (one hour) input, all under the batch discount.
    ///
    /// Not modelled: Gemini 2.5 Pro's higher rate for prompts over 200k tokens, long-context
    /// and regional surcharges, priority tiers.
    public static let defaults = PriceTable([
        // OpenAI — platform.openai.com/docs/pricing (standard tier); batch = 50 % of input and
        // output (providers.md §4, OpenAI Batch FAQ). Cached input as listed (half or a quarter
        // of input).
        "gpt-4o-mini": Price(inputPerMillion: 0.15, outputPerMillion: 0.60, cachedInputPerMillion: 0.075),
        "gpt-4o": Price(inputPerMillion: 2.50, outputPerMillion: 10.00, cachedInputPerMillion: 1.25),
        "gpt-4.1": Price(inputPerMillion: 2.00, outputPerMillion: 8.00, cachedInputPerMillion: 0.50),
        "gpt-4.1-mini": Price(inputPerMillion: 0.40, outputPerMillion: 1.60, cachedInputPerMillion: 0.10),
        "gpt-4.1-nano": Price(inputPerMillion: 0.10, outputPerMillion: 0.40, cachedInputPerMillion: 0.025),
        "text-embedding-3-small": Price(inputPerMillion: 0.02, outputPerMillion: 0),
        "text-embedding-3-large": Price(inputPerMillion: 0.13, outputPerMillion: 0),
        "text-embedding-ada-002": Price(inputPerMillion: 0.10, outputPerMillion: 0),
        // Anthropic — platform.claude.com/docs/en/about-claude/pricing ("Model pricing" and
        // "Batch processing" tables): cache hits 0.1× input, 5-minute writes 1.25×, 1-hour writes
        // 2× (rechecked 2026-12-02); the batch discount stacks with caching (providers.md §4).
        "claude-opus-4-7": .anthropic(input: 5, output: 25),
        "claude-opus-4-6": .anthropic(input: 5, output: 25),
        "claude-opus-4-5": .anthropic(input: 5, output: 25),
        "claude-opus-4-1": .anthropic(input: 15, output: 75),
        "claude-opus-4": .anthropic(input: 15, output: 75),
        "claude-sonnet-4": .anthropic(input: 3, output: 15),
        "claude-haiku-4-5": .anthropic(input: 1, output: 5),
        "claude-3-5-haiku": .anthropic(input: 0.80, output: 4),
        // Google — ai.google.dev/gemini-api/docs/pricing (paid tier, text input, prompts up to
        // 200k tokens): batch = 50 % of the interactive price; cache hits in a batch are billed
        // like non-batch traffic (providers.md §4).
        "gemini-2.5-pro": .gemini(input: 1.25, output: 10, cachedInput: 0.125),
        "gemini-2.5-flash": .gemini(input: 0.30, output: 2.50, cachedInput: 0.03),
        "gemini-2.5-flash-lite": .gemini(input: 0.10, output: 0.40, cachedInput: 0.01),
    ])
}

extension PriceTable.Price {
    /// An Anthropic price: cache hits at 0.1× input, five-minute cache writes at 1.25× and one-hour
    /// writes at 2× (exact for every listed rate: each product equals the rate Anthropic lists).
    static func anthropic(input: Double, output: Double) -> Self {
        Self(
            inputPerMillion: input, outputPerMillion: output, cachedInputPerMillion: input / 10,
            cacheWritePerMillion: input * 1.25, cacheWrite1hPerMillion: input * 2)
    }

    /// A Gemini price: cache hits in a batch are billed like non-batch traffic.
    static func gemini(input: Double, output: Double, cachedInput: Double) -> Self {
        Self(inputPerMillion: input, outputPerMillion: output, cachedInputPerMillion: cachedInput, cachedInputBatchMultiplier: 1)
    }
}

// MARK: - Loading overrides

extension PriceTable {
    /// The fields of a price in a price file.
    static let fileFields: Set<String> = [
        "input", "output", "cached_input", "batch_multiplier", "cached_input_batch_multiplier", "cache_write",
        "cache_write_1h",
    ]

    /// Loads prices from a JSON file: an object from model name (or prefix) to a price, in US
    /// dollars per million tokens.
    ///
    /// ```json
    /// {
    ///   "gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075},
    ///   "my-finetune": {"input": 0.30, "output": 1.20, "batch_multiplier": 0.5}
    /// }
    /// ```
    ///
    /// `input` and `output` are required; `cached_input` defaults to `input`, `batch_multiplier`
    /// to 0.5, `cached_input_batch_multiplier` to `batch_multiplier`, `cache_write` (cache writes)
    /// to `input`, `cache_write_1h` (one-hour cache writes) to `cache_write`. Merge the result over
    /// ``defaults`` to override only some models.
    ///
    /// - Throws: ``BatchError`` `.validation` naming the file and, where it applies, the model and
    ///   field (`prices.json: "gpt-4o".input: expected a non-negative number`); unknown fields are
    ///   errors too, so a typo does not silently keep the default.
    public init(contentsOf url: URL) throws(BatchError) {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw BatchError(.validation, "\(path): cannot read the price file (\(error.localizedDescription))",
                isRetryable: false)
        }
        try self.init(json: data, source: path)
    }

    /// Parses prices in the format of ``init(contentsOf:)``; `source` names the input in errors.
    package init(json data: Data, source: String = "prices") throws(BatchError) {
        let root: JSONValue
        do { root = try JSONValue(parsing: data) } catch {
            throw .validation("\(source): not valid JSON (\(error))")
        }
        guard case .object(let models) = root else {
            throw .validation("\(source): expected a JSON object mapping model names to prices")
        }
        var prices: [String: Price] = [:]
        for model in models.keys.sorted() {
            let where_ = "\(source): \"\(model)\""
            guard case .object(let fields) = models[model]! else {
                throw .validation("\(where_): expected an object with \"input\" and \"output\"", field: model)
            }
            if let unknown = fields.keys.sorted().first(where: { !Self.fileFields.contains($0) }) {
                throw .validation(
                    "\(where_): unknown field \"\(unknown)\" (expected one of \(Self.fileFields.sorted().joined(separator: ", ")))",
                    field: "\(model).\(unknown)")
            }
            func number(_ name: String, required: Bool) throws(BatchError) -> Double? {
                guard let value = fields[name], !value.isNull else {
                    if required { throw .validation("\(where_).\(name): missing", field: "\(model).\(name)") }
                    return nil
                }
                guard let d = value.doubleValue, d >= 0, d.isFinite else {
                    throw .validation("\(where_).\(name): expected a non-negative number", field: "\(model).\(name)")
                }
                return d
            }
            let input = try number("input", required: true)!
            let output = try number("output", required: true)!
            let multiplier = try number("batch_multiplier", required: false) ?? 0.5
            let cachedMultiplier = try number("cached_input_batch_multiplier", required: false)
            for (name, m) in [("batch_multiplier", multiplier), ("cached_input_batch_multiplier", cachedMultiplier ?? 0)]
            where m > 1 {
                throw .validation("\(where_).\(name): expected a fraction between 0 and 1", field: "\(model).\(name)")
            }
            prices[model] = Price(
                inputPerMillion: input, outputPerMillion: output,
                cachedInputPerMillion: try number("cached_input", required: false), batchMultiplier: multiplier,
                cachedInputBatchMultiplier: cachedMultiplier, cacheWritePerMillion: try number("cache_write", required: false),
                cacheWrite1hPerMillion: try number("cache_write_1h", required: false))
        }
        self.init(prices)
    }
}
