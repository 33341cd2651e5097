import Foundation

// batchkit-bench [SCENARIO...]: runs the named scenarios (all of them when none is named); each
// prints one JSON line on stdout, chatter goes to stderr. Add a scenario as a file with one
// `func run...Benchmark() async` and a case here.

let scenarios = ["executor", "memory", "emulator", "makespan", "makespan-tls", "ratelimit", "native", "hybrid", "jsonl", "report", "chaos"]
/// Scenarios left out when none is named (minutes long).
let onlyOnRequest: Set<String> = ["chaos", "makespan-tls", "hybrid"]
let wanted = CommandLine.arguments.count > 1
    ? Array(CommandLine.arguments.dropFirst().prefix { !$0.hasPrefix("--") }) : scenarios.filter { !onlyOnRequest.contains($0) }
for name in wanted {
    switch name {
    case "executor": await runExecutorBenchmark()
    case "memory": await runMemoryBenchmark()
    case "emulator":
        do {
            try await runEmulatorBenchmark()
        } catch {
            FileHandle.standardError.write(Data("emulator benchmark failed: \(error)\n".utf8))
            exit(1)
        }
    case "chaos":
        do {
            try await runChaosBenchmark()
        } catch {
            FileHandle.standardError.write(Data("chaos benchmark failed: \(error)\n".utf8))
            exit(1)
        }
    case "makespan", "makespan-tls", "ratelimit", "native", "hybrid", "jsonl", "report":
        do {
            switch name {
            case "makespan": try await runMakespanBenchmark()
            case "makespan-tls": try await runTLSMakespanBenchmark()
            case "ratelimit": try await runRateLimitBenchmark()
            case "jsonl": try await runJSONLBenchmark()
            case "report": try await runReportBenchmark()
            case "hybrid": try await runHybridBenchmark()
            default: try await runNativeBenchmark()
            }
        } catch {
            FileHandle.standardError.write(Data("\(name) benchmark failed: \(error)\n".utf8))
            exit(1)
        }
    default:
        FileHandle.standardError.write(Data("unknown scenario \(name); known: \(scenarios.joined(separator: ", "))\n".utf8))
        exit(2)
    }
}
