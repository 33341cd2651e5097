#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import BatchKit
public import Foundation
import Synchronization

/// One case of the chaos check: a provider, a `batchkit run` mode and a seed.
public struct ChaosCase: Sendable, Hashable, CustomStringConvertible {
    /// The `--mode` of `batchkit run`.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case realtime, native, hybrid
    }

    public var provider: EmulatedProvider
    public var mode: Mode
    /// Seeds the emulator's fault schedule and the moments the run is killed.
    public var seed: UInt64

    public init(provider: EmulatedProvider, mode: Mode, seed: UInt64) {
        self.provider = provider
        self.mode = mode
        self.seed = seed
    }

    /// Every provider × mode for each seed: 9 cases a seed.
    public static func all(seeds: some Sequence<UInt64>) -> [ChaosCase] {
        seeds.flatMap { seed in
            EmulatedProvider.allCases.flatMap { p in Mode.allCases.map { ChaosCase(provider: p, mode: $0, seed: seed) } }
        }
    }

    public var description: String { "\(provider.rawValue)/\(mode.rawValue)/seed \(seed)" }
}

/// How hard the chaos check pushes, and where the `batchkit` executable is.
public struct ChaosOptions: Sendable {
    /// The `batchkit` executable to run.
    public var batchkit: URL
    /// Requests in the input file.
    public var requests: Int
    /// The emulator's fault schedule (its seed is the case's).
    public var faults: EmulatorFaultSchedule
    /// How long an emulated batch takes.
    public var batchDuration: Duration
    /// Added to every real-time model call.
    public var latency: Duration
    /// At most this many runs are SIGKILLed (the case's seed picks 1...maxKills).
    public var maxKills: Int
    /// A run is killed at a moment drawn uniformly from this range after its start (seconds).
    public var killWindow: ClosedRange<Double>
    /// Runs allowed after the kills before the case counts as not terminating.
    public var runsAfterKills: Int
    /// A single run that takes longer than this is killed and counts as a violation.
    public var runTimeout: Duration
    /// `--deadline` of the hybrid runs (short, so the real-time fallback is exercised).
    public var hybridDeadline: String
    /// `--concurrency` of the real-time and hybrid runs.
    public var concurrency: Int
    /// Where the cases' directories go (each case gets a fresh one, removed when it passes).
    public var workDirectory: URL

    public init(
        batchkit: URL, requests: Int = 24, faults: EmulatorFaultSchedule = .init(rate: 0.15, slowAnswer: .milliseconds(400)),
        batchDuration: Duration = .milliseconds(1200), latency: Duration = .milliseconds(5), maxKills: Int = 3,
        killWindow: ClosedRange<Double> = 0.05...1.5, runsAfterKills: Int = 8, runTimeout: Duration = .seconds(90),
        hybridDeadline: String = "1s", concurrency: Int = 8,
        workDirectory: URL = FileManager.default.temporaryDirectory
    ) {
        self.batchkit = batchkit
        self.requests = requests
        self.faults = faults
        self.batchDuration = batchDuration
        self.latency = latency
        self.maxKills = maxKills
        self.killWindow = killWindow
        self.runsAfterKills = runsAfterKills
        self.runTimeout = runTimeout
        self.hybridDeadline = hybridDeadline
        self.concurrency = concurrency
        self.workDirectory = workDirectory
    }
}

/// What one chaos case did and which promises it broke.
public struct ChaosOutcome: Sendable {
    /// One `batchkit run` of the case.
    public struct Run: Sendable, Hashable {
        /// The exit status, or `nil` when the run was SIGKILLed by the check.
        public var exitStatus: Int32?
        /// Whether the run had `--retry-failed`.
        public var retryFailed: Bool
        /// Whether it was killed for taking longer than ``ChaosOptions/runTimeout``.
        public var timedOut: Bool
        public var seconds: Double
    }

    public var chaosCase: ChaosCase
    public var runs: [Run]
    /// Broken promises, one sentence each: exactly once, paid once, terminates.
    public var violations: [String]
    /// The emulator's bill at the end.
    public var billing: EmulatorBilling
    /// Faults the schedule injected, by kind.
    public var faults: [EmulatorFaultSchedule.Kind: Int]
    /// For each id a job ran that was also answered in real time
    /// (``EmulatorBilling/paidInJobAndRealtime``): in which runs, and why (see ``JobAndRealtime``).
    public var jobAndRealtime: [JobAndRealtime] = []
    /// The case's directory, kept when there are violations or ids paid in a job and in real time
    /// (input, output, jobs file, run logs, `billing.json`).
    public var directory: URL?

    /// One JSON object for the case.
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "provider": .string(chaosCase.provider.rawValue), "mode": .string(chaosCase.mode.rawValue),
            "seed": .int(Int(truncatingIfNeeded: chaosCase.seed)), "runs": .int(runs.count),
            "kills": .int(runs.filter { $0.exitStatus == nil && !$0.timedOut }.count),
            "exits": .array(runs.map { $0.exitStatus.map { .int(Int($0)) } ?? .string("killed") }),
            "jobs": .int(billing.jobs.count),
            "job_and_realtime": .int(billing.paidInJobAndRealtime.count),
            "job_and_realtime_detail": .array(jobAndRealtime.map { .string($0.description) }),
            "faults": .int(faults.values.reduce(0, +)),
            "violations": .array(violations.map(JSONValue.string)),
        ]
        if let directory { o["directory"] = .string(directory.path) }
        return .object(o)
    }
}

/// An id a chaos case paid for in a batch job and in real time, with the runs that did it.
public struct JobAndRealtime: Sendable, Hashable, CustomStringConvertible {
    /// Why it was paid twice.
    public enum Cause: String, Sendable, Hashable {
        /// Answered in real time in a run that was then SIGKILLed, before the answer was
        /// recorded, and run by a job a later run created: a real-time request in flight at a
        /// crash (no provider lets a client find out it was answered), not something hybrid did.
        case realtimeLostAtKill = "real time lost at a kill"
        /// Anything else: a job ran it, and real time answered it again (or both in one run).
        case jobThenRealtime = "job, then real time"
    }

    /// A job that ran the id, and the run (0-based) that created it.
    public struct Job: Sendable, Hashable {
        public var id: String
        public var run: Int
    }

    public var id: String
    public var cause: Cause
    /// The runs (0-based) whose real-time calls answered it.
    public var realtimeRuns: [Int]
    /// The jobs that ran it.
    public var jobs: [Job]

    public var description: String {
        "\(id): \(cause.rawValue) (real time in run \(realtimeRuns.map { String($0 + 1) }.joined(separator: ", ")); "
            + jobs.map { "job \($0.id) created in run \($0.run + 1)" }.joined(separator: ", ") + ")"
    }

    /// Attributes each id of ``EmulatorBilling/paidInJobAndRealtime`` from the bill after each
    /// run (`snapshots[i]`: the bill once run `i` ended and the emulator closed its connections).
    static func attribute(billing: EmulatorBilling, snapshots: [EmulatorBilling], runs: [ChaosOutcome.Run]) -> [JobAndRealtime] {
        func firstRun(_ seen: (EmulatorBilling) -> Bool) -> Int { snapshots.firstIndex(where: seen) ?? snapshots.count }
        return billing.paidInJobAndRealtime.map { id in
            var realtimeRuns: [Int] = []
            var before = 0
            for (i, s) in snapshots.enumerated() {
                let now = s.realtimeCalls[id] ?? 0
                if now > before { realtimeRuns.append(i) }
                before = now
            }
            let jobs = (billing.jobsPerCustomID[id] ?? []).map { job in Job(id: job, run: firstRun { $0.jobs.contains { $0.id == job } }) }
            let killed = realtimeRuns.allSatisfy { $0 < runs.count && runs[$0].exitStatus == nil }
            let lost = !realtimeRuns.isEmpty && killed && jobs.allSatisfy { $0.run > (realtimeRuns.last ?? 0) }
            return JobAndRealtime(id: id, cause: lost ? .realtimeLostAtKill : .jobThenRealtime, realtimeRuns: realtimeRuns, jobs: jobs)
        }
    }
}

/// The chaos check of `batchkit run`: the CLI as a child process against an in-process loopback
/// emulator whose fault schedule breaks a share of all calls, SIGKILLed at seeded random moments
/// and rerun until it exits 0 (`--retry-failed` after an exit of 3, or after a kill that left a
/// failed line). Then three promises are checked:
///
/// - **exactly once**: every id has exactly one line in OUT.jsonl, and it succeeded;
/// - **paid once**: no id ran in two batch jobs (``ProviderEmulator/billing``);
/// - **terminates**: at most ``ChaosOptions/maxKills`` + ``ChaosOptions/runsAfterKills`` runs.
///
/// ```swift
/// let outcome = try await ChaosRun.run(ChaosCase(provider: .openAI, mode: .native, seed: 3), options: options)
/// #expect(outcome.violations.isEmpty, "\(outcome.violations)")
/// ```
public enum ChaosRun {
    /// Runs one case to the end. Throws only when the check itself cannot run (no executable,
    /// no port, no temporary directory).
    public static func run(_ chaosCase: ChaosCase, options: ChaosOptions) async throws -> ChaosOutcome {
        var rng = SplitMix64(seed: chaosCase.seed &* 0x2545_F491_4F6C_DD1D ^ caseSalt(chaosCase))
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

        let dir = options.workDirectory.appendingPathComponent(
            "batchkit-chaos-\(chaosCase.provider.rawValue)-\(chaosCase.mode.rawValue)-\(chaosCase.seed)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let ids = (0..<options.requests).map { "c\($0)" }
        try inputLines(ids).write(to: dir.appendingPathComponent("in.jsonl"))
        let out = dir.appendingPathComponent("out.jsonl")

        let configuration = EmulatorConfiguration(
            latency: options.latency, batchDuration: options.batchDuration, faultSchedule: options.faults, seed: chaosCase.seed)
        let emulator = ProviderEmulator(configuration: configuration)
        let server = try await EmulatorServer.start(emulator: emulator)

        let kills = options.maxKills <= 0 ? 0 : 1 + Int(uniform() * Double(options.maxKills))
        let maxRuns = kills + options.runsAfterKills
        var runs: [ChaosOutcome.Run] = []
        var violations: [String] = []
        var lastExit: Int32?
        var finished = false
        // The bill after each run: which run created each job and produced each real-time answer.
        var snapshots: [EmulatorBilling] = []
        while runs.count < maxRuns {
            let index = runs.count
            let retryFailed = lastExit == 3 || (lastExit == nil && index > 0 && hasFailedLine(out))
            let killAfter: Duration? =
                index < kills
                ? .milliseconds(Int(1000 * (options.killWindow.lowerBound + uniform() * (options.killWindow.upperBound - options.killWindow.lowerBound))))
                : nil
            var arguments = [
                "run", "in.jsonl", "--output", "out.jsonl", "--provider", cliProvider(chaosCase.provider), "--mode",
                chaosCase.mode.rawValue, "--model", model(chaosCase.provider), "--base-url", server.baseURL.absoluteString,
                "--poll-interval", "100ms", "--concurrency", String(options.concurrency), "--progress-interval", "1h",
            ]
            if chaosCase.mode == .hybrid { arguments += ["--deadline", options.hybridDeadline] }
            if retryFailed { arguments.append("--retry-failed") }
            let start = ContinuousClock.now
            let child = try ChaosChild(
                binary: options.batchkit, arguments: arguments, directory: dir, logName: "run-\(index)",
                environment: environment())
            let ending = await child.wait(killAfter: killAfter, timeout: options.runTimeout)
            let seconds = start.duration(to: .now).seconds
            // The requests a killed run left in flight are answered (and billed) after it died:
            // wait (at most 2 s) until the emulator has closed its connections, so that the bill
            // of each run holds what that run sent.
            for _ in 0..<200 where server.connectionCount > 0 { try? await Task.sleep(for: .milliseconds(10)) }
            snapshots.append(emulator.billing)
            switch ending {
            case .exited(let status):
                runs.append(.init(exitStatus: status, retryFailed: retryFailed, timedOut: false, seconds: seconds))
                lastExit = status
            case .killed:
                runs.append(.init(exitStatus: nil, retryFailed: retryFailed, timedOut: false, seconds: seconds))
                lastExit = nil
            case .timedOut:
                runs.append(.init(exitStatus: nil, retryFailed: retryFailed, timedOut: true, seconds: seconds))
                violations.append("terminates: run \(index + 1) did not end within \(options.runTimeout) and was killed")
                lastExit = nil
            }
            if lastExit == 0 {
                finished = true
                break
            }
            if lastExit == 2 {
                violations.append("the check itself is broken: run \(index + 1) exited 2 (usage): \(lastStderr(dir, run: index))")
                break
            }
        }
        if !finished, !violations.contains(where: { $0.hasPrefix("the check") }) {
            violations.append(
                "terminates: no exit 0 after \(runs.count) runs (exits \(runs.map { $0.exitStatus.map(String.init) ?? "killed" }.joined(separator: ", "))); last stderr: \(lastStderr(dir, run: runs.count - 1))")
        }
        await server.shutdown()

        if finished { violations += exactlyOnce(output: out, ids: ids) }
        let billing = emulator.billing
        let twice = billing.paidTwice.sorted { $0.key < $1.key }
        if !twice.isEmpty {
            let examples = twice.prefix(3).map { "\($0.key) in \($0.value.joined(separator: " and "))" }
            violations.append(
                "paid once: \(twice.count) id(s) ran in more than one job (\(examples.joined(separator: "; "))\(twice.count > 3 ? "; …" : ""))")
        }
        // A case that paid for an id in a job and in real time keeps its directory too (with the
        // bill), so it can be looked into; it is not a violation.
        let keep = !violations.isEmpty || !billing.paidInJobAndRealtime.isEmpty
        if keep { try? billing.json.serialized().write(to: dir.appendingPathComponent("billing.json")) }
        if !keep { try? FileManager.default.removeItem(at: dir) }
        var outcome = ChaosOutcome(
            chaosCase: chaosCase, runs: runs, violations: violations, billing: billing,
            faults: emulator.scheduledFaultCounts, directory: keep ? dir : nil)
        outcome.jobAndRealtime = JobAndRealtime.attribute(billing: billing, snapshots: snapshots, runs: runs)
        return outcome
    }

    // MARK: - Checks

    /// The "exactly once" check of an output file: every id in `ids` has exactly one line, and
    /// it succeeded. Returns one sentence per problem (none when the promise holds).
    public static func exactlyOnce(output out: URL, ids: [String]) -> [String] {
        guard let data = try? Data(contentsOf: out) else { return ["exactly once: \(out.lastPathComponent) is missing"] }
        var count: [String: Int] = [:]
        var failed: [String] = []
        var broken = 0
        for line in data.split(separator: 0x0A) where !line.isEmpty {
            guard let json = try? JSONValue(parsing: Data(line)), let id = json["custom_id"]?.stringValue else {
                broken += 1
                continue
            }
            count[id, default: 0] += 1
            let ok = json["response"]?["status_code"]?.intValue == 200 && (json["error"] == nil || json["error"] == .null)
            if !ok { failed.append(id) }
        }
        var problems: [String] = []
        if broken > 0 { problems.append("exactly once: \(broken) line(s) of OUT.jsonl are not output lines") }
        let missing = ids.filter { count[$0] == nil }
        if !missing.isEmpty { problems.append("exactly once: \(missing.count) id(s) have no line (\(missing.prefix(5).joined(separator: ", ")))") }
        let repeated = count.filter { $0.value > 1 }.keys.sorted()
        if !repeated.isEmpty {
            problems.append("exactly once: \(repeated.count) id(s) have several lines (\(repeated.prefix(5).joined(separator: ", ")))")
        }
        if !failed.isEmpty {
            problems.append("exactly once: \(failed.count) line(s) are failures after exit 0 (\(failed.prefix(5).joined(separator: ", ")))")
        }
        return problems
    }

    static func hasFailedLine(_ out: URL) -> Bool {
        guard let data = try? Data(contentsOf: out) else { return false }
        return data.split(separator: 0x0A).contains { line in
            guard let json = try? JSONValue(parsing: Data(line)) else { return false }
            return json["response"]?["status_code"]?.intValue != 200
        }
    }

    // MARK: - Setup

    static func caseSalt(_ c: ChaosCase) -> UInt64 {
        let p = UInt64(EmulatedProvider.allCases.firstIndex(of: c.provider) ?? 0)
        let m = UInt64(ChaosCase.Mode.allCases.firstIndex(of: c.mode) ?? 0)
        return (p &* 31 &+ m &+ 1) &* 0x9E37_79B9_7F4A_7C15
    }

    static func inputLines(_ ids: [String]) -> Data {
        var text = ""
        for (i, id) in ids.enumerated() {
            text += #"{"custom_id":"\#(id)","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Chaos ticket \#(i)"}],"max_tokens":8}}"#
            text += "\n"
        }
        return Data(text.utf8)
    }

    static func cliProvider(_ p: EmulatedProvider) -> String {
        switch p {
        case .openAI: return "openai"
        case .anthropic: return "anthropic"
        case .gemini: return "gemini"
        }
    }

    static func model(_ p: EmulatedProvider) -> String {
        switch p {
        case .openAI: return "gpt-4o-mini"
        case .anthropic: return "claude-haiku-4-5"
        case .gemini: return "gemini-2.5-flash"
        }
    }

    static func environment() -> [String: String] {
        var env: [String: String] = [:]
        let parent = ProcessInfo.processInfo.environment
        for name in ["PATH", "HOME", "TMPDIR", "LANG"] { env[name] = parent[name] }
        env["OPENAI_API_KEY"] = "sk-chaos-0001"
        env["ANTHROPIC_API_KEY"] = "ak-chaos-0001"
        env["GEMINI_API_KEY"] = "gk-chaos-0001"
        return env
    }

    /// The last few lines a run wrote to stderr (progress lines left out).
    static func lastStderr(_ dir: URL, run: Int) -> String {
        guard run >= 0, let data = try? Data(contentsOf: dir.appendingPathComponent("run-\(run).err")) else { return "" }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { !$0.hasPrefix("progress:") }
        return lines.suffix(3).joined(separator: " | ")
    }
}

/// One `batchkit` child process with its output in files, awaited without blocking a thread.
final class ChaosChild: Sendable {
    enum Ending: Sendable {
        case exited(Int32)
        case killed
        case timedOut
    }

    /// `Process` is not `Sendable`; it is only touched to start it and read its pid, both here,
    /// before the box is shared. The exit status arrives through `state`.
    private struct ProcessBox: @unchecked Sendable { let process: Process }

    private let box: ProcessBox
    private let pid: Int32
    /// The exit, set by the termination handler, and the tasks waiting for it.
    private final class ExitState: Sendable {
        let value = Mutex<(status: Int32?, signalled: Bool, waiters: [CheckedContinuation<Void, Never>])>((nil, false, []))
    }

    private let exitState = ExitState()

    init(binary: URL, arguments: [String], directory: URL, logName: String, environment: [String: String]) throws {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = environment
        let outURL = directory.appendingPathComponent(logName + ".out")
        let errURL = directory.appendingPathComponent(logName + ".err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        box = ProcessBox(process: process)
        let exitState = self.exitState
        process.terminationHandler = { p in
            let signalled = p.terminationReason == .uncaughtSignal
            let waiters = exitState.value.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.status = p.terminationStatus
                s.signalled = signalled
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
        try process.run()
        pid = process.processIdentifier
    }

    private func exit() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = exitState.value.withLock { s -> Bool in
                if s.status != nil { return true }
                s.waiters.append(c)
                return false
            }
            if done { c.resume() }
        }
    }

    /// Waits for the exit; SIGKILLs the child `killAfter` its start (a chaos kill) or at `timeout`.
    func wait(killAfter: Duration?, timeout: Duration) async -> Ending {
        enum Event { case exited, killTime, timeout }
        let first = await withTaskGroup(of: Event.self) { group in
            group.addTask {
                await self.exit()
                return .exited
            }
            if let killAfter {
                group.addTask {
                    try? await Task.sleep(for: killAfter)
                    return Task.isCancelled ? .exited : .killTime
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return Task.isCancelled ? .exited : .timeout
            }
            let first = await group.next() ?? .exited
            if first != .exited { _ = kill(pid, SIGKILL) }
            group.cancelAll()
            await group.waitForAll()
            return first
        }
        let (status, signalled) = exitState.value.withLock { ($0.status ?? -1, $0.signalled) }
        switch first {
        case .exited: return .exited(status)
        case .killTime: return signalled && status == SIGKILL ? .killed : .exited(status)
        case .timeout: return .timedOut
        }
    }
}
