import BatchKit
import BatchKitTesting
import Foundation

/// Scenario `chaos`: the chaos check of `batchkit run` (``ChaosRun``) for every provider × mode
/// (realtime, native, hybrid) and `--seeds N` seeds (default 30: 270 cases). Each case runs the
/// `batchkit` executable next to this one against a loopback emulator that faults a share of all
/// calls, SIGKILLs it at seeded moments and reruns it until it exits 0, then checks exactly once,
/// paid once and termination. Prints one JSON line:
///
/// `{"scenario":"chaos","cases":270,"violations":0,"failing_cases":0,...}`
///
/// and one line on stderr per violation, naming the case and keeping its directory.
///
/// Options (or environment): `--seeds N` (`CHAOS_SEEDS`), `--first-seed S` (`CHAOS_FIRST_SEED`,
/// default 1), `--parallel P` (`CHAOS_PARALLEL`, default 3 cases at once), `--providers
/// openai,anthropic,gemini`, `--modes realtime,native,hybrid`, `--requests N` (default 24),
/// `--fault-rate P` (default 0.15), `--batchkit PATH` (`BATCHKIT_BIN`).
func runChaosBenchmark() async throws {
    let seeds = Int(benchOption("seeds", env: "CHAOS_SEEDS") ?? "") ?? 30
    let firstSeed = UInt64(benchOption("first-seed", env: "CHAOS_FIRST_SEED") ?? "") ?? 1
    let parallel = max(1, Int(benchOption("parallel", env: "CHAOS_PARALLEL") ?? "") ?? 3)
    let providers = try listOption("providers", EmulatedProvider.allCases) { EmulatedProvider(rawValue: $0) }
    let modes = try listOption("modes", ChaosCase.Mode.allCases) { ChaosCase.Mode(rawValue: $0) }
    guard let binary = batchkitExecutable() else {
        throw BenchFailure("the batchkit executable was not found next to batchkit-bench (or in --batchkit / BATCHKIT_BIN)")
    }
    var options = ChaosOptions(batchkit: binary)
    if let n = benchOption("requests", env: "CHAOS_REQUESTS").flatMap(Int.init) { options.requests = n }
    if let rate = benchOption("fault-rate", env: "CHAOS_FAULT_RATE").flatMap(Double.init) { options.faults.rate = rate }

    let cases = (0..<UInt64(max(0, seeds))).flatMap { i in
        providers.flatMap { p in modes.map { ChaosCase(provider: p, mode: $0, seed: firstSeed + i) } }
    }
    chatter("chaos: \(cases.count) cases, \(parallel) at once, \(options.requests) requests each, fault rate \(options.faults.rate)")
    let chosen = options
    let start = ContinuousClock.now
    var outcomes: [ChaosOutcome] = []
    try await withThrowingTaskGroup(of: ChaosOutcome.self) { group in
        var next = 0
        func startNext() {
            guard next < cases.count else { return }
            let c = cases[next]
            next += 1
            group.addTask { try await ChaosRun.run(c, options: chosen) }
        }
        for _ in 0..<parallel { startNext() }
        while let outcome = try await group.next() {
            outcomes.append(outcome)
            let mark = outcome.violations.isEmpty ? "ok" : "VIOLATION"
            chatter(
                "chaos: [\(outcomes.count)/\(cases.count)] \(outcome.chaosCase): \(mark), \(outcome.runs.count) runs, \(outcome.billing.jobs.count) jobs")
            for v in outcome.violations { chatter("chaos:   \(outcome.chaosCase): \(v)") }
            if let dir = outcome.directory { chatter("chaos:   kept \(dir.path)") }
            startNext()
        }
    }
    outcomes.sort { ($0.chaosCase.seed, $0.chaosCase.description) < ($1.chaosCase.seed, $1.chaosCase.description) }

    let failing = outcomes.filter { !$0.violations.isEmpty }
    var byGroup: [String: JSONValue] = [:]
    for p in providers {
        for m in modes {
            let group = outcomes.filter { $0.chaosCase.provider == p && $0.chaosCase.mode == m }
            byGroup["\(p.rawValue)/\(m.rawValue)"] = .int(group.filter { !$0.violations.isEmpty }.count)
        }
    }
    func count(_ prefix: String) -> Int { outcomes.reduce(0) { $0 + $1.violations.filter { $0.hasPrefix(prefix) }.count } }
    printJSONLine([
        "scenario": "chaos", "cases": .int(outcomes.count),
        "violations": .int(outcomes.reduce(0) { $0 + $1.violations.count }),
        "failing_cases": .int(failing.count),
        "exactly_once": .int(count("exactly once")), "paid_once": .int(count("paid once")),
        "terminates": .int(count("terminates")),
        "failing_cases_by_provider_mode": .object(byGroup),
        "runs": .int(outcomes.reduce(0) { $0 + $1.runs.count }),
        "kills": .int(outcomes.reduce(0) { $0 + $1.runs.filter { $0.exitStatus == nil && !$0.timedOut }.count }),
        "max_runs": .int(outcomes.map(\.runs.count).max() ?? 0),
        "faults_injected": .int(outcomes.reduce(0) { $0 + $1.faults.values.reduce(0, +) }),
        "jobs": .int(outcomes.reduce(0) { $0 + $1.billing.jobs.count }),
        // Not a violation of "no id billed by two jobs", but paid twice all the same: ids a job ran
        // that were also answered in real time (hybrid), and the cases where it happened.
        "job_and_realtime_ids": .int(outcomes.reduce(0) { $0 + $1.billing.paidInJobAndRealtime.count }),
        // Of those, the ids answered in real time by a run that was then killed, before the answer
        // was recorded, and run by a job of a later run (a real-time request in flight at a crash).
        "job_and_realtime_lost_at_kill": .int(outcomes.reduce(0) { $0 + $1.jobAndRealtime.filter { $0.cause == .realtimeLostAtKill }.count }),
        "job_and_realtime_detail": .array(outcomes.flatMap { o in o.jobAndRealtime.map { .string("\(o.chaosCase): \($0)") } }),
        "job_and_realtime_cases": .array(
            outcomes.filter { !$0.billing.paidInJobAndRealtime.isEmpty }.map { .string($0.chaosCase.description) }),
        "requests_per_case": .int(options.requests), "fault_rate": .double(options.faults.rate),
        "seeds": .string("\(firstSeed)...\(firstSeed + UInt64(max(1, seeds)) - 1)"),
        "seconds": .double(round3(start.duration(to: .now).seconds)),
        "failing": .array(failing.map(\.json)),
    ])
}

/// `--name a,b` parsed against the known values.
private func listOption<T>(_ name: String, _ all: [T], parse: (String) -> T?) throws -> [T] {
    guard let text = benchOption(name, env: "CHAOS_" + name.uppercased()) else { return all }
    return try text.split(separator: ",").map { word in
        guard let value = parse(String(word)) else { throw BenchFailure("--\(name): unknown value '\(word)'") }
        return value
    }
}

/// The `batchkit` executable: `--batchkit PATH`, `BATCHKIT_BIN`, or the one beside this executable.
private func batchkitExecutable() -> URL? {
    if let path = benchOption("batchkit", env: "BATCHKIT_BIN") { return URL(fileURLWithPath: path) }
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("batchkit")
    return FileManager.default.isExecutableFile(atPath: beside.path) ? beside : nil
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
