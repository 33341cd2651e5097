import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run --mode hybrid --max-cost`: the batch gets what fits its estimates, real time what
/// the batch left; what both paths bill stays within the budget, and a rerun with a larger budget
/// and `--retry-failed` runs the rest without billing a finished id again.
@Suite(.timeLimit(.minutes(5))) struct CLIHybridBudgetTests {
    static let key = "sk-cli-test-key-0001"

    /// What an output line's answer was billed: its usage at gpt-4o-mini prices, batch at the
    /// discount.
    static func billed(_ line: JSONValue, batch: Bool) throws -> Double {
        let price = try #require(PriceTable.defaults.price(for: "gpt-4o-mini"))
        let usage = try #require(line["response"]?["body"]?["usage"])
        let u = Usage(
            inputTokens: try #require(usage["prompt_tokens"]?.intValue), outputTokens: try #require(usage["completion_tokens"]?.intValue))
        return price.cost(of: batch ? u.asBatch : u)
    }

    @Test func hybridStaysWithinTheBudgetAndARerunWithMoreRunsTheRest() async throws {
        let dir = try TempDir()
        let total = 20
        try dir.write("in.jsonl", Fixtures.chatLines(total))
        // Every line is estimated alike (about 6 tokens in, max_tokens 8 out): room for 12 batch
        // estimates, i.e. 6 real-time ones.
        var estimate = CostEstimate()
        estimate.add(
            BatchRequest(id: "x", chat: ChatRequest(model: "gpt-4o-mini", messages: [.user("Classify ticket 10")], maxTokens: 8)),
            prices: .defaults)
        let batchEstimate = estimate.batchCost
        #expect(batchEstimate > 0)
        let budget = batchEstimate * 12
        let budgetText = String(format: "%.10f", budget)
        // As in CLIRunTests' hybrid run: the CLI's 2 s deadline cancels the job with about half of
        // its items run (see startHybridEmulator).
        let (emulator, server) = try await startHybridEmulator()
        do {
            let url = server.baseURL.absoluteString
            let common = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "hybrid", "--deadline", "2s", "--poll-interval", "100ms", "--base-url", url]
            let first = try await CLI.run(common + ["--max-cost", budgetText], in: dir.url)
            #expect(first.status == 3, "\(first.stderr)")
            let lines = try Fixtures.outputLines(dir.file("out.jsonl"))
            let ids = lines.compactMap { $0["custom_id"]?.stringValue }
            #expect(ids.count == total && Set(ids).count == total, "every id has exactly one result")
            let byID = Dictionary(lines.map { ($0["custom_id"]?.stringValue ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            func route(_ line: JSONValue) -> String? { line["batchkit"]?["route"]?.stringValue }
            let refused = Set(lines.filter { $0["error"]?["code"]?.stringValue == "budget_exceeded" }.compactMap { $0["custom_id"]?.stringValue })
            let batchIDs = Set(lines.filter { route($0) == "batch" }.compactMap { $0["custom_id"]?.stringValue })
            let realtimeIDs = Set(lines.filter { route($0) == "realtime" && $0["response"]?["status_code"]?.intValue == 200 }.compactMap { $0["custom_id"]?.stringValue })
            #expect(!batchIDs.isEmpty && !realtimeIDs.isEmpty && !refused.isEmpty, "batch \(batchIDs.count), real time \(realtimeIDs.count), refused \(refused.count)")
            #expect(batchIDs.count + realtimeIDs.count + refused.count == total)
            // Only 12 batch estimates fit: the job holds 12 requests, the other 8 were never submitted.
            let billing = emulator.billing
            #expect(billing.jobs.count == 1 && billing.jobs.first?.requests == 12, "\(billing.json)")
            // What the emulator billed: the batch items that ran, the real-time answers.
            #expect(Set(billing.jobsPerCustomID.keys) == batchIDs, "\(billing.json)")
            #expect(Set(billing.realtimeCalls.keys) == realtimeIDs, "\(billing.json)")
            #expect(billing.paidInJobAndRealtime.isEmpty)
            var billed = 0.0
            for id in batchIDs { billed += try Self.billed(try #require(byID[id]), batch: true) }
            for id in realtimeIDs { billed += try Self.billed(try #require(byID[id]), batch: false) }
            #expect(billed <= budget * (1 + 1e-9), "billed \(billed) of \(budget)")
            #expect(refused.isDisjoint(with: Set(billing.jobsPerCustomID.keys).union(billing.realtimeCalls.keys)), "a refused id is never billed")
            #expect(first.stdout.contains("budget") && first.stdout.contains("spent of $"), "\(first.stdout)")
            #expect(first.stdout.contains("not sent"), "\(first.stdout)")

            // A larger budget with --retry-failed runs the refused ids, and only them.
            let second = try await CLI.run(common + ["--max-cost", "1", "--retry-failed"], in: dir.url)
            #expect(second.status == 0, "\(second.stderr)")
            let after = try Fixtures.outputLines(dir.file("out.jsonl"))
            #expect(after.count == total)
            #expect(after.allSatisfy { $0["response"]?["status_code"]?.intValue == 200 })
            let afterByID = Dictionary(after.map { ($0["custom_id"]?.stringValue ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            for id in batchIDs.union(realtimeIDs) {
                #expect(afterByID[id]?["response"] == byID[id]?["response"], "\(id): its first answer is kept")
            }
            let rebilled = emulator.billing
            for i in 0..<total {
                let id = "r\(i)"
                #expect(rebilled.jobCount(customID: id) + (rebilled.realtimeCalls[id] ?? 0) == 1, "\(id) billed once over both runs: \(rebilled.json)")
            }
        }
        await server.shutdown()
    }
}
