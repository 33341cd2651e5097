import BatchKit
import Foundation

/// `batchkit results`: downloads the results of ended native batch jobs as OpenAI batch output
/// lines.
enum ResultsCommand: Subcommand {
    static let name = "results"
    static let summary = "download the results of native batch jobs as OpenAI batch output JSONL"
    static let usage = """
        usage: batchkit results JOB... --output OUT.jsonl [--provider P] [--base-url URL]

        Streams each ended job's results (partial results of failed, expired or cancelled jobs too)
        into OUT.jsonl, one OpenAI batch output line per request. The file is written to a temporary
        name and renamed when complete.

        \(ProviderOptions.helpText)
          --output FILE        where the results go (required)
        """
    static let spec = ArgumentSpec(options: ProviderOptions.optionNames.union(["output"]), flags: [], maxPositional: nil)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        guard !arguments.positional.isEmpty else { throw UsageError("missing JOB id(s)") }
        guard let outputPath = arguments.string("output") else { throw UsageError("missing --output OUT.jsonl") }
        let backend = try ProviderOptions(arguments).backend()
        let output = URL(fileURLWithPath: outputPath)
        let temporary = URL(fileURLWithPath: outputPath + ".partial")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CommandFailure("\(temporary.path): cannot create")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        var succeeded = 0
        var failed = 0
        var unfinished: [String] = []
        do {
            for id in arguments.positional {
                let job = try await backend.status(of: id)
                guard job.status.isTerminal else {
                    unfinished.append("\(id) (\(job.status.rawValue))")
                    continue
                }
                var lines = BufferedLineWriter(handle)
                // Placed in the job for `batchkit report`: from its creation to when it was seen ended.
                let seen = Date()
                try await backend.results(of: job) { downloaded in
                    var result = downloaded
                    result.jobID = job.id
                    result.startedAt = job.createdAt.map { min($0, seen) }
                    result.endedAt = seen
                    if result.isSuccess { succeeded += 1 } else { failed += 1 }
                    try lines.append(line: result.outputLineBytes())
                }
                try lines.flush()
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        _ = try? FileManager.default.removeItem(at: output)
        try FileManager.default.moveItem(at: temporary, to: output)
        printError("batchkit results: \(succeeded) succeeded, \(failed) failed, written to \(outputPath)")
        if !unfinished.isEmpty {
            throw CommandFailure("not finished yet: \(unfinished.joined(separator: ", ")) (try again later)")
        }
        return 0
    }
}
