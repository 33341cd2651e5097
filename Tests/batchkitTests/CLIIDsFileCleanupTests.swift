import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// Issue 12, the CLI side: a job's ids file (`OUT.jsonl.jobs/TAG.ids`) is removed once the job
/// ended with all its results successful in the output, the job staying in the job file marked
/// `collected`; a run killed or stopped before that keeps what the rerun needs, and no rerun
/// submits anything twice.
@Suite(.timeLimit(.minutes(5)))
struct CLIIDsFileCleanupTests {
    static let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms"]

    /// The job file's jobs.
    static func jobs(in dir: TempDir) throws -> [JSONValue] {
        try #require(try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))["native_jobs"]?.arrayValue)
    }

    static func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    /// A complete run leaves neither ids files nor a spool: `OUT.jsonl.jobs/` and
    /// `OUT.jsonl.spool/` are gone, the job stays recorded as collected, and a rerun submits and
    /// re-attaches to nothing. Before, the ids file stayed for good.
    @Test func aCompleteRunLeavesNoIDsOrSpoolFiles() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(30))
        try await withEmulator { emulator, url in
            let first = try await CLI.run(Self.arguments + ["--base-url", url], in: dir.url)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(!Self.exists(dir.file("out.jsonl.jobs")), "the ids directory is removed")
            #expect(!Self.exists(dir.file("out.jsonl.spool")), "the spool is removed")
            let jobs = try Self.jobs(in: dir)
            try #require(jobs.count == 1)
            #expect(jobs[0]["collected"]?.boolValue == true && jobs[0]["count"]?.intValue == 30)
            #expect(try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))["format"]?.intValue == 3)

            let rerun = try await CLI.run(Self.arguments + ["--base-url", url], in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(!rerun.stderr.contains("submitted job") && !rerun.stderr.contains("re-attaching"), "\(rerun.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 30 && Set(ids).count == 30)
            #expect(emulator.sentCounts.count == 30 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    /// A job still running at the deadline keeps its ids file (the rerun needs it to re-attach);
    /// the rerun that collects the job removes it.
    @Test func aRunningJobKeepsItsIDsFileUntilARerunCollectsIt() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let arguments = Self.arguments + ["--deadline", "1s", "--base-url", url]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            let jobs = try Self.jobs(in: dir)
            try #require(jobs.count == 1)
            #expect(jobs[0]["collected"] == nil)
            let idsFile = try #require(jobs[0]["ids_file"]?.stringValue)
            #expect(try CLIJobFileTests.ids(inFile: dir.file("out.jsonl.jobs/" + idsFile)).count == 20)

            clock.advance(by: .seconds(3601))
            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("re-attaching to 1 job"), "\(rerun.stderr)")
            #expect(!Self.exists(dir.file("out.jsonl.jobs")))
            #expect(try Self.jobs(in: dir).first?["collected"]?.boolValue == true)
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 20)
            #expect(emulator.sentCounts.count == 20 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    /// `kill -9` while the job runs (at its first status poll, after it was recorded): the ids
    /// file and the job stay; the rerun re-attaches, submits nothing, and then removes the file.
    @Test func aRunKilledWhileItsJobRunsKeepsWhatTheRerunNeeds() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        let emulator = ProviderEmulator(configuration: EmulatorConfiguration(batchDuration: .milliseconds(200)))
        let child = Mutex<RunningCLI?>(nil)
        let killed = Mutex(false)
        let server = try await EmulatorServer.start { request in
            if request.method == "GET", request.path.contains("/v1/batches/"), let c = child.withLock({ $0 }),
                !killed.withLock({ $0 })
            {
                killed.withLock { $0 = true }
                c.kill9()
                return EmulatorResponse(status: 500, fault: .resetConnection)
            }
            return await emulator.handle(request)
        }
        emulator.update { $0.publicBaseURL = server.baseURL }
        do {
            let arguments = Self.arguments + ["--base-url", server.baseURL.absoluteString]
            let first = try CLI.start(arguments, in: dir.url, liveStderr: false)
            child.withLock { $0 = first }
            _ = await first.finish()
            #expect(killed.withLock { $0 })
            let jobs = try Self.jobs(in: dir)
            try #require(jobs.count == 1)
            #expect(jobs[0]["collected"] == nil)
            let idsFile = try #require(jobs[0]["ids_file"]?.stringValue)
            #expect(try CLIJobFileTests.ids(inFile: dir.file("out.jsonl.jobs/" + idsFile)).count == 10)

            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("re-attaching to 1 job"), "\(rerun.stderr)")
            #expect(!rerun.stderr.contains("submitted job"), "\(rerun.stderr)")
            let ids = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(ids.count == 10 && Set(ids).count == 10)
            #expect(emulator.sentCounts.count == 10 && emulator.sentCounts.values.allSatisfy { $0 == 1 }, "one job")
            #expect(!Self.exists(dir.file("out.jsonl.jobs")))
            #expect(!Self.exists(dir.file("out.jsonl.spool")))
        }
        await server.shutdown()
    }

    /// The two crash windows of the cleanup, rebuilt by hand after a complete run: killed after
    /// the job file marked the job collected but before its file was removed (the next run
    /// removes it), and killed before the mark (a format-2 job file and its ids file, as an
    /// earlier batchkit left them: the next run, finding every id done, marks and removes). Neither
    /// rerun submits or re-attaches.
    @Test func eitherCrashWindowOfTheCleanupIsFinishedByTheNextRun() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        try await withEmulator { emulator, url in
            let arguments = Self.arguments + ["--base-url", url]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 0, "\(first.stderr)")
            let job = try #require(try Self.jobs(in: dir).first)
            let idsFile = try #require(job["ids_file"]?.stringValue)
            let idsURL = dir.file("out.jsonl.jobs/" + idsFile)
            let idsText = (0..<12).map { "\"r\($0)\"\n" }.joined()

            // After the mark, before the removal.
            try FileManager.default.createDirectory(at: idsURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try dir.write("out.jsonl.jobs/" + idsFile, idsText)
            let afterMark = try await CLI.run(arguments, in: dir.url)
            #expect(afterMark.status == 0, "\(afterMark.stderr)")
            #expect(!Self.exists(dir.file("out.jsonl.jobs")))

            // Before the mark: no `collected`, format 2.
            var file = try #require(try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json"))).objectValue)
            var unmarked = try #require(job.objectValue)
            unmarked["collected"] = nil
            file["native_jobs"] = .array([.object(unmarked)])
            file["format"] = .int(2)
            try JSONValue.object(file).serialized().write(to: dir.file("out.jsonl.jobs.json"))
            try FileManager.default.createDirectory(at: idsURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try dir.write("out.jsonl.jobs/" + idsFile, idsText)
            let beforeMark = try await CLI.run(arguments, in: dir.url)
            #expect(beforeMark.status == 0, "\(beforeMark.stderr)")
            #expect(!Self.exists(dir.file("out.jsonl.jobs")))
            #expect(try Self.jobs(in: dir).first?["collected"]?.boolValue == true)
            // Rewritten as format 3: a batchkit reading only format 2 refuses it.
            #expect(try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))["format"]?.intValue == 3)

            for rerun in [afterMark, beforeMark] {
                #expect(!rerun.stderr.contains("submitted job") && !rerun.stderr.contains("re-attaching"), "\(rerun.stderr)")
            }
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 12)
            #expect(emulator.sentCounts.count == 12 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }

    /// A job whose results failed keeps its ids file: a rerun re-attaches to it (a success may
    /// replace a recorded failure) and holds a completed job's failures with `--retry-failed`.
    @Test func aJobWithFailedResultsKeepsItsIDsFile() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(6))
        try await withEmulator(EmulatorConfiguration(faults: [EmulatorFault(.errorFileOnly)])) { emulator, url in
            let arguments = Self.arguments + ["--base-url", url, "--max-consecutive-failures", "0"]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 3, "\(first.stderr)")
            let job = try #require(try Self.jobs(in: dir).first)
            #expect(job["collected"] == nil)
            let idsFile = try #require(job["ids_file"]?.stringValue)
            #expect(try CLIJobFileTests.ids(inFile: dir.file("out.jsonl.jobs/" + idsFile)).count == 6)

            let retry = try await CLI.run(arguments + ["--retry-failed"], in: dir.url)
            #expect(!retry.stderr.contains("submitted job"), "\(retry.stderr)")
            #expect(emulator.sentCounts.count == 6 && emulator.sentCounts.values.allSatisfy { $0 == 1 }, "nothing paid twice")
            #expect(Self.exists(dir.file("out.jsonl.jobs/" + idsFile)))
        }
    }

    /// The output of collected jobs replaced (here: removed) while their job file stays: the
    /// rerun refuses, naming the output and the job, and sends nothing (the collected job's ids
    /// are known only by their results, so they would be paid again).
    @Test func aReplacedOutputIsRefusedNotPaidAgain() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(8))
        try await withEmulator { emulator, url in
            let arguments = Self.arguments + ["--base-url", url]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 0, "\(first.stderr)")
            let jobID = try #require(try Self.jobs(in: dir).first?["id"]?.stringValue)
            try FileManager.default.removeItem(at: dir.file("out.jsonl"))

            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 1, "\(rerun.stderr)")
            #expect(rerun.errorLines.count == 1, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("out.jsonl: holds 0 successful result(s), but job \(jobID) alone delivered 8"), "\(rerun.stderr)")
            #expect(emulator.sentCounts.count == 8 && emulator.sentCounts.values.allSatisfy { $0 == 1 })
        }
    }
}
