import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKitAnthropic

/// Moves a manual clock to each sleeper's deadline as soon as one sleeps, until cancelled
/// (``ManualClock/drive()``).
func drive(_ clock: ManualClock) -> Task<Void, Never> { clock.drive() }

/// `AnthropicClient` under `ConcurrentProcessor`: its errors and headers drive pacing and retries.
@Suite(.timeLimit(.minutes(5))) struct AnthropicProcessorTests {

    @Test(arguments: Wire.allCases) func validationFailuresAreItemsNotSends(_ wire: Wire) async throws {
        try await withFixture(wire) { f in
            let processor = ConcurrentProcessor(client: f.client(), configuration: .init(maxConcurrency: 2), clock: f.clock)
            let driver = drive(f.clock)
            defer { driver.cancel() }
            let response = try await processor.process([
                chat("ok-1"), BatchRequest(id: "emb-1", embedding: EmbeddingRequest(model: "m", input: "x")), chat("seed-1") { $0.seed = 4 },
            ])
            #expect(response["ok-1"]?.isSuccess == true)
            #expect(response["emb-1"]?.error?.field == "body")
            #expect(response["seed-1"]?.error?.field == "seed")
            #expect(f.emulator.sentCounts == ["ok-1": 1])
        }
    }

}
