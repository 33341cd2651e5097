#if canImport(Glibc)
import BatchKit
import BatchKitOpenAI
import BatchKitTesting
import Foundation
import Testing

/// The committed TLS test material (Tests/Fixtures/tls, made by its generate.sh).
private enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/tls")
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    static func identity(_ name: String) -> TLSServerIdentity {
        TLSServerIdentity(certificateChainFile: path("\(name).pem"), privateKeyFile: path("\(name).key"))
    }
    static let trustingTestCA = PlainHTTPTransport(configuration: .init(tls: TLSConfiguration(trustRoots: [.file(path("ca.pem"))])))
}

/// OpenAI real-time runs over real TLS on loopback: the emulator behind a TLS front, the client on
/// the lean transport (and URLSession), the processor's default retry policy.
@Suite("OpenAI over TLS", .timeLimit(.minutes(5)))
struct OpenAITLSTests {
    @Test func aRunRoundTripsOverTLSOnKeptAliveConnections() async throws {
        let emulator = ProviderEmulator()
        let server = try await TLSEmulatorServer.start(emulator: emulator, identity: Fixtures.identity("good"))
        let client = OpenAIClient(
            apiKey: "sk-test-key-123456", baseURL: server.baseURL.appendingPathComponent("v1"), transport: Fixtures.trustingTestCA)
        let processor = ConcurrentProcessor(client: client, configuration: .init(maxConcurrency: 4))
        let response = try await processor.process((0..<40).map { chat("tls-\($0)", "hello \($0)") })
        #expect(response.results.count == 40)
        #expect(response.results.allSatisfy { $0.isSuccess && $0.attempts == 1 })
        // Keep-alive: no more connections than requests in flight.
        #expect(server.connectionsAccepted <= 4)
        await server.shutdown()
    }

    /// Every bad certificate: a readable `.tls` error naming host and reason, attempted exactly
    /// once (one TLS handshake reached the server, no request), even with retries configured.
    @Test(arguments: [
        ("expired", "certificate expired"), ("notyetvalid", "certificate not yet valid"), ("otherhost", "hostname mismatch"),
        ("selfsigned", "untrusted issuer"),
    ])
    func aBadCertificateFailsOnceAndReadably(certificate: String, reason: String) async throws {
        let emulator = ProviderEmulator()
        let server = try await TLSEmulatorServer.start(emulator: emulator, identity: Fixtures.identity(certificate))
        let client = OpenAIClient(
            apiKey: "sk-test-key-123456", baseURL: server.baseURL.appendingPathComponent("v1"), transport: Fixtures.trustingTestCA)
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 1, retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(1))))
        let response = try await processor.process([chat("bad-cert", "hello")])
        let result = try #require(response["bad-cert"])
        let error = try #require(result.error)
        #expect(result.attempts == 1)
        #expect(error.code == .tls)
        #expect(!error.isRetryable)
        #expect(error.message.contains("127.0.0.1:\(server.port)"), "\(error.message)")
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(!error.message.contains("sk-test-key"))
        #expect(server.connectionsAccepted == 1)
        #expect(server.requestsServed == 0)
        await server.shutdown()
    }

    /// A native job over TLS with a private CA: the input file's upload and the results file's
    /// download go through the lean client too (a fallback that is never used records an issue),
    /// so the CA bundle applies to them. Before, they went to URLSession, which cannot take custom
    /// roots on Linux, and every request failed with a `.tls` error.
    @Test func aNativeJobUploadsAndDownloadsOverTLSWithAPrivateCA() async throws {
        let clock = ManualClock()
        let emulator = ProviderEmulator(configuration: .init(), clock: clock)
        let server = try await TLSEmulatorServer.start(emulator: emulator, identity: Fixtures.identity("good"))
        let transport = PlainHTTPTransport(
            configuration: .init(tls: TLSConfiguration(trustRoots: [.file(Fixtures.path("ca.pem"))])),
            fallback: ClosureTransport { request in
                Issue.record("went to the fallback: \(request)")
                return HTTPResponse(status: 599)
            })
        let backend = OpenAIBatchBackend(
            apiKey: "sk-test-key-123456", baseURL: server.baseURL.appendingPathComponent("v1"), transport: transport)
        let processor = NativeBatchProcessor(
            backend: backend, configuration: .init(pollInterval: .seconds(5), maxPollInterval: .seconds(20)), clock: clock)
        let driver = clock.drive()
        defer { driver.cancel() }
        let log = await run(processor, (0..<30).map { chat("tls-native-\($0)", "hello \($0)") })
        #expect(log.failure == nil, "\(String(describing: log.failure))")
        #expect(log.submitted.count == 1)
        #expect(log.items.count == 30)
        #expect(log.items.values.allSatisfy { $0.isSuccess })
        #expect(log.items["tls-native-7"]?.response?.text?.isEmpty == false)
        await server.shutdown()
    }

    /// URLSession on Linux cannot be given the test CA, so a server it cannot verify is what can be
    /// tested: its failure is mapped to the same readable, non-retried `.tls` error (never
    /// `network error -1`).
    @Test(arguments: [("good", "untrusted issuer"), ("selfsigned", "untrusted issuer")])
    func urlSessionTLSFailuresAreReadableAndNotRetried(certificate: String, reason: String) async throws {
        let emulator = ProviderEmulator()
        let server = try await TLSEmulatorServer.start(emulator: emulator, identity: Fixtures.identity(certificate))
        let client = OpenAIClient(
            apiKey: "sk-test-key-123456", baseURL: server.baseURL.appendingPathComponent("v1"), transport: URLSessionTransport())
        let processor = ConcurrentProcessor(
            client: client, configuration: .init(maxConcurrency: 1, retry: RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(1))))
        let response = try await processor.process([chat("bad-cert", "hello")])
        let result = try #require(response["bad-cert"])
        let error = try #require(result.error)
        #expect(result.attempts == 1)
        #expect(error.code == .tls, "\(error)")
        #expect(error.message.contains("127.0.0.1:\(server.port)"), "\(error.message)")
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(!error.message.contains("network error"))
        #expect(server.requestsServed == 0)
        await server.shutdown()
    }
}
#endif
