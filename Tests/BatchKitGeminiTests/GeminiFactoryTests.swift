import BatchKit
import Foundation
import Testing

@testable import BatchKitGemini

/// The factories share one parameter order and one default timeout (10 minutes) with the other
/// providers'.
@Suite struct GeminiFactoryTests {
    let transport = ClosureTransport { _ in HTTPResponse(status: 500) }

    @Test func everyFactoryDefaultsToTenMinutesPerCall() throws {
        #expect(GeminiClient(apiKey: "k", transport: transport).api.connection.timeout == .seconds(600))
        #expect(GeminiBatchBackend(apiKey: "k", transport: transport).api.connection.timeout == .seconds(600))
        let processor = NativeBatchProcessor.gemini(apiKey: "k", transport: transport)
        let backend = try #require(processor.backend as? GeminiBatchBackend)
        #expect(backend.api.connection.timeout == .seconds(600))
        #expect(backend.limits == GeminiBatchBackend.defaultLimits)
        #expect(backend.inlineByteLimit == GeminiBatchBackend.defaultInlineByteLimit)
    }

    @Test func theProcessorFactoryPassesEveryOptionThrough() throws {
        let processor = NativeBatchProcessor.gemini(
            apiKey: "k", baseURL: URL(string: "http://local.test")!, apiVersion: "v1", extraHeaders: ["X-A": "1"],
            transport: transport, timeout: .seconds(5), limits: BatchLimits(maxRequests: 3, maxBytes: 100), inlineByteLimit: 10,
            configuration: .init(pollInterval: .seconds(2)))
        let backend = try #require(processor.backend as? GeminiBatchBackend)
        #expect(backend.api.connection.timeout == .seconds(5))
        #expect(backend.description == "GeminiBatchBackend(http://local.test/v1)")
        #expect(backend.api.connection.extraHeaders["X-A"] == "1")
        #expect(backend.limits.maxRequests == 3)
        #expect(backend.inlineByteLimit == 10)
        #expect(processor.configuration.pollInterval == .seconds(2))
    }
}
