import BatchKit
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The native jobs of a run, kept beside its output (`OUT.jsonl.jobs.json`) so a rerun re-attaches
/// to them instead of submitting again, and the **intents** recorded before each job is created,
/// so a rerun finds a job whose creation was cut off (a crash, a lost answer) instead of creating
/// it twice.
///
/// The custom ids of each intent are written once, before the intent, to a file of their own in
/// `OUT.jsonl.jobs/` (one JSON string per line, `TAG.ids`); the job file names that file and holds
/// nothing that grows with the number of requests, so it stays a few kilobytes at a million
/// requests and each update rewrites only that:
///
/// ```json
/// {"format": 3, "provider": "openai",
///  "native_jobs": [{"id": "batch_…", "ids_file": "batchkit-….ids", "count": 2},
///                  {"id": "batch_…", "ids_file": "batchkit-….ids", "count": 3, "collected": true}],
///  "intents": [{"tag": "batchkit-…", "provider": "openai", "group_key": "/v1/chat/completions gpt-4o-mini",
///               "count": 2, "ids_hash": "…", "created_at": 1764689400.5, "file_id": "file-…",
///               "ids_file": "batchkit-….ids", "job_id": null}]}
/// ```
///
/// An intent with a `job_id` is resolved; one without is open until a rerun finds its job among
/// the provider's recent jobs, or finds none and marks it `abandoned`.
///
/// A job that ended with every one of its requests successful in the output is marked
/// `collected` and its ids file removed (see ``Entry/collected``): the entry stays, so the job is
/// still known, but nothing about it is read again. Ids files of abandoned intents are removed
/// too. Format 3 adds `collected`; format 2 (the same without it) is read as is, and a batchkit
/// that reads only format 2 refuses a format-3 file rather than look for the removed files.
///
/// Every write is atomic and durable: the ids file, then the job file, each written to a temporary
/// file, synced and renamed into place (the directory synced too), before the call it prepares: a
/// crash leaves the previous or the new version, never half of one, and never a job file naming an
/// ids file that is not there.
///
/// A job file of the first format (`"jobs"` with the ids inline) is converted when it is opened:
/// its ids are written to ids files, then the job file is rewritten. The jobs list is called
/// `native_jobs` so that an older batchkit refuses the new format rather than reading it as a run
/// without jobs (and submitting everything again).
final class JobFile: JobLedger, Sendable {
    /// The format this version writes (it reads this one, 2 and the first).
    static let format = 3

    /// A job, and the file of the custom ids it holds.
    struct Entry: Codable, Sendable, Hashable {
        var id: String
        /// The ids file's name in ``JobFile/idsDirectory``.
        var idsFile: String
        /// The number of ids in it.
        var count: Int
        /// `true` once the job ended and every one of its ids had a successful result in the output
        /// (synced to storage before this was written): the ids file is then removed. Nothing
        /// reads a job's ids but to find those without a successful result (to re-attach, hold or
        /// count them), and such a job has none, so it reads as holding no ids. `nil` otherwise.
        var collected: Bool?

        /// See ``collected``.
        var isCollected: Bool { collected == true }

        enum CodingKeys: String, CodingKey {
            case id, count, collected
            case idsFile = "ids_file"
        }
    }

    struct Intent: Codable, Sendable, Hashable {
        var intent: JobIntent
        /// The ids file's name in ``JobFile/idsDirectory``.
        var idsFile: String
        var jobID: String?
        var abandoned: Bool

        enum CodingKeys: String, CodingKey {
            case tag, provider, count
            case groupKey = "group_key"
            case idsHash = "ids_hash"
            case createdAt = "created_at"
            case fileID = "file_id"
            case idsFile = "ids_file"
            case customIDs = "custom_ids"
            case jobID = "job_id"
            case abandoned
        }

        init(intent: JobIntent, idsFile: String) {
            self.intent = intent
            self.idsFile = idsFile
            self.abandoned = false
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            try self.init(from: c, idsFile: try c.decode(String.self, forKey: .idsFile))
        }

        /// Everything but the ids file's name, which the first format did not have.
        init(from c: KeyedDecodingContainer<CodingKeys>, idsFile: String) throws {
            var i = JobIntent(provider: try c.decode(String.self, forKey: .provider), items: [], tag: try c.decode(String.self, forKey: .tag))
            i.groupKey = try c.decodeIfPresent(String.self, forKey: .groupKey) ?? ""
            i.count = try c.decode(Int.self, forKey: .count)
            i.idsHash = try c.decodeIfPresent(String.self, forKey: .idsHash) ?? ""
            i.createdAt = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .createdAt))
            i.fileID = try c.decodeIfPresent(String.self, forKey: .fileID)
            intent = i
            self.idsFile = idsFile
            jobID = try c.decodeIfPresent(String.self, forKey: .jobID)
            abandoned = try c.decodeIfPresent(Bool.self, forKey: .abandoned) ?? false
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(intent.tag, forKey: .tag)
            try c.encode(intent.provider, forKey: .provider)
            try c.encode(intent.groupKey, forKey: .groupKey)
            try c.encode(intent.count, forKey: .count)
            try c.encode(intent.idsHash, forKey: .idsHash)
            try c.encode(intent.createdAt.timeIntervalSince1970, forKey: .createdAt)
            try c.encode(intent.fileID, forKey: .fileID)
            try c.encode(idsFile, forKey: .idsFile)
            try c.encode(jobID, forKey: .jobID)
            if abandoned { try c.encode(true, forKey: .abandoned) }
        }

        /// The number of requests of the intent.
        var count: Int { intent.count }

        /// Neither resolved nor abandoned: a job may exist that nobody tracks.
        var isOpen: Bool { jobID == nil && !abandoned }
    }

    struct Contents: Codable, Sendable {
        var format: Int
        var provider: String
        var jobs: [Entry]
        var intents: [Intent]

        enum CodingKeys: String, CodingKey {
            case format, provider, intents
            case jobs = "native_jobs"
        }
    }

    /// The job file.
    let url: URL
    /// Where the ids files are: `OUT.jsonl.jobs/` beside `OUT.jsonl.jobs.json`.
    let idsDirectory: URL
    private let contents: Mutex<Contents>
    /// The last state read for each job in this process (not persisted: a rerun reads it again).
    private let statuses = Mutex<[String: BatchJob.Status]>([:])

    /// Reads the file if it exists, converting a file of the first format.
    ///
    /// - Throws: ``CommandFailure`` when the file exists but cannot be read, belongs to another
    ///   provider, or was written by a newer batchkit.
    init(url: URL, provider: String) throws {
        self.url = url
        self.idsDirectory = url.deletingPathExtension()
        var contents = Contents(format: Self.format, provider: provider, jobs: [], intents: [])
        if FileManager.default.fileExists(atPath: url.path) {
            let data: Data
            let probe: Probe
            do {
                data = try Data(contentsOf: url)
                probe = try JSONDecoder().decode(Probe.self, from: data)
            } catch {
                throw CommandFailure("\(url.path): not a job file written by batchkit (\(error))")
            }
            guard probe.provider == provider else {
                throw CommandFailure(
                    "\(url.path): the jobs were submitted to \(probe.provider), not \(provider); use --provider \(probe.provider)")
            }
            switch probe.format {
            case nil:
                contents = try Self.convertLegacy(data, url: url, idsDirectory: idsDirectory)
            case 2?, Self.format?:
                do {
                    contents = try JSONDecoder().decode(Contents.self, from: data)
                    // Written back as the current format: once a job is marked collected, a
                    // batchkit that reads only format 2 must refuse the file.
                    contents.format = Self.format
                } catch {
                    throw CommandFailure("\(url.path): not a job file written by batchkit (\(error))")
                }
            case let other?:
                throw CommandFailure(
                    "\(url.path): written by a newer batchkit (job file format \(other); this one reads 1 to \(Self.format)); "
                        + "run that version, or upgrade")
            }
        }
        self.contents = Mutex(contents)
    }

    /// The members every format has.
    private struct Probe: Decodable {
        var format: Int?
        var provider: String
    }

    /// The first format: each job's and each open intent's ids inline.
    private struct Legacy: Decodable {
        struct Job: Decodable {
            var id: String
            var customIDs: [String]
            enum CodingKeys: String, CodingKey {
                case id
                case customIDs = "custom_ids"
            }
        }
        struct LegacyIntent: Decodable {
            var intent: Intent
            var customIDs: [String]
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: Intent.CodingKeys.self)
                customIDs = try c.decodeIfPresent([String].self, forKey: .customIDs) ?? []
                // The first format has no ids file: decode the rest with a placeholder.
                intent = try Intent(from: c, idsFile: "")
            }
        }
        var provider: String
        var jobs: [Job]
        var intents: [LegacyIntent]?
    }

    /// Converts a job file of the first format: its ids go to ids files (written first), then the
    /// job file is rewritten in the current format. A crash in between leaves the first-format
    /// file, converted again by the next run.
    private static func convertLegacy(_ data: Data, url: URL, idsDirectory: URL) throws -> Contents {
        let legacy: Legacy
        do {
            legacy = try JSONDecoder().decode(Legacy.self, from: data)
        } catch {
            throw CommandFailure("\(url.path): not a job file written by batchkit (\(error))")
        }
        var contents = Contents(format: format, provider: legacy.provider, jobs: [], intents: [])
        do {
            var jobFiles: [String: String] = [:]
            for old in legacy.intents ?? [] {
                var intent = old.intent
                // A resolved intent's ids were kept in its job only.
                let name = intent.intent.tag + ".ids"
                if intent.jobID == nil || !old.customIDs.isEmpty {
                    try writeIDs(old.customIDs, named: name, in: idsDirectory)
                }
                intent.idsFile = name
                if let jobID = intent.jobID { jobFiles[jobID] = name }
                contents.intents.append(intent)
            }
            for (n, job) in legacy.jobs.enumerated() where !contents.jobs.contains(where: { $0.id == job.id }) {
                let name = jobFiles[job.id] ?? "job-\(n)-\(String(format: "%08x", UInt32.random(in: 0...UInt32.max))).ids"
                try writeIDs(job.customIDs, named: name, in: idsDirectory)
                contents.jobs.append(Entry(id: job.id, idsFile: name, count: job.customIDs.count))
            }
            try writeDurably(try encode(contents), to: url)
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure("\(url.path): cannot convert it to the current format: \(error)")
        }
        return contents
    }

    /// The jobs recorded so far.
    var entries: [Entry] { contents.withLock { $0.jobs } }

    /// Intents whose job is not known yet (nor known not to exist).
    var openIntents: [Intent] { contents.withLock { $0.intents.filter(\.isOpen) } }

    /// Every intent recorded so far.
    var intents: [Intent] { contents.withLock { $0.intents } }

    /// Marks an open intent as having no job (the provider's recent jobs hold none for it).
    func abandon(tag: String) throws {
        try update { c in
            guard let i = c.intents.firstIndex(where: { $0.intent.tag == tag }) else { return }
            c.intents[i].abandoned = true
        }
    }

    // MARK: Ids

    /// Calls `body` with each custom id in the ids file `name`, in order, until it returns false.
    ///
    /// - Throws: ``CommandFailure`` when the file is missing or damaged: the job's ids are then
    ///   unknown, and the run must not guess.
    func forEachID(inFile name: String, count: Int, _ body: (String) throws -> Bool) throws {
        let file = idsDirectory.appendingPathComponent(name)
        var seen = 0
        var stopped = false
        do {
            try JSONLReader.forEachLineInBlocks(of: file) { line, lineNumber in
                guard !stopped else { return }
                guard let id = Self.decodeID(line) else {
                    throw CommandFailure("\(file.path):\(lineNumber): not an id written by batchkit")
                }
                seen += 1
                if try !body(id) { stopped = true }
            }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure(
                "\(file.path): cannot read the custom ids of a native job (\(error)); it was written by the run that "
                    + "submitted the job, and without it the job's requests are unknown: restore it, or move \(url.path) "
                    + "and \(idsDirectory.path) away to start over (what the jobs ran may then be paid twice)")
        }
        if !stopped, seen != count {
            throw CommandFailure("\(file.path): holds \(seen) custom ids, expected \(count): the file is damaged")
        }
    }

    /// Calls `body` with each custom id of `entry` until it returns false; with none for a
    /// collected job (its ids file is gone, and all its ids succeeded: see ``Entry/collected``).
    func forEachID(of entry: Entry, _ body: (String) throws -> Bool) throws {
        guard !entry.isCollected else { return }
        try forEachID(inFile: entry.idsFile, count: entry.count, body)
    }

    /// Calls `body` with each custom id of `intent` until it returns false.
    func forEachID(of intent: Intent, _ body: (String) throws -> Bool) throws {
        try forEachID(inFile: intent.idsFile, count: intent.count, body)
    }

    /// The custom ids of `entry`, packed, each once.
    func ids(of entry: Entry) throws -> PackedIDs {
        var out = PackedIDs()
        try forEachID(of: entry) { out.append($0); return true }
        return out
    }

    /// Whether any custom id of `entry` satisfies `predicate`.
    func contains(in entry: Entry, where predicate: (String) -> Bool) throws -> Bool {
        var found = false
        try forEachID(of: entry) { id in
            found = predicate(id)
            return !found
        }
        return found
    }

    // MARK: JobLedger

    func recordIntent(_ intent: JobIntent, ids: [String]) throws {
        let name = intent.tag + ".ids"
        try Self.writeIDs(ids, named: name, in: idsDirectory)
        try update { c in c.intents.append(Intent(intent: intent, idsFile: name)) }
    }

    func recordUpload(_ fileID: String, for intent: JobIntent) throws {
        try update { c in
            guard let i = c.intents.firstIndex(where: { $0.intent.tag == intent.tag }) else { return }
            c.intents[i].intent.fileID = fileID
        }
    }

    func recordJob(_ job: BatchJob, for intent: JobIntent) throws {
        try update { c in
            guard let i = c.intents.firstIndex(where: { $0.intent.tag == intent.tag }) else { return }
            c.intents[i].jobID = job.id
            c.intents[i].abandoned = false
            if !c.jobs.contains(where: { $0.id == job.id }) {
                c.jobs.append(Entry(id: job.id, idsFile: c.intents[i].idsFile, count: c.intents[i].count))
            }
        }
        note(job)
    }

    var recordedJobIDs: Set<String> { contents.withLock { Set($0.jobs.map(\.id)) } }

    // MARK: Collected jobs

    /// Marks the jobs `jobIDs` collected (``Entry/collected``), durably. Call it only once their
    /// results are synced to the output; their ids files are removed after, by
    /// ``removeUnneededIDsFiles()``, so a crash in between leaves a collected job whose file is
    /// still there (removed by the next run), never a job that holds unknown ids.
    func markCollected(_ jobIDs: Set<String>) throws {
        try update { c in
            for i in c.jobs.indices where jobIDs.contains(c.jobs[i].id) { c.jobs[i].collected = true }
        }
    }

    /// Removes the ids files nothing reads any more: those of collected jobs and of abandoned
    /// intents (unless a job not collected or an open intent names the same file), then the ids
    /// directory if that left it empty. Files the job file does not name (a run killed between
    /// writing an ids file and recording its intent, before any job could be created) are left.
    ///
    /// - Returns: the number of files removed.
    @discardableResult
    func removeUnneededIDsFiles() -> Int {
        let names = contents.withLock { c in
            var unneeded = Set(c.jobs.filter(\.isCollected).map(\.idsFile))
            unneeded.formUnion(c.intents.filter(\.abandoned).map(\.idsFile))
            unneeded.subtract(c.jobs.filter { !$0.isCollected }.map(\.idsFile))
            unneeded.subtract(c.intents.filter(\.isOpen).map(\.idsFile))
            return unneeded
        }
        var removed = 0
        for name in names.sorted() where unlink(idsDirectory.appendingPathComponent(name).path) == 0 { removed += 1 }
        _ = rmdir(idsDirectory.path)  // fails, and keeps it, unless it is empty
        return removed
    }

    // MARK: States

    /// Remembers the state a job was last seen in.
    func note(_ job: BatchJob) { statuses.withLock { $0[job.id] = job.status } }

    /// The state a job was last seen in by this process.
    func status(of jobID: String) -> BatchJob.Status? { statuses.withLock { $0[jobID] } }

    // MARK: Writing

    /// Changes the contents and rewrites the file, under the lock (so two updates never land out
    /// of order).
    private func update(_ change: (inout Contents) -> Void) throws {
        try contents.withLock { c in
            var next = c
            change(&next)
            try Self.writeDurably(try Self.encode(next), to: url)
            c = next
        }
    }

    private static func encode(_ contents: Contents) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(contents)
    }

    /// Writes `ids` to the ids file `name` in `directory`, one JSON string per line, durably.
    static func writeIDs(_ ids: some Sequence<String>, named name: String, in directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try writeDurably(to: directory.appendingPathComponent(name)) { emit in
            var buffer: [UInt8] = []
            buffer.reserveCapacity(1 << 16)
            for id in ids {
                JSONValue.string(id).write(into: &buffer)
                buffer.append(0x0A)
                if buffer.count >= 1 << 16 {
                    try emit(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try emit(buffer)
        }
    }

    /// The id on one line of an ids file.
    static func decodeID(_ line: UnsafeBufferPointer<UInt8>) -> String? {
        guard line.count >= 2, line.first == UInt8(ascii: "\""), line.last == UInt8(ascii: "\"") else { return nil }
        let inner = UnsafeBufferPointer(rebasing: line[1..<(line.count - 1)])
        if !inner.contains(UInt8(ascii: "\\")) { return String(decoding: inner, as: UTF8.self) }
        return (try? JSONValue(parsing: Data(line)))?.stringValue
    }

    /// Writes `data` to `url` durably and atomically.
    static func writeDurably(_ data: Data, to url: URL) throws {
        try writeDurably(to: url) { emit in try emit(Array(data)) }
    }

    /// Writes what `produce` emits to a temporary file beside `url`, syncs it, renames it over
    /// `url` and syncs the directory: a crash leaves the old file or the new one, whole.
    static func writeDurably(to url: URL, _ produce: (_ emit: ([UInt8]) throws -> Void) throws -> Void) throws {
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CommandFailure("\(temp): cannot create it: \(String(cString: strerror(errno)))") }
        var closed = false
        defer {
            if !closed { close(fd) }
        }
        do {
            try produce { bytes in
                var written = 0
                while written < bytes.count {
                    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CommandFailure("\(temp): cannot write it: \(String(cString: strerror(errno)))")
                    }
                    written += n
                }
            }
            guard fsync(fd) == 0 else { throw CommandFailure("\(temp): cannot sync it: \(String(cString: strerror(errno)))") }
            close(fd)
            closed = true
            guard rename(temp, url.path) == 0 else {
                throw CommandFailure("\(url.path): cannot replace it: \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(temp)
            throw error
        }
        let dir = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}

/// A backend that tells the ``JobFile`` the state of each job it reads, so the run knows which
/// jobs are still running, completed, or ended without running everything (`status(of:)` and
/// `results(of:handler:)` note the job; `downloadResults(of:handler:)` does not).
typealias RecordingBackend = JobStatusObserver

extension JobStatusObserver {
    init(base: any BatchBackend, jobFile: JobFile) {
        self.init(base: base, notesDownloads: false) { jobFile.note($0) }
    }
}
