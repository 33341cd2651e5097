import BatchKit
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a run did, folded from its events: counts, tokens and cost per model.
struct RunStats {
    var succeeded = 0
    var failed = 0
    var inFlight = 0
    var retries = 0
    var rateLimited = 0
    var jobs: [String: BatchJob] = [:]
    var remoteStatus: String?
    /// When a 429 paused the run (a `.retrying` after a rate limit), the first 100,000.
    var rateLimitPauses: [Date] = []
    /// Tokens per model (as spent: batch shares marked).
    var usageByModel: [String: Usage] = [:]
    /// Failures by error code.
    var failuresByCode: [String: Int] = [:]
    /// Results by route.
    var realtimeResults = 0
    var batchResults = 0

    var completed: Int { succeeded + failed }

    var usage: Usage { usageByModel.values.reduce(.zero, +) }

    mutating func record(_ result: BatchResult, defaultModel: String?) {
        if result.isSuccess {
            succeeded += 1
        } else {
            failed += 1
            failuresByCode[result.error?.code.rawValue ?? "error", default: 0] += 1
        }
        switch result.route {
        case .realtime: realtimeResults += 1
        case .batch: batchResults += 1
        default: break
        }
        let model = result.response?.model ?? defaultModel ?? "unknown"
        usageByModel[model, default: .zero] += result.usage
    }

    mutating func record(_ event: BatchEvent, defaultModel: String?) {
        switch event {
        case .item(let r): record(r, defaultModel: defaultModel)
        case .submitted(let job): jobs[job.id] = job
        case .retrying(_, _, _, let error):
            retries += 1
            if error.code == .rateLimited {
                rateLimited += 1
                if rateLimitPauses.count < 100_000 { rateLimitPauses.append(Date()) }
            }
        case .progress(let p):
            inFlight = p.inFlight
            remoteStatus = p.remoteStatus
        case .completed(let summary):
            inFlight = 0
            for job in summary.jobs { jobs[job.id] = job }
            // The processor counts 429s even when no retry followed; keep the larger count.
            rateLimited = max(rateLimited, summary.rateLimited)
            retries = max(retries, summary.retries)
        case .started, .failed:
            break
        }
    }

    /// Cost as spent, and what the same tokens cost all real-time or all batch (`nil` when no
    /// model used has a price).
    func costs(_ prices: PriceTable) -> (actual: Double, realtime: Double, batch: Double)? {
        var actual = 0.0, realtime = 0.0, batch = 0.0
        var priced = false
        for (model, usage) in usageByModel {
            guard let price = prices.price(for: model) else { continue }
            priced = true
            var plain = usage
            plain.batchInputTokens = 0
            plain.batchOutputTokens = 0
            actual += price.cost(of: usage)
            realtime += price.cost(of: plain)
            batch += price.cost(of: plain.asBatch)
        }
        return priced ? (actual, realtime, batch) : nil
    }
}

/// Shows a run's progress on stderr: on a terminal a status line that fits its width, redrawn in
/// place at most 10 times a second (``TerminalDisplay``, with other messages written above it); a
/// plain line every few seconds otherwise; and the summary table at the end.
final class ProgressDisplay {
    let isTerminal: Bool
    let total: Int?
    let interval: Duration
    let prices: PriceTable
    let start = ContinuousClock.now
    private var lastDraw: ContinuousClock.Instant?

    /// - Parameters:
    ///   - total: requests this run will process, when known.
    ///   - interval: between plain lines (a terminal is redrawn at most 10 times a second).
    init(total: Int?, interval: Duration, prices: PriceTable, isTerminal: Bool = TerminalDisplay.shared.isTerminal) {
        self.total = total
        self.interval = interval
        self.prices = prices
        self.isTerminal = isTerminal
    }

    var elapsed: Duration { start.duration(to: .now) }

    /// Redraws (terminal) or prints a line (otherwise) when due.
    func update(_ stats: RunStats, force: Bool = false) {
        let now = ContinuousClock.now
        let every = isTerminal ? Duration.milliseconds(100) : interval
        if !force, let last = lastDraw, last.duration(to: now) < every { return }
        lastDraw = now
        if isTerminal {
            TerminalDisplay.shared.draw(progress(stats))
        } else {
            printError("progress: " + Self.line(stats, total: total, elapsed: elapsed, prices: prices))
        }
    }

    /// Draws the last state and ends the in-place line so later output starts on a fresh line.
    func finish(_ stats: RunStats) {
        update(stats, force: true)
        if isTerminal { TerminalDisplay.shared.end() }
    }

    /// The run's progress as ``ProgressLine`` lays it out for the terminal's width.
    func progress(_ s: RunStats) -> BatchProgress {
        let seconds = max(0.001, elapsed.seconds)
        let rate = Double(s.completed) / seconds
        var eta: Duration?
        if let total, rate > 0, s.completed < total { eta = .seconds(Double(total - s.completed) / rate) }
        return BatchProgress(
            succeeded: s.succeeded, failed: s.failed, inFlight: s.inFlight, total: total, usage: s.usage,
            cost: s.costs(prices)?.actual, requestsPerSecond: rate, eta: eta, elapsed: elapsed, remoteStatus: s.remoteStatus)
    }

    /// The plain progress line written when stderr is not a terminal (a terminal gets ``ProgressLine``).
    static func line(_ s: RunStats, total: Int?, elapsed: Duration, prices: PriceTable) -> String {
        let seconds = max(0.001, elapsed.seconds)
        let rate = Double(s.completed) / seconds
        var parts: [String] = []
        if let total, total > 0 {
            let fraction = min(1, Double(s.completed) / Double(total))
            parts.append("\(s.completed)/\(total) (\(Int((fraction * 100).rounded(.down)))%)")
        } else {
            parts.append("\(s.completed) done")
        }
        parts.append("ok \(s.succeeded)")
        parts.append("failed \(s.failed)")
        parts.append("in flight \(s.inFlight)")
        parts.append(String(format: "%.1f/s", rate))
        if let total, rate > 0, s.completed < total {
            parts.append("ETA " + formatDuration(.seconds(Double(total - s.completed) / rate)))
        }
        let u = s.usage
        parts.append("tokens \(formatCount(u.inputTokens)) in / \(formatCount(u.outputTokens)) out")
        if let c = s.costs(prices) { parts.append(formatDollars(c.actual)) }
        if let remote = s.remoteStatus { parts.append("remote: \(remote)") }
        return parts.joined(separator: ", ")
    }

    /// The table printed at the end of a run.
    static func summary(
        _ s: RunStats, skipped: Int, duration: Duration, prices: PriceTable, mode: String, output: String?,
        budget: Double? = nil
    ) -> String {
        var rows: [[String]] = []
        rows.append(["mode", mode])
        rows.append(["succeeded", formatCount(s.succeeded)])
        var failed = formatCount(s.failed)
        if !s.failuresByCode.isEmpty {
            failed += " (" + s.failuresByCode.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
        }
        rows.append(["failed", failed])
        if skipped > 0 { rows.append(["skipped", formatCount(skipped) + " (already in the output)"]) }
        rows.append(["retries", formatCount(s.retries)])
        rows.append(["rate limited", formatCount(s.rateLimited)])
        if s.realtimeResults > 0 && s.batchResults > 0 {
            rows.append(["routes", "\(formatCount(s.batchResults)) batch, \(formatCount(s.realtimeResults)) real-time"])
        }
        let u = s.usage
        rows.append(["tokens in", formatCount(u.inputTokens)])
        rows.append(["tokens out", formatCount(u.outputTokens)])
        if let c = s.costs(prices) {
            rows.append(["cost", formatDollars(c.actual)])
            rows.append(["  all real-time", formatDollars(c.realtime)])
            rows.append(["  all batch", formatDollars(c.batch)])
        } else {
            rows.append(["cost", "- (no price for the models used)"])
        }
        if let budget {
            var text = "\(formatDollars(s.costs(prices)?.actual ?? 0)) spent of \(formatDollars(budget))"
            if let refused = s.failuresByCode[BatchError.Code.budgetExceeded.rawValue], refused > 0 {
                text += "; \(formatCount(refused)) request(s) not sent (budget_exceeded: rerun with a larger --max-cost and --retry-failed)"
            }
            rows.append(["budget", text])
        }
        rows.append(["duration", formatDuration(duration)])
        if !s.jobs.isEmpty {
            rows.append(["jobs", s.jobs.keys.sorted().joined(separator: ", ")])
        }
        if let output { rows.append(["output", output]) }
        return formatTable(rows)
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
