#if canImport(Glibc)
import Glibc
@testable import BatchKit
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// ``HTTPRequest/idleTimeout`` over both transports: a peer that sends part of an answer and then
/// neither sends nor closes fails the exchange once nothing moved for the idle timeout, long
/// before the whole exchange's deadline (an hour here, as for file transfers). Found by
/// Scripts/proxy-check.py, whose fault proxy truncates an answer and keeps the connection open:
/// a run whose upload answer was cut waited for the upload's hour.
///
/// No test waits on a clock of its own: the transports' deadlines fire, and a transport that
/// ignored the idle timeout would run into the suite's time limit.
@Suite("Idle timeout", .timeLimit(.minutes(2)))
struct IdleTimeoutTests {
    enum Shape: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// A body of known length, cut short.
        case length
        /// A chunked body cut in the middle of a chunk.
        case chunked
        /// Nothing after the request: not even a status line.
        case silent

        var answer: [UInt8] {
            switch self {
            case .length: Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".utf8)
            case .chunked: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly th".utf8)
            case .silent: []
            }
        }

        var testDescription: String { rawValue }
    }

    enum Call: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// An in-memory request and answer.
        case plain
        /// A file body (an upload: both transports send it through URLSession).
        case upload
        /// An answer written to a file (a results download).
        case download

        var testDescription: String { rawValue }
    }

    @Test(arguments: TransportKind.allCases, Shape.allCases)
    func aPeerThatStallsFailsAfterTheIdleTimeoutNotTheDeadline(_ kind: TransportKind, _ shape: Shape) async throws {
        try await expectIdleTimeout(kind, shape, .plain)
    }

    @Test(arguments: TransportKind.allCases, [Call.upload, .download])
    func aStalledFileTransferFailsAfterTheIdleTimeout(_ kind: TransportKind, _ call: Call) async throws {
        try await expectIdleTimeout(kind, .length, call)
    }

    private func expectIdleTimeout(_ kind: TransportKind, _ shape: Shape, _ call: Call) async throws {
        let server = try CannedServer(answer: shape.answer, holdsOpen: true)
        defer { server.stop() }
        var request = HTTPRequest(method: "POST", url: server.url, body: .data(Data("{}".utf8)), timeout: .seconds(3600))
        var upload: URL?
        switch call {
        case .plain: break
        case .upload:
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("idle-upload-\(UUID().uuidString)")
            try Data(repeating: 0x61, count: 4096).write(to: file)
            upload = file
            request.body = .file(file)
        case .download: request.downloadsToFile = true
        }
        defer { upload.map { try? FileManager.default.removeItem(at: $0) } }
        request.idleTimeout = .milliseconds(300)
        let error = await #expect(throws: URLError.self) { _ = try await kind.make().send(request) }
        #expect(error?.code == .timedOut)
        #expect(server.connectionsAccepted >= 1)
    }
}
#endif
