import BatchKit
@testable import BatchKitReport
import BatchKitTesting
import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// One drawn element of a report page: its name, attributes, the section it is in, the layout
/// of the chart it is in (`wide`, `narrow`, or "" outside the charts) and its parent's class.
struct ReportMark {
    var name: String
    var attributes: [String: String]
    var section: String
    var text: String
    var layout = ""
    var parentClass = ""

    func number(_ name: String) -> Double? { attributes[name].flatMap(Double.init) }
}

/// Parses a report page with an XML parser (it must be well-formed) and lists every element; each
/// chart is drawn twice, and only the marks of `layout` (or of both, for `nil`) are listed.
func reportMarks(_ html: String, layout: String? = "wide") throws -> [ReportMark] {
    let document = try XMLDocument(data: Data(html.utf8), options: [])
    var marks: [ReportMark] = []
    func walk(_ node: XMLNode, section: String, layoutHere: String, parentClass: String) {
        guard let element = node as? XMLElement else { return }
        var attributes: [String: String] = [:]
        for a in element.attributes ?? [] { if let n = a.name { attributes[n] = a.stringValue ?? "" } }
        let name = element.localName ?? element.name ?? ""
        let here = name == "section" ? (attributes["id"] ?? section) : section
        let inLayout = attributes["data-layout"] ?? layoutHere
        if let layout, !inLayout.isEmpty, inLayout != layout { return }
        marks.append(ReportMark(
            name: name, attributes: attributes, section: here, text: element.stringValue ?? "", layout: inLayout,
            parentClass: parentClass))
        for child in element.children ?? [] {
            walk(child, section: here, layoutHere: inLayout, parentClass: attributes["class"] ?? "")
        }
    }
    if let root = document.rootElement() { walk(root, section: "", layoutHere: "", parentClass: "") }
    return marks
}

/// The value of rank ⌈q·n⌉ in sorted order: the definition the sketch promises to approximate.
func exactQuantile(_ sorted: [Double], _ q: Double) -> Double {
    let rank = max(1, min(sorted.count, Int((q * Double(sorted.count)).rounded(.up))))
    return sorted[rank - 1]
}

@Suite(.timeLimit(.minutes(5))) struct ReportTests {
    static let t0 = Date(timeIntervalSince1970: 1_764_700_000)

    /// Realtime and batch results with known times, latencies, attempts, errors and jobs.
    struct Fixture {
        var lines: [JSONValue] = []
        var latencies: [Double] = []
        var endedMs: [(ms: Int64, success: Bool)] = []
        var attempts: [Int: Int] = [:]
        var errors: [String: Int] = [:]
        var jobs: [String: Int] = [:]
        var realtimeUsage = Usage.zero
        var batchUsage = Usage.zero
    }

    static func fixture(count: Int, seed: UInt64 = 7) -> Fixture {
        var g = SplitMix64(seed: seed)
        var f = Fixture()
        for i in 0..<count {
            let batch = i % 5 == 0
            let ms = batch ? 0 : (Double(Int.random(in: 5...400, using: &g)) * (i % 17 == 0 ? 40 : 1))
            let attempts = batch ? 1 : [1, 1, 1, 1, 2, 3][Int.random(in: 0...5, using: &g)]
            let failCode: BatchError.Code? = i % 11 == 0 ? .rateLimited : i % 13 == 0 ? .server : nil
            let usage = failCode == nil ? Usage(inputTokens: 100 + i % 7, outputTokens: 20 + i % 3) : .zero
            let outcome: Result<ModelResponse, BatchError> = failCode.map {
                .failure(BatchError($0, "failure <\($0.rawValue)> & \"quoted\" for r\(i)", httpStatus: $0 == .rateLimited ? 429 : 500))
            } ?? .success(ModelResponse(text: "ok", usage: usage, model: "gpt-4o-mini"))
            var r = BatchResult(
                id: "r\(i)", outcome: outcome, attempts: attempts, usage: batch ? usage.asBatch : usage,
                latency: .milliseconds(ms), route: batch ? .batch : .realtime)
            let endedMs = Int64(i) * 37 + Int64(Int.random(in: 0...20, using: &g))
            r.endedAt = t0.addingTimeInterval(Double(endedMs) / 1000)
            if batch {
                let job = "batch_job\(i % 3)"
                r.jobID = job
                r.startedAt = t0
                f.jobs[job, default: 0] += 1
                f.batchUsage += r.usage
            } else {
                r.startedAt = r.endedAt!.addingTimeInterval(-ms / 1000)
                f.latencies.append(ms)
                f.realtimeUsage += r.usage
            }
            if attempts > 1 { r.rateLimitedAttempts = 1 }
            f.lines.append(r.outputLine())
            f.endedMs.append((Int64((r.endedAt!.timeIntervalSince1970 * 1000).rounded()), failCode == nil))
            f.attempts[attempts, default: 0] += 1
            if let failCode { f.errors[failCode.rawValue, default: 0] += 1 }
        }
        return f
    }

    static func report(_ f: Fixture) -> BatchReport {
        var report = BatchReport(prices: .defaults)
        for (i, line) in f.lines.enumerated() { report.add(line: line, location: "fixture:\(i + 1)") }
        return report
    }

    @Test(arguments: [1, 10, 1000, 20_000])
    func sketchPercentilesAreWithinTheStatedError(_ count: Int) {
        var g = SplitMix64(seed: UInt64(count))
        var values: [Double] = []
        var sketch = LatencySketch()
        for _ in 0..<count {
            // Log-uniform from 1 ms to 100 s, plus some exact zeros and repeated values.
            let v = Int.random(in: 0..<50, using: &g) == 0 ? 0 : exp(Double.random(in: 0..<log(100_000), using: &g)).rounded()
            values.append(v)
            sketch.add(v)
        }
        values.sort()
        for q in [0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1] {
            let exact = exactQuantile(values, q)
            let estimate = sketch.quantile(q)!
            #expect(abs(estimate - exact) <= LatencySketch.relativeError * exact + 1e-9, "q \(q): \(estimate) vs \(exact)")
        }
        #expect(sketch.count == count && sketch.min == values.first && sketch.max == values.last)
        #expect(sketch.buckets.reduce(0) { $0 + $1.count } == count)
    }

    @Test func theOutputLineKeepsTimesJobCostAndRateLimits() throws {
        var r = BatchResult(id: "a", outcome: .success(ModelResponse(text: "x", model: "gpt-4o-mini")), attempts: 3, route: .batch)
        r.startedAt = Date(timeIntervalSince1970: 1_764_700_000.125)
        r.endedAt = Date(timeIntervalSince1970: 1_764_700_042.5)
        r.jobID = "batch_123"
        r.rateLimitedAttempts = 2
        r.cost = 0.000125
        let line = r.outputLine()
        #expect(line["batchkit"]?["started_at"]?.intValue == 1_764_700_000_125)
        #expect(line["batchkit"]?["ended_at"]?.intValue == 1_764_700_042_500)
        let back = try BatchResult(outputLine: try JSONValue(parsing: Data(r.outputLineBytes())))
        #expect(back.startedAt == r.startedAt && back.endedAt == r.endedAt)
        #expect(back.jobID == "batch_123" && back.rateLimitedAttempts == 2 && back.cost == 0.000125)

        // A line written before these fields existed reads back without them.
        var old = line
        if case .object(var o) = old, case .object(var m) = o["batchkit"]! {
            for k in ["started_at", "ended_at", "job_id", "rate_limited", "cost"] { m[k] = nil }
            o["batchkit"] = .object(m)
            old = .object(o)
        }
        let oldBack = try BatchResult(outputLine: old)
        #expect(oldBack.startedAt == nil && oldBack.endedAt == nil && oldBack.jobID == nil && oldBack.cost == nil)
        #expect(oldBack.attempts == 3 && oldBack.route == .batch)
    }

    @Test func theJournalStampsAnEndOnResultsWithoutOne() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("report-journal-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let before = Date()
        let journal = try Journal(url: url)
        try journal.append(BatchResult(id: "a", outcome: .failure(.validation("bad")), attempts: 0, route: .none))
        journal.close()
        let line = try JSONValue(parsing: Data(contentsOf: url))
        let ended = try #require(line["batchkit"]?["ended_at"]?.doubleValue)
        #expect(ended >= (before.timeIntervalSince1970 * 1000).rounded(.down))
    }

    @Test(arguments: [10, 3000], ["wide", "narrow"])
    func theChartsDrawTheData(_ count: Int, layout: String) throws {
        let f = Self.fixture(count: count)
        let report = Self.report(f)
        let html = report.html()
        let marks = try reportMarks(html, layout: layout)

        // Completions: one rect per non-empty (bucket, outcome); heights proportional to counts;
        // counts per bucket equal to the test's own bucketing of the end times.
        let width = report.bucketMilliseconds
        func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { Int64((Double(a) / Double(b)).rounded(.down)) }
        let first = f.endedMs.map { floorDiv($0.ms, width) }.min()!
        var expected: [String: Int] = [:]
        for e in f.endedMs { expected["\(floorDiv(e.ms, width) - first)/\(e.success ? "ok" : "fail")", default: 0] += 1 }
        let bars = marks.filter { $0.section == "completions" && $0.name == "rect" && $0.attributes["data-bucket"] != nil }
        #expect(bars.count == expected.count)
        var drawn: [String: Int] = [:]
        for b in bars { drawn["\(b.attributes["data-bucket"]!)/\(b.attributes["class"]!)"] = Int(b.number("data-count")!) }
        #expect(drawn == expected)
        let perUnit = bars.map { $0.number("height")! / $0.number("data-count")! }
        #expect(perUnit.allSatisfy { abs($0 - perUnit[0]) < 0.01 }, "heights not proportional: \(perUnit)")
        // Stacked: a failure bar sits on its bucket's success bar.
        let byBucket = Dictionary(grouping: bars) { $0.attributes["data-bucket"]! }
        for (_, pair) in byBucket where pair.count == 2 {
            let ok = pair.first { $0.attributes["class"] == "ok" }!
            let fail = pair.first { $0.attributes["class"] == "fail" }!
            #expect(abs(fail.number("y")! + fail.number("height")! - ok.number("y")!) < 0.02)
        }
        #expect(marks.contains { $0.section == "completions" && $0.name == "path" && $0.attributes["class"] == "mark" })

        // Latency: bins hold every real-time request, heights proportional, percentiles within
        // the sketch's error of the exact ones.
        let bins = marks.filter { $0.section == "latency" && $0.name == "rect" && $0.attributes["data-bin"] != nil }
        #expect(bins.reduce(0) { $0 + Int($1.number("data-count")!) } == f.latencies.count)
        let binUnit = bins.map { $0.number("height")! / $0.number("data-count")! }
        #expect(binUnit.allSatisfy { abs($0 - binUnit[0]) < 0.01 })
        let sorted = f.latencies.sorted()
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            let line = try #require(marks.first { $0.section == "latency" && $0.attributes["data-p"] == name })
            let exact = exactQuantile(sorted, q)
            #expect(abs(line.number("data-value")! - exact) <= exact * LatencySketch.relativeError + 0.01, "\(name)")
        }

        // Attempts: one bar per attempt count, with the exact counts.
        let attemptBars = marks.filter { $0.section == "attempts" && $0.attributes["data-attempts"] != nil }
        var attempts: [Int: Int] = [:]
        for b in attemptBars { attempts[Int(b.attributes["data-attempts"]!)!] = Int(b.number("data-count")!) }
        #expect(attempts == f.attempts)

        // Errors: one bar per code, exact counts, with an example message (escaped, read back).
        let errorBars = marks.filter { $0.section == "errors" && $0.attributes["data-code"] != nil }
        var errors: [String: Int] = [:]
        for b in errorBars { errors[b.attributes["data-code"]!] = Int(b.number("data-count")!) }
        #expect(errors == f.errors)
        if f.errors["rate_limited"] != nil {
            #expect(marks.contains { $0.section == "errors" && $0.text.contains("failure <rate_limited> & \"quoted\"") })
        }

        // Cost: per route, the dollars of the priced tokens, and the other mode's.
        let price = try #require(PriceTable.defaults.price(for: "gpt-4o-mini"))
        var plainBatch = f.batchUsage
        plainBatch.batchInputTokens = 0
        plainBatch.batchOutputTokens = 0
        let costs = marks.filter { $0.section == "cost" && $0.attributes["data-cost"] != nil }
        let realtime = try #require(costs.first { $0.attributes["data-route"] == "realtime" })
        #expect(abs(realtime.number("data-cost")! - price.cost(of: f.realtimeUsage)) < 1e-12)
        let batch = try #require(costs.first { $0.attributes["data-route"] == "batch" })
        #expect(abs(batch.number("data-cost")! - price.cost(of: f.batchUsage)) < 1e-12)
        let batchOther = try #require(marks.first { $0.attributes["data-route"] == "batch" && $0.attributes["data-other-cost"] != nil })
        #expect(abs(batchOther.number("data-other-cost")! - price.cost(of: plainBatch)) < 1e-12)

        // Jobs: one bar per job.
        let jobBars = marks.filter { $0.section == "jobs" && $0.attributes["data-job"] != nil }
        #expect(Set(jobBars.map { $0.attributes["data-job"]! }) == Set(f.jobs.keys))
        #expect(report.jobs.map { $0.succeeded + $0.failed }.reduce(0, +) == f.jobs.values.reduce(0, +))
        // Light and dark, no script, nothing fetched.
        #expect(html.contains("prefers-color-scheme: dark"))
        #expect(!html.contains("<script") && !html.contains("src=") && !html.contains("href="))
        #expect(!marks.contains { $0.name == "script" || $0.name == "img" || $0.name == "link" })
    }

    /// Every chart is drawn for a wide page and for a phone: scalable SVG (a viewBox, no fixed
    /// size), the phone's frames no wider than a 420 px screen so their 11-unit text stays at 10 px
    /// or more, the table scrolling in its own box, and no rule fixing a width over 420 px.
    @Test func thePageFitsAPhone() throws {
        let html = Self.report(Self.fixture(count: 3000)).html()
        let all = try reportMarks(html, layout: nil)
        let svgs = all.filter { $0.name == "svg" }
        try #require(svgs.count == 12, "6 charts × 2 layouts")
        for svg in svgs {
            let box = (svg.attributes["viewBox"] ?? "").split(separator: " ").compactMap { Double($0) }
            #expect(box.count == 4, "no viewBox: \(svg.attributes)")
            #expect(svg.attributes["width"] == nil && svg.attributes["height"] == nil && svg.attributes["style"] == nil)
            #expect(svg.parentClass == "chart \(svg.layout)")
            if svg.layout == "narrow", box.count == 4 {
                #expect(box[2] <= 420)
                // 11-unit labels on a 420 px screen (388 px inside the page's padding).
                #expect(11 * min(1, 388 / box[2]) >= 10)
            }
        }
        for section in ["completions", "latency", "attempts", "errors", "cost", "jobs"] {
            let boxes = all.filter { $0.section == section && $0.attributes["data-layout"] != nil }
            #expect(boxes.map { $0.attributes["data-layout"]! } == ["wide", "narrow"], "\(section)")
        }
        let tables = all.filter { $0.name == "table" }
        #expect(!tables.isEmpty && tables.allSatisfy { $0.parentClass == "tablewrap" })

        // The stylesheet: the phone layout below 760 px, tables scroll, no width over 420 px.
        let css = BatchReport.css
        #expect(css.contains(".tablewrap{overflow-x:auto"))
        #expect(css.contains(".chart.narrow{display:none}"))
        let media = try #require(css.range(of: "@media (max-width:760px){"))
        #expect(css[media.upperBound...].contains(".chart.wide{display:none}\n.chart.narrow{display:block}"))
        for match in css.matches(of: /(?:^|[;{\s])(?:min-width|width)\s*:\s*(\d+)px/) {
            #expect(Int(match.output.1)! <= 420, "a fixed width: \(match.output.0)")
        }
        #expect(!css.contains("min-width:640px"))
    }

    @Test func anOlderFileShowsWhatItCanAndSaysWhatIsMissing() throws {
        let f = Self.fixture(count: 50)
        var report = BatchReport()
        for (i, line) in f.lines.enumerated() {
            guard case .object(var o) = line, case .object(var m) = o["batchkit"]! else { continue }
            if i % 2 == 0 {
                o["batchkit"] = nil  // as downloaded from a provider
            } else {
                for k in ["started_at", "ended_at", "job_id", "rate_limited", "cost"] { m[k] = nil }
                o["batchkit"] = .object(m)
            }
            report.add(line: .object(o), location: "old.jsonl:\(i + 1)")
        }
        report.add(lineBytes: ArraySlice(Array("not json".utf8)), location: "old.jsonl:51")
        #expect(report.lines == 50)
        #expect(report.succeeded + report.failed == 50)
        #expect(report.timeBuckets.isEmpty && report.span == nil)
        let notes = report.missing.joined(separator: "\n")
        #expect(notes.contains("25 line(s) have no \"batchkit\" member"))
        #expect(notes.contains("50 line(s) carry no ended_at"))
        #expect(notes.contains("old.jsonl:51"))
        let marks = try reportMarks(report.html())
        #expect(marks.contains { $0.section == "completions" && $0.text.contains("No line records when it ended") })
        #expect(!marks.contains { $0.section == "completions" && $0.attributes["data-bucket"] != nil })
        #expect(report.text().contains("not in this report:"))
    }

    @Test func shardsMakeTheSameReportAsOneFile() async throws {
        let f = Self.fixture(count: 400)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("report-shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(_ lines: [JSONValue], _ name: String) throws -> URL {
            let url = dir.appendingPathComponent(name)
            try Data(lines.map { $0.jsonString + "\n" }.joined().utf8).write(to: url)
            return url
        }
        let whole = try write(f.lines, "all.jsonl")
        let a = try write(f.lines.enumerated().filter { $0.offset % 2 == 0 }.map(\.element), "shard0.jsonl")
        let b = try write(f.lines.enumerated().filter { $0.offset % 2 == 1 }.map(\.element), "shard1.jsonl")
        var one = BatchReport()
        try await one.add(contentsOf: whole, name: "x")
        var two = BatchReport()
        try await two.add(contentsOf: b, name: "x")
        try await two.add(contentsOf: a, name: "x")
        #expect(one.lines == 400 && two.lines == 400)
        #expect(one.timeBuckets.map(\.bucket) == two.timeBuckets.map(\.bucket))
        #expect(one.attempts == two.attempts && one.routes == two.routes)
        // The same codes and counts (each file's example message is the first it saw).
        #expect(one.errors.map { [$0.code: $0.count] } == two.errors.map { [$0.code: $0.count] })
        #expect(one.jobs == two.jobs)
        #expect(one.latency.quantile(0.9) == two.latency.quantile(0.9))
        #expect(abs(one.cost - two.cost) < 1e-12)
    }

    @Test func timeBucketsStayBoundedOverAnyTimeSpan() {
        var report = BatchReport()
        // Ten days, in random order: the width doubles, nothing is lost.
        var g = SplitMix64(seed: 3)
        for i in 0..<5000 {
            var r = BatchResult(id: "r\(i)", outcome: .success(ModelResponse(text: "x")), attempts: 1, latency: .milliseconds(5))
            r.endedAt = Self.t0.addingTimeInterval(Double.random(in: 0..<864_000, using: &g))
            report.add(line: r.outputLine(), location: "")
        }
        let buckets = report.timeBuckets
        #expect(buckets.count <= BatchReport.maxTimeBuckets && buckets.count > BatchReport.maxTimeBuckets / 2)
        #expect(buckets.reduce(0) { $0 + $1.bucket.succeeded } == 5000)
        #expect(report.bucketMilliseconds >= 864_000_000 / Int64(BatchReport.maxTimeBuckets))
    }
}
