import Foundation
import Testing

@testable import BatchKit

private func close(_ a: Double?, _ b: Double, tolerance: Double = 1e-12) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance * max(1, abs(b))
}

@Suite struct CostTests {
    @Test func realtimeAndBatchCost() throws {
        let prices = PriceTable.defaults
        // gpt-4o-mini: $0.15 in, $0.60 out per million.
        let usage = Usage(inputTokens: 1_000_000, outputTokens: 1_000_000)
        #expect(close(prices.cost(of: usage, model: "gpt-4o-mini"), 0.75))
        #expect(close(prices.cost(of: usage.asBatch, model: "gpt-4o-mini"), 0.375))
        // 2,000 in + 300 out on gpt-4o ($2.50 / $10): 0.005 + 0.003 = 0.008; batch 0.004.
        let small = Usage(inputTokens: 2_000, outputTokens: 300)
        #expect(close(prices.cost(of: small, model: "gpt-4o"), 0.008))
        #expect(close(prices.cost(of: small.asBatch, model: "gpt-4o"), 0.004))
        // Claude Haiku 4.5 ($1 / $5): 10,000 in + 1,000 out = 0.01 + 0.005.
        #expect(close(prices.cost(of: Usage(inputTokens: 10_000, outputTokens: 1_000), model: "claude-haiku-4-5"), 0.015))
    }

    @Test func partialBatchShare() {
        let table = PriceTable(["m": .init(inputPerMillion: 2, outputPerMillion: 4, batchMultiplier: 0.5)])
        // Half the input went through a batch API: 1,000 × $2/M = 0.002, three quarters of it
        // billed = 0.0015; output 500 × $4/M = 0.002 at full price.
        let usage = Usage(inputTokens: 1_000, outputTokens: 500, batchInputTokens: 500)
        #expect(close(table.cost(of: usage, model: "m"), 0.0035))
    }

    @Test func cachedInputPricing() {
        let prices = PriceTable.defaults
        // gpt-4o-mini: 1M uncached × 0.15 + 1M cached × 0.075 = 0.225; batch halves both.
        let usage = Usage(inputTokens: 2_000_000, cachedInputTokens: 1_000_000)
        #expect(close(prices.cost(of: usage, model: "gpt-4o-mini"), 0.225))
        #expect(close(prices.cost(of: usage.asBatch, model: "gpt-4o-mini"), 0.1125))
        // Gemini 2.5 Flash: cache hits are not discounted in a batch (0.03 per M), output is
        // (2.50 → 1.25): 0.03 + 1.25.
        let gemini = Usage(inputTokens: 1_000_000, outputTokens: 1_000_000, cachedInputTokens: 1_000_000).asBatch
        #expect(close(prices.cost(of: gemini, model: "gemini-2.5-flash"), 1.28))
        // Without a cached price, cached tokens are billed as input.
        let plain = PriceTable(["m": .init(inputPerMillion: 1, outputPerMillion: 1)])
        #expect(close(plain.cost(of: Usage(inputTokens: 1_000_000, cachedInputTokens: 400_000), model: "m"), 1.0))
        // Cached tokens beyond the input are clamped.
        #expect(close(plain.cost(of: Usage(inputTokens: 10, cachedInputTokens: 50), model: "m"), 10 / 1e6))
    }

    @Test(arguments: [
        ("gpt-4o-mini-2024-07-18", 0.15), ("gpt-4o-2024-08-06", 2.50), ("gpt-4o", 2.50),
        ("gpt-4.1-mini-2025-04-14", 0.40), ("gpt-4.1-2025-04-14", 2.00), ("models/gemini-2.5-flash", 0.30),
        ("gemini-2.5-flash-lite-preview-09-2025", 0.10), ("claude-sonnet-4-5-20250929", 3.0),
        ("claude-opus-4-5-20251101", 5.0), ("claude-opus-4-20250514", 15.0), ("text-embedding-3-small", 0.02),
    ])
    func prefixModelMatching(model: String, input: Double) throws {
        let price = try #require(PriceTable.defaults.price(for: model))
        #expect(price.inputPerMillion == input)
    }

    /// The Anthropic and Gemini rows are built by rule (`Price.anthropic`, `Price.gemini`): each must
    /// equal, to the last bit, the rates the providers list.
    @Test(arguments: [
        ("claude-opus-4-5", 5.0, 25.0, 0.50, 6.25, 10.0), ("claude-opus-4-1", 15.0, 75.0, 1.50, 18.75, 30.0),
        ("claude-sonnet-4", 3.0, 15.0, 0.30, 3.75, 6.0), ("claude-haiku-4-5", 1.0, 5.0, 0.10, 1.25, 2.0),
        ("claude-3-5-haiku", 0.80, 4.0, 0.08, 1.0, 1.6),
    ])
    func anthropicRowsAreTheListedRates(
        model: String, input: Double, output: Double, cached: Double, write: Double, write1h: Double
    ) throws {
        let price = try #require(PriceTable.defaults.prices[model])
        #expect(price == PriceTable.Price(
            inputPerMillion: input, outputPerMillion: output, cachedInputPerMillion: cached,
            cacheWritePerMillion: write, cacheWrite1hPerMillion: write1h))
    }

    @Test func geminiRowsBillBatchCacheHitsAsNonBatch() throws {
        let price = try #require(PriceTable.defaults.prices["gemini-2.5-flash"])
        #expect(price == PriceTable.Price(
            inputPerMillion: 0.30, outputPerMillion: 2.50, cachedInputPerMillion: 0.03, cachedInputBatchMultiplier: 1))
    }

    @Test func unknownModelHasNoPrice() {
        #expect(PriceTable.defaults.price(for: "my-local-llama") == nil)
        #expect(PriceTable.defaults.cost(of: Usage(inputTokens: 5), model: "my-local-llama") == nil)
        #expect(!PriceTable.pricesAsOf.isEmpty)
    }

    @Test func resultCostUsesTheAnsweringModel() {
        let response = ModelResponse(text: "x", usage: Usage(inputTokens: 1_000_000), model: "gpt-4o-mini-2024-07-18")
        let result = BatchResult(id: "a", outcome: .success(response), attempts: 1)
        #expect(close(PriceTable.defaults.cost(of: result), 0.15))
        let failed = BatchResult(id: "b", outcome: .failure(BatchError(.server, "x")), attempts: 1)
        #expect(PriceTable.defaults.cost(of: failed) == 0)
        let anonymous = BatchResult(id: "c", outcome: .success(ModelResponse(usage: Usage(outputTokens: 1_000_000))), attempts: 1)
        #expect(close(PriceTable.defaults.cost(of: anonymous, model: "gpt-4o"), 10))
    }

    @Test func mergingOverridesDefaults() {
        let table = PriceTable.defaults.merging(PriceTable(["gpt-4o-mini": .init(inputPerMillion: 1, outputPerMillion: 2)]))
        #expect(table.price(for: "gpt-4o-mini")?.inputPerMillion == 1)
        #expect(table.price(for: "gpt-4o")?.inputPerMillion == 2.50)
    }

    @Test func estimateRealtimeVersusBatch() throws {
        let text = String(repeating: "a", count: 400)  // 400 bytes + 4 of message framing → 101 tokens
        var requests = (0..<2).map {
            BatchRequest(id: "c\($0)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user(text)], maxTokens: 100))
        }
        requests.append(BatchRequest(id: "e", embedding: EmbeddingRequest(model: "text-embedding-3-small", input: String(repeating: "abcd", count: 10))))
        requests.append(BatchRequest(id: "x", chat: ChatRequest(model: "mystery-model", messages: [.user("hi")])))
        let estimate = CostEstimate.estimate(requests, prices: .defaults)
        #expect(estimate.requests == 4)
        #expect(estimate.unpricedModels == ["mystery-model"])
        let mini = try #require(estimate.byModel.first(where: { $0.model == "gpt-4o-mini" }))
        #expect(mini.inputTokens == 202)
        #expect(mini.outputTokens == 200)
        // 202 × 0.15/M + 200 × 0.60/M = 0.0000303 + 0.00012 = 0.0001503; embeddings 10 × 0.02/M.
        #expect(close(mini.realtimeCost, 0.0001503))
        #expect(close(estimate.realtimeCost, 0.0001503 + 0.0000002))
        #expect(close(estimate.batchCost, estimate.realtimeCost / 2))
        #expect(close(estimate.savings, estimate.realtimeCost / 2))
        // The unpriced model counts tokens but no cost: "hi" + framing = 6 bytes → 2 tokens,
        // default output 256.
        let mystery = estimate.byModel.first { $0.model == "mystery-model" }
        #expect(mystery?.inputTokens == 2 && mystery?.outputTokens == 256 && mystery?.realtimeCost == nil)
        // A different output guess for requests without a maximum.
        let guessed = CostEstimate.estimate(requests, prices: .defaults, defaultOutputTokens: 10)
        #expect(guessed.byModel.first { $0.model == "mystery-model" }?.outputTokens == 10)
    }

    @Test func estimateTable() {
        var estimate = CostEstimate()
        for i in 0..<1_000 {
            estimate.add(
                BatchRequest(id: "t\(i)", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user(String(repeating: "q", count: 204))], maxTokens: 100)),
                prices: .defaults)
        }
        estimate.add(BatchRequest(id: "u", chat: ChatRequest(model: "mystery", messages: [.user("hi")])), prices: .defaults)
        let text = estimate.description
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.count == 5)
        #expect(lines[0].hasPrefix("model"))
        // 1,000 × (208 bytes → 52 tokens) in, 100,000 out: 0.0078 + 0.06 = 0.0678; batch 0.0339.
        #expect(lines[1].hasPrefix("gpt-4o-mini") && lines[1].contains("52,000") && lines[1].contains("$0.0678") && lines[1].contains("$0.0339"))
        #expect(lines[2].hasPrefix("mystery") && lines[2].hasSuffix("-"))
        #expect(lines[3].hasPrefix("total") && lines[3].contains("1001"))
        #expect(lines[4] == "no price for: mystery (not in the totals)")
        #expect(CostEstimate.grouped(1_234_567) == "1,234,567" && CostEstimate.grouped(12) == "12")
        #expect(CostEstimate.dollars(12.345) == "$12.35" && CostEstimate.dollars(0.5) == "$0.5000")
    }

    @Test func journalTotalsWithCost() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("journal-cost-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let journal = try Journal(url: url)
        let usage = Usage(inputTokens: 1_000_000, outputTokens: 1_000_000)
        try journal.append(BatchResult(id: "a", outcome: .success(ModelResponse(usage: usage, model: "gpt-4o-mini")), attempts: 1))
        try journal.append(BatchResult(id: "b", outcome: .success(ModelResponse(usage: usage.asBatch, model: "gpt-4o-mini")), attempts: 1, route: .batch))
        try journal.append(BatchResult(id: "c", outcome: .success(ModelResponse(usage: usage)), attempts: 1))
        try journal.append(BatchResult(id: "d", outcome: .failure(BatchError(.server, "x")), attempts: 1))
        let plain = journal.totals
        #expect(plain.cost == nil && plain.succeeded == 3 && plain.failed == 1)
        // a: 0.75, b: 0.375, c has no model: unpriced unless a fallback model is given.
        let priced = journal.totals(prices: .defaults)
        #expect(close(priced.cost, 1.125) && priced.unpriced == 1)
        let fallback = journal.totals(prices: .defaults, model: "gpt-4o")
        #expect(close(fallback.cost, 1.125 + 12.5) && fallback.unpriced == 0)
    }

    @Test func overrideFileLoads() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prices-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(#"""
            {"gpt-4o-mini": {"input": 0.2, "output": 0.8, "cached_input": 0.1},
             "my-model": {"input": 1, "output": 3, "batch_multiplier": 0.4, "cached_input_batch_multiplier": 1}}
            """#.utf8).write(to: url)
        let file = try PriceTable(contentsOf: url)
        #expect(file.prices.count == 2)
        #expect(file.price(for: "my-model") == .init(inputPerMillion: 1, outputPerMillion: 3, batchMultiplier: 0.4, cachedInputBatchMultiplier: 1))
        let table = PriceTable.defaults.merging(file)
        #expect(table.price(for: "gpt-4o-mini-2024-07-18")?.cachedInputPerMillion == 0.1)
        #expect(table.price(for: "gpt-4o")?.inputPerMillion == 2.50)
        // 1M in + 1M out through a batch at 0.4: (1 + 3) × 0.4.
        #expect(close(table.cost(of: Usage(inputTokens: 1_000_000, outputTokens: 1_000_000).asBatch, model: "my-model"), 1.6))
    }

    @Test(arguments: [
        ("{not json", "not valid JSON", nil),
        ("[1, 2]", "expected a JSON object", nil),
        (#"{"m": 3}"#, #""m": expected an object"#, "m"),
        (#"{"m": {"input": 1}}"#, #""m".output: missing"#, "m.output"),
        (#"{"m": {"input": -1, "output": 1}}"#, #""m".input: expected a non-negative number"#, "m.input"),
        (#"{"m": {"input": "1", "output": 1}}"#, #""m".input: expected a non-negative number"#, "m.input"),
        (#"{"m": {"input": 1, "output": 1, "inptu": 2}}"#, #""m": unknown field "inptu""#, "m.inptu"),
        (#"{"m": {"input": 1, "output": 1, "batch_multiplier": 2}}"#, #""m".batch_multiplier: expected a fraction"#, "m.batch_multiplier"),
    ] as [(String, String, String?)])
    func overrideFileErrorsNameFileAndField(json: String, message: String, field: String?) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-prices-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(json.utf8).write(to: url)
        let error = #expect(throws: BatchError.self) { try PriceTable(contentsOf: url) }
        #expect(error?.code == .validation)
        #expect(error?.message.hasPrefix(url.path + ": ") == true)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
        #expect(error?.field == field)
    }

    @Test func missingOverrideFileIsAnError() {
        let url = URL(fileURLWithPath: "/nonexistent/prices.json")
        let error = #expect(throws: BatchError.self) { try PriceTable(contentsOf: url) }
        #expect(error?.message.hasPrefix("/nonexistent/prices.json: cannot read") == true)
    }
}

@Suite struct TokenEstimatorTests {
    @Test func chatInputCountsSystemMessagesAndImages() {
        let chat = ChatRequest(
            model: "gpt-4o-mini",
            messages: [
                .user(String(repeating: "x", count: 40), images: [.url("https://example.com/a.png", detail: "low")]),
                .assistant(String(repeating: "y", count: 7)),
            ],
            system: String(repeating: "s", count: 12), maxTokens: 50)
        let request = BatchRequest(id: "a", chat: chat)
        // Text: 12 + (4 + 40) + (4 + 7) = 67 bytes → 17 tokens; one image 765.
        #expect(TokenEstimator.inputTokens(request) == 17 + TokenEstimator.tokensPerImage)
        #expect(TokenEstimator.outputTokens(request) == 50)
    }

    @Test func outputDefaultsAndEmbeddings() {
        let chat = BatchRequest(id: "a", chat: ChatRequest(model: "m", messages: [.user("hello")]))
        #expect(TokenEstimator.outputTokens(chat) == CostEstimate.defaultOutputTokens)
        #expect(TokenEstimator.outputTokens(chat, default: 7) == 7)
        let embedding = BatchRequest(id: "e", embedding: EmbeddingRequest(model: "m", inputs: ["abcd", "efgh"]))
        #expect(TokenEstimator.inputTokens(embedding) == 2)
        #expect(TokenEstimator.outputTokens(embedding) == 0)
    }

    @Test func rawRequestsCountTheirBody() {
        let raw = BatchRequest(id: "r", body: .raw(RawRequest(
            endpoint: "/v1/responses",
            body: ["model": "gpt-4.1", "input": .string(String(repeating: "z", count: 80)), "max_output_tokens": 33])))
        #expect(TokenEstimator.inputTokens(raw) >= 20)
        #expect(TokenEstimator.outputTokens(raw) == 33)
    }
}
