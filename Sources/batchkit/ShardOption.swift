import BatchKit
import Foundation

/// `--shard i/n` or `--shard auto` (with `--shards N`): which slice of the input this process runs.
///
/// `auto` reads the index, and where the scheduler gives it the count, from the environment of
/// the cluster scheduler that started the process:
///
/// | Scheduler | Index | Count |
/// |---|---|---|
/// | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` (0-based) | `--shards N` (the Job's `completions`) |
/// | Slurm job array | `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, over `SLURM_ARRAY_TASK_STEP` | `SLURM_ARRAY_TASK_COUNT` (`--shards N`, if given, must agree) |
/// | AWS Batch array job | `AWS_BATCH_JOB_ARRAY_INDEX` (0-based) | `--shards N` (the array `size`) |
enum ShardOption {
    static let helpText = """
          --shard i/n          only the lines whose custom_id hashes to shard i of n (0 <= i < n);
                               --rpm, --tpm and --max-cost are divided by n
          --shard auto         the shard from the cluster scheduler: Kubernetes Indexed Jobs
                               (JOB_COMPLETION_INDEX, with --shards N), Slurm job arrays
                               (SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT) or AWS Batch
                               array jobs (AWS_BATCH_JOB_ARRAY_INDEX, with --shards N)
          --shards N           with --shard auto: how many shards there are
        """

    /// The scheduler variables `auto` reads, in the order they are looked for.
    static let indexVariables = ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "AWS_BATCH_JOB_ARRAY_INDEX"]

    /// The shard the options ask for (`nil` without `--shard`), and where it came from.
    ///
    /// - Throws: ``UsageError`` for a malformed `--shard`, `--shards` without `--shard auto`, or
    ///   an `auto` the environment cannot answer (no scheduler variable, a value that is not an
    ///   index, a count that is missing or disagrees).
    static func parse(_ arguments: Arguments, environment: [String: String]) throws -> (shard: BatchShard, source: String?)? {
        let shards = try arguments.int("shards", in: 1...1_000_000)
        guard let text = arguments.string("shard") else {
            if shards != nil { throw UsageError("--shards N goes with --shard auto") }
            return nil
        }
        guard text == "auto" else {
            if shards != nil { throw UsageError("--shards N goes with --shard auto (--shard \(text) names the count itself)") }
            do throws(BatchError) { return (try BatchShard(parsing: text), nil) } catch {
                throw UsageError("option '--shard': \(error.message) (or --shard auto)")
            }
        }
        let present = indexVariables.filter { !(environment[$0] ?? "").isEmpty }
        guard let variable = present.first else {
            throw UsageError(
                "--shard auto: no scheduler index in the environment (JOB_COMPLETION_INDEX from a Kubernetes Indexed Job, "
                    + "SLURM_ARRAY_TASK_ID from a Slurm job array, AWS_BATCH_JOB_ARRAY_INDEX from an AWS Batch array job); "
                    + "outside a scheduler use --shard i/n")
        }
        let value = environment[variable] ?? ""
        guard let raw = Int(value.trimmingCharacters(in: .whitespaces)), raw >= 0 else {
            throw UsageError("--shard auto: \(variable) is '\(value)', not a non-negative integer")
        }
        let index: Int
        let count: Int
        switch variable {
        case "SLURM_ARRAY_TASK_ID":
            let min = try slurmNumber("SLURM_ARRAY_TASK_MIN", environment) ?? 0
            let step = try slurmNumber("SLURM_ARRAY_TASK_STEP", environment) ?? 1
            guard let total = try slurmNumber("SLURM_ARRAY_TASK_COUNT", environment) else {
                throw UsageError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (an array job sets both)")
            }
            guard step >= 1, raw >= min, (raw - min) % step == 0 else {
                throw UsageError(
                    "--shard auto: SLURM_ARRAY_TASK_ID \(raw) is not on the array's grid (min \(min), step \(step))")
            }
            if let shards, shards != total {
                throw UsageError("--shard auto: --shards \(shards) disagrees with SLURM_ARRAY_TASK_COUNT \(total)")
            }
            index = (raw - min) / step
            count = total
        default:
            guard let shards else {
                let what = variable == "JOB_COMPLETION_INDEX" ? "the Job's completions" : "the array job's size"
                throw UsageError("--shard auto: \(variable) gives the index, not the count: add --shards N (\(what))")
            }
            index = raw
            count = shards
        }
        guard index < count else {
            throw UsageError("--shard auto: \(variable) \(raw) is shard \(index), outside 0..<\(count) shards")
        }
        do throws(BatchError) { return (try BatchShard(index: index, count: count), variable) } catch {
            throw UsageError("--shard auto: \(error.message)")
        }
    }

    private static func slurmNumber(_ name: String, _ environment: [String: String]) throws -> Int? {
        guard let text = environment[name], !text.isEmpty else { return nil }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
            throw UsageError("--shard auto: \(name) is '\(text)', not a non-negative integer")
        }
        return n
    }
}
