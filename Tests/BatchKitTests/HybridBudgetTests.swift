import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// `maxCost` over a hybrid run: the batch gets what fits its estimates, real time what the batch
/// left; what both paths bill never passes the limit.
@Suite(.timeLimit(.minutes(5)))
struct HybridBudgetTests {
    /// $1 and $2 per million tokens; batch half price.
    static let prices = PriceTable(["m": .init(inputPerMillion: 1, outputPerMillion: 2)])
    static var price: PriceTable.Price { prices.price(for: "m")! }

    static func request(_ id: String, promptBytes: Int = 4_000, maxTokens: Int = 1_000, model: String = "m") -> BatchRequest {
        BatchRequest(
            id: id, chat: ChatRequest(model: model, messages: [.user(String(repeating: "a", count: promptBytes))], maxTokens: maxTokens))
    }

    /// The usage a request is estimated at (prompt estimate + max tokens).
    static func estimatedUsage(_ r: BatchRequest) -> Usage {
        Usage(inputTokens: TokenEstimator.inputTokens(r), outputTokens: TokenEstimator.outputTokens(r))
    }

    /// A real-time client answering each request with `usage(id)`, recording what it bills (full
    /// price) per id.
    final class Biller: Sendable {
        let calls = Mutex<[String: Double]>([:])
        var ids: Set<String> { Set(calls.withLock { $0.keys }) }
        var billed: Double { calls.withLock { $0.values.reduce(0, +) } }

        func client(usage: @escaping @Sendable (String) -> Usage) -> ClosureClient {
            ClosureClient { r in
                let u = usage(r.id)
                self.calls.withLock { $0[r.id, default: 0] += HybridBudgetTests.price.cost(of: u) }
                return ModelResponse(text: "realtime \(r.id)", finishReason: .stop, usage: u, model: "m")
            }
        }
    }

    /// Runs the stream while moving time: whenever `sleepers` tasks sleep (the deadline timer and
    /// the poll timer) it jumps to the next deadline, until the run ends.
    func drive(_ stream: BatchEventStream, clock: ManualClock, sleepers: Int = 2) async -> [BatchEvent] {
        let consumer = Task { await collect(stream) }
        let driver = Task {
            while !Task.isCancelled {
                await clock.sleepers(atLeast: sleepers)
                if Task.isCancelled { break }
                clock.advanceToNextDeadline()
            }
        }
        let events = await consumer.value
        driver.cancel()
        await driver.value
        return events
    }

    func hybrid(
        _ backend: FakeBackend, _ client: ClosureClient, clock: ManualClock, maxCost: Double, deadline: Duration = .seconds(3600)
    ) -> HybridProcessor<ManualClock> {
        HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 1), clock: clock),
            deadline: deadline, priceTable: Self.prices, maxCost: maxCost, clock: clock)
    }

    @Test func onlyWhatFitsIsSubmittedAndRealTimeGetsWhatTheBatchLeft() async throws {
        let clock = ManualClock()
        let one = Self.request("x")
        let estimate = Self.estimatedUsage(one)
        // The batch answers cost a tenth of their estimate; real time costs its estimate.
        let backend = FakeBackend(pollsToFinish: 3, usage: { _ in Usage(inputTokens: estimate.inputTokens / 10, outputTokens: 100) })
        let biller = Biller()
        let batchEstimate = Self.price.cost(of: estimate.asBatch)
        let limit = batchEstimate * 4.2
        let events = await drive(
            hybrid(backend, biller.client(usage: { _ in estimate }), clock: clock, maxCost: limit).processAsync(
                (0..<6).map { Self.request("b\($0)") }),
            clock: clock)
        #expect(backend.submitted == [["b0", "b1", "b2", "b3"]], "only what fits is submitted")
        let items = events.items
        try #require(items.count == 6)
        #expect(Set(items.filter { $0.route == .batch }.map(\.id)) == ["b0", "b1", "b2", "b3"])
        // The batch spent 4 × 0.1 estimates of the 4.2: 3.8 are left, one real-time estimate (2
        // batch estimates) fits, the second does not.
        #expect(biller.ids == ["b4"])
        #expect(items.first { $0.id == "b5" }?.error?.code == .budgetExceeded)
        let billed = Double(4) * Self.price.cost(of: Usage(inputTokens: estimate.inputTokens / 10, outputTokens: 100).asBatch) + biller.billed
        #expect(billed <= limit)
        #expect(events.summary?.failed == 1)
    }

    @Test func afterTheDeadlineTheUnfinishedAreReleasedAndRealTimeSpendsOnlyWhatRemains() async throws {
        let clock = ManualClock()
        let one = Self.request("x")
        let estimate = Self.estimatedUsage(one)
        let backend = FakeBackend(pollsToFinish: 10_000, usage: { _ in estimate })  // never finishes; a cancelled job keeps its first half
        let biller = Biller()
        let batchEstimate = Self.price.cost(of: estimate.asBatch)
        let limit = batchEstimate * 7
        let events = await drive(
            hybrid(backend, biller.client(usage: { _ in estimate }), clock: clock, maxCost: limit).processAsync(
                (0..<10).map { Self.request("d\($0)") }),
            clock: clock)
        #expect(Set(backend.cancelledJobs) == ["job-1"])
        // Seven estimates fit: d0…d6 are submitted; the cancelled job keeps d0…d2 (half of 7).
        #expect(backend.submitted == [["d0", "d1", "d2", "d3", "d4", "d5", "d6"]])
        let items = events.items
        try #require(items.count == 10)
        #expect(Set(items.filter { $0.route == .batch }.map(\.id)) == ["d0", "d1", "d2"])
        // d3…d6 were released: 4 batch estimates are left, two real-time answers.
        #expect(biller.ids == ["d3", "d4"])
        let refused = Set(items.filter { $0.error?.code == .budgetExceeded }.map(\.id))
        #expect(refused == ["d5", "d6", "d7", "d8", "d9"])
        #expect(Double(3) * batchEstimate + biller.billed <= limit * (1 + 1e-9))
    }

    @Test func aModelWithoutAPriceIsRefusedBeforeAnythingIsSent() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(pollsToFinish: 3)
        let biller = Biller()
        let events = await drive(
            hybrid(backend, biller.client(usage: { _ in Usage(inputTokens: 1, outputTokens: 1) }), clock: clock, maxCost: 10)
                .processAsync([Self.request("u", model: "nobody-knows"), Self.request("p")]),
            clock: clock)
        #expect(backend.submitted == [["p"]])
        let refused = try #require(events.items.first { $0.id == "u" })
        #expect(refused.error?.code == .validation)
        #expect(refused.error?.message.contains("nobody-knows") == true)
        #expect(refused.route == .none)
        #expect(biller.ids.isEmpty)
        #expect(events.items.count == 2)
    }

    /// A job still running when the batch phase ends (its cancellation not taken effect) may bill
    /// all of its requests: its reservation stays, and real time gets only what is left besides.
    @Test func aJobThatMayStillBillKeepsItsReservation() async throws {
        let clock = ManualClock()
        let one = Self.request("x")
        let estimate = Self.estimatedUsage(one)
        let backend = StubbornBackend(base: FakeBackend(pollsToFinish: 10_000, usage: { _ in estimate }))
        let biller = Biller()
        let batchEstimate = Self.price.cost(of: estimate.asBatch)
        let hybrid = HybridProcessor(
            batch: NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(60)), clock: clock),
            realtime: ConcurrentProcessor(client: biller.client(usage: { _ in estimate }), configuration: .init(maxConcurrency: 1), clock: clock),
            deadline: .seconds(3600), cancellationGrace: .seconds(120), priceTable: Self.prices, maxCost: batchEstimate * 6, clock: clock)
        // All six fit in the batch.
        // One sleeper: the grace collector polls alone.
        let events = await drive(hybrid.processAsync((0..<6).map { Self.request("s\($0)") }), clock: clock, sleepers: 1)
        let items = events.items
        try #require(items.count == 6)
        #expect(backend.base.submitted == [["s0", "s1", "s2", "s3", "s4", "s5"]])
        // The job ignores the cancel: it may bill all six; nothing is left for real time.
        #expect(biller.ids.isEmpty)
        #expect(items.allSatisfy { $0.error?.code == .budgetExceeded || $0.error?.code == .timeout || $0.isSuccess })
        #expect(items.filter { $0.error?.code == .budgetExceeded }.count == 6)
    }

    /// The money rule as an invariant, over seeded runs: budgets from nothing to more than enough,
    /// batches that finish, expire, fail items or miss the deadline, chunks of several sizes,
    /// answers that use up to their whole estimate. In every run: what both paths billed is within
    /// the budget, every id has exactly one result, nothing is billed twice, and the ids that
    /// ended `budget_exceeded` are exactly those billed nowhere.
    @Test(arguments: 0..<24)
    func billedNeverExceedsTheBudget(seed: Int) async throws {
        var rng = SplitMix64(seed: UInt64(seed) &+ 0x5EED)
        let n = 4 + Int(rng.next() % 12)
        let requests = (0..<n).map { i in
            Self.request("q\(i)", promptBytes: 200 + Int(rng.next() % 8_000), maxTokens: 50 + Int(rng.next() % 2_000))
        }
        let estimates = Dictionary(uniqueKeysWithValues: requests.map { ($0.id, Self.estimatedUsage($0)) })
        // Each answer uses between 30 % and all of its estimate (a third use all of it).
        var fractions: [String: Double] = [:]
        for r in requests { fractions[r.id] = rng.next() % 3 == 0 ? 1 : 0.3 + 0.7 * rng.unit() }
        let batchFractions = fractions
        var realtimeFractions: [String: Double] = [:]
        for r in requests { realtimeFractions[r.id] = rng.next() % 3 == 0 ? 1 : 0.3 + 0.7 * rng.unit() }
        let rtFractions = realtimeFractions
        let failingIDs = Set(requests.map(\.id).filter { _ in rng.next() % 5 == 0 })
        let scenario = rng.next() % 3
        let chunk = [2, 3, 5, 1_000][Int(rng.next() % 4)]
        let backend = FakeBackend(
            limits: .init(maxRequests: chunk, maxBytes: 1 << 20),
            pollsToFinish: scenario == 0 ? 10_000 : 3,
            ending: { _ in scenario == 2 ? .expired : .completed },
            failing: { failingIDs.contains($0) },
            usage: { scaled(estimates[$0]!, batchFractions[$0]!) })
        let biller = Biller()
        let fullRealtime = requests.reduce(0.0) { $0 + Self.price.cost(of: estimates[$1.id]!) }
        let share = [0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.3][Int(rng.next() % 8)]
        let limit = fullRealtime * share
        let clock = ManualClock()
        let events = await drive(
            hybrid(backend, biller.client(usage: { scaled(estimates[$0]!, rtFractions[$0]!) }), clock: clock, maxCost: limit)
                .processAsync(requests),
            clock: clock)

        let context = "seed \(seed): n \(n), scenario \(scenario), chunk \(chunk), share \(share)"
        let items = events.items
        #expect(items.count == n, "\(context)")
        #expect(Set(items.map(\.id)) == Set(requests.map(\.id)), "\(context)")
        let batchBilled = backend.billedIDs
        #expect(Set(batchBilled).count == batchBilled.count, "\(context)")
        let billed =
            batchBilled.reduce(0.0) { $0 + Self.price.cost(of: scaled(estimates[$1]!, batchFractions[$1]!).asBatch) } + biller.billed
        #expect(billed <= limit * (1 + 1e-9), "\(context): billed \(billed) of \(limit)")
        #expect(Set(batchBilled).isDisjoint(with: biller.ids), "\(context): paid twice")
        #expect(biller.calls.withLock { $0.count } == biller.ids.count)
        let refused = Set(items.filter { $0.error?.code == .budgetExceeded }.map(\.id))
        let billedSomewhere = Set(batchBilled).union(biller.ids)
        #expect(refused == Set(requests.map(\.id)).subtracting(billedSomewhere), "\(context)")
        // Everything else succeeded, on the path that billed it.
        for r in items where !refused.contains(r.id) {
            #expect(r.isSuccess, "\(context): \(r.id) \(String(describing: r.error))")
            #expect(r.route == .batch ? batchBilled.contains(r.id) : biller.ids.contains(r.id), "\(context): \(r.id)")
        }
        if share >= 1 {
            #expect(refused.isEmpty, "\(context): a budget of the full real-time cost refuses nothing")
        }
    }
}

/// `u` with `f` of its tokens (rounded down).
func scaled(_ u: Usage, _ f: Double) -> Usage {
    Usage(inputTokens: Int(Double(u.inputTokens) * f), outputTokens: Int(Double(u.outputTokens) * f))
}

/// A backend whose jobs ignore cancellation: they keep running (and would bill everything).
struct StubbornBackend: PassThroughBackend {
    let base: FakeBackend
    func cancel(jobID: String) async throws -> BatchJob {
        BatchJob(id: jobID, provider: provider, status: .cancelling, requestCount: 0)
    }
    func delete(jobID: String) async throws {}
}

