#if canImport(Glibc)
import Glibc
@testable import BatchKit
@testable import BatchKitTesting
import Foundation
import Synchronization
import Testing

/// File uploads and downloads through ``PlainHTTPTransport`` itself, over cleartext and its own
/// TLS: a native batch job's input file goes out from the file, its results file comes back to
/// a file, and neither touches the fallback (URLSession), which cannot use custom trust roots.
/// Before, both went to the fallback: a native run with `--ca-bundle` failed every request.
@Suite("PlainHTTPTransport file transfers", .timeLimit(.minutes(5)))
struct PlainHTTPFileTransferTests {
    enum Scheme: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case http, https
        var testDescription: String { rawValue }
    }

    /// A server on `scheme` that answers with `answer(request)`, and a transport that reaches it
    /// with the test CA trusted and a fallback that records an issue if it is ever used.
    private func serve(
        _ scheme: Scheme, downloadDirectory: URL? = nil, _ answer: @escaping EmulatorServer.Handler
    ) async throws -> (base: URL, transport: PlainHTTPTransport, shutdown: @Sendable () async -> Void) {
        var configuration = PlainHTTPTransport.Configuration(defaultTimeout: .seconds(120), tls: TLSFixtures.caBundle)
        if let downloadDirectory { configuration.downloadDirectory = downloadDirectory }
        let transport = PlainHTTPTransport(
            configuration: configuration,
            fallback: ClosureTransport { _ in
                Issue.record("went to the fallback")
                return HTTPResponse(status: 599)
            })
        switch scheme {
        case .http:
            let server = try await EmulatorServer.start(handler: answer)
            return (server.baseURL, transport, { await server.shutdown() })
        case .https:
            try #require(OpenSSLLibrary.shared != nil, "libssl.so.3 must be loadable for the TLS tests")
            let server = try await TLSEmulatorServer.start(identity: TLSFixtures.identity("good"), handler: answer)
            return (URL(string: "https://localhost:\(server.port)")!, transport, { await server.shutdown() })
        }
    }

    private static func pattern(_ count: Int, _ seed: UInt8) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
    }

    private static func temporaryFile(_ data: Data) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plain-upload-\(UUID().uuidString)")
        try data.write(to: url)
        return url
    }

    /// A fresh, empty directory for downloads, so a test can see what was left in it.
    private static func downloadDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plain-downloads-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test(arguments: Scheme.allCases, [0, 1, 5 * 1024 * 1024 + 7])
    func aFileBodyGoesOutWholeWithItsLength(_ scheme: Scheme, size: Int) async throws {
        let content = Self.pattern(size, 3)
        let file = try Self.temporaryFile(content)
        defer { try? FileManager.default.removeItem(at: file) }
        let (base, transport, shutdown) = try await serve(scheme) { request in
            EmulatorResponse(
                status: 200, headers: ["X-Length": request.headers["content-length"] ?? "none"], body: request.body)
        }
        let response = try await transport.send(
            HTTPRequest(method: "POST", url: base.appendingPathComponent("files"), body: .file(file)))
        #expect(response.status == 200)
        #expect(response.headers["x-length"] == String(size))
        #expect(response.body == content)
        await shutdown()
    }

    @Test(arguments: Scheme.allCases, [0, 10, 3 * 1024 * 1024 + 5])
    func aDownloadIsWrittenToAFileTheCallerOwns(_ scheme: Scheme, size: Int) async throws {
        let content = Self.pattern(size, 9)
        let directory = try Self.downloadDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (base, transport, shutdown) = try await serve(scheme, downloadDirectory: directory) { _ in
            EmulatorResponse(status: 200, body: content)
        }
        let response = try await transport.send(HTTPRequest(url: base.appendingPathComponent("results.jsonl"), downloadsToFile: true))
        let file = try #require(response.bodyFile)
        #expect(response.status == 200)
        #expect(response.body.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == [file.lastPathComponent])
        #expect(try Data(contentsOf: file) == content)
        await shutdown()
    }

    /// Chunked and read-until-close answers reach the file the same, in any split.
    @Test(arguments: [true, false])
    func chunkedAndCloseDelimitedDownloadsAreWhole(chunked: Bool) async throws {
        let content = Self.pattern(2 * 1024 * 1024 + 11, 5)
        var answer = Array((chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" : "HTTP/1.1 200 OK\r\n\r\n").utf8)
        if chunked {
            var offset = 0
            while offset < content.count {
                let piece = min(300_001, content.count - offset)
                answer += Array(String(piece, radix: 16).utf8) + [13, 10] + content[offset..<(offset + piece)] + [13, 10]
                offset += piece
            }
            answer += Array("0\r\n\r\n".utf8)
        } else {
            answer += content
        }
        let server = try CannedServer(answer: answer)
        defer { server.stop() }
        let directory = try Self.downloadDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = PlainHTTPTransport.Configuration(defaultTimeout: .seconds(120))
        configuration.downloadDirectory = directory
        let response = try await PlainHTTPTransport(configuration: configuration).send(HTTPRequest(url: server.url, downloadsToFile: true))
        let file = try #require(response.bodyFile)
        #expect(try Data(contentsOf: file) == content)
    }

    /// A download cut short fails, and leaves no file behind; so does one whose directory cannot
    /// take it.
    @Test func aDownloadThatFailsLeavesNoFile() async throws {
        let directory = try Self.downloadDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cut = Array("HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".utf8) + [UInt8](repeating: 65, count: 1_500_000)
        let server = try CannedServer(answer: cut)
        defer { server.stop() }
        var configuration = PlainHTTPTransport.Configuration(defaultTimeout: .seconds(120))
        configuration.downloadDirectory = directory
        let transport = PlainHTTPTransport(configuration: configuration)
        let error = await #expect(throws: URLError.self) {
            _ = try await transport.send(HTTPRequest(url: server.url, downloadsToFile: true))
        }
        #expect(error?.code == .networkConnectionLost)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)

        configuration.downloadDirectory = directory.appendingPathComponent("missing")
        let unwritable = await #expect(throws: URLError.self) {
            _ = try await PlainHTTPTransport(configuration: configuration).send(HTTPRequest(url: server.url, downloadsToFile: true))
        }
        #expect(unwritable?.code == .cannotCreateFile)
    }

    /// A redirect's own answer is not what the caller downloads: its file goes, the target's stays.
    @Test func aRedirectedDownloadKeepsOnlyTheTargetsBody() async throws {
        let directory = try Self.downloadDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (base, transport, shutdown) = try await serve(.http, downloadDirectory: directory) { request in
            request.path == "/moved"
                ? EmulatorResponse(status: 302, headers: ["Location": "/target"], body: Data("see elsewhere".utf8))
                : EmulatorResponse(status: 200, body: Data("the results".utf8))
        }
        let response = try await transport.send(HTTPRequest(url: base.appendingPathComponent("moved"), downloadsToFile: true))
        let file = try #require(response.bodyFile)
        #expect(try String(contentsOf: file, encoding: .utf8) == "the results")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == [file.lastPathComponent])
        await shutdown()
    }

    @Test func aMissingUploadFileFailsBeforeAnythingIsSent() async throws {
        let server = try CannedServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8))
        defer { server.stop() }
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-upload-\(UUID().uuidString)")
        let error = await #expect(throws: URLError.self) {
            _ = try await PlainHTTPTransport().send(HTTPRequest(method: "POST", url: server.url, body: .file(missing)))
        }
        #expect(error?.code == .fileDoesNotExist)
        #expect(server.connectionsAccepted == 0)
    }
}
#endif
