import BatchKit
import Foundation
import Synchronization

/// `batchkit run`: an OpenAI batch JSONL file in, OpenAI batch output JSONL out, in real time,
/// through the provider's batch API, or both (hybrid). The output is also the journal: rerunning
/// the same command resumes.
enum RunCommand: Subcommand {
    static let name = "run"
    static let summary = "run a JSONL file of requests (real-time, native batch or hybrid); rerun to resume"
    static let usage = """
        usage: batchkit run INPUT.jsonl --output OUT.jsonl [--mode realtime|native|hybrid]
                            [--provider openai|anthropic|gemini|azure] [--base-url URL] [--model M]
                            [--api-version V]
                            [--concurrency N] [--rpm N] [--tpm N] [--deadline 2h] [--shard i/n|auto]
                            [--api-key-env NAME] [--retry-failed] [--max-consecutive-failures N]
                            [--report REPORT.html] [--max-cost USD] [--cache DIR | --no-cache]

        Reads OpenAI batch input lines ({"custom_id","method","url","body"}), lazily, and writes one
        OpenAI batch output line per request to OUT.jsonl as each finishes. OUT.jsonl is also the
        journal: run the same command again (after a crash or kill -9 too) and the ids already in it
        are skipped. In native mode the submitted jobs are kept in OUT.jsonl.jobs.json (the ids each
        holds in OUT.jsonl.jobs/, removed once all its results succeeded) and a rerun re-attaches to
        them instead of submitting again; chunks are spooled in OUT.jsonl.spool/ until their results
        are in. Keep OUT.jsonl with OUT.jsonl.jobs.json. For Anthropic and Gemini the chat bodies are
        translated.

          --output FILE        where results go (required)
          --mode M             realtime (default), native (the provider's batch API, half price)
                               or hybrid (batch first; real time for what misses --deadline)
        \(ProviderOptions.helpText)
          --model M            use model M for every line
          --concurrency N      requests in flight at once (realtime/hybrid, default 16)
          --rpm N              requests per minute (default: learnt from the server's headers)
          --tpm N              tokens per minute
          --deadline D         native: stop waiting after D (jobs keep running, their requests stay
                               pending; exit status 4; rerun to collect them);
                               hybrid: switch what is unfinished to real time after D (default 1h)
        \(ShardOption.helpText)
          --poll-interval D    native: first wait between status polls (default 10s)
          --prices FILE        JSON price table merged over the built-in prices
          --max-cost USD       spend at most USD in this run: a request (realtime) or job (native)
                               whose estimated cost (prompt + max_tokens) could take spending over
                               it is not sent and fails as budget_exceeded (hybrid: a request goes
                               to the batch if its batch estimate fits, real time gets what the
                               batch left); rerun with a larger --max-cost and --retry-failed to
                               run those. Every model needs a price (built in or from --prices);
                               divided by n with --shard
        \(cacheHelpText)
          --retry-failed       run again the ids whose last result in OUT.jsonl failed
          --max-consecutive-failures N
                               stop starting requests once N results in a row failed the same
                               way (wrong key, no access, unknown model or endpoint, untrusted
                               certificate, the same refusal); 0 never stops (default 20).
                               Native and hybrid runs also ask the provider's models endpoint
                               about the first line's model before creating any job
          --report FILE        at the end (also of an interrupted run) write the HTML report of
                               OUT.jsonl, with this run's rate-limit pauses (see 'batchkit report')
          --progress-interval D
                               between progress lines when stderr is not a terminal (default 5s)

        Before each native job is created its intent is recorded in OUT.jsonl.jobs.json; a rerun (or a
        create call whose answer was lost) looks for the job among the provider's recent jobs and
        adopts it instead of creating another. With --retry-failed, requests of a job that is running
        or completed are collected from it, never submitted again. A --mode realtime run over the same
        output sends none of the requests such jobs hold (exit 4): collect them in native or hybrid mode.

        Durations: 250ms, 90s, 30m, 2h, 1d. Exit status: 0 when every request succeeded, 3 when the
        run finished but some requests failed, 4 when native jobs are still running (rerun to collect),
        5 when the run stopped because every request failed the same way (see
        --max-consecutive-failures; fix the cause and rerun with --retry-failed), 1 on an error,
        2 on a usage mistake.
        """
    static let spec = ArgumentSpec(
        options: ProviderOptions.optionNames.union([
            "output", "mode", "model", "concurrency", "rpm", "tpm", "deadline", "shard", "shards", "poll-interval", "prices",
            "progress-interval", "max-consecutive-failures", "report", "max-cost", "cache", "cache-max-mb",
        ]),
        flags: ["retry-failed", "no-cache"], maxPositional: 1)

    enum Mode: String, CaseIterable {
        case realtime, native, hybrid
    }

    /// The run itself; ``run(_:)`` calls it with the signal handling in place.
    static func execute(_ arguments: Arguments, interruption: Interruption) async throws -> Int32 {
        let inputPath = try arguments.requiredPositional("INPUT.jsonl")
        guard let outputPath = arguments.string("output") else { throw UsageError("missing --output OUT.jsonl") }
        let modeText = arguments.string("mode") ?? "realtime"
        guard let mode = Mode(rawValue: modeText) else {
            throw UsageError("unknown mode '\(modeText)' (expected realtime, native or hybrid)")
        }
        let shard = try ShardOption.parse(arguments, environment: ProcessInfo.processInfo.environment)?.shard
        let shardCount = shard?.count ?? 1
        let concurrency = try arguments.int("concurrency", in: 1...100_000) ?? 16
        let maxConsecutiveFailures = try arguments.int("max-consecutive-failures", in: 0...Int.max) ?? 20
        let rpm = try arguments.int("rpm", in: 1...Int.max).map { max(1, $0 / shardCount) }
        let tpm = try arguments.int("tpm", in: 1...Int.max).map { max(1, $0 / shardCount) }
        let deadline = try arguments.duration("deadline")
        if deadline != nil, mode == .realtime { throw UsageError("--deadline applies to --mode native or hybrid") }
        let pollInterval = try arguments.duration("poll-interval") ?? .seconds(10)
        let progressInterval = try arguments.duration("progress-interval") ?? .seconds(5)
        let model = arguments.string("model")
        if let model, model.isEmpty { throw UsageError("option '--model' needs a non-empty value") }
        let prices = try loadPrices(arguments)
        let provider = try ProviderOptions(arguments)
        let maxCost = try arguments.double("max-cost").map { $0 / Double(shardCount) }
        let cache = try responseCache(arguments)

        // 1. Check the whole input before anything is sent or written.
        let inputURL = URL(fileURLWithPath: inputPath)
        let outputURL = URL(fileURLWithPath: outputPath)
        guard inputURL.standardizedFileURL.path != outputURL.standardizedFileURL.path else {
            throw UsageError("--output must not be the input file")
        }
        let reader = BatchRequestFileReader(url: inputURL, displayName: inputPath)
        var shardIDs = 0
        /// Models without a price, when a budget needs every price.
        var unpriced = Set<String>()
        do throws(BatchError) {
            try reader.validate { line in
                guard shard?.contains(line.request.id) ?? true else { return }
                shardIDs += 1
                if maxCost != nil {
                    let name = model ?? line.request.model ?? "(none)"
                    if prices.price(for: name) == nil { unpriced.insert(name) }
                }
            }
        } catch {
            throw CommandFailure(error)
        }
        if !unpriced.isEmpty {
            throw CommandFailure(
                "--max-cost needs the price of every model, and there is none for: \(unpriced.sorted().joined(separator: ", ")) "
                    + "(give prices with --prices FILE); nothing was sent")
        }

        // 2. Open the output (the journal), repairing a line cut by a crash.
        let journal: Journal
        do throws(BatchError) {
            journal = try Journal(url: outputURL, retryFailed: arguments.flag("retry-failed"))
        } catch {
            throw CommandFailure(error)
        }
        if let repair = journal.repair {
            printError("batchkit run: \(outputPath):\(repair.line): repaired (\(repair.reason))")
        }
        let alreadyDone = journal.finishedCount { shard?.contains($0) ?? true }
        let pending = max(0, shardIDs - alreadyDone)

        // Requests held by native jobs that may still deliver them (never submitted again).
        let held = Mutex<Set<String>>([])
        let transform: @Sendable (BatchRequest) -> BatchRequest? = { request in
            guard shard?.contains(request.id) ?? true else { return nil }
            guard !held.withLock({ $0.contains(request.id) }) else { return nil }
            guard let model else { return request }
            return request.withModel(model)
        }
        let readError = Mutex<BatchError?>(nil)
        let requests = reader.requests(transform: transform, onError: { e in readError.withLock { $0 = e } })

        let display = ProgressDisplay(total: pending, interval: progressInterval, prices: prices)
        var stats = RunStats()
        var failure: BatchError?
        /// Native jobs left running (at the deadline), and the requests they hold.
        var stillRunning: (jobs: [String], requests: Int)?
        /// In real time: jobs of an earlier native or hybrid run, and the requests they hold.
        var heldByNativeJobs: (jobs: [String], requests: Int)?
        /// Native requests that failed inside a job that completed (not submitted again).
        var finalFailures = 0
        /// The native jobs (native and hybrid modes).
        var nativeJobFile: JobFile?
        let defaultModel = model

        let runStart = ContinuousClock.now
        switch mode {
        case .realtime:
            // Requests native jobs of an earlier run may still deliver, or ran: never sent here.
            let hold = try await realtimeHold(outputPath: outputPath, provider: provider, journal: journal)
            if !hold.ids.isEmpty {
                held.withLock { $0 = hold.ids }
                let count = hold.ids.lazy.filter { shard?.contains($0) ?? true }.count
                if count > 0 { heldByNativeJobs = (hold.jobs, count) }
            }
            let processor = ConcurrentProcessor(
                client: provider.client(),
                configuration: .init(
                    maxConcurrency: concurrency, requestsPerMinute: rpm, tokensPerMinute: tpm, priceTable: prices,
                    maxConsecutiveFailures: maxConsecutiveFailures, maxCost: maxCost))
            failure = await drain(
                processor.withCache(cache, provider: cacheName(provider)).stopping(on: interruption).journaled(journal).processAsync(requests), stats: &stats, display: display,
                model: defaultModel)

        case .native, .hybrid:
            let jobFile = try JobFile(url: URL(fileURLWithPath: outputPath + ".jobs.json"), provider: provider.provider.rawValue)
            nativeJobFile = jobFile
            try checkCollectedJobs(jobFile: jobFile, journal: journal, outputPath: outputPath)
            let backend = RecordingBackend(base: provider.backend(), jobFile: jobFile)
            let spool = try spoolDirectory(outputPath: outputPath)
            let native = NativeBatchProcessor(
                backend: backend,
                configuration: .init(
                    pollInterval: pollInterval, maxWait: mode == .native ? deadline : nil,
                    // A signal cancels the run: jobs are left running (recorded in the jobs file)
                    // for the rerun to collect. Hybrid cancels its jobs at the deadline itself.
                    cancelsRemoteJobsOnCancellation: false, priceTable: prices,
                    reportsUnfinishedAtMaxWait: false, maxCost: maxCost, spoolDirectory: spool
                ).withLedger(jobFile))
            defer { removeSpoolDirectoryIfEmpty(spool) }

            // Jobs an earlier run may have created without recording them, and duplicates.
            let (unsettled, unsettledError) = try await resolveOpenIntents(jobFile: jobFile, backend: backend)
            try await cancelOrphans(jobFile: jobFile, backend: backend, isCovered: { journal.succeeded($0) == true })

            // Re-attach to jobs of an earlier run that hold ids without a successful result in the
            // output: a job that ran them is where their results come from (a success replaces a
            // recorded failure, e.g. of a download that broke); they are never run again.
            let unfinished = try jobFile.entries.filter { entry in
                try jobFile.contains(in: entry) { journal.succeeded($0) != true }
            }
            if !unfinished.isEmpty {
                printError(
                    "batchkit run: re-attaching to \(unfinished.count) job(s) of an earlier run: "
                        + unfinished.map(\.id).joined(separator: ", "))
                // Each job's ids, packed (about their own size), read from its ids file.
                var expecting: [String: PackedIDs] = [:]
                for entry in unfinished where expecting[entry.id] == nil { expecting[entry.id] = try jobFile.ids(of: entry) }
                if mode == .native {
                    failure = await drainAttached(
                        native.attach(unfinished.map(\.id), expectingPacked: expecting), journal: journal, keepFailures: true,
                        stats: &stats, display: display, model: defaultModel)
                } else {
                    // Hybrid: wait for the old jobs no longer than the deadline, keep only what
                    // succeeded; the rest runs again below (batch first, then real time).
                    var config = native.configuration
                    config.maxWait = deadline ?? .seconds(3600)
                    config.resubmit = .none
                    let collector = NativeBatchProcessor(backend: native.backend, configuration: config)
                    if let e = await drainAttached(
                        collector.attach(unfinished.map(\.id), expectingPacked: expecting), journal: journal, keepFailures: false,
                        stats: &stats, display: display, model: defaultModel)
                    {
                        printError("batchkit run: \(e.message); cancelling the earlier jobs and running the rest again")
                        let open = unfinished.filter { !(jobFile.status(of: $0.id)?.isTerminal ?? false) }
                        for entry in open { _ = try? await collector.cancel(entry.id) }
                        // Collect what ran before the cancellation took effect: it is paid for.
                        var grace = config
                        grace.maxWait = .seconds(600)
                        let drainer = NativeBatchProcessor(backend: native.backend, configuration: grace)
                        _ = await drainAttached(
                            drainer.attach(open.map(\.id), expectingPacked: expecting), journal: journal, keepFailures: false,
                            stats: &stats, display: display, model: defaultModel)
                    }
                }
            }
            let holding = try heldIDs(jobFile: jobFile, journal: journal, unsettled: unsettled, includingCompleted: mode == .native)
            held.withLock { $0 = holding }
            if failure == nil, maxConsecutiveFailures > 0 {
                failure = await checkFirstModel(requests, backend: provider.backend())
            }
            if failure == nil {
                if mode == .native {
                    failure = await drain(
                        native.withCache(cache, provider: cacheName(provider)).stopping(on: interruption).journaled(journal).processAsync(requests), stats: &stats, display: display,
                        model: defaultModel)
                } else {
                    failure = try await runHybrid(
                        native: native, provider: provider, deadline: deadline ?? .seconds(3600), concurrency: concurrency,
                        rpm: rpm, tpm: tpm, maxConsecutiveFailures: maxConsecutiveFailures, prices: prices, maxCost: maxCost, cache: cache, journal: journal,
                        requests: requests, stats: &stats,
                        display: display, model: defaultModel, interruption: interruption)
                }
            }
            try await cancelOrphans(jobFile: jobFile, backend: backend, isCovered: { journal.succeeded($0) == true })
            let running = try runningJobs(jobFile: jobFile, journal: journal)
            let inShard: (String) -> Bool = { shard?.contains($0) ?? true }
            // Counted, not collected: at a million requests the ids would not fit the budget.
            var waitingCount = unsettled.lazy.filter(inShard).count
            try forEachUnsucceededID(jobFile: jobFile, journal: journal, in: { holds($0, includingCompleted: false) }) { id in
                if inShard(id), !unsettled.contains(id) { waitingCount += 1 }
            }
            let waiting = (isEmpty: waitingCount == 0, count: waitingCount)
            if failure == nil, let unsettledError { failure = BatchError(.network, unsettledError) }
            if !running.isEmpty || (failure?.code == .timeout && mode == .native) {
                stillRunning = (running, waiting.count)
            } else if failure == nil, !waiting.isEmpty {
                failure = BatchError(.network, "\(waiting.count) request(s) are held by jobs whose state is unknown; rerun to collect them")
            }
            if mode == .native, arguments.flag("retry-failed") {
                // Failures inside jobs that completed are final: running them again would pay twice.
                try forEachUnsucceededID(jobFile: jobFile, journal: journal, in: { $0 == .completed }) { id in
                    if inShard(id) { finalFailures += 1 }
                }
            }
            // Ids files of jobs whose results are all in (see collectFinishedJobs for the order).
            collectFinishedJobs(jobFile: jobFile, journal: journal)
        }
        display.finish(stats)
        let skipped = journal.skippedCount
        let skippedFailures = journal.skippedFailureCount
        journal.close()
        if arguments.flag("retry-failed"), interruption.signal == nil {
            // Failed ids that ran again now have two lines; keep the last one of each.
            do {
                try await OutputCompaction.compact(outputURL)
            } catch {
                printError("batchkit run: \(outputPath): could not drop superseded lines: \(error)")
            }
        }

        if failure == nil, let e = readError.withLock({ $0 }) { failure = e }
        let duration = runStart.duration(to: .now)
        printLine(
            ProgressDisplay.summary(
                stats, skipped: skipped, duration: duration, prices: prices,
                mode: mode.rawValue + (shard.map { " (shard \($0))" } ?? ""), output: outputPath, budget: maxCost))
        if let reportPath = arguments.string("report") {
            await writeRunReport(to: reportPath, outputPath: outputPath, stats: stats, prices: prices)
        }
        if let signal = interruption.signal {
            printResumeHint(signal: signal, mode: mode, outputPath: outputPath, journal: journal, jobFile: nativeJobFile)
            return 128 + signal
        }
        if let stillRunning {
            printError(
                "batchkit run: \(stillRunning.jobs.count) job(s) still running (\(stillRunning.jobs.joined(separator: ", "))), "
                    + "holding \(stillRunning.requests) request(s); they stay pending in \(outputPath). "
                    + "Run the same command again to collect them (nothing is submitted twice).")
            return 4
        }
        if let heldByNativeJobs {
            printError(
                "batchkit run: \(heldByNativeJobs.requests) request(s) were not sent in real time: native job(s) of an earlier run "
                    + "hold them (\(heldByNativeJobs.jobs.joined(separator: ", "))), running or with results not yet collected, "
                    + "and sending them again would pay twice. Collect them with --mode native (or hybrid) and the same "
                    + "--output; or cancel the jobs (batchkit cancel) and rerun once they have ended.")
            return 4
        }
        if let failure, failure.code == .systematicFailure {
            printSystematicFailure(failure, stats: stats, pending: pending, outputPath: outputPath)
            return systematicFailureStatus
        }
        if let failure {
            throw CommandFailure("the run stopped: \(failure.message)")
        }
        if finalFailures > 0 {
            printError(
                "batchkit run: \(finalFailures) request(s) failed inside native jobs that completed; they are not submitted "
                    + "again (that would pay twice): their errors are in \(outputPath)")
            if stats.failed == 0 { return 3 }
        }
        if stats.failed > 0 {
            printError("batchkit run: \(stats.failed) request(s) failed; their errors are in \(outputPath) (rerun with --retry-failed to try them again)")
            return 3
        }
        if skippedFailures > 0 {
            // Exit 0 says every request succeeded: failed lines of an earlier run that this run
            // skipped have not.
            printError(
                "batchkit run: \(skippedFailures) request(s) failed in an earlier run; their errors are in \(outputPath) "
                    + "(rerun with --retry-failed to try them again)")
            return 3
        }
        return 0
    }

    /// Reads `--prices`.
    static func loadPrices(_ arguments: Arguments) throws -> PriceTable {
        guard let path = arguments.string("prices") else { return .defaults }
        do throws(BatchError) {
            return PriceTable.defaults.merging(try PriceTable(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CommandFailure(error)
        }
    }

    /// Consumes a journaled run's events. Returns the run's error when it failed.
    static func drain(
        _ stream: BatchEventStream, stats: inout RunStats, display: ProgressDisplay, model: String?
    ) async -> BatchError? {
        var failure: BatchError?
        for await event in stream {
            stats.record(event, defaultModel: model)
            switch event {
            case .submitted(let job):
                printError("batchkit run: submitted job \(job.id) (\(job.requestCount) requests)")
            case .failed(let e): failure = e
            default: break
            }
            display.update(stats)
        }
        return failure
    }

    /// Consumes `attach` events, recording in the journal each result it does not hold yet.
    ///
    /// - Parameter keepFailures: record failed results too (native), or only successes (hybrid:
    ///   the others run again).
    static func drainAttached(
        _ stream: BatchEventStream, journal: Journal, keepFailures: Bool, stats: inout RunStats, display: ProgressDisplay,
        model: String?
    ) async -> BatchError? {
        for await event in stream {
            switch event {
            case .item(let result):
                // A new result, or a success replacing a recorded failure (a download that broke,
                // a creation that looked failed): the job ran it, this is its result.
                let recorded = journal.succeeded(result.id)
                guard recorded == nil || (recorded == false && result.isSuccess), keepFailures || result.isSuccess else {
                    continue
                }
                // Cut short by a signal: not a result; the rerun collects it.
                if result.error?.code == .cancelled, Task.isCancelled { continue }
                do throws(BatchError) { try journal.append(result) } catch { return error }
                stats.record(event, defaultModel: model)
            case .failed(let e):
                return e
            default:
                stats.record(event, defaultModel: model)
            }
            display.update(stats)
        }
        return nil
    }
}

extension BatchRequest {
    /// The same request for another model.
    func withModel(_ model: String) -> BatchRequest {
        var r = self
        switch r.body {
        case .chat(var chat):
            chat.model = model
            r.body = .chat(chat)
        case .embedding(var e):
            e.model = model
            r.body = .embedding(e)
        case .raw(var raw):
            if case .object(var o) = raw.body {
                o["model"] = .string(model)
                raw.body = .object(o)
            }
            r.body = .raw(raw)
        }
        return r
    }
}
