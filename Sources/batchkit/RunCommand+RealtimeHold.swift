import BatchKit
import Foundation

extension RunCommand {
    /// What native jobs of an earlier run hold, seen from a real-time run of the same output.
    struct RealtimeHold {
        /// Requests a real-time run must not send: a native job may still deliver them (or has
        /// run them and holds their results), so sending them again would pay twice.
        var ids: Set<String> = []
        /// The jobs that hold them (or "an unsettled job" for intents that could not be settled).
        var jobs: [String] = []
    }

    /// Before a real-time run over an output that native or hybrid runs wrote to (its
    /// `OUT.jsonl.jobs.json` exists), asks the provider about the jobs recorded there and holds
    /// back every request a job may still deliver or already ran:
    /// - intents without a job are settled as a native rerun would (adopted or abandoned); one
    ///   that cannot be settled holds its requests;
    /// - a job that is still running, or whose state cannot be read, holds each of its requests
    ///   without a successful result;
    /// - a job that completed, was cancelled or expired holds those of its requests with no
    ///   result at all in the output: the provider ran (and billed) them or may have, and only a
    ///   native or hybrid rerun collects them. A request whose failure from the job is in the
    ///   output is free to run again in real time (with `--retry-failed`);
    /// - a job that failed ran nothing and holds nothing.
    ///
    /// Returns an empty hold when there is no job file. Nothing is created or cancelled here.
    static func realtimeHold(outputPath: String, provider: ProviderOptions, journal: Journal) async throws -> RealtimeHold {
        let url = URL(fileURLWithPath: outputPath + ".jobs.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return RealtimeHold() }
        let jobFile = try JobFile(url: url, provider: provider.provider.rawValue)
        let backend = provider.backend()
        var hold = RealtimeHold()
        if !jobFile.openIntents.isEmpty {
            let (unsettled, _) = try await resolveOpenIntents(jobFile: jobFile, backend: backend)
            if !unsettled.isEmpty {
                hold.ids.formUnion(unsettled)
                hold.jobs.append("an unsettled job")
            }
        }
        for entry in jobFile.entries where !entry.isCollected {
            let status: BatchJob.Status?
            do {
                status = try await backend.status(of: entry.id).status
            } catch {
                printError("batchkit run: could not read the state of job \(entry.id): \(BatchError(wrapping: error).message)")
                status = nil
            }
            let holds: (String) -> Bool
            switch status {
            case .failed?: continue
            case .completed?, .cancelled?, .expired?: holds = { !journal.contains($0) }
            default: holds = { journal.succeeded($0) != true }
            }
            var held = false
            try jobFile.forEachID(of: entry) { id in
                if holds(id) {
                    hold.ids.insert(id)
                    held = true
                }
                return true
            }
            if held { hold.jobs.append(entry.id) }
        }
        return hold
    }
}
