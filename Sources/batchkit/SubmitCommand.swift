import BatchKit
import Foundation
import Synchronization

/// `batchkit submit`: creates native batch jobs from a JSONL file and prints their ids, without
/// waiting for them.
enum SubmitCommand: Subcommand {
    static let name = "submit"
    static let summary = "submit a JSONL file as native batch job(s) and print the job ids"
    static let usage = """
        usage: batchkit submit INPUT.jsonl [--provider P] [--base-url URL] [--model M] [--shard i/n|auto]

        Validates INPUT.jsonl, splits it over the provider's job limits, submits the jobs and prints
        one job id per line. Collect them later with 'batchkit status' and 'batchkit results'.

        \(ProviderOptions.helpText)
          --model M            use model M for every line
          --shard i/n          only the lines whose custom_id hashes to shard i of n
          --shard auto         the shard from the scheduler's environment (see 'batchkit run --help')
          --shards N           with --shard auto: how many shards there are
        """
    static let spec = ArgumentSpec(options: ProviderOptions.optionNames.union(["model", "shard", "shards"]), flags: [], maxPositional: 1)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let inputPath = try arguments.requiredPositional("INPUT.jsonl")
        let shard = try ShardOption.parse(arguments, environment: ProcessInfo.processInfo.environment)?.shard
        let model = arguments.string("model")
        let provider = try ProviderOptions(arguments)
        let reader = BatchRequestFileReader(url: URL(fileURLWithPath: inputPath), displayName: inputPath)
        // 1. Check the whole file (a bad line is an error naming file, line and field, and nothing
        //    is submitted), counting the lines of the shard, without keeping them.
        var count = 0
        do throws(BatchError) {
            try reader.validate { line in
                if shard?.contains(line.request.id) ?? true { count += 1 }
            }
        } catch {
            throw CommandFailure(error)
        }
        // 2. Read it again as a stream: each chunk is spooled and uploaded as it fills, so the
        //    file is never held in memory.
        let readError = Mutex<BatchError?>(nil)
        let requests = reader.requests(
            transform: { request in
                guard shard?.contains(request.id) ?? true else { return nil }
                return model.map { request.withModel($0) } ?? request
            },
            onError: { e in readError.withLock { $0 = $0 ?? e } })
        let native = NativeBatchProcessor(backend: provider.backend())
        let (jobs, rejected) = try await native.submit(requests)
        if let e = readError.withLock({ $0 }) {
            // The file changed between the check and the submission.
            for job in jobs { printLine(job.id) }
            throw CommandFailure("\(e.message) (\(jobs.count) job(s) were submitted before it; their ids are above)")
        }
        for r in rejected {
            printError("batchkit submit: \(inputPath): \(r.id): \(r.error?.message ?? "rejected")")
        }
        for job in jobs { printLine(job.id) }
        printError("batchkit submit: \(jobs.count) job(s), \(count - rejected.count) request(s) submitted")
        return rejected.isEmpty ? 0 : 3
    }
}
