package import Foundation

/// What a run is about to create: one provider job for one chunk of requests, recorded
/// **before** the create call so that a crash, or an answer lost on the way back, never leads to a
/// second job for the same requests.
///
/// The intent carries a fingerprint of the chunk (provider, group key — endpoint and model —, the
/// number of requests and a hash of their ids), the tag the job is given where the provider can
/// carry one (OpenAI `metadata`, Gemini `displayName`), and the uploaded input file once there is
/// one. ``matches(_:tagsJobs:)`` recognises the job among the provider's recent jobs.
package struct JobIntent: Sendable, Hashable, Codable {
    /// A random tag, unique to this intent: `batchkit-` and 16 hex digits.
    package var tag: String
    /// The backend's provider name.
    package var provider: String
    /// The items' group key (OpenAI: endpoint and model; Gemini: kind and model).
    package var groupKey: String
    /// The number of requests in the chunk.
    package var count: Int
    /// FNV-1a (64 bits, hex) of the custom ids, each followed by a newline, in chunk order.
    package var idsHash: String
    /// When the intent was recorded (wall time: it is compared with the provider's `created_at`).
    package var createdAt: Date
    /// The input file uploaded for the job, once there is one.
    package var fileID: String?

    /// The metadata key that carries ``tag`` where the provider has job metadata.
    package static let metadataKey = "batchkit_intent"

    /// How far before ``createdAt`` a provider's `created_at` may lie and still match, to allow for
    /// clocks that disagree.
    package static let clockSkew: TimeInterval = 300

    /// How long after an intent is recorded its job may still be missing from the provider's job
    /// listing: a listing can lag behind creation, so a rerun that comes sooner looks again before
    /// it takes the job for never created (see ``BatchBackend/findJob(for:excluding:listingLag:now:clock:)``).
    package static let listingLag: Duration = .seconds(15)

    package init(provider: String, items: [EncodedBatchItem], createdAt: Date = Date(), tag: String? = nil) {
        self.tag = tag ?? "batchkit-" + String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
        self.provider = provider
        self.groupKey = items.first?.groupKey ?? ""
        self.count = items.count
        self.idsHash = Self.hash(items.lazy.map(\.id))
        self.createdAt = createdAt
    }

    /// An intent for a chunk described by its group key, size and ``hash(_:)`` of its ids.
    package init(provider: String, groupKey: String, count: Int, idsHash: String, createdAt: Date = Date(), tag: String? = nil) {
        self.tag = tag ?? "batchkit-" + String(format: "%016llx", UInt64.random(in: 0...UInt64.max))
        self.provider = provider
        self.groupKey = groupKey
        self.count = count
        self.idsHash = idsHash
        self.createdAt = createdAt
    }

    /// FNV-1a over the ids, each followed by a newline, as 16 hex digits.
    package static func hash(_ ids: some Sequence<String>) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for id in ids {
            for byte in id.utf8 {
                h ^= UInt64(byte)
                h = h &* 0x100_0000_01b3
            }
            h ^= 0x0A
            h = h &* 0x100_0000_01b3
        }
        return String(format: "%016llx", h)
    }

    /// Whether `job` is the one created for this intent.
    ///
    /// A job that carries the tag (in its metadata, or as its Gemini display name) or the
    /// intent's input file matches. When the provider cannot tag jobs (`tagsJobs` false:
    /// Anthropic), a job matches when it was created after the intent (give or take
    /// ``clockSkew``) and holds as many requests as the chunk.
    package func matches(_ job: BatchJob, tagsJobs: Bool) -> Bool {
        if identifies(job) { return true }
        guard !tagsJobs, let created = job.createdAt else { return false }
        return created >= createdAt.addingTimeInterval(-Self.clockSkew) && job.requestCount == count
    }
}

extension JobIntent {
    /// Whether `job` carries this intent's tag (in its metadata, or as its Gemini display name)
    /// or reads its input file: it is this intent's job, whatever its time and size.
    package func identifies(_ job: BatchJob) -> Bool {
        if job.metadata[Self.metadataKey] == tag || job.metadata["displayName"] == tag { return true }
        if let fileID, job.metadata["input_file_id"] == fileID || job.metadata["inputFile"] == fileID { return true }
        return false
    }

    /// Which of `candidates` (jobs that ``matches(_:tagsJobs:)``) is this intent's: one it
    /// ``identifies(_:)``, the oldest if several (a create repeated after a lost answer made the
    /// later ones); otherwise, matched only by time and size (Anthropic), the one created nearest
    /// to the intent: its create call came right after the intent was recorded. Taking the oldest
    /// match took another client's job of the same size created minutes before the intent (a shard
    /// of the same input; independent Anthropic mock `--neighbour-count 2000 --lose-first-create`:
    /// the run's own job ran, 2,000 ids paid for and never collected, all 2,000 failed for good).
    package func choose(among candidates: [BatchJob]) -> BatchJob? {
        let created = { (job: BatchJob) in job.createdAt ?? .distantFuture }
        let identified = candidates.filter(identifies)
        if !identified.isEmpty { return identified.min { created($0) < created($1) } }
        let distance = { (job: BatchJob) in abs(job.createdAt.map { $0.timeIntervalSince(createdAt) } ?? .infinity) }
        return candidates.min { distance($0) < distance($1) }
    }
}

/// Where a native run records job intents and jobs, durably, so a rerun can find every job it
/// created (or may have created). `batchkit run` keeps them in `OUT.jsonl.jobs.json`.
///
/// The processor calls ``recordIntent(_:ids:)`` before each create call, ``recordUpload(_:for:)``
/// once the input file is uploaded (before the create call), and ``recordJob(_:for:)`` once the
/// job exists (created, or found and adopted). A method that throws stops the creation: the
/// chunk's requests fail with the error (nothing is created unrecorded).
package protocol JobLedger: Sendable {
    /// Records that a job is about to be created for the requests `ids`. Must be durable
    /// (written and flushed) on return.
    func recordIntent(_ intent: JobIntent, ids: [String]) throws
    /// Records the input file uploaded for `intent`.
    func recordUpload(_ fileID: String, for intent: JobIntent) throws
    /// Records the job created or adopted for `intent`.
    func recordJob(_ job: BatchJob, for intent: JobIntent) throws
    /// Jobs already recorded; they are never adopted for another intent.
    var recordedJobIDs: Set<String> { get }
}

extension BatchError {
    /// Whether a failed call may still have reached the server and taken effect: a timeout, a
    /// broken connection, a cut or unreadable answer (even under a 2xx status), a 5xx. Only a 4xx
    /// answer says the server refused it. A create call that failed this way is never repeated
    /// blindly: the provider's jobs are looked at first.
    package var mayHaveReachedServer: Bool {
        if let status = httpStatus {
            if (400...499).contains(status) { return false }
            if status >= 500 || (200...299).contains(status) { return true }
        }
        switch code {
        case .timeout, .network, .server, .overloaded, .invalidResponse: return true
        default: return false
        }
    }
}
