#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@testable import BatchKitTesting

/// An answer read off a raw socket.
struct RawResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data
}

struct RawClientError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A blocking HTTP/1.1 client on one raw socket, for tests that need to control the wire.
/// Receives time out after 240 s, so a broken server fails a test instead of hanging it (inside
/// the suites' 5-minute limit; a loaded 2-core machine can stall the test process for tens of
/// seconds).
/// Not `Sendable`: used from one thread.
final class RawHTTPConnection {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = try Socket.connect(host: "127.0.0.1", port: port)
        Socket.setReceiveTimeout(fd, seconds: 240)  // generous: a loaded machine can stall the test process
    }

    deinit { _ = close(fd) }

    func send(_ text: String) throws { try send(Data(text.utf8)) }

    func send(_ data: Data) throws {
        guard Socket.sendAll(fd, data) else { throw RawClientError("send failed: errno \(errno)") }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { Socket.receive(fd, into: $0.baseAddress!, count: $0.count) }
        if n < 0 { throw RawClientError("receive failed: errno \(errno)") }
        if n == 0 { throw RawClientError("connection closed") }
        buffer += chunk[0..<n]
    }

    /// Reads one answer's status line and headers only (for HEAD).
    func readResponseHeadOnly() throws -> RawResponse {
        try readResponse(bodyExpected: false)
    }

    /// Reads one answer framed by `Content-Length`.
    func readResponse(bodyExpected: Bool = true) throws -> RawResponse {
        var headEnd: Int?
        while headEnd == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4)
                where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                    headEnd = i
                    break
                }
            }
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw RawClientError("bad status line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if status == 100 { return try readResponse(bodyExpected: bodyExpected) }
        let length = bodyExpected ? Int(headers["content-length"] ?? "0") ?? 0 : 0
        while buffer.count < length { try fill() }
        let body = Data(buffer[0..<length])
        buffer.removeFirst(length)
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// Reads until the peer closes; returns what arrived, or throws on a reset.
    func readToEnd() throws -> Data {
        while true {
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let n = chunk.withUnsafeMutableBytes { Socket.receive(fd, into: $0.baseAddress!, count: $0.count) }
            if n < 0 { throw RawClientError("receive failed: errno \(errno)") }
            if n == 0 { return Data(buffer) }
            buffer += chunk[0..<n]
        }
    }
}

/// Runs blocking socket work on a thread of its own, never on a Swift concurrency thread (the
/// server's handlers need those).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// A request for `path` on a raw connection.
func rawGET(_ path: String, close: Bool = false) -> String {
    "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(close ? "Connection: close\r\n" : "")\r\n"
}
