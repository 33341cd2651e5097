import BatchKit
import Foundation
import Testing

@testable import BatchKitAnthropic

/// The factories share one parameter order and one default timeout (10 minutes) with the other
/// providers'.
@Suite struct AnthropicFactoryTests {
    let transport = ClosureTransport { _ in HTTPResponse(status: 500) }

    @Test func everyFactoryDefaultsToTenMinutesPerCall() throws {
        #expect(AnthropicClient(apiKey: "k", transport: transport).connection.timeout == .seconds(600))
        #expect(AnthropicBatchBackend(apiKey: "k", transport: transport).connection.timeout == .seconds(600))
        let processor = NativeBatchProcessor.anthropic(apiKey: "k", transport: transport)
        let backend = try #require(processor.backend as? AnthropicBatchBackend)
        #expect(backend.connection.timeout == .seconds(600))
        #expect(backend.limits == AnthropicBatchBackend.defaultLimits)
    }

    @Test func theProcessorFactoryPassesEveryOptionThrough() throws {
        let processor = NativeBatchProcessor.anthropic(
            apiKey: "k", baseURL: URL(string: "http://local.test")!, version: "2099-01-01", defaultMaxTokens: 7,
            structuredOutput: .outputConfig, extraHeaders: ["X-A": "1"], transport: transport, timeout: .seconds(5),
            limits: BatchLimits(maxRequests: 3, maxBytes: 100), configuration: .init(pollInterval: .seconds(2)))
        let backend = try #require(processor.backend as? AnthropicBatchBackend)
        #expect(backend.connection.timeout == .seconds(5))
        #expect(backend.connection.anthropicVersion == "2099-01-01")
        #expect(backend.connection.extraHeaders["X-A"] == "1")
        #expect(backend.defaultMaxTokens == 7)
        #expect(backend.limits.maxRequests == 3)
        #expect(processor.configuration.pollInterval == .seconds(2))
        // `limits` alone picks the initialiser in the common order.
        #expect(AnthropicBatchBackend(apiKey: "k", limits: BatchLimits(maxRequests: 2, maxBytes: 9)).limits.maxRequests == 2)
    }
}
