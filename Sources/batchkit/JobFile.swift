import BatchKit
import Foundation
import Synchronization

/// The native jobs of a run, kept beside its output (`OUT.jsonl.jobs.json`) so a rerun re-attaches
/// to them instead of submitting again, and the **intents** recorded before each job is created,
/// so a rerun finds a job whose creation was cut off (a crash, a lost answer) instead of creating
/// it twice:
///
/// ```json
/// {"provider": "openai",
///  "jobs": [{"id": "batch_…", "custom_ids": ["q1", "q2"]}],
///  "intents": [{"tag": "batchkit-…", "provider": "openai", "group_key": "/v1/chat/completions gpt-4o-mini",
///               "count": 2, "ids_hash": "…", "created_at": 1764689400.5, "file_id": "file-…",
///               "custom_ids": ["q1", "q2"], "job_id": null}]}
/// ```
///
/// An intent with a `job_id` is resolved (its ids are then kept in `jobs` only); one without is
/// open until a rerun finds its job among the provider's recent jobs, or finds none and marks it
/// `abandoned`.
///
/// Rewritten whole after every change, atomically (a temporary file, then rename), before the call
/// it prepares: a crash leaves the previous or the new version, never half of one.
final class JobFile: JobLedger, Sendable {
    struct Entry: Codable, Sendable, Hashable {
        var id: String
        var customIDs: [String]

        enum CodingKeys: String, CodingKey {
            case id
            case customIDs = "custom_ids"
        }
    }

    struct Intent: Codable, Sendable, Hashable {
        var intent: JobIntent
        var customIDs: [String]
        var jobID: String?
        var abandoned: Bool

        enum CodingKeys: String, CodingKey {
            case tag, provider, count
            case groupKey = "group_key"
            case idsHash = "ids_hash"
            case createdAt = "created_at"
            case fileID = "file_id"
            case customIDs = "custom_ids"
            case jobID = "job_id"
            case abandoned
        }

        init(intent: JobIntent, customIDs: [String]) {
            self.intent = intent
            self.customIDs = customIDs
            self.abandoned = false
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            var i = JobIntent(provider: try c.decode(String.self, forKey: .provider), items: [], tag: try c.decode(String.self, forKey: .tag))
            i.groupKey = try c.decodeIfPresent(String.self, forKey: .groupKey) ?? ""
            i.count = try c.decode(Int.self, forKey: .count)
            i.idsHash = try c.decodeIfPresent(String.self, forKey: .idsHash) ?? ""
            i.createdAt = Date(timeIntervalSince1970: try c.decode(Double.self, forKey: .createdAt))
            i.fileID = try c.decodeIfPresent(String.self, forKey: .fileID)
            intent = i
            customIDs = try c.decodeIfPresent([String].self, forKey: .customIDs) ?? []
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
            try c.encode(customIDs, forKey: .customIDs)
            try c.encode(jobID, forKey: .jobID)
            if abandoned { try c.encode(true, forKey: .abandoned) }
        }

        /// Neither resolved nor abandoned: a job may exist that nobody tracks.
        var isOpen: Bool { jobID == nil && !abandoned }
    }

    struct Contents: Codable, Sendable {
        var provider: String
        var jobs: [Entry]
        var intents: [Intent]?
    }

    let url: URL
    private let contents: Mutex<Contents>
    /// The last state read for each job in this process (not persisted: a rerun reads it again).
    private let statuses = Mutex<[String: BatchJob.Status]>([:])

    /// Reads the file if it exists.
    ///
    /// - Throws: ``CommandFailure`` when the file exists but cannot be read, or belongs to another
    ///   provider.
    init(url: URL, provider: String) throws {
        self.url = url
        var contents = Contents(provider: provider, jobs: [], intents: nil)
        if FileManager.default.fileExists(atPath: url.path) {
            do {
                contents = try JSONDecoder().decode(Contents.self, from: Data(contentsOf: url))
            } catch {
                throw CommandFailure("\(url.path): not a job file written by batchkit (\(error))")
            }
            guard contents.provider == provider else {
                throw CommandFailure(
                    "\(url.path): the jobs were submitted to \(contents.provider), not \(provider); use --provider \(contents.provider)")
            }
        }
        self.contents = Mutex(contents)
    }

    /// The jobs recorded so far.
    var entries: [Entry] { contents.withLock { $0.jobs } }

    /// Intents whose job is not known yet (nor known not to exist).
    var openIntents: [Intent] { contents.withLock { ($0.intents ?? []).filter(\.isOpen) } }

    /// Every intent recorded so far.
    var intents: [Intent] { contents.withLock { $0.intents ?? [] } }

    /// Records a new job and rewrites the file atomically.
    func add(jobID: String, customIDs: [String]) throws {
        try update { c in
            if !c.jobs.contains(where: { $0.id == jobID }) { c.jobs.append(Entry(id: jobID, customIDs: customIDs)) }
        }
    }

    /// Marks an open intent as having no job (the provider's recent jobs hold none for it).
    func abandon(tag: String) throws {
        try update { c in
            guard let i = c.intents?.firstIndex(where: { $0.intent.tag == tag }) else { return }
            c.intents![i].abandoned = true
        }
    }

    // MARK: JobLedger

    func recordIntent(_ intent: JobIntent, ids: [String]) throws {
        try update { c in c.intents = (c.intents ?? []) + [Intent(intent: intent, customIDs: ids)] }
    }

    func recordUpload(_ fileID: String, for intent: JobIntent) throws {
        try update { c in
            guard let i = c.intents?.firstIndex(where: { $0.intent.tag == intent.tag }) else { return }
            c.intents![i].intent.fileID = fileID
        }
    }

    func recordJob(_ job: BatchJob, for intent: JobIntent) throws {
        try update { c in
            var ids: [String] = []
            if let i = c.intents?.firstIndex(where: { $0.intent.tag == intent.tag }) {
                ids = c.intents![i].customIDs
                c.intents![i].jobID = job.id
                c.intents![i].abandoned = false
                c.intents![i].customIDs = []  // kept once, in `jobs`
            }
            if !c.jobs.contains(where: { $0.id == job.id }) { c.jobs.append(Entry(id: job.id, customIDs: ids)) }
        }
        note(job)
    }

    var recordedJobIDs: Set<String> { contents.withLock { Set($0.jobs.map(\.id)) } }

    // MARK: States

    /// Remembers the state a job was last seen in.
    func note(_ job: BatchJob) { statuses.withLock { $0[job.id] = job.status } }

    /// The state a job was last seen in by this process.
    func status(of jobID: String) -> BatchJob.Status? { statuses.withLock { $0[jobID] } }

    private func update(_ change: (inout Contents) -> Void) throws {
        let data: Data = try contents.withLock { c in
            change(&c)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return try encoder.encode(c)
        }
        try data.write(to: url, options: .atomic)
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
