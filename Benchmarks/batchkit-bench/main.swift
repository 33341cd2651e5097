import Foundation

let scenarios = ["executor", "memory", "jsonl"]
let wanted = CommandLine.arguments.count > 1 ? Array(CommandLine.arguments.dropFirst()) : scenarios
for name in wanted {
    switch name {
    case "executor": await runExecutorBenchmark()
    case "memory": await runMemoryBenchmark()
    case "jsonl": try await runJSONLBenchmark()
    default:
        FileHandle.standardError.write(Data("unknown scenario \(name); known: \(scenarios.joined(separator: ", "))\n".utf8))
        exit(2)
    }
}
