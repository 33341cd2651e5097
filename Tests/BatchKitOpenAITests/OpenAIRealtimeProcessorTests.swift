import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// `OpenAIClient` under `ConcurrentProcessor`: its errors and rate-limit headers drive pacing and
/// retries.
@Suite(.timeLimit(.minutes(5))) struct OpenAIRealtimeProcessorTests {

    @Test func validationAndPermanentErrorsAreItems() async throws {
        try await withHarness { h in
            let processor = ConcurrentProcessor(client: h.client(), configuration: .init(maxConcurrency: 2), clock: h.clock)
            let driver = driveClock(h.clock)
            defer { driver.cancel() }
            let response = try await processor.process([
                chat("ok", "x"), BatchRequest(id: "empty", chat: ChatRequest(model: "", messages: [.user("x")])),
                chat("unknown", "x", model: "gpt-nonexistent"),
            ])
            #expect(response["ok"]?.isSuccess == true)
            #expect(response["empty"]?.error?.code == .validation)
            #expect(response["empty"]?.error?.field == "model")
            #expect(response["unknown"]?.error?.code == .notFound)
            #expect(response["unknown"]?.attempts == 1)
            #expect(h.emulator.sentCount(customID: "empty") == 0)
            #expect(h.emulator.sentCount(customID: "unknown") == 1)
        }
    }
}
