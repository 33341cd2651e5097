import BatchKit
import Foundation

extension BatchReport {
    /// The report as plain text for a terminal: a summary table, a sparkline of completions over
    /// time, latency percentiles, attempts, errors by code (with one message each), tokens and cost
    /// by model and route, native jobs, and what the files did not record.
    public func text(width: Int = 60) -> String {
        var out: [String] = []
        var rows: [[String]] = []
        rows.append(["files", sources.isEmpty ? "-" : sources.joined(separator: ", ")])
        rows.append(["requests", ReportFormat.count(lines)])
        rows.append(["succeeded", ReportFormat.count(succeeded) + ReportFormat.percent(succeeded, of: lines)])
        rows.append(["failed", ReportFormat.count(failed) + ReportFormat.percent(failed, of: lines)])
        rows.append(["routes", routes.sorted { $0.key < $1.key }.map { "\($0.key) \(ReportFormat.count($0.value))" }.joined(separator: ", ")])
        if let span {
            let seconds = span.end.timeIntervalSince(span.start)
            rows.append(["span", "\(ReportFormat.timestamp(span.start)) → \(ReportFormat.timestamp(span.end)) (\(ReportFormat.duration(seconds * 1000)))"])
            if seconds > 0 { rows.append(["throughput", String(format: "%.1f requests/s", Double(lines) / seconds)]) }
        }
        if rateLimitedAnswers > 0 || pauseCount > 0 {
            rows.append(["rate limited", "\(ReportFormat.count(rateLimitedAnswers)) 429 answer(s)" + (pauseCount > 0 ? ", \(pauseCount) pause(s)" : "")])
        }
        let u = usage
        rows.append(["tokens", "\(ReportFormat.count(u.inputTokens)) in (\(ReportFormat.count(u.cachedInputTokens)) cached) / \(ReportFormat.count(u.outputTokens)) out"])
        rows.append(["cost", ReportFormat.dollars(cost) + "  (all real-time \(ReportFormat.dollars(allRealtimeCost)), all batch \(ReportFormat.dollars(allBatchCost)))"])
        out.append(ReportFormat.table(rows, header: nil))

        let buckets = timeBuckets
        if !buckets.isEmpty {
            out.append("")
            let merged = ReportFormat.merge(buckets.map { $0.bucket }, into: width)
            let spark = ReportFormat.sparkline(merged.buckets.map { $0.succeeded + $0.failed })
            let perBar = ReportFormat.duration(Double(bucketMilliseconds) * Double(merged.factor))
            out.append("completions over time (one character per \(perBar); peak \(ReportFormat.count(merged.buckets.map { $0.succeeded + $0.failed }.max() ?? 0))):")
            out.append("  " + spark)
            let marks = merged.buckets.map { $0.rateLimited + $0.pauses > 0 ? "^" : " " }.joined()
            if marks.contains("^") { out.append("  " + marks + "  ^ rate limited") }
        }

        if latency.count > 0 {
            out.append("")
            out.append("real-time latency (\(ReportFormat.count(latency.count)) requests; percentiles within \(Int(LatencySketch.relativeError * 100)) %):")
            let l: [[String]] = [
                ["p50", ReportFormat.milliseconds(latency.quantile(0.5) ?? 0)],
                ["p90", ReportFormat.milliseconds(latency.quantile(0.9) ?? 0)],
                ["p99", ReportFormat.milliseconds(latency.quantile(0.99) ?? 0)],
                ["max", ReportFormat.milliseconds(latency.max ?? 0)],
                ["mean", ReportFormat.milliseconds(latency.mean ?? 0)],
            ]
            out.append(ReportFormat.table(l, header: nil, indent: "  ", rightAligned: true))
        }

        if !attempts.isEmpty {
            out.append("")
            out.append("attempts per request:")
            out.append(ReportFormat.table(
                attempts.sorted { $0.key < $1.key }.map { [$0.key == 99 ? "99+" : String($0.key), ReportFormat.count($0.value)] },
                header: ["attempts", "requests"], indent: "  "))
        }

        let errs = errors
        if !errs.isEmpty {
            out.append("")
            out.append("errors by code:")
            out.append(ReportFormat.table(
                errs.map { [$0.code, ReportFormat.count($0.count), String($0.example.prefix(70))] },
                header: ["code", "count", "example"], indent: "  "))
        }

        let ms = models
        if !ms.isEmpty {
            out.append("")
            out.append("tokens and cost by model and route (other mode: the same tokens through the other route):")
            var m = ms.map { r in
                [r.model, r.route, ReportFormat.count(r.requests), ReportFormat.count(r.usage.inputTokens),
                 ReportFormat.count(r.usage.cachedInputTokens), ReportFormat.count(r.usage.outputTokens),
                 ReportFormat.dollars(r.cost), ReportFormat.dollars(r.otherModeCost)]
            }
            m.append(["total", "", ReportFormat.count(ms.reduce(0) { $0 + $1.requests }), ReportFormat.count(u.inputTokens),
                      ReportFormat.count(u.cachedInputTokens), ReportFormat.count(u.outputTokens), ReportFormat.dollars(cost),
                      ReportFormat.dollars(ms.reduce(0) { $0 + $1.otherModeCost })])
            out.append(ReportFormat.table(m, header: ["model", "route", "requests", "input", "cached", "output", "cost", "other mode"], indent: "  "))
        }

        let js = jobs
        if !js.isEmpty {
            out.append("")
            out.append("native jobs:")
            out.append(ReportFormat.table(js.map { j in
                [j.id, j.displayStatus, j.submittedAt.map(ReportFormat.timestamp) ?? "-", j.endedAt.map(ReportFormat.timestamp) ?? "-",
                 ReportFormat.jobDuration(j), ReportFormat.count(j.succeeded), ReportFormat.count(j.failed)]
            }, header: ["job", "status", "submitted", "ended", "took", "ok", "failed"], indent: "  "))
        }

        let notes = missing
        if !notes.isEmpty {
            out.append("")
            out.append("not in this report:")
            for n in notes { out.append("  - " + n) }
        }
        return out.joined(separator: "\n")
    }
}

/// Number, time and table formatting shared by the text and HTML reports.
enum ReportFormat {
    static func count(_ n: Int) -> String { CostEstimate.grouped(n) }

    static func percent(_ n: Int, of total: Int) -> String {
        total > 0 ? String(format: " (%.1f %%)", Double(n) * 100 / Double(total)) : ""
    }

    static func dollars(_ v: Double) -> String { CostEstimate.dollars(v) }

    /// A compact count for axis ticks: 950, 1.2k, 3M.
    static func short(_ v: Double) -> String {
        let a = abs(v)
        func trim(_ x: Double) -> String {
            let s = String(format: "%.1f", x)
            return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
        }
        if a >= 1e6 { return trim(v / 1e6) + "M" }
        if a >= 1e3 { return trim(v / 1e3) + "k" }
        return trim(v)
    }

    static func milliseconds(_ ms: Double) -> String { duration(ms) }

    /// 850 ms, 12.5 s, 3.2 min, 1.5 h, 2.0 d.
    static func duration(_ ms: Double) -> String {
        if ms < 1000 { return ms == ms.rounded() ? "\(Int(ms)) ms" : String(format: "%.1f ms", ms) }
        let s = ms / 1000
        if s < 60 { return String(format: s < 10 ? "%.2f s" : "%.1f s", s) }
        if s < 3600 { return String(format: "%.1f min", s / 60) }
        if s < 86_400 { return String(format: "%.1f h", s / 3600) }
        return String(format: "%.1f d", s / 86_400)
    }

    static func jobDuration(_ j: BatchReport.JobSpan) -> String {
        guard let a = j.submittedAt, let b = j.endedAt else { return "-" }
        return duration(max(0, b.timeIntervalSince(a)) * 1000)
    }

    /// ISO-8601 in UTC, to the second.
    static func timestamp(_ d: Date) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: d)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// Buckets merged in runs of a power of two so that at most `width` remain.
    static func merge(_ buckets: [BatchReport.TimeBucket], into width: Int) -> (buckets: [BatchReport.TimeBucket], factor: Int) {
        var factor = 1
        while (buckets.count + factor - 1) / factor > max(1, width) { factor *= 2 }
        guard factor > 1 else { return (buckets, 1) }
        var out: [BatchReport.TimeBucket] = []
        for start in stride(from: 0, to: buckets.count, by: factor) {
            var m = BatchReport.TimeBucket()
            for b in buckets[start..<min(buckets.count, start + factor)] {
                m.succeeded += b.succeeded
                m.failed += b.failed
                m.rateLimited += b.rateLimited
                m.pauses += b.pauses
            }
            out.append(m)
        }
        return (out, factor)
    }

    /// One block character per value, scaled to the largest (a non-zero value is never blank).
    static func sparkline(_ values: [Int]) -> String {
        let blocks: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        let top = values.max() ?? 0
        guard top > 0 else { return String(repeating: " ", count: values.count) }
        return String(values.map { v -> Character in
            if v == 0 { return " " }
            let level = Int((Double(v) / Double(top) * Double(blocks.count - 1)).rounded())
            return blocks[min(blocks.count - 1, max(0, level))]
        })
    }

    /// Columns padded to their widest cell; the first column left-aligned, the others right.
    static func table(_ rows: [[String]], header: [String]?, indent: String = "", rightAligned: Bool = false) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.map(\.count).max() else { return "" }
        let widths = (0..<columns).map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return all.map { row in
            indent + row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                let left = c == 0 || (header == nil && !rightAligned) || (c == columns - 1 && header?.last == "example")
                return left ? cell + pad : pad + cell
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }.joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
