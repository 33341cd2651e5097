import BatchKit
import Foundation

/// `batchkit status`: the state of native batch jobs.
enum StatusCommand: Subcommand {
    static let name = "status"
    static let summary = "show the state of native batch jobs"
    static let usage = """
        usage: batchkit status JOB... [--provider P] [--base-url URL]

        Prints one line per job: id, status, requests, succeeded, failed, provider status.

        \(ProviderOptions.helpText)
        """
    static let spec = ArgumentSpec(options: ProviderOptions.optionNames, flags: [], maxPositional: nil)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        try await JobTable.printEach(arguments) { native, id in try await native.status(id) }
    }
}

/// Job lists as text.
enum JobTable {
    /// Runs `action` on each JOB id named on the command line, in order, against the provider the
    /// options name, and prints the jobs it returns as one table.
    static func printEach(
        _ arguments: Arguments, _ action: (NativeBatchProcessor<ContinuousClock>, String) async throws -> BatchJob
    ) async throws -> Int32 {
        guard !arguments.positional.isEmpty else { throw UsageError("missing JOB id(s)") }
        let native = NativeBatchProcessor(backend: try ProviderOptions(arguments).backend())
        var jobs: [BatchJob] = []
        for id in arguments.positional { jobs.append(try await action(native, id)) }
        printLine(render(jobs))
        return 0
    }

    static func render(_ jobs: [BatchJob]) -> String {
        var rows = [["JOB", "STATUS", "REQUESTS", "SUCCEEDED", "FAILED", "PROVIDER STATUS", "CREATED"]]
        let iso = ISO8601DateFormatter()
        for j in jobs {
            rows.append([
                j.id, j.status.rawValue, String(j.requestCount), String(j.succeededCount), String(j.failedCount),
                j.remoteStatus ?? "-", j.createdAt.map { iso.string(from: $0) } ?? "-",
            ])
        }
        return formatTable(rows)
    }
}
