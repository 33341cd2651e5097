import BatchKit
import Foundation
import Testing

@testable import BatchKitOpenAI

/// The factories share one parameter order and one default timeout (10 minutes) with the other
/// providers'.
@Suite struct OpenAIFactoryTests {
    let transport = ClosureTransport { _ in HTTPResponse(status: 500) }

    @Test func everyFactoryDefaultsToTenMinutesPerCall() throws {
        #expect(OpenAIClient(apiKey: "k", transport: transport).api.timeout == .seconds(600))
        #expect(OpenAIClient.azure(endpoint: URL(string: "https://r.example.com")!, apiKey: "k", transport: transport).api.timeout == .seconds(600))
        #expect(OpenAIBatchBackend(apiKey: "k", transport: transport).api.timeout == .seconds(600))
        #expect(OpenAIBatchBackend.azure(endpoint: URL(string: "https://r.example.com")!, apiKey: "k", transport: transport).api.timeout == .seconds(600))
        let processor = NativeBatchProcessor.openAI(apiKey: "k", transport: transport)
        let backend = try #require(processor.backend as? OpenAIBatchBackend)
        #expect(backend.api.timeout == .seconds(600))
        #expect(backend.limits == OpenAIBatchBackend.defaultLimits)
    }

    @Test func theProcessorFactoryPassesEveryOptionThrough() throws {
        let processor = NativeBatchProcessor.openAI(
            apiKey: "k", baseURL: URL(string: "http://local.test/v1")!, organization: "org", project: "p",
            extraHeaders: ["X-A": "1"], transport: transport, timeout: .seconds(5), limits: BatchLimits(maxRequests: 3, maxBytes: 100),
            configuration: .init(pollInterval: .seconds(2)))
        let backend = try #require(processor.backend as? OpenAIBatchBackend)
        #expect(backend.api.timeout == .seconds(5))
        #expect(backend.api.baseURL.absoluteString == "http://local.test/v1")
        #expect(backend.api.connection.headers["OpenAI-Organization"] == "org")
        #expect(backend.api.connection.extraHeaders["X-A"] == "1")
        #expect(backend.limits.maxRequests == 3)
        #expect(processor.configuration.pollInterval == .seconds(2))
    }
}
