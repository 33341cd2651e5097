import Foundation

/// A backend that reports the state of each job it reads to `noteStatus` and otherwise forwards
/// to `base`: the hybrid processor's ``HybridBook`` learns how a job ended (its failed items then
/// run in real time instead of being final), and the CLI's job file learns which jobs are still
/// running.
package struct JobStatusObserver: BatchBackend {
    let base: any BatchBackend
    /// Called with every job read through `status(of:)` and `results(of:handler:)`, and through
    /// `downloadResults(of:handler:)` when `notesDownloads`.
    let noteStatus: @Sendable (BatchJob) -> Void
    let notesDownloads: Bool
    /// Called with each job whose results were read to the end without an error (with what the
    /// download read, when it went through `downloadResults(of:handler:)`).
    let noteDownloaded: (@Sendable (BatchJob, BatchResultsSummary?) -> Void)?

    package init(
        base: any BatchBackend, notesDownloads: Bool, noteStatus: @escaping @Sendable (BatchJob) -> Void,
        noteDownloaded: (@Sendable (BatchJob, BatchResultsSummary?) -> Void)? = nil
    ) {
        self.base = base
        self.notesDownloads = notesDownloads
        self.noteStatus = noteStatus
        self.noteDownloaded = noteDownloaded
    }

    package var provider: String { base.provider }
    package var limits: BatchLimits { base.limits }
    package var tagsJobs: Bool { base.tagsJobs }

    package func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem { try base.encode(request) }

    package func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata)
    }

    package func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent, uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata, intent: intent, uploaded: uploaded)
    }

    package func submit(
        _ chunk: SpooledChunk, metadata: [String: String], intent: JobIntent, uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await base.submit(chunk, metadata: metadata, intent: intent, uploaded: uploaded)
    }

    package func findJob(for intent: JobIntent, excluding: Set<String>) async throws -> BatchJob? {
        try await base.findJob(for: intent, excluding: excluding)
    }

    package func status(of jobID: String) async throws -> BatchJob {
        let job = try await base.status(of: jobID)
        noteStatus(job)
        return job
    }

    package func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        // The processor downloads only terminal jobs: this is the state they ended in.
        noteStatus(job)
        try await base.results(of: job, handler: handler)
        noteDownloaded?(job, nil)
    }

    package func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        if notesDownloads { noteStatus(job) }
        let summary = try await base.downloadResults(of: job, handler: handler)
        noteDownloaded?(job, summary)
        return summary
    }

    package func cancel(jobID: String) async throws -> BatchJob { try await base.cancel(jobID: jobID) }

    package func list(limit: Int) async throws -> [BatchJob] { try await base.list(limit: limit) }

    package func delete(jobID: String) async throws { try await base.delete(jobID: jobID) }
}

/// The hybrid processor's observer: tells a ``HybridBook`` the state of each job it reads, so the
/// book knows, when an item of a job arrives, whether that job ended failed, expired or cancelled;
/// and tells the run's ``HybridBudget`` (if any) which jobs' results were read in full.
typealias JobEndObserver = JobStatusObserver

extension JobStatusObserver {
    init(base: any BatchBackend, book: HybridBook, budget: HybridBudget? = nil) {
        var noteDownloaded: (@Sendable (BatchJob, BatchResultsSummary?) -> Void)?
        if let budget {
            noteDownloaded = { job, summary in budget.noteDownloaded(job, summary: summary) }
        }
        self.init(base: base, notesDownloads: true, noteStatus: { book.noteStatus($0) }, noteDownloaded: noteDownloaded)
    }
}
