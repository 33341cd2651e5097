import BatchKit
import BatchKitReport
import Foundation

/// `batchkit report`: how a run went, from its output file(s): a text summary, and with `--html`
/// one self-contained page of charts.
enum ReportCommand: Subcommand {
    static let name = "report"
    static let summary = "summarise output files (text, or one self-contained HTML page of charts)"
    static let usage = """
        usage: batchkit report OUT.jsonl [MORE.jsonl ...] [--html REPORT.html] [--prices FILE]

        Reads output files written by 'batchkit run' (any mode, any provider; several files, e.g. the
        shards of one job, make one report) or downloaded from a provider, in one pass and bounded
        memory, and prints counts by outcome, route, attempts and error code, latency percentiles
        (within 1 %), tokens and cost by model and route beside what the other mode would have cost,
        native jobs, and a sparkline of completions over time.

          --html FILE          also write one HTML page (inline SVG and CSS, no script, no network):
                               completions over time with rate-limit marks, latency histogram with
                               p50/p90/p99, attempts, errors by code, cost by model and route,
                               native jobs timeline; light and dark
          --prices FILE        JSON price table merged over the built-in prices (for lines that
                               record no cost)

        Lines written before BatchKit recorded times, job ids or costs are read for what they hold;
        the report says what it could not show.
        """
    static let spec = ArgumentSpec(options: ["html", "prices"], flags: [], maxPositional: nil)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        guard !arguments.positional.isEmpty else { throw UsageError("missing OUT.jsonl") }
        var report = BatchReport(prices: try RunCommand.loadPrices(arguments))
        for path in arguments.positional {
            try await add(path, to: &report)
        }
        printLine(report.text())
        if let html = arguments.string("html") {
            try write(report, toHTML: html)
            printLine("report: \(html)")
        }
        return 0
    }

    /// Reads one output file into `report`, naming it in a readable error.
    static func add(_ path: String, to report: inout BatchReport) async throws {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw CommandFailure("\(path): no such readable file")
        }
        do {
            try await report.add(contentsOf: URL(fileURLWithPath: path), name: path)
        } catch {
            throw CommandFailure("\(path): cannot read it (\(error.localizedDescription))")
        }
    }

    /// Writes the HTML page atomically.
    static func write(_ report: BatchReport, toHTML path: String) throws {
        do {
            try Data(report.html().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CommandFailure("\(path): cannot write the report (\(error.localizedDescription))")
        }
    }
}

extension RunCommand {
    /// `--report FILE`: the HTML report of the whole output file, with the rate-limit pauses and
    /// job states this run saw; written at the end of a run, interrupted or not. A failure to
    /// write it is reported, never turns the run's outcome into an error.
    static func writeRunReport(
        to path: String, outputPath: String, stats: RunStats, prices: PriceTable
    ) async {
        var report = BatchReport(prices: prices)
        do {
            try await report.add(contentsOf: URL(fileURLWithPath: outputPath), name: outputPath)
            for pause in stats.rateLimitPauses { report.addRateLimitPause(at: pause) }
            for job in stats.jobs.values { report.addJob(job) }
            try Data(report.html().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
            printError("batchkit run: report written to \(path)")
        } catch {
            printError("batchkit run: \(path): could not write the report (\(error.localizedDescription))")
        }
    }
}
