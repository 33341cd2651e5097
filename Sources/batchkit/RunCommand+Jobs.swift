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
    static func resolveOpenIntents(jobFile: JobFile, backend: any BatchBackend) async throws -> (held: Set<String>, error: String?) {
        var held = Set<String>()
        var firstError: String?
        for open in jobFile.openIntents {
            var settled = false
            var lastError = ""
            for attempt in 1...3 where !settled {
                do {
                    // An intent of seconds ago (a rerun right after a kill) may have a job the
                    // provider does not list yet: look again until the listing has caught up.
                    if let job = try await backend.findJob(
                        for: open.intent, excluding: jobFile.recordedJobIDs, clock: ContinuousClock())
                    {
                        try jobFile.recordJob(job, for: open.intent)
                        printError(
                            "batchkit run: adopted job \(job.id) (\(open.count) request(s)): it was created before the earlier run recorded it")
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
                try jobFile.forEachID(of: open) { held.insert($0); return true }
                firstError = firstError ?? "cannot tell whether a job was created for \(open.count) request(s): \(lastError)"
            }
        }
        return (held, firstError)
    }

    /// Jobs that carry the tag of one of the run's intents but are not the job recorded for it
    /// (a create call whose answer was lost, repeated after a look found nothing) are cancelled:
    /// their requests are covered by the recorded job. A job of an intent still open is adopted,
    /// unless every one of its requests already has a successful result (`isCovered`): then it is
    /// cancelled too. The provider's jobs are listed as far back as the oldest intent
    /// (``BatchBackend/recentJobs(createdSince:until:)``, the search of `findJob`). Only for
    /// providers that tag jobs; a failed listing is reported and skipped (the next run looks again).
    static func cancelOrphans(jobFile: JobFile, backend: any BatchBackend, isCovered: (String) -> Bool) async throws {
        guard backend.tagsJobs else { return }
        let intents = jobFile.intents
        guard !intents.isEmpty else { return }
        let recorded = jobFile.recordedJobIDs
        let jobs: [BatchJob]
        do {
            // As far back as the oldest intent, as the search for an intent's job looks: on a busy
            // account a duplicate can sit behind more than 100 newer jobs, and it would run (and be
            // paid for) unseen.
            let oldest = intents.map(\.intent.createdAt).min() ?? Date()
            jobs = try await backend.recentJobs(createdSince: oldest)
        } catch {
            printError("batchkit run: could not list jobs to look for orphans: \(BatchError(wrapping: error).message)")
            return
        }
        for job in jobs where !recorded.contains(job.id) && !job.status.isTerminal && job.status != .cancelling {
            guard let intent = intents.first(where: { $0.intent.matches(job, tagsJobs: true) }) else { continue }
            var covered = true
            if intent.isOpen { try jobFile.forEachID(of: intent) { id in covered = isCovered(id); return covered } }
            if intent.isOpen, !covered {
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
    static func heldIDs(jobFile: JobFile, journal: Journal, unsettled: Set<String>, includingCompleted: Bool) throws -> Set<String> {
        var held = unsettled
        try forEachUnsucceededID(jobFile: jobFile, journal: journal, in: { holds($0, includingCompleted: includingCompleted) }) {
            held.insert($0)
        }
        return held
    }

    /// Whether a job last seen in `status` holds its requests (see ``heldIDs``).
    static func holds(_ status: BatchJob.Status?, includingCompleted: Bool) -> Bool {
        switch status {
        case .failed?, .expired?, .cancelled?: false  // what did not run may run again
        case .completed?: includingCompleted
        default: true
        }
    }

    /// Calls `body` with each id without a successful result in the jobs whose last seen state
    /// passes `jobs`, reading the ids from the ids files one job at a time (nothing of the size
    /// of the run is kept).
    static func forEachUnsucceededID(
        jobFile: JobFile, journal: Journal, in jobs: (BatchJob.Status?) -> Bool, _ body: (String) -> Void
    ) throws {
        for entry in jobFile.entries where jobs(jobFile.status(of: entry.id)) {
            try jobFile.forEachID(of: entry) { id in
                if journal.succeeded(id) != true { body(id) }
                return true
            }
        }
    }

    /// Marks collected, and removes the ids files of, the jobs whose every request has a
    /// successful result in the journal and that ended (or that this run never looked at: an
    /// earlier run saw them end, since it recorded their results). Ids files of abandoned intents
    /// go too, and `OUT.jsonl.jobs/` once empty. The order keeps every crash safe: the journal is
    /// synced first (a power loss must not keep the mark and lose the results), then the job file
    /// says the jobs are collected (a rerun neither looks them up nor submits their ids: they are
    /// finished in the journal), and only then are the files removed. The jobs stay in the job
    /// file. A failure is reported and leaves the files (the next run tries again).
    ///
    /// A job with any request not successful keeps its file: a rerun re-attaches to it for a
    /// success that replaces a recorded failure, and holds a completed job's failures (never paid
    /// for twice, also with `--retry-failed`).
    static func collectFinishedJobs(jobFile: JobFile, journal: Journal) {
        do {
            var done = Set<String>()
            for entry in jobFile.entries where !entry.isCollected {
                if let status = jobFile.status(of: entry.id), !status.isTerminal { continue }
                if try !jobFile.contains(in: entry, where: { journal.succeeded($0) != true }) { done.insert(entry.id) }
            }
            if !done.isEmpty {
                try journal.sync()
                try jobFile.markCollected(done)
            }
            jobFile.removeUnneededIDsFiles()
        } catch {
            printError("batchkit run: could not remove the ids files of finished jobs (\(BatchError(wrapping: error).message)); they are kept")
        }
    }

    /// Refuses to run when the output holds fewer successful results than one collected job
    /// delivered to it: the output was replaced or cut, and the ids of a collected job are known
    /// only by those results (its ids file is gone), so they would be submitted and paid again.
    static func checkCollectedJobs(jobFile: JobFile, journal: Journal, outputPath: String) throws {
        guard let largest = jobFile.entries.filter(\.isCollected).max(by: { $0.count < $1.count }) else { return }
        let succeeded = journal.succeededCount
        guard succeeded < largest.count else { return }
        throw CommandFailure(
            "\(outputPath): holds \(succeeded) successful result(s), but job \(largest.id) alone delivered \(largest.count) "
                + "to it (recorded in \(jobFile.url.path)): the output was replaced or cut since. Restore it; or, to start over "
                + "(paying again for what the jobs ran), move \(jobFile.url.path) away too")
    }

    /// The jobs (recorded in the job file) that hold requests without a successful result and
    /// were last seen running.
    static func runningJobs(jobFile: JobFile, journal: Journal) throws -> [String] {
        try jobFile.entries.filter { entry in
            guard let status = jobFile.status(of: entry.id), !status.isTerminal else { return false }
            return try jobFile.contains(in: entry) { journal.succeeded($0) != true }
        }.map(\.id)
    }
}
