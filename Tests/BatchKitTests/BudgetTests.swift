import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

@testable import BatchKit

/// The spending limit: reservations before sending, settlement on usage, `budget_exceeded` for
/// what could go over, a clear error for models without a price.
@Suite(.timeLimit(.minutes(5)))
struct BudgetTests {
    @Test func reservationsNeverExceedTheLimitAndSettlementFreesTheDifference() {
        let budget = CostBudget(limit: 1.0)
        #expect(budget.reserve(0.4))
        #expect(budget.reserve(0.4))
        #expect(!budget.reserve(0.4), "0.4 + 0.4 + 0.4 would exceed 1.0")
        #expect(budget.refusals == 1)
        budget.settle(reserved: 0.4, actual: 0.1)
        #expect(abs(budget.spent - 0.1) < 1e-12)
        #expect(abs(budget.reserved - 0.4) < 1e-12)
        #expect(budget.reserve(0.4), "settling at 0.1 freed 0.3")
        #expect(budget.reserve(0.1), "filling the budget exactly is allowed")
        #expect(!budget.reserve(0.001))
    }

    @Test func concurrentReservationsNeverOverrunTheLimit() async {
        let budget = CostBudget(limit: 10)
        let granted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { budget.reserve(0.3) } }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
        #expect(granted == 33)
        #expect(budget.reserved <= 10)
    }

    /// 1,000 input + 1,000 output tokens of a model at $1 and $2 per million: $0.003 each.
    static let prices = PriceTable(["m": .init(inputPerMillion: 1, outputPerMillion: 2)])

    static func request(_ id: String, model: String = "m") -> BatchRequest {
        // About four bytes a token: 4,000 bytes of prompt ≈ 1,000 input tokens.
        BatchRequest(id: id, chat: ChatRequest(model: model, messages: [.user(String(repeating: "abcd", count: 1_000))], maxTokens: 1_000))
    }

    @Test func realTimeReservesBeforeSendingAndRefusesWhatCouldGoOver() async throws {
        let clock = ManualClock()
        let sent = Mutex<[String]>([])
        let client = ClosureClient { r in
            sent.withLock { $0.append(r.id) }
            // Used a tenth of the estimate's output.
            return ModelResponse(text: "ok", finishReason: .stop, usage: Usage(inputTokens: 1_000, outputTokens: 100))
        }
        let one = try #require(Self.prices.price(for: "m")?.cost(of: Usage(inputTokens: TokenEstimator.inputTokens(Self.request("x")), outputTokens: 1_000)))
        // Room for three estimates at once, not four.
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 1, priceTable: Self.prices, maxCost: one * 3.5), clock: clock)
        let events = await collect(processor.processAsync((0..<10).map { Self.request("b\($0)") }))
        let items = events.items
        #expect(items.count == 10)
        let refused = items.filter { $0.error?.code == .budgetExceeded }
        let succeeded = items.filter(\.isSuccess)
        // Each settles at 1,000 in + 100 out = $0.0012 against a $0.003 estimate: after k
        // successes, $0.0012·k is spent and the next needs $0.003 more.
        let actual = try #require(Self.prices.price(for: "m")?.cost(of: Usage(inputTokens: 1_000, outputTokens: 100)))
        let expected = Int(((one * 3.5 - one) / actual).rounded(.down)) + 1
        #expect(succeeded.count == expected)
        #expect(Double(succeeded.count) * actual <= one * 3.5)
        #expect(sent.withLock { $0.count } == succeeded.count, "a refused request is never sent")
        #expect(refused.allSatisfy { $0.attempts == 0 && $0.route == BatchResult.Route.none && $0.error?.isRetryable == false })
        #expect(refused.first?.error?.message.contains("budget") == true)
        #expect(events.summary?.failed == refused.count)
    }

    @Test func requestsInFlightHoldTheirReservations() async throws {
        let clock = ManualClock()
        let release = AsyncStream<Void>.makeStream()
        let calls = Atomic<Int>(0)
        let client = ClosureClient { _ in
            calls.add(1, ordering: .relaxed)
            for await _ in release.stream { break }
            return ModelResponse(text: "ok", finishReason: .stop, usage: Usage(inputTokens: 1_000, outputTokens: 1_000))
        }
        let one = try #require(Self.prices.price(for: "m")?.cost(of: Usage(inputTokens: TokenEstimator.inputTokens(Self.request("x")), outputTokens: 1_000)))
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 8, priceTable: Self.prices, maxCost: one * 2.5), clock: clock)
        let run = Task { await collect(processor.processAsync((0..<8).map { Self.request("f\($0)") })) }
        // Two fit at once; the other six are refused while those two hold their reservations.
        await eventually { calls.load(ordering: .relaxed) == 2 }
        release.continuation.finish()
        let items = await run.value.items
        #expect(calls.load(ordering: .relaxed) == 2)
        #expect(items.filter(\.isSuccess).count == 2)
        #expect(items.filter { $0.error?.code == .budgetExceeded }.count == 6)
    }

    @Test func aModelWithoutAPriceFailsValidationBeforeAnythingIsSent() async {
        let clock = ManualClock()
        let sent = Atomic<Int>(0)
        let client = ClosureClient { _ in
            sent.add(1, ordering: .relaxed)
            return ModelResponse(text: "ok")
        }
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(priceTable: Self.prices, maxCost: 100), clock: clock)
        let items = await collect(processor.processAsync([Self.request("u", model: "unknown-model")])).items
        #expect(sent.load(ordering: .relaxed) == 0)
        #expect(items.first?.error?.code == .validation)
        #expect(items.first?.error?.message.contains("unknown-model") == true)
        #expect(items.first?.error?.field == "model")
    }

    @Test func nativeDoesNotSubmitAChunkWhoseEstimateExceedsWhatRemains() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 4, maxBytes: 1 << 20))
        let one = try #require(
            Self.prices.price(for: "m")?.cost(of: Usage(inputTokens: TokenEstimator.inputTokens(Self.request("x")), outputTokens: 1_000).asBatch))
        // Chunks of 4: room for two chunks (8 estimates) and a half.
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), priceTable: Self.prices, maxCost: one * 10), clock: clock)
        let events = await runNative(processor.processAsync((0..<12).map { Self.request("n\($0)") }), clock: clock)
        let items = events.items
        #expect(items.count == 12)
        #expect(backend.submitted == [(0..<4).map { "n\($0)" }, (4..<8).map { "n\($0)" }], "the third chunk is never submitted")
        let refused = items.filter { $0.error?.code == .budgetExceeded }
        #expect(refused.map(\.id).sorted() == (8..<12).map { "n\($0)" }.sorted())
        #expect(refused.allSatisfy { $0.attempts == 0 && $0.route == BatchResult.Route.none })
        #expect(items.filter(\.isSuccess).count == 8)
    }

    @Test func nativeRefusesAModelWithoutAPrice() async {
        let clock = ManualClock()
        let backend = FakeBackend()
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(1), priceTable: Self.prices, maxCost: 1), clock: clock)
        let events = await runNative(processor.processAsync([Self.request("p", model: "nobody-knows")]), clock: clock)
        #expect(backend.submitted.isEmpty)
        #expect(events.items.first?.error?.code == .validation)
        #expect(events.items.first?.error?.message.contains("nobody-knows") == true)
    }
}
