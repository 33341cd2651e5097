import BatchKit
import Foundation

extension RunCommand {
    /// Settles the intents an earlier run left without a job (it stopped, or lost the create
    /// call's answer, between recording the intent and recording the job): the provider's recent
    /// jobs are searched, the match is adopted (recorded, then re-attached like any other job), and
    /// an intent with no match is marked abandoned, freeing its requests.
    ///
    /// - Returns: the requests of intents that could not be settled (the jobs could not be
    ///   listed): they must not be submitted by this run, since a job may hold them.
    static func resolveOpenIntents(jobFile: JobFile, backend: any BatchBackend) async -> (held: Set<String>, error: String?) {
        var held = Set<String>()
        var firstError: String?
        for open in jobFile.openIntents {
            var settled = false
            var lastError = ""
            for attempt in 1...3 where !settled {
                do {
                    if let job = try await backend.findJob(for: open.intent, excluding: jobFile.recordedJobIDs) {
                        try jobFile.recordJob(job, for: open.intent)
                        printError(
                            "batchkit run: adopted job \(job.id) (\(open.customIDs.count) request(s)): it was created before the earlier run recorded it")
                    } else {
                        try jobFile.abandon(tag: open.intent.tag)
                    }
                    settled = true
                } catch {
                    lastError = BatchError(wrapping: error).message
                    if attempt < 3 { try? await Task.sleep(for: .milliseconds(500 * attempt)) }
                }
            }
            if !settled {
                held.formUnion(open.customIDs)
                firstError = firstError ?? "cannot tell whether a job was created for \(open.customIDs.count) request(s): \(lastError)"
            }
        }
        return (held, firstError)
    }

    /// Jobs that carry the tag of one of the run's intents but are not the job recorded for it
    /// (a create call whose answer was lost, repeated after a look found nothing) are cancelled:
    /// their requests are covered by the recorded job. A job of an intent still open is adopted,
    /// unless every one of its requests already has a successful result (`isCovered`): then it is
    /// cancelled too. Only for providers that tag jobs; a failed listing is reported and skipped
    /// (the next run looks again).
    static func cancelOrphans(jobFile: JobFile, backend: any BatchBackend, isCovered: (String) -> Bool) async {
        guard backend.tagsJobs else { return }
        let intents = jobFile.intents
        guard !intents.isEmpty else { return }
        let recorded = jobFile.recordedJobIDs
        let jobs: [BatchJob]
        do {
            jobs = try await backend.list(limit: 100)
        } catch {
            printError("batchkit run: could not list jobs to look for orphans: \(BatchError(wrapping: error).message)")
            return
        }
        for job in jobs where !recorded.contains(job.id) && !job.status.isTerminal && job.status != .cancelling {
            guard let intent = intents.first(where: { $0.intent.matches(job, tagsJobs: true) }) else { continue }
            if intent.isOpen, !intent.customIDs.allSatisfy(isCovered) {
                // Not settled yet (its listing failed earlier): adopt it now.
                if (try? jobFile.recordJob(job, for: intent.intent)) != nil {
                    printError("batchkit run: adopted job \(job.id)")
                }
                continue
            }
            do {
                _ = try await backend.cancel(jobID: job.id)
                if intent.isOpen { try? jobFile.abandon(tag: intent.intent.tag) }
                printError("batchkit run: cancelled job \(job.id): its requests are covered (by \(intent.jobID ?? "results already recorded"))")
            } catch {
                printError("batchkit run: could not cancel duplicate job \(job.id): \(BatchError(wrapping: error).message)")
            }
        }
    }

    /// Requests this run must not submit: those of jobs still running (or, with
    /// `includingCompleted`, completed: their results are collected from those jobs, never paid
    /// for twice) that have no successful result yet, and those of intents that could not be
    /// settled.
    static func heldIDs(jobFile: JobFile, journal: Journal, unsettled: Set<String>, includingCompleted: Bool) -> Set<String> {
        var held = unsettled
        for entry in jobFile.entries {
            switch jobFile.status(of: entry.id) {
            case .failed?, .expired?, .cancelled?: continue  // what did not run may run again
            case .completed?: if !includingCompleted { continue }
            default: break
            }
            for id in entry.customIDs where journal.entry(for: id)?.isSuccess != true { held.insert(id) }
        }
        return held
    }

    /// The jobs (recorded in the job file) that hold requests without a successful result and
    /// were last seen running.
    static func runningJobs(jobFile: JobFile, journal: Journal) -> [String] {
        jobFile.entries.filter { entry in
            guard let status = jobFile.status(of: entry.id), !status.isTerminal else { return false }
            return entry.customIDs.contains { journal.entry(for: $0)?.isSuccess != true }
        }.map(\.id)
    }
}
