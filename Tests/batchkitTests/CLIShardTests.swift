import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `batchkit run --shard auto`: the shard from a cluster scheduler's environment, each shard into
/// its own output file, the shards together covering the input exactly once.
@Suite(.timeLimit(.minutes(5))) struct CLIShardTests {
    static let key = ["OPENAI_API_KEY": "sk-cli-test-key-0001"]
    static let ids = (0..<40).map { "r\($0)" }

    static func expected(_ index: Int, of count: Int) throws -> Set<String> {
        let shard = try BatchShard(index: index, count: count)
        return Set(ids.filter { shard.contains($0) })
    }

    @Test(arguments: [
        // Kubernetes Indexed Job: the index from the pod, the count from --shards.
        (["JOB_COMPLETION_INDEX": "1"], ["--shards", "3"], 1, 3),
        // Slurm array --array=4-6: task 5 is the second of three.
        (["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "3"], [], 1, 3),
        // Slurm array --array=0-6:2 (0, 2, 4, 6): task 4 is the third of four.
        (["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"], [], 2, 4),
        // AWS Batch array job of size 3.
        (["AWS_BATCH_JOB_ARRAY_INDEX": "2"], ["--shards", "3"], 2, 3),
    ])
    func autoTakesTheSchedulersShard(_ environment: [String: String], _ extra: [String], _ index: Int, _ count: Int) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(Self.ids.count))
        try await withEmulator { emulator, url in
            let result = try await CLI.run(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--shard", "auto"] + extra, in: dir.url,
                environment: Self.key.merging(environment) { a, _ in a })
            #expect(result.status == 0, "\(result.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            let expected = try Self.expected(index, of: count)
            #expect(!expected.isEmpty)
            #expect(ids.count == expected.count && Set(ids) == expected)
            #expect(Set(emulator.sentCounts.keys) == expected)
            #expect(result.stdout.contains("shard \(index)/\(count)"), "\(result.stdout)")
        }
    }

    @Test func theShardsOfAnIndexedJobCoverTheInputOnce() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(Self.ids.count))
        try await withEmulator { emulator, url in
            var all: [String] = []
            for index in 0..<3 {
                let result = try await CLI.run(
                    ["run", "in.jsonl", "--output", "out-\(index).jsonl", "--base-url", url, "--shard", "auto", "--shards", "3"],
                    in: dir.url, environment: Self.key.merging(["JOB_COMPLETION_INDEX": "\(index)"]) { a, _ in a })
                #expect(result.status == 0, "\(result.stderr)")
                all += try Fixtures.outputIDs(dir.file("out-\(index).jsonl"))
            }
            #expect(all.count == Self.ids.count && Set(all) == Set(Self.ids))
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 })
            // One report over the three files.
            let report = try await CLI.run(["report", "out-0.jsonl", "out-1.jsonl", "out-2.jsonl"], in: dir.url)
            #expect(report.status == 0, "\(report.stderr)")
            #expect(report.stdout.contains("realtime 40"), "\(report.stdout)")
        }
    }

    @Test(arguments: [
        ([:], ["--shard", "auto"], "no scheduler index in the environment"),
        (["JOB_COMPLETION_INDEX": "2"], ["--shard", "auto"], "JOB_COMPLETION_INDEX gives the index, not the count: add --shards N"),
        (["AWS_BATCH_JOB_ARRAY_INDEX": "0"], ["--shard", "auto"], "AWS_BATCH_JOB_ARRAY_INDEX gives the index, not the count"),
        (["JOB_COMPLETION_INDEX": "3"], ["--shard", "auto", "--shards", "3"], "outside 0..<3 shards"),
        (["JOB_COMPLETION_INDEX": "one"], ["--shard", "auto", "--shards", "3"], "JOB_COMPLETION_INDEX is 'one', not a non-negative integer"),
        (["SLURM_ARRAY_TASK_ID": "1"], ["--shard", "auto"], "SLURM_ARRAY_TASK_COUNT is not"),
        (["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"], ["--shard", "auto", "--shards", "3"], "--shards 3 disagrees with SLURM_ARRAY_TASK_COUNT 4"),
        (["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "4"], ["--shard", "auto"], "not on the array's grid"),
        ([:], ["--shards", "3"], "--shards N goes with --shard auto"),
        ([:], ["--shard", "1/3", "--shards", "3"], "--shards N goes with --shard auto"),
        ([:], ["--shard", "3/3"], "option '--shard'"),
    ])
    func badShardSettingsAreOneLineUsageErrors(_ environment: [String: String], _ options: [String], _ message: String) async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(2))
        let result = try await CLI.run(
            ["run", "in.jsonl", "--output", "out.jsonl"] + options, in: dir.url, environment: Self.key.merging(environment) { a, _ in a })
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.errorLines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.jsonl").path))
    }
}
