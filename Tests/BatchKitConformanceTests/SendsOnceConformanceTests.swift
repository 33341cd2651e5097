import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// Records every request it forwards.
private final class RecordingTransport: HTTPTransport {
    let base: any HTTPTransport
    let requests = Mutex<[HTTPRequest]>([])

    init(_ base: any HTTPTransport) { self.base = base }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.withLock { $0.append(request) }
        return try await base.send(request)
    }
}

/// Every call that creates something paid for or kept (a job, an uploaded input file) is marked
/// `sendsOnce`, so that no transport sends it twice after a lost answer (libcurl would, for a
/// POST too); every other call is not, so that a dropped pooled connection costs nothing there.
@Suite(.timeLimit(.minutes(5)))
struct SendsOnceConformanceTests {
    /// Whether `request` creates a job or uploads a batch input file, for `provider`.
    static func creates(_ request: HTTPRequest, _ provider: Provider) -> Bool {
        guard request.method == "POST" else { return false }
        let path = request.url.path
        switch provider {
        case .openAI: return path.hasSuffix("/v1/files") || path.hasSuffix("/v1/batches")
        case .anthropic: return path.hasSuffix("/v1/messages/batches")
        case .gemini:
            return path.hasSuffix(":batchGenerateContent") || path.hasSuffix(":asyncBatchEmbedContent")
                || request.headers["X-Goog-Upload-Command"]?.contains("upload") == true
        }
    }

    @Test(arguments: Provider.allCases)
    func createsAndUploadsAreSentOnceAndNothingElseIs(_ provider: Provider) async throws {
        try await withEmulatorHarness(.inProcess) { h in
            let transport = RecordingTransport(h.transport)
            // Two jobs of three and two requests.
            let limits = BatchLimits(maxRequests: 3, maxBytes: 1 << 20)
            let log = await ClockDriver(h.clock).log(
                provider.processor(h, limits: limits, transport: transport).processAsync(provider.chats(5)))
            #expect(log.items.count == 5)
            #expect(log.items.values.allSatisfy { $0.isSuccess })
            let requests = transport.requests.withLock { $0 }
            let creates = requests.filter { Self.creates($0, provider) }
            #expect(creates.count >= 2, "\(requests.map(\.description))")
            #expect(creates.allSatisfy { $0.sendsOnce }, "\(creates.filter { !$0.sendsOnce }.map(\.description))")
            let others = requests.filter { !Self.creates($0, provider) }
            #expect(!others.isEmpty)
            #expect(others.allSatisfy { !$0.sendsOnce }, "\(others.filter(\.sendsOnce).map(\.description))")
        }
    }
}
