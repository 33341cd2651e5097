import Foundation

/// A backend that tells a ``HybridBook`` the state of each job it reads, so the book knows, when
/// an item of a job arrives, whether that job ended failed, expired or cancelled (its failed items
/// then run in real time instead of being final).
struct JobEndObserver: BatchBackend {
    let base: any BatchBackend
    let book: HybridBook

    var provider: String { base.provider }
    var limits: BatchLimits { base.limits }

    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem { try base.encode(request) }

    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata)
    }

    var tagsJobs: Bool { base.tagsJobs }

    func submit(
        _ items: [EncodedBatchItem], metadata: [String: String], intent: JobIntent, uploaded: @Sendable (String) async throws -> Void
    ) async throws -> BatchJob {
        try await base.submit(items, metadata: metadata, intent: intent, uploaded: uploaded)
    }

    func findJob(for intent: JobIntent, excluding: Set<String>) async throws -> BatchJob? {
        try await base.findJob(for: intent, excluding: excluding)
    }

    func status(of jobID: String) async throws -> BatchJob {
        let job = try await base.status(of: jobID)
        book.noteStatus(job)
        return job
    }

    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        // The processor downloads only terminal jobs: this is the state they ended in.
        book.noteStatus(job)
        try await base.results(of: job, handler: handler)
    }

    func downloadResults(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws -> BatchResultsSummary {
        book.noteStatus(job)
        return try await base.downloadResults(of: job, handler: handler)
    }

    func cancel(jobID: String) async throws -> BatchJob { try await base.cancel(jobID: jobID) }

    func list(limit: Int) async throws -> [BatchJob] { try await base.list(limit: limit) }

    func delete(jobID: String) async throws { try await base.delete(jobID: jobID) }
}
