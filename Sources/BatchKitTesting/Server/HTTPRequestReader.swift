#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import BatchKit
import Foundation

/// A request head as read off the wire.
struct HTTPRequestHead {
    var method: String
    /// The request target as sent (`/v1/files?purpose=batch`).
    var target: String
    /// `true` for HTTP/1.1 (and later 1.x), `false` for HTTP/1.0.
    var isHTTP11: Bool
    var headers: HTTPHeaders
    /// How the body is framed, from `Transfer-Encoding` / `Content-Length` (RFC 9112 §6.3).
    var framing: BodyFraming = .none
    /// Whether the connection stays open after the answer.
    var keepAlive = true
    /// Whether the client waits for `100 Continue` before sending the body.
    var expectsContinue = false

    /// How the body is framed.
    enum BodyFraming: Equatable {
        case none
        case length(Int)
        case chunked
    }

    /// Works out ``framing``, ``keepAlive`` and ``expectsContinue`` from the few header values
    /// that decide them (collected while parsing, so the headers are not searched again).
    mutating func classify(
        transferEncodings: [String], contentLengths: [String], connection: [String], expect: String?
    ) throws(HTTPParseError) {
        let tokens = connection.flatMap { $0.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        keepAlive = !tokens.contains("close") && (isHTTP11 || tokens.contains("keep-alive"))
        expectsContinue = isHTTP11 && expect?.lowercased() == "100-continue"
        let codings = transferEncodings.flatMap {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        }
        if !codings.isEmpty {
            guard codings.last == "chunked", codings.allSatisfy({ $0 == "chunked" || $0 == "identity" }) else {
                throw .unsupportedTransferEncoding
            }
            framing = .chunked
            return
        }
        let lengths = Set(contentLengths.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } })
        guard let text = lengths.first else { return }
        guard lengths.count == 1, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(text) else {
            throw .malformed("invalid Content-Length")
        }
        framing = n == 0 ? .none : .length(n)
    }

    /// The path (percent-decoded) and query items (last value wins) of the target.
    func pathAndQuery() -> (path: String, query: [String: String]) {
        var target = Substring(target)
        // absolute-form: `http://host:port/path?query`
        if let scheme = target.range(of: "://") {
            let rest = target[scheme.upperBound...]
            target = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        if let hash = target.firstIndex(of: "#") { target = target[..<hash] }
        let rawPath: Substring
        var query: [String: String] = [:]
        if let q = target.firstIndex(of: "?") {
            rawPath = target[..<q]
            for item in target[target.index(after: q)...].split(separator: "&", omittingEmptySubsequences: true) {
                let name: Substring
                let value: Substring
                if let eq = item.firstIndex(of: "=") {
                    name = item[..<eq]
                    value = item[item.index(after: eq)...]
                } else {
                    name = item
                    value = ""
                }
                query[String(name).removingPercentEncoding ?? String(name)] = String(value).removingPercentEncoding ?? String(value)
            }
        } else {
            rawPath = target
        }
        let path = String(rawPath)
        return (path.removingPercentEncoding ?? path, query)
    }
}

/// Why a request could not be read. The server answers 400 / 431 / 501 and closes.
enum HTTPParseError: Error, Equatable {
    case malformed(String)
    case headTooLarge
    /// The body is larger than ``HTTPRequestReader/maxBodyBytes``.
    case bodyTooLarge
    case unsupportedTransferEncoding
    /// The peer closed the connection (or it failed) in the middle of a request.
    case connectionLost

    var status: Int {
        switch self {
        case .malformed, .connectionLost: return 400
        case .headTooLarge: return 431
        case .bodyTooLarge: return 413
        case .unsupportedTransferEncoding: return 501
        }
    }
}

/// Buffered reading of HTTP/1.1 requests from one connection.
///
/// Not `Sendable`: a reader is created, used and destroyed by its connection's thread alone.
final class HTTPRequestReader {
    static let capacity = 64 * 1024
    /// The largest body accepted (Gemini input files go up to 2 GB).
    static let maxBodyBytes = 4 << 30
    let fd: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    /// Unconsumed bytes are `buffer[start..<end]`.
    private var start = 0
    private var end = 0

    init(fd: Int32) {
        self.fd = fd
        buffer = .allocate(byteCount: Self.capacity, alignment: 16)
    }

    deinit { buffer.deallocate() }

    private var available: Int { end - start }

    /// Reads more bytes into the buffer, compacting it first if needed. `false` at end of stream.
    private func fill() -> Bool {
        if end == Self.capacity {
            guard start > 0 else { return false }
            if available > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, available) }
            end -= start
            start = 0
        }
        let n = Socket.receive(fd, into: buffer.baseAddress! + end, count: Self.capacity - end)
        guard n > 0 else { return false }
        end += n
        return true
    }

    /// Offset of `\r\n` (or `\r\n\r\n` when `double`) in the unconsumed bytes, searching from `from`.
    private func find(double: Bool, from: Int) -> Int? {
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let needed = double ? 4 : 2
        var i = max(start, from)
        while i + needed <= end {
            guard let hit = memchr(base + i, 0x0D, end - i) else { return nil }
            let j = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
            if j + needed > end { return nil }
            if base[j + 1] == 0x0A && (!double || (base[j + 2] == 0x0D && base[j + 3] == 0x0A)) { return j }
            i = j + 1
        }
        return nil
    }

    /// Reads the next request head; `nil` when the peer closed the connection between requests.
    func readHead() throws(HTTPParseError) -> HTTPRequestHead? {
        var scanned = start
        while true {
            // Tolerate empty lines before a request (RFC 9112 §2.2).
            while available >= 2, buffer[start] == 0x0D, buffer[start + 1] == 0x0A { start += 2 }
            if let j = find(double: true, from: scanned) {
                let head = UnsafeRawBufferPointer(rebasing: buffer[start..<j])
                start = j + 4
                return try Self.parseHead(head)
            }
            scanned = max(start, end - 3)
            if end == Self.capacity && start == 0 { throw .headTooLarge }
            let before = start
            guard fill() else {
                if available == 0 { return nil }
                throw .connectionLost
            }
            scanned -= before - start  // compaction moved the bytes
        }
    }

    /// Reads a body of known length straight into its final buffer.
    func readBody(length: Int) throws(HTTPParseError) -> Data {
        guard length <= Self.maxBodyBytes else { throw .bodyTooLarge }
        var data = Data(count: length)
        let ok = data.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) -> Bool in
            let fromBuffer = min(length, available)
            if fromBuffer > 0 { memcpy(dst.baseAddress!, buffer.baseAddress! + start, fromBuffer) }
            start += fromBuffer
            var offset = fromBuffer
            while offset < length {
                let n = Socket.receive(fd, into: dst.baseAddress! + offset, count: length - offset)
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
        guard ok else { throw .connectionLost }
        return data
    }

    /// Reads one CRLF-terminated line (without the CRLF), at most 8 KiB.
    private func readLine() throws(HTTPParseError) -> String {
        var scanned = start
        while true {
            if let j = find(double: false, from: scanned) {
                let line = String(decoding: UnsafeRawBufferPointer(rebasing: buffer[start..<j]), as: UTF8.self)
                start = j + 2
                return line
            }
            if available > 8 * 1024 { throw .malformed("chunk line too long") }
            scanned = max(start, end - 1)
            let before = start
            guard fill() else { throw .connectionLost }
            scanned -= before - start
        }
    }

    /// Reads a `Transfer-Encoding: chunked` body (extensions and trailers ignored).
    func readChunkedBody() throws(HTTPParseError) -> Data {
        var data = Data()
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !sizeText.isEmpty, sizeText.count <= 15, let size = Int(sizeText, radix: 16), size >= 0 else {
                throw .malformed("invalid chunk size")
            }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailer fields
                return data
            }
            guard size <= Self.maxBodyBytes - data.count else { throw .bodyTooLarge }
            data.reserveCapacity(data.count + size)
            var remaining = size
            while remaining > 0 {
                if available == 0 { guard fill() else { throw .connectionLost } }
                let n = min(remaining, available)
                data.append(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)]).assumingMemoryBound(to: UInt8.self))
                start += n
                remaining -= n
            }
            guard try readLine().isEmpty else { throw .malformed("chunk data longer than its size") }
        }
    }

    /// Parses the request line and header fields, byte by byte (no per-line string splitting).
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> HTTPRequestHead {
        let n = bytes.count
        func lineEnd(from i: Int) -> Int {
            var j = i
            while j + 1 < n {
                if bytes[j] == 0x0D && bytes[j + 1] == 0x0A { return j }
                j += 1
            }
            return n
        }
        func text(_ from: Int, _ to: Int) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[from..<to]), as: UTF8.self)
        }
        func isName(_ from: Int, _ to: Int, _ lowercase: StaticString) -> Bool {
            guard to - from == lowercase.utf8CodeUnitCount else { return false }
            let p = lowercase.utf8Start
            for k in 0..<(to - from) {
                var b = bytes[from + k]
                if b >= 0x41 && b <= 0x5A { b += 0x20 }
                if b != p[k] { return false }
            }
            return true
        }

        // Request line: METHOD SP target SP HTTP/1.x
        let requestEnd = lineEnd(from: 0)
        var parts: [(Int, Int)] = []
        var i = 0
        while i < requestEnd {
            while i < requestEnd && bytes[i] == 0x20 { i += 1 }
            let partStart = i
            while i < requestEnd && bytes[i] != 0x20 { i += 1 }
            if i > partStart { parts.append((partStart, i)) }
        }
        guard parts.count == 3 else { throw .malformed("bad request line") }
        guard (parts[0].0..<parts[0].1).allSatisfy({ isTokenByte(bytes[$0]) }) else { throw .malformed("bad method") }
        let version = text(parts[2].0, parts[2].1)
        guard version.hasPrefix("HTTP/1.") else { throw .malformed("unsupported HTTP version") }

        var headers = HTTPHeaders()
        var transferEncodings: [String] = []
        var contentLengths: [String] = []
        var connection: [String] = []
        var expect: String?
        var lineStart = requestEnd + 2
        while lineStart < n {
            let end = lineEnd(from: lineStart)
            defer { lineStart = end + 2 }
            if end == lineStart { continue }
            var valueEnd = end
            if bytes[lineStart] == 0x20 || bytes[lineStart] == 0x09 {
                // obsolete line folding: join to the previous field
                guard let last = headers.fields.last else { throw .malformed("folded line without a field") }
                var from = lineStart
                while from < valueEnd && (bytes[from] == 0x20 || bytes[from] == 0x09) { from += 1 }
                while valueEnd > from && (bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09) { valueEnd -= 1 }
                headers[last.name] = last.value + " " + text(from, valueEnd)
                continue
            }
            var colon = lineStart
            while colon < end && bytes[colon] != 0x3A { colon += 1 }
            guard colon < end else { throw .malformed("header line without a colon") }
            guard colon > lineStart, (lineStart..<colon).allSatisfy({ isTokenByte(bytes[$0]) }) else {
                throw .malformed("bad header name")
            }
            var valueStart = colon + 1
            while valueStart < valueEnd && (bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09) { valueStart += 1 }
            while valueEnd > valueStart && (bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            let value = text(valueStart, valueEnd)
            headers.add(text(lineStart, colon), value)
            if isName(lineStart, colon, "content-length") {
                contentLengths.append(value)
            } else if isName(lineStart, colon, "transfer-encoding") {
                transferEncodings.append(value)
            } else if isName(lineStart, colon, "connection") {
                connection.append(value)
            } else if isName(lineStart, colon, "expect") {
                expect = value
            }
        }
        var head = HTTPRequestHead(
            method: text(parts[0].0, parts[0].1), target: text(parts[1].0, parts[1].1), isHTTP11: version != "HTTP/1.0",
            headers: headers)
        try head.classify(
            transferEncodings: transferEncodings, contentLengths: contentLengths, connection: connection, expect: expect)
        return head
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }
}
