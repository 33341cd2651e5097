package import Foundation

/// Size limits of one provider batch job. `NativeBatchProcessor` splits work so no job exceeds them.
public struct BatchLimits: Sendable, Hashable {
    /// Most requests in one job.
    public var maxRequests: Int
    /// Most bytes of encoded requests in one job.
    public var maxBytes: Int

    public init(maxRequests: Int, maxBytes: Int) {
        self.maxRequests = maxRequests
        self.maxBytes = maxBytes
    }
}

/// One request already encoded in the provider's batch format.
package struct EncodedBatchItem: Sendable {
    /// The custom id.
    package var id: String
    /// The provider's JSON for this one request (an OpenAI input line without newline, an
    /// Anthropic `{custom_id, params}` element, a Gemini `{key, request}` line...).
    package var data: Data
    /// Requests with different group keys never share a job (OpenAI: one model and endpoint per file).
    package var groupKey: String
    /// The request's ``BatchRequest/metadata``, kept on this side (never in ``data``) and given
    /// to the item's result. Set by the native run; backends leave it empty.
    package var metadata: [String: String]

    package init(id: String, data: Data, groupKey: String = "", metadata: [String: String] = [:]) {
        self.id = id
        self.data = data
        self.groupKey = groupKey
        self.metadata = metadata
    }
}

/// The provider-specific half of native batch processing; ``NativeBatchProcessor`` is the other,
/// shared half (validation, splitting, polling, joining, resubmission, events).
///
/// Implementations: `OpenAIBatchBackend`, `AnthropicBatchBackend`, `GeminiBatchBackend`.
package protocol BatchBackend: Sendable {
    /// `openai`, `anthropic`, `gemini`...
    var provider: String { get }
    /// Limits of one job.
    var limits: BatchLimits { get }

    /// Checks and encodes one request. Throws a `validation` ``BatchError`` naming the field when
    /// the provider's batch API cannot express it (nothing has been sent at that point).
    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem

    /// Creates one remote job from already split items (all with the same group key, within
    /// ``limits``). Returns as soon as the job exists remotely.
    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob

    /// The job's current state and counts.
    func status(of jobID: String) async throws -> BatchJob

    /// Streams the results of a job that has ended (or has partial results), one call of
    /// `handler` per result line, without holding the whole result in memory. Results carry
    /// `route: .batch`. Ids absent from the output are not reported here: the processor reports
    /// them.
    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws

    /// ``results(of:handler:)``, returning what the result lines held (``BatchResultsSummary``):
    /// how many lines could not be read and named no id, and where. The processor names them in
    /// the errors of the ids left without a result. The default calls ``results(of:handler:)``
    /// and reports nothing skipped; a backend that reads result files with
    /// `BatchResultsFile` returns its summary.
    func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary

    /// Asks the provider to cancel the job; returns its state after the request.
    func cancel(jobID: String) async throws -> BatchJob

    /// Jobs known to the provider for this account, newest first.
    func list(limit: Int) async throws -> [BatchJob]

    /// Deletes the job (and its files, where the provider keeps them), where supported.
    func delete(jobID: String) async throws

    /// Whether jobs carry the tag of ``submit(_:metadata:intent:uploaded:)`` (OpenAI metadata,
    /// Gemini display name), so a job can be recognised by it. `false` (the default): jobs are
    /// recognised by creation time and request count.
    var tagsJobs: Bool { get }

    /// Creates one job for `intent`: like ``submit(_:metadata:)``, with the job tagged by
    /// `intent.tag` where the provider allows it, and `uploaded` called with the input file's id
    /// after the upload and before the create call, where there is a file.
    ///
    /// The default calls ``submit(_:metadata:)`` with the tag added to `metadata` under
    /// ``JobIntent/metadataKey``.
    func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob

    /// Creates one job for `intent` from a spooled chunk: like
    /// ``submit(_:metadata:intent:uploaded:)``, reading the items from the chunk's spool file.
    /// Backends that upload a file write it from the spool file piece by piece, so the chunk is
    /// never in memory. The default reads the items into memory and calls
    /// ``submit(_:metadata:intent:uploaded:)``.
    ///
    /// A requirement (not only an extension method), so the backends' streaming versions are the
    /// ones `NativeRun` calls through `any BatchBackend`.
    func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob

    /// The job created for `intent`, among the provider's recent jobs, leaving out `excluding`
    /// (jobs the run already tracks); `nil` when there is none. Throws when the jobs cannot be
    /// listed: then nobody knows.
    ///
    /// The default lists the provider's jobs (100, then 1,000, then 10,000 while none matches and
    /// the listing may still hold a newer job: it has more jobs and is not newest first down past
    /// the intent's time) and returns the one that ``JobIntent/matches(_:tagsJobs:)``, chosen by
    /// ``JobIntent/choose(among:)`` when several do.
    func findJob(for intent: JobIntent, excluding: Set<String>) async throws -> BatchJob?
}

extension BatchBackend {
    package var tagsJobs: Bool { false }

    package func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        var tagged = metadata
        tagged[JobIntent.metadataKey] = intent.tag
        return try await submit(items, metadata: tagged)
    }

    package func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent,
        uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await submit(try await chunk.items(), metadata: metadata, intent: intent, uploaded: uploaded)
    }

    package func findJob(for intent: JobIntent, excluding: Set<String>) async throws -> BatchJob? {
        let tags = tagsJobs
        let isCandidate = { (job: BatchJob) in !excluding.contains(job.id) && intent.matches(job, tagsJobs: tags) }
        let jobs = try await recentJobs(createdSince: intent.createdAt, until: { $0.contains(where: isCandidate) })
        guard var job = intent.choose(among: jobs.filter(isCandidate)) else { return nil }
        // A job listed while the provider still validates it can count 0 requests (OpenAI's
        // `request_counts.total`); it holds the intent's chunk, as a created job does.
        job.requestCount = max(job.requestCount, intent.count)
        return job
    }

    /// The provider's jobs, as far back as a job created at `since` (give or take
    /// ``JobIntent/clockSkew``) may be listed: 100, then 1,000, then ``findJobScanLimit`` jobs,
    /// until `enough` holds for a listing, the listing has ended, or it is newest first and its
    /// last job is older than `since`. Not every provider documents its listing order (Gemini's
    /// does not say), so only a listing seen to be newest first stops early. Returns the last
    /// listing. Shared by ``findJob(for:excluding:)`` and the CLI's search for duplicate jobs,
    /// so both look as far.
    package func recentJobs(createdSince since: Date, until enough: ([BatchJob]) -> Bool = { _ in false }) async throws -> [BatchJob] {
        var limit = 100
        while true {
            let jobs = try await list(limit: limit)
            if enough(jobs) || jobs.count < limit || limit >= Self.findJobScanLimit || Self.listed(jobs, pastTheTimeOf: since) {
                return jobs
            }
            limit = min(limit * 10, Self.findJobScanLimit)
        }
    }

    /// ``findJob(for:excluding:)``, looked up again (after 1, 2, 4… seconds on `clock`) while
    /// `intent` is younger than `listingLag`: a job created seconds ago may not be listed yet, and
    /// taking it for never created would create (and pay for) it again. `now` is the wall time
    /// the intent's age is measured at. Returns `nil` once a look after the lag still finds nothing.
    package func findJob<C: Clock>(
        for intent: JobIntent, excluding: Set<String>, listingLag: Duration = JobIntent.listingLag, now: Date = Date(), clock: C
    ) async throws -> BatchJob? where C.Duration == Duration {
        var remaining = listingLag - .seconds(now.timeIntervalSince(intent.createdAt))
        var pause = Duration.seconds(1)
        while true {
            if let job = try await findJob(for: intent, excluding: excluding) { return job }
            guard remaining > .zero else { return nil }
            let wait = min(pause, remaining)
            try await clock.sleep(until: clock.now.advanced(by: wait), tolerance: nil)
            remaining -= wait
            pause *= 2
        }
    }

    /// How many of the provider's jobs ``recentJobs(createdSince:until:)`` (and so
    /// ``findJob(for:excluding:)``) looks at, at most.
    package static var findJobScanLimit: Int { 10_000 }

    /// Whether `jobs` are listed newest first and the last one was created before `since`
    /// (give or take ``JobIntent/clockSkew``): later pages hold only older jobs.
    static func listed(_ jobs: [BatchJob], pastTheTimeOf since: Date) -> Bool {
        let times = jobs.map(\.createdAt)
        guard let last = times.last ?? nil, times.allSatisfy({ $0 != nil }) else { return false }
        let newestFirst = zip(times, times.dropFirst()).allSatisfy { $0! >= $1! }
        return newestFirst && last < since.addingTimeInterval(-JobIntent.clockSkew)
    }
}

extension BatchBackend {
    /// Calls ``results(of:handler:)`` and counts the results; reports no skipped lines.
    package func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        var summary = BatchResultsSummary()
        try await results(of: job) { result in
            summary.results += 1
            try await handler(result)
        }
        return summary
    }
}
