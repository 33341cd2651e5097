import BatchKit
import Foundation
import Testing

@testable import BatchKitTesting

/// The chaos check's account of the ids a case paid for in a job and in real time
/// (``JobAndRealtime``): which run answered each in real time, which run created the job, and why.
@Suite(.timeLimit(.minutes(5)))
struct ChaosAttributionTests {
    static func bill(jobs: [String: [String]], realtime: [String: Int]) -> EmulatorBilling {
        var perID: [String: [String]] = [:]
        for (job, ids) in jobs.sorted(by: { $0.key < $1.key }) { for id in ids { perID[id, default: []].append(job) } }
        return EmulatorBilling(
            jobs: jobs.keys.sorted().map { .init(id: $0, provider: .openAI, requests: 2, billed: 2, cancelled: false) },
            jobsPerCustomID: perID, realtimeCalls: realtime)
    }

    static let killed = ChaosOutcome.Run(exitStatus: nil, retryFailed: false, timedOut: false, seconds: 0.5)
    static let exited = ChaosOutcome.Run(exitStatus: 0, retryFailed: false, timedOut: false, seconds: 3)

    /// Run 1 (killed) answered c1 in real time before recording it; run 2 created the job that
    /// ran it: a real-time request lost at a kill. Run 2 also created job j2 that ran c2, and
    /// answered c2 in real time itself: hybrid paid twice.
    @Test func realTimeLostAtAKillIsToldApartFromAJobThenRealTime() throws {
        let after1 = Self.bill(jobs: [:], realtime: ["c0": 1, "c1": 1])
        let after2 = Self.bill(jobs: ["j1": ["c1"], "j2": ["c2"]], realtime: ["c0": 1, "c1": 1, "c2": 1])
        let found = JobAndRealtime.attribute(billing: after2, snapshots: [after1, after2], runs: [Self.killed, Self.exited])
        try #require(found.count == 2)
        #expect(found[0] == JobAndRealtime(id: "c1", cause: .realtimeLostAtKill, realtimeRuns: [0], jobs: [.init(id: "j1", run: 1)]))
        #expect(found[1] == JobAndRealtime(id: "c2", cause: .jobThenRealtime, realtimeRuns: [1], jobs: [.init(id: "j2", run: 1)]))
        #expect(found[0].description == "c1: real time lost at a kill (real time in run 1; job j1 created in run 2)")
    }

    /// Real time in a run that exited (not killed) is never a loss at a kill, nor is a job
    /// created in the same run as the real-time answer, before it.
    @Test func anAnswerOfARunThatExitedOrOfTheJobsOwnRunIsNotALossAtAKill() {
        let after1 = Self.bill(jobs: [:], realtime: ["c1": 1])
        let after2 = Self.bill(jobs: ["j1": ["c1"]], realtime: ["c1": 1])
        let exitedFirst = JobAndRealtime.attribute(billing: after2, snapshots: [after1, after2], runs: [Self.exited, Self.exited])
        #expect(exitedFirst.map(\.cause) == [.jobThenRealtime])
        let sameRun = Self.bill(jobs: ["j1": ["c1"]], realtime: ["c1": 1])
        let killedWithJob = JobAndRealtime.attribute(billing: sameRun, snapshots: [sameRun], runs: [Self.killed])
        #expect(killedWithJob.map(\.cause) == [.jobThenRealtime])
        #expect(killedWithJob.first?.realtimeRuns == [0])
    }
}
