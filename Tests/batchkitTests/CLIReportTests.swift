import BatchKit
import BatchKitTesting
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `batchkit report` and `batchkit run --report`, as child processes against a loopback emulator:
/// the pages parse as XML and their marks add up to the output files' lines.
@Suite("batchkit report", .serialized, .timeLimit(.minutes(5)))
struct CLIReportTests {
    static let environment = ["OPENAI_API_KEY": "sk-cli-test-key-0001"]

    /// The elements of a page with the given attribute, with that section's id.
    static func elements(_ url: URL, having attribute: String) throws -> [(section: String, attributes: [String: String])] {
        let document = try XMLDocument(data: Data(contentsOf: url), options: [])
        var found: [(String, [String: String])] = []
        func walk(_ node: XMLNode, _ section: String) {
            guard let e = node as? XMLElement else { return }
            var a: [String: String] = [:]
            for attr in e.attributes ?? [] { if let n = attr.name { a[n] = attr.stringValue ?? "" } }
            let here = (e.localName ?? e.name) == "section" ? a["id"] ?? section : section
            if a["data-layout"] == "narrow" { return }  // each chart is drawn twice: count the wide one
            if a[attribute] != nil { found.append((here, a)) }
            for child in e.children ?? [] { walk(child, here) }
        }
        if let root = document.rootElement() { walk(root, "") }
        return found
    }

    static func completions(_ url: URL) throws -> Int {
        try elements(url, having: "data-bucket").filter { $0.section == "completions" && $0.attributes["data-count"] != nil }
            .reduce(0) { $0 + Int($1.attributes["data-count"]!)! }
    }

    @Test func runWritesTheReportAndReportReadsSeveralFiles() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(30))
        // The first two calls are rate limited: the run pauses, and the page marks it.
        let faults = [EmulatorFault(.status(429), on: .endpoint("/v1/chat/completions"), firstTimes: 2)]
        try await withEmulator(EmulatorConfiguration(faults: faults)) { _, url in
            let run = try await CLI.run(
                ["run", "in.jsonl", "--output", "rt.jsonl", "--base-url", url, "--concurrency", "2", "--report", "rt.html"],
                in: dir.url, environment: Self.environment)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stderr.contains("report written to rt.html"))
            #expect(try Self.completions(dir.file("rt.html")) == 30)
            let marks = try Self.elements(dir.file("rt.html"), having: "data-rate-limited")
            #expect(!marks.isEmpty, "no rate-limit mark")

            let native = try await CLI.run(
                ["run", "in.jsonl", "--output", "nb.jsonl", "--mode", "native", "--poll-interval", "50ms", "--base-url", url,
                 "--report", "nb.html"],
                in: dir.url, environment: Self.environment)
            #expect(native.status == 0, "\(native.stderr)")
            let jobFile = try JSONValue(parsing: Data(contentsOf: dir.file("nb.jsonl.jobs.json")))
            let jobIDs = Set(jobFile["native_jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
            #expect(!jobIDs.isEmpty)
            let bars = try Self.elements(dir.file("nb.html"), having: "data-job")
            #expect(Set(bars.map { $0.attributes["data-job"]! }) == jobIDs)
            #expect(bars.allSatisfy { $0.attributes["data-status"] == "completed" })

            // Both files in one report: every line counted, both routes priced.
            let report = try await CLI.run(["report", "rt.jsonl", "nb.jsonl", "--html", "both.html"], in: dir.url)
            #expect(report.status == 0, "\(report.stderr)")
            #expect(report.stdout.contains("requests      60"), "\(report.stdout)")
            #expect(report.stdout.contains("batch 30, realtime 30"))
            #expect(report.stdout.contains("completions over time"))
            #expect(try Self.completions(dir.file("both.html")) == 60)
            let costs = try Self.elements(dir.file("both.html"), having: "data-cost")
            #expect(Set(costs.map { $0.attributes["data-route"]! }) == ["batch", "realtime"])

            // A missing file is a readable error, naming it.
            let missing = try await CLI.run(["report", "nope.jsonl"], in: dir.url)
            #expect(missing.status == 1 && missing.stderr.contains("nope.jsonl: no such readable file"))
        }
    }

    @Test func resultsOfASubmittedJobArePlacedInTheJob() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(6))
        try await withEmulator { _, url in
            let submit = try await CLI.run(["submit", "in.jsonl", "--base-url", url], in: dir.url, environment: Self.environment)
            let jobID = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(submit.status == 0 && jobID.hasPrefix("batch_"), "\(submit.stderr)")
            let results = try await CLI.run(["results", jobID, "--output", "res.jsonl", "--base-url", url], in: dir.url, environment: Self.environment)
            #expect(results.status == 0, "\(results.stderr)")
            let lines = try Fixtures.outputLines(dir.file("res.jsonl"))
            #expect(lines.count == 6)
            #expect(lines.allSatisfy { $0["batchkit"]?["job_id"]?.stringValue == jobID && $0["batchkit"]?["ended_at"]?.intValue != nil })
            let report = try await CLI.run(["report", "res.jsonl", "--html", "r.html"], in: dir.url)
            #expect(report.status == 0, "\(report.stderr)")
            #expect(try Self.elements(dir.file("r.html"), having: "data-job").map { $0.attributes["data-job"] } == [jobID])
        }
    }

    @Test func anInterruptedRunStillWritesItsReport() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(latency: .seconds(10)), clock: clock) { _, url in
            let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "4", "--report", "r.html"]
            let child = try CLI.start(arguments, in: dir.url, environment: Self.environment)
            await clock.sleepers(atLeast: 4)
            clock.advance(by: .seconds(10))
            await clock.sleepers(atLeast: 4)
            _ = kill(child.pid, SIGINT)
            let result = await child.finish(timeout: .seconds(180))
            #expect(result.status == 130, "\(result.stderr)")
            #expect(result.stderr.contains("report written to r.html"))
            let recorded = try Fixtures.outputLines(dir.file("out.jsonl")).count
            #expect(try Self.completions(dir.file("r.html")) == recorded)
        }
    }
}
