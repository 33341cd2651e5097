import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// `NativeBatchProcessor` over each provider's batch backend, over every wire: submission,
/// polling, collection, splitting, cancellation, re-attaching and faulty polls or result files
/// behave the same for all three.
@Suite(.timeLimit(.minutes(5)))
struct NativeBatchConformanceTests {
    @Test(arguments: Provider.allCases, Wire.allCases)
    func fullLifecycle(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(60))) { h in
            let requests = provider.chats(20, prefix: "life")
            let log = await ClockDriver(h.clock).log(provider.processor(h).processAsync(requests))
            guard case .started? = log.events.first else {
                Issue.record("the first event must be .started")
                return
            }
            #expect(log.started == 1)
            #expect(log.submitted.count == 1)
            #expect(log.submitted.allSatisfy { $0.id.hasPrefix(provider.jobIDPrefix) })
            #expect(log.items.count == 20)
            #expect(log.duplicateItems == 0)
            #expect(log.items.values.allSatisfy { $0.isSuccess && $0.route == .batch && $0.usage.batchInputTokens > 0 })
            #expect(log.progress.contains { $0.remoteStatus == provider.runningStatus })
            #expect(log.failure == nil)
            #expect(log.eventsAfterTerminal == 0)
            let summary = try #require(log.summary)
            #expect(summary.succeeded == 20)
            #expect(summary.failed == 0)
            #expect(summary.usage.inputTokens > 0)
            #expect(summary.usage.batchInputTokens == summary.usage.inputTokens)
            #expect(summary.usage.batchOutputTokens > 0)
            for r in requests { #expect(h.emulator.sentCount(customID: r.id) == 1) }
            #expect(h.clock.now.offset >= .seconds(60))
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func splitsOverCountAndByteLimits(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire) { h in
            let byCount = await ClockDriver(h.clock).log(
                provider.processor(h, limits: BatchLimits(maxRequests: 4, maxBytes: 1 << 20)).processAsync(provider.chats(10)))
            #expect(byCount.submitted.count == 3)  // 4 + 4 + 2
            #expect(byCount.submitted.allSatisfy { $0.requestCount <= 4 })
            #expect(byCount.items.count == 10)
            #expect(byCount.items.values.allSatisfy { $0.isSuccess })

            let oneItem = try provider.backend(h).encode(provider.chat("b-0")).data.count
            let byBytes = await ClockDriver(h.clock).log(
                provider.processor(h, limits: BatchLimits(maxRequests: 100, maxBytes: oneItem * 3 + 3)).processAsync(provider.chats(9, prefix: "b")))
            #expect(byBytes.submitted.count == 3)  // three items per job
            #expect(byBytes.items.count == 9)
            #expect(byBytes.items.values.allSatisfy { $0.isSuccess })
        }
    }

    @Test(arguments: Provider.allCases.filter(\.splitsByModel), Wire.allCases)
    func splitsByModel(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire) { h in
            let requests = provider.chats(10, prefix: "a") + (0..<3).map { provider.chat("o-\($0)", model: provider.otherModel) }
            let log = await ClockDriver(h.clock).log(
                provider.processor(h, limits: BatchLimits(maxRequests: 4, maxBytes: 1 << 20)).processAsync(requests))
            #expect(log.submitted.count == 4)  // 4 + 4 + 2 of one model, 3 of the other
            #expect(log.items.count == 13)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            let listed = try await provider.backend(h).list(limit: 100)
            #expect(listed.count == 4)
            #expect(listed.allSatisfy { $0.requestCount <= 4 })
            #expect(Set(listed.compactMap { $0.metadata["model"] }) == [provider.jobModelName(provider.model), provider.jobModelName(provider.otherModel)])
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func breakingOutCancelsTheRemoteJob(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(1000))) { h in
            var jobID: String?
            for await event in provider.processor(h).processAsync(provider.chats(5)) {
                if case .submitted(let job) = event {
                    jobID = job.id
                    break
                }
            }
            let id = try #require(jobID)
            // The run cancels its remote job as it winds down: wait (yielding, bounded) for the
            // cancellation to reach the emulator.
            let backend = provider.backend(h)
            var job = try await backend.status(of: id)
            for _ in 0..<10_000 where job.status != .cancelling && job.status != .cancelled {
                await Task.yield()
                job = try await backend.status(of: id)
            }
            #expect(job.status == .cancelling || job.status == .cancelled)
            switch provider {
            case .anthropic: #expect(job.metadata["cancel_initiated_at"] != nil)
            case .gemini: #expect(job.status == .cancelled)  // Gemini cancels at once
            case .openAI: break
            }
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func attachFromAFreshProcessorDoesNotResubmit(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(60))) { h in
            let requests = provider.chats(8, prefix: "att")
            let (jobs, rejected) = try await provider.processor(h, limits: BatchLimits(maxRequests: 5, maxBytes: 1 << 20)).submit(requests)
            try #require(jobs.count == 2)
            #expect(rejected.isEmpty)
            // A new process: a fresh backend and processor; only the job ids survive.
            let fresh = provider.processor(h)
            let log = await ClockDriver(h.clock).log(fresh.attach(jobs.map(\.id)))
            #expect(log.items.count == 8)
            #expect(log.items.values.allSatisfy { $0.isSuccess && $0.route == .batch })
            #expect(log.submitted.isEmpty)
            #expect(log.summary?.succeeded == 8)
            // With the ids it expects, the same answers, and still nothing sent again.
            // The jobs hold the requests in order, five to a job.
            let expecting = [jobs[0].id: requests[..<5].map(\.id), jobs[1].id: requests[5...].map(\.id)]
            let again = await ClockDriver(h.clock).log(provider.processor(h).attach(jobs.map(\.id), expecting: expecting))
            #expect(again.items.count == 8)
            #expect(again.items.values.allSatisfy { $0.isSuccess })
            for r in requests { #expect(h.emulator.sentCount(customID: r.id) == 1) }
            #expect(try await fresh.list().count == 2)
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func failingPollsRecover(_ provider: Provider, _ wire: Wire) async throws {
        let fault = EmulatorFault(.status(500), on: .batchPoll(provider.emulated), firstTimes: 3)
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(30), faults: [fault])) { h in
            let log = await ClockDriver(h.clock).log(provider.processor(h).processAsync(provider.chats(4, prefix: "poll")))
            #expect(log.failure == nil)
            #expect(log.items.count == 4)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            #expect(log.summary?.succeeded == 4)
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func errorFileOnlyBatch(_ provider: Provider, _ wire: Wire) async throws {
        try await withEmulatorHarness(wire, .init(faults: [EmulatorFault(.errorFileOnly, on: .provider(provider.emulated))])) { h in
            let log = await ClockDriver(h.clock).log(provider.processor(h).processAsync(provider.chats(5, prefix: "efo")))
            #expect(log.items.count == 5)
            #expect(log.items.values.allSatisfy { $0.error?.code == .server })
            #expect(log.summary?.failed == 5)
            switch provider {
            case .openAI: #expect(log.items.values.allSatisfy { $0.error?.httpStatus == 500 })
            case .anthropic:
                #expect(log.items.values.allSatisfy { $0.error?.isRetryable == true })
                #expect(log.summary?.usage == .zero)
            case .gemini: break
            }
        }
    }

    @Test(arguments: Provider.allCases, Wire.allCases)
    func expiredJobWithoutResubmissionReportsExpiredItems(_ provider: Provider, _ wire: Wire) async throws {
        // Expiry before anything finished: every item expires.
        try await withEmulatorHarness(wire, .init(batchDuration: .seconds(100), batchExpiry: .seconds(5))) { h in
            let log = await ClockDriver(h.clock).log(provider.processor(h).processAsync(provider.chats(3, prefix: "ex")))
            #expect(log.items.count == 3)
            #expect(log.items.values.allSatisfy { $0.error?.code == .expired })
            #expect(log.summary?.failed == 3)
            let job = try #require(log.submitted.first)
            #expect(try await provider.backend(h).status(of: job.id).status == .expired)
        }
    }
}
