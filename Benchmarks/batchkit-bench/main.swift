import Foundation

// batchkit-bench SCENARIO: runs one scenario and prints one JSON line on stdout (chatter on
// stderr). Add a scenario as a file with one `func run...Benchmark() async throws` and a case here.

let scenarios = ["emulator"]
let scenario = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : ""

do {
    switch scenario {
    case "emulator":
        try await runEmulatorBenchmark()
    default:
        FileHandle.standardError.write(
            Data("batchkit-bench: unknown scenario '\(scenario)' (one of: \(scenarios.joined(separator: ", ")))\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("batchkit-bench \(scenario): \(error)\n".utf8))
    exit(1)
}
