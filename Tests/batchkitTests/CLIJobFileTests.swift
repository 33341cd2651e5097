import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// Issue 12, the CLI side: the job file keeps no ids (they go to one ids file per job, written
/// once), a job file of the first format is converted, chunks spool beside the output, and
/// `batchkit submit` streams its input.
@Suite(.timeLimit(.minutes(5)))
struct CLIJobFileTests {
    static let arguments = ["run", "in.jsonl", "--output", "out.jsonl", "--mode", "native", "--poll-interval", "50ms"]

    /// The ids in an ids file, in order.
    static func ids(inFile url: URL) throws -> [String] {
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        return try text.split(separator: "\n").map { line in
            try #require(try JSONValue(parsing: Data(line.utf8)).stringValue)
        }
    }

    /// A run stopped at its deadline leaves its job running; the test rewrites the job file as
    /// the first format wrote it (ids inline, no ids files). The rerun converts it, re-attaches to
    /// the job and submits nothing again. Without the conversion the rerun refused the file (or,
    /// reading no ids, would have submitted all 25 again).
    @Test func aJobFileOfTheFirstFormatIsConvertedAndItsJobReattached() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(25))
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600)), clock: clock) { emulator, url in
            let arguments = Self.arguments + ["--deadline", "1s", "--base-url", url]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            #expect(emulator.sentCounts.count == 25)

            let current = try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))
            let job = try #require(current["native_jobs"]?[0])
            let jobID = try #require(job["id"]?.stringValue)
            let idsFile = try #require(job["ids_file"]?.stringValue)
            let ids = try Self.ids(inFile: dir.file("out.jsonl.jobs/" + idsFile))
            #expect(ids.count == 25)
            var intent = try #require(current["intents"]?[0]?.objectValue)
            intent["ids_file"] = nil
            intent["custom_ids"] = .array([])  // resolved: the first format kept the ids in the job only
            let legacy = JSONValue.object([
                "provider": .string("openai"),
                "jobs": .array([.object(["id": .string(jobID), "custom_ids": .array(ids.map { .string($0) })])]),
                "intents": .array([.object(intent)]),
            ])
            try legacy.serialized().write(to: dir.file("out.jsonl.jobs.json"))
            try FileManager.default.removeItem(at: dir.file("out.jsonl.jobs"))

            clock.advance(by: .seconds(3601))
            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 0, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("re-attaching to 1 job(s) of an earlier run: \(jobID)"), "\(rerun.stderr)")
            #expect(!rerun.stderr.contains("submitted job"), "\(rerun.stderr)")
            let out = try Fixtures.outputIDs(dir.file("out.jsonl"))
            #expect(out.count == 25 && Set(out) == Set(ids))
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "nothing was submitted twice")

            // Converted: the current format; the job, collected by the rerun, no longer needs its
            // ids file (the re-attachment above read the converted one).
            let converted = try JSONValue(parsing: Data(contentsOf: dir.file("out.jsonl.jobs.json")))
            #expect(converted["format"]?.intValue == 3 && converted["jobs"] == nil)
            let entry = try #require(converted["native_jobs"]?[0])
            #expect(entry["id"]?.stringValue == jobID && entry["count"]?.intValue == 25)
            #expect(entry["collected"]?.boolValue == true)
            #expect(!FileManager.default.fileExists(atPath: dir.file("out.jsonl.jobs").path))
        }
    }

    /// An ids file that is gone leaves a job whose requests are unknown: the rerun stops with an
    /// error naming the file, and submits nothing (guessing would pay twice).
    @Test func aMissingIDsFileIsAClearErrorAndNothingIsSubmitted() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(10))
        try await withEmulator(EmulatorConfiguration(batchDuration: .seconds(3600))) { emulator, url in
            let arguments = Self.arguments + ["--deadline", "1s", "--base-url", url]
            let first = try await CLI.run(arguments, in: dir.url)
            #expect(first.status == 4, "\(first.stderr)")
            try FileManager.default.removeItem(at: dir.file("out.jsonl.jobs"))

            let rerun = try await CLI.run(arguments, in: dir.url)
            #expect(rerun.status == 1, "\(rerun.stderr)")
            #expect(rerun.stderr.contains("out.jsonl.jobs/batchkit-"), "\(rerun.stderr)")
            #expect(rerun.stderr.contains("cannot read the custom ids of a native job"), "\(rerun.stderr)")
            #expect(!rerun.stderr.contains("submitted job"))
            #expect(emulator.sentCounts.values.allSatisfy { $0 == 1 }, "nothing was submitted twice")
        }
    }

    /// A job file of a later format is refused with a clear error before anything is sent.
    @Test func aJobFileOfALaterFormatIsRefused() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(5))
        try dir.write("out.jsonl.jobs.json", #"{"format": 4, "provider": "openai", "native_jobs": []}"#)
        try await withEmulator { emulator, url in
            let result = try await CLI.run(Self.arguments + ["--base-url", url], in: dir.url)
            #expect(result.status == 1)
            #expect(result.stderr.contains("out.jsonl.jobs.json: written by a newer batchkit (job file format 4"), "\(result.stderr)")
            #expect(emulator.sentCounts.isEmpty)
        }
    }

    /// Chunks are spooled in `OUT.jsonl.spool/` (a run directory inside, one file per chunk, there
    /// while the chunk is uploaded), what a killed run left there is removed first, and the
    /// directory is gone once the run is over.
    @Test func nativeRunSpoolsBesideTheOutputAndRemovesTheSpool() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(20))
        let stale = dir.file("out.jsonl.spool/batchkit-spool-left-by-kill/chunk-old.jsonl")
        try FileManager.default.createDirectory(at: stale.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{}\n".utf8).write(to: stale)
        let spool = dir.file("out.jsonl.spool")
        let seen = Mutex<[String]>([])
        let emulator = ProviderEmulator(configuration: EmulatorConfiguration())
        let server = try await EmulatorServer.start { request in
            if request.method == "POST", request.path.hasSuffix("/v1/files") {
                let files = FileManager.default.enumerator(atPath: spool.path)?.compactMap { $0 as? String } ?? []
                seen.withLock { $0 = files }
            }
            return await emulator.handle(request)
        }
        emulator.update { $0.publicBaseURL = server.baseURL }
        do {
            let result = try await CLI.run(Self.arguments + ["--base-url", server.baseURL.absoluteString], in: dir.url)
            #expect(result.status == 0, "\(result.stderr)")
            let files = seen.withLock { $0 }
            #expect(!files.contains { $0.contains("left-by-kill") }, "\(files)")
            #expect(files.contains { $0.hasPrefix("batchkit-spool-") && $0.hasSuffix(".jsonl") && $0.contains("/chunk-") }, "\(files)")
            #expect(!FileManager.default.fileExists(atPath: spool.path))
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == 20)
        }
        await server.shutdown()
    }

    #if os(Linux)
    /// `batchkit submit` reads its input as a stream: when the first job's file is uploaded the
    /// input is still open and read only part of the way (the rest is read after). Before, the
    /// whole file was read into an array (and closed) before anything was uploaded.
    @Test func submitStreamsItsInputFile() async throws {
        let dir = try TempDir()
        // 50,000 short lines fill one OpenAI file; twenty lines of 1 MB each follow (a second file).
        var text = Fixtures.chatLines(50_000, prefix: "e")
        let big = String(repeating: "y", count: 1 << 20)
        for i in 0..<20 {
            text += #"{"custom_id":"big\#(i)","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\#(big)"}],"max_tokens":8}}"# + "\n"
        }
        try dir.write("in.jsonl", text)
        let size = text.utf8.count
        let child = Mutex<RunningCLI?>(nil)
        /// The input's read position in the child when the first file was uploaded (nil: not open).
        let position = Mutex<Int??>(nil)
        let emulator = ProviderEmulator(configuration: EmulatorConfiguration())
        let input = dir.file("in.jsonl").resolvingSymlinksInPath().path
        let server = try await EmulatorServer.start { request in
            if request.method == "POST", request.path.hasSuffix("/v1/files"), position.withLock({ $0 == nil }),
                let pid = child.withLock({ $0?.pid })
            {
                position.withLock { $0 = .some(Self.readPosition(of: input, in: pid)) }
            }
            return await emulator.handle(request)
        }
        emulator.update { $0.publicBaseURL = server.baseURL }
        do {
            let running = try CLI.start(["submit", "in.jsonl", "--base-url", server.baseURL.absoluteString], in: dir.url, liveStderr: false)
            child.withLock { $0 = running }
            let result = await running.finish()
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.split(separator: "\n").count == 2, "two jobs: \(result.stdout)")
            #expect(result.stderr.contains("50020 request(s) submitted"), "\(result.stderr)")
            let pos = try #require(position.withLock { $0 }, "no upload seen")
            let read = try #require(pos, "the input was not open when the first file was uploaded")
            #expect(read <= size / 2, "read \(read) of \(size) bytes before the first upload")
            #expect(emulator.sentCounts.count == 50_020)
        }
        await server.shutdown()
    }

    /// The read position of the descriptor of `process` open on `path`, from `/proc`.
    static func readPosition(of path: String, in process: Int32) -> Int? {
        let fds = "/proc/\(process)/fd"
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(fd)"), target == path else { continue }
            let info = (try? String(contentsOfFile: "/proc/\(process)/fdinfo/\(fd)", encoding: .utf8)) ?? ""
            for line in info.split(separator: "\n") where line.hasPrefix("pos:") {
                return Int(line.dropFirst(4).trimmingCharacters(in: .whitespaces))
            }
        }
        return nil
    }
    #endif
}
