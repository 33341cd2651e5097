import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation

/// `batchkit demo`: a realistic job against the in-process emulator, with no key and no network:
/// thousands of classification prompts, first in real time (rate limits, injected 500s and 529s,
/// retries), then through the native batch API, and what each would have cost.
enum DemoCommand: Subcommand {
    static let name = "demo"
    static let summary = "run a realistic job against the built-in emulator (no key, no network)"
    static let usage = """
        usage: batchkit demo [--requests N] [--concurrency N] [--latency-ms N] [--batch-seconds S]
                             [--output OUT.jsonl] [--report REPORT.html]

        Generates N support tickets to classify (deterministically), then runs them against the
        in-process provider emulator twice: in real time (ConcurrentProcessor over OpenAIClient,
        with a requests-per-minute limit that throttles the end of the run and injected 500 and 529
        errors that are retried), and through the OpenAI Batch API (NativeBatchProcessor, split into
        several jobs, polled until done). Prints what happened and what it would have cost.

          --requests N         tickets to classify (default 3000)
          --concurrency N      real-time requests in flight (default 64)
          --latency-ms N       emulated model latency (default 20)
          --batch-seconds S    how long an emulated batch job takes (default 2)
          --output FILE        write both phases' results as output lines (the same ids twice:
                               real time, then batch)
          --report FILE        write the HTML report of both phases (see 'batchkit report')
        """
    static let spec = ArgumentSpec(
        options: ["requests", "concurrency", "latency-ms", "batch-seconds", "output", "report"], flags: [], maxPositional: 0)

    static let model = "gpt-4o-mini"

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let count = try arguments.int("requests", in: 1...1_000_000) ?? 3000
        let concurrency = try arguments.int("concurrency", in: 1...10_000) ?? 64
        let latency = Duration.milliseconds(try arguments.int("latency-ms", in: 0...10_000) ?? 20)
        let batchSeconds = try arguments.double("batch-seconds") ?? 2
        let prices = PriceTable.defaults
        let requests = tickets(count)
        let reportPath = arguments.string("report")
        let outputPath = arguments.string("output")
            ?? reportPath.map { _ in FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-demo-\(ProcessInfo.processInfo.processIdentifier).jsonl").path }
        let output = try outputPath.map { path in try ResultWriter(path: path) }

        let estimate = CostEstimate.estimate(requests, prices: prices)
        printLine("BatchKit demo: classifying \(formatCount(count)) support tickets with \(model), against the built-in emulator")
        printLine(
            "estimate before running: ~\(formatCount(estimate.inputTokens)) input tokens, ~\(formatCount(estimate.outputTokens)) output tokens (max_tokens); "
                + "\(formatDollars(estimate.realtimeCost)) real-time, \(formatDollars(estimate.batchCost)) batch")
        printLine("")

        // 1. Real time. The client is allowed N requests every 2 s; the emulator's bucket holds 93%
        // of N and refills at rpm/60 per second, so the end of the run meets its limit (429s) and
        // waits, about the same few seconds whatever N.
        let rpm = max(1, Int((Double(count) * 0.93).rounded(.down)))
        let clientRPM = max(60, count * 30)
        let realtimeEmulator = ProviderEmulator(
            configuration: EmulatorConfiguration(
                latency: latency, requestsPerMinute: rpm,
                faults: [
                    EmulatorFault(.status(500), on: .endpoint("/v1/chat/completions"), .probability(0.01)),
                    EmulatorFault(.status(529), on: .endpoint("/v1/chat/completions"), .probability(0.005)),
                ]))
        let client = OpenAIClient(
            apiKey: "sk-demo", baseURL: URL(string: "http://emulator.invalid/v1")!, transport: realtimeEmulator.transport)
        let realtime = ConcurrentProcessor(
            client: client, configuration: .init(
                maxConcurrency: concurrency, requestsPerMinute: clientRPM, retry: RetryPolicy(maxAttempts: 10),
                priceTable: prices))
        printLine("1. real time: ConcurrentProcessor over OpenAIClient, \(concurrency) in flight; the emulator allows \(formatCount(rpm)) requests/minute and injects ~1% 500s and ~0.5% 529s")
        let first = await phase(realtime.processAsync(requests), total: count, prices: prices, output: output)
        printLine(report(first, emulator: realtimeEmulator, prices: prices, route: "real-time"))
        printLine("")

        // 2. Native batch.
        let jobSize = max(1, (count + 2) / 3)
        let batchEmulator = ProviderEmulator(
            configuration: EmulatorConfiguration(
                batchDuration: .milliseconds(Int64(batchSeconds * 1000)),
                faults: [EmulatorFault(.status(500), on: .batchPoll(.openAI), firstTimes: 2)]))
        let backend = OpenAIBatchBackend(
            apiKey: "sk-demo", baseURL: URL(string: "http://emulator.invalid/v1")!, transport: batchEmulator.transport)
        let poll = Duration.milliseconds(Int64(max(50, min(1000, batchSeconds * 1000 / 8))))
        let native = NativeBatchProcessor(
            backend: backend,
            configuration: .init(
                pollInterval: poll, maxPollInterval: poll * 2, limits: BatchLimits(maxRequests: jobSize, maxBytes: 200 << 20),
                priceTable: prices))
        printLine("2. native batch: NativeBatchProcessor over the OpenAI Batch API, split into jobs of at most \(formatCount(jobSize)); each job takes \(formatDuration(.milliseconds(Int64(batchSeconds * 1000)))); the first two status polls fail with 500")
        let second = await phase(native.processAsync(requests), total: count, prices: prices, output: output)
        printLine(report(second, emulator: batchEmulator, prices: prices, route: "batch"))
        printLine("")

        // 3. What it cost.
        if let a = first.stats.costs(prices), let b = second.stats.costs(prices) {
            let saving = a.actual > 0 ? Int(((a.actual - b.actual) / a.actual * 100).rounded()) : 0
            printLine("cost of the same \(formatCount(count)) requests (\(model), prices as of \(PriceTable.pricesAsOf)):")
            printLine(
                formatTable(
                    [
                        ["  real time", formatDollars(a.actual), "results in " + formatDuration(first.duration)],
                        ["  native batch", formatDollars(b.actual), "\(saving)% less; real providers take minutes to hours"],
                    ]))
        }
        printLine("")
        if let output, let outputPath {
            output.close()
            if let reportPath {
                await RunCommand.writeRunReport(
                    to: reportPath, outputPath: outputPath, stats: merged(first.stats, second.stats), prices: prices)
                if arguments.string("output") == nil { try? FileManager.default.removeItem(atPath: outputPath) }
            }
        }
        printLine("next: 'batchkit run INPUT.jsonl --output OUT.jsonl' with OPENAI_API_KEY set, or '--base-url' of 'batchkit emulator'")
        // Items that failed after every retry are part of what the demo shows; only a run that
        // could not go on is a failure of the demo.
        return first.failure == nil && second.failure == nil ? 0 : 1
    }

    struct Phase {
        var stats = RunStats()
        var failure: BatchError?
        var duration: Duration = .zero
        var retriesByCode: [String: Int] = [:]
    }

    static func phase(_ stream: BatchEventStream, total: Int, prices: PriceTable, output: ResultWriter?) async -> Phase {
        let display = ProgressDisplay(total: total, interval: .seconds(2), prices: prices)
        var p = Phase()
        for await event in stream {
            p.stats.record(event, defaultModel: model)
            switch event {
            case .item(let result): output?.write(result)
            case .retrying(_, _, _, let error): p.retriesByCode[error.code.rawValue, default: 0] += 1
            case .failed(let error): p.failure = error
            default: break
            }
            display.update(p.stats)
        }
        display.finish(p.stats)
        p.duration = display.elapsed
        return p
    }

    static func report(_ p: Phase, emulator: ProviderEmulator, prices: PriceTable, route: String) -> String {
        let s = p.stats
        var rows: [[String]] = []
        rows.append(["   succeeded", formatCount(s.succeeded)])
        rows.append(["   failed", formatCount(s.failed)])
        let retried = p.retriesByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        rows.append(["   retried", formatCount(s.retries) + (retried.isEmpty ? "" : " (\(retried))")])
        if route == "real-time" {
            rows.append(["   rate limited", "\(formatCount(emulator.rateLimitedCount)) answers were 429 (of \(formatCount(emulator.modelRequestCount)) calls)"])
        }
        if !s.jobs.isEmpty { rows.append(["   jobs", "\(s.jobs.count): " + s.jobs.keys.sorted().joined(separator: ", ")]) }
        let rate = Double(s.completed) / max(0.001, p.duration.seconds)
        rows.append(["   duration", formatDuration(p.duration) + String(format: " (%.0f requests/s)", rate)])
        rows.append(["   tokens", "\(formatCount(s.usage.inputTokens)) in, \(formatCount(s.usage.outputTokens)) out"])
        if let c = s.costs(prices) { rows.append(["   cost", "\(formatDollars(c.actual)) (\(route) prices)"]) }
        if let f = p.failure { rows.append(["   stopped", f.message]) }
        return formatTable(rows)
    }

    /// The rate-limit pauses and jobs of both phases, for the report.
    static func merged(_ a: RunStats, _ b: RunStats) -> RunStats {
        var m = a
        m.rateLimitPauses += b.rateLimitPauses
        m.jobs.merge(b.jobs) { _, new in new }
        return m
    }

    /// Writes results as output lines, buffered (the demo's `--output`).
    final class ResultWriter {
        private let handle: FileHandle
        private var buffer: [UInt8] = []

        init(path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw CommandFailure("\(path): cannot create the output file")
            }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }

        func write(_ result: BatchResult) {
            var r = result
            if r.endedAt == nil { r.endedAt = Date() }
            buffer += r.outputLineBytes()
            buffer.append(0x0A)
            if buffer.count > 1 << 16 { flush() }
        }

        func flush() {
            handle.write(Data(buffer))
            buffer.removeAll(keepingCapacity: true)
        }

        func close() {
            flush()
            try? handle.close()
        }
    }

    /// `count` support tickets, the same on every run.
    static func tickets(_ count: Int) -> [BatchRequest] {
        let products = ["the mobile app", "my invoice", "the checkout page", "my order", "the API", "my password", "the dashboard", "a refund"]
        let problems = [
            "keeps crashing when I open it", "shows a charge I do not recognise", "was delivered to the wrong address",
            "returns a 500 error since this morning", "will not let me log in", "is much slower than last week",
            "arrived damaged", "was billed twice", "has not arrived after two weeks", "times out on large exports",
        ]
        let moods = ["Hi,", "Hello team,", "URGENT:", "Good morning,", "Hey,"]
        let system = "Classify the support ticket into one of: billing, shipping, technical, account. Answer with the label only."
        var state: UInt64 = 0x5eed
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        return (0..<count).map { i in
            let text = "\(moods[next(moods.count)]) \(products[next(products.count)]) \(problems[next(problems.count)]). Ticket #\(10_000 + i)."
            return BatchRequest(
                id: String(format: "ticket-%05d", i),
                chat: ChatRequest(model: model, messages: [.system(system), .user(text)], maxTokens: 5, temperature: 0))
        }
    }
}
