import BatchKit
import Foundation
import Synchronization

/// The native jobs of a run, kept beside its output (`OUT.jsonl.jobs.json`) so a rerun re-attaches
/// to them instead of submitting again:
///
/// ```json
/// {"provider": "openai", "jobs": [{"id": "batch_…", "custom_ids": ["q1", "q2"]}]}
/// ```
///
/// Rewritten whole after every submission, atomically (a temporary file, then rename), so a crash
/// leaves the previous or the new version, never half of one.
final class JobFile: Sendable {
    struct Entry: Codable, Sendable, Hashable {
        var id: String
        var customIDs: [String]

        enum CodingKeys: String, CodingKey {
            case id
            case customIDs = "custom_ids"
        }
    }

    struct Contents: Codable, Sendable {
        var provider: String
        var jobs: [Entry]
    }

    let url: URL
    private let contents: Mutex<Contents>

    /// Reads the file if it exists.
    ///
    /// - Throws: ``CommandFailure`` when the file exists but cannot be read, or belongs to another
    ///   provider.
    init(url: URL, provider: String) throws {
        self.url = url
        var contents = Contents(provider: provider, jobs: [])
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

    /// Records a new job and rewrites the file atomically.
    func add(jobID: String, customIDs: [String]) throws {
        let data: Data = try contents.withLock { c in
            c.jobs.append(Entry(id: jobID, customIDs: customIDs))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return try encoder.encode(c)
        }
        try data.write(to: url, options: .atomic)
    }
}

/// A backend that records each job it creates in a ``JobFile`` before reporting it, so a run
/// killed at any later point can re-attach.
struct RecordingBackend: BatchBackend {
    let base: any BatchBackend
    let jobFile: JobFile

    var provider: String { base.provider }
    var limits: BatchLimits { base.limits }

    func encode(_ request: BatchRequest) throws(BatchError) -> EncodedBatchItem { try base.encode(request) }

    func submit(_ items: [EncodedBatchItem], metadata: [String: String]) async throws -> BatchJob {
        let job = try await base.submit(items, metadata: metadata)
        do {
            try jobFile.add(jobID: job.id, customIDs: items.map(\.id))
        } catch {
            throw BatchError(.io, "\(jobFile.url.path): cannot record job \(job.id): \(error)")
        }
        return job
    }

    func status(of jobID: String) async throws -> BatchJob { try await base.status(of: jobID) }

    func results(of job: BatchJob, handler: (BatchResult) async throws -> Void) async throws {
        try await base.results(of: job, handler: handler)
    }

    func cancel(jobID: String) async throws -> BatchJob { try await base.cancel(jobID: jobID) }

    func list(limit: Int) async throws -> [BatchJob] { try await base.list(limit: limit) }

    func delete(jobID: String) async throws { try await base.delete(jobID: jobID) }
}
