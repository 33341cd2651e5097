import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitGemini

/// `GeminiClient` under `ConcurrentProcessor`: the 429's `RetryInfo` delay paces the retry.
@Suite(.timeLimit(.minutes(1))) struct GeminiConcurrentProcessorTests {
    @Test(arguments: Wire.allCases)
    func retryInfoDelayIsHonoured(_ wire: Wire) async throws {
        try await withGemini(wire, .init(requestsPerMinute: 1)) { f in
            let processor = ConcurrentProcessor(
                client: f.client, configuration: .init(maxConcurrency: 1, retry: RetryPolicy(maxAttempts: 3, jitter: false)),
                clock: f.clock)
            var it = processor.processAsync([chat("a", "first"), chat("b", "second")]).makeAsyncIterator()
            var retry: (String, Duration, BatchError)?
            var items: [BatchResult] = []
            var completed = false
            while let e = await it.next() {
                switch e {
                case .retrying(let id, _, let delay, let error):
                    retry = (id, delay, error)
                    await f.clock.sleepers(atLeast: 1)
                    f.clock.advance(by: delay)
                case .item(let r): items.append(r)
                case .completed: completed = true
                default: break
                }
            }
            let (id, delay, error) = try #require(retry)
            #expect(id == "b")
            #expect(error.code == .rateLimited)
            #expect(delay >= .seconds(59))  // RetryInfo.retryDelay, a floor over the 0.5 s backoff
            #expect(completed)
            #expect(items.map(\.id).sorted() == ["a", "b"])
            #expect(items.allSatisfy { $0.isSuccess })
            #expect(items.first { $0.id == "b" }?.attempts == 2)
            #expect(f.emulator.rateLimitedCount == 1)
        }
    }
}
