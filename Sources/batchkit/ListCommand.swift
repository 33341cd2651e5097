import BatchKit
import Foundation

/// `batchkit list`: the account's native batch jobs, newest first.
enum ListCommand: Subcommand {
    static let name = "list"
    static let summary = "list native batch jobs, newest first"
    static let usage = """
        usage: batchkit list [--limit N] [--provider P] [--base-url URL]

        \(ProviderOptions.helpText)
          --limit N            at most N jobs (default 20)
        """
    static let spec = ArgumentSpec(options: ProviderOptions.optionNames.union(["limit"]), flags: [], maxPositional: 0)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let limit = try arguments.int("limit", in: 1...10_000) ?? 20
        let native = NativeBatchProcessor(backend: try ProviderOptions(arguments).backend())
        let jobs = try await native.list(limit: limit)
        printLine(jobs.isEmpty ? "no jobs" : JobTable.render(jobs))
        return 0
    }
}
