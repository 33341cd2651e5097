import BatchKit
import Foundation

/// `batchkit estimate`: tokens and cost of a JSONL file, real-time against native batch.
enum EstimateCommand: Subcommand {
    static let name = "estimate"
    static let summary = "estimate tokens and cost of a JSONL file, real-time vs batch"
    static let usage = """
        usage: batchkit estimate INPUT.jsonl [--provider P] [--model M] [--prices FILE]

        Counts the requests per model, estimates their input tokens (about 4 bytes per token) and
        output tokens (each request's max tokens, or 256), and prices them real-time and through the
        provider's batch API. No key and no network are needed.

          --provider P         openai (default), anthropic or gemini (checked only)
          --model M            price every line as model M
          --prices FILE        JSON price table merged over the built-in prices
        """
    static let spec = ArgumentSpec(options: ["provider", "model", "prices"], flags: [], maxPositional: 1)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let inputPath = try arguments.requiredPositional("INPUT.jsonl")
        _ = try ProviderName(option: arguments.string("provider"))
        let model = arguments.string("model")
        let prices = try RunCommand.loadPrices(arguments)
        let reader = BatchRequestFileReader(url: URL(fileURLWithPath: inputPath), displayName: inputPath)
        var estimate = CostEstimate()
        do throws(BatchError) {
            try reader.validate { line in
                estimate.add(model.map { line.request.withModel($0) } ?? line.request, prices: prices)
            }
        } catch {
            throw CommandFailure(error)
        }
        var rows = [["MODEL", "REQUESTS", "INPUT TOKENS", "OUTPUT TOKENS", "REAL-TIME", "BATCH"]]
        for m in estimate.byModel {
            rows.append([
                m.model, formatCount(m.requests), formatCount(m.inputTokens), formatCount(m.outputTokens),
                formatDollars(m.realtimeCost), formatDollars(m.batchCost),
            ])
        }
        rows.append([
            "total", formatCount(estimate.requests), formatCount(estimate.inputTokens), formatCount(estimate.outputTokens),
            formatDollars(estimate.realtimeCost), formatDollars(estimate.batchCost),
        ])
        printLine(formatTable(rows, rightAligned: [1, 2, 3, 4, 5]))
        printLine("batch saves \(formatDollars(estimate.savings)) (prices as of \(PriceTable.pricesAsOf); output tokens are an upper bound or a guess)")
        if !estimate.unpricedModels.isEmpty {
            printLine("no price for: \(estimate.unpricedModels.joined(separator: ", ")) (add them with --prices FILE)")
        }
        return 0
    }
}
