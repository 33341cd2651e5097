import Foundation

/// An incremental HTTP/1.1 response parser: feed it bytes as they arrive, in any split, and it
/// says when one whole answer has been read.
///
/// Handles `Content-Length`, `chunked` (with extensions and trailers) and read-until-close
/// bodies, answers without a body (`HEAD`, 1xx, 204, 304), interim 1xx answers (skipped), and
/// tells whether the connection may be reused. Bytes past the end of the answer are kept in
/// ``leftover`` (a server must not send them; the caller then closes the connection).
struct HTTP1ResponseParser {
    /// Why a response could not be parsed. Never carries body bytes.
    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { "malformed HTTP response: \(reason)" }
    }

    /// The longest status line plus header section accepted.
    static let maximumHeadBytes = 256 * 1024

    private enum Phase {
        case head
        case length(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var phase = Phase.head
    private var pending: [UInt8] = []
    private var pendingStart = 0
    /// Where the search for the line end that closes the current head, chunk-size line or
    /// trailer line resumes: bytes already searched are not searched again, so a head that
    /// trickles in byte by byte costs linear, not quadratic, time.
    private var scanned = 0
    private let isHEAD: Bool

    private(set) var status = 0
    private(set) var headers = HTTPHeaders()
    private(set) var body: [UInt8] = []
    /// Whether the server allows another request on this connection after this answer.
    private(set) var keepAlive = true
    /// Whether any byte of an answer has arrived (a reused connection that closes before the
    /// first byte can be retried on a fresh one).
    private(set) var receivedAnyBytes = false

    /// `isHEAD`: the request was a `HEAD`, so the answer has no body whatever its headers say.
    init(isHEAD: Bool = false) { self.isHEAD = isHEAD }

    /// Drops the body read so far (it was written elsewhere); what arrives next is appended.
    mutating func removeBody() { body.removeAll(keepingCapacity: true) }

    /// Whether a whole answer has been read.
    var isComplete: Bool { if case .done = phase { return true } else { return false } }

    /// Bytes received after the end of the answer.
    var leftover: ArraySlice<UInt8> { pending[pendingStart...] }

    /// Adds bytes; returns `true` once the answer is complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Bool {
        if !bytes.isEmpty { receivedAnyBytes = true }
        if case .done = phase {
            pending.append(contentsOf: bytes)
            return true
        }
        // Fast path: body bytes of a known length go straight to the body.
        if case .length(let remaining) = phase, pendingStart == pending.count {
            let take = min(remaining, bytes.count)
            body.append(contentsOf: bytes[0..<take])
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
            if take < bytes.count { pending.append(contentsOf: bytes[take...]) }
            phase = remaining == take ? .done : .length(remaining: remaining - take)
            return isComplete
        }
        pending.append(contentsOf: bytes)
        try advance()
        compact()
        return isComplete
    }

    /// The connection reached end of stream; returns `true` if that completes the answer (a body
    /// delimited by the close), `false` if the answer was cut short or never began.
    mutating func finishAtEndOfStream() -> Bool {
        switch phase {
        case .done: return true
        case .untilClose:
            keepAlive = false
            phase = .done
            return true
        default: return false
        }
    }

    private mutating func compact() {
        if pendingStart > 0 && (pendingStart == pending.count || pendingStart >= 64 * 1024) {
            pending.removeFirst(pendingStart)
            scanned = max(0, scanned - pendingStart)
            pendingStart = 0
        }
    }

    /// Parses as far as the buffered bytes allow.
    private mutating func advance() throws(Failure) {
        while true {
            switch phase {
            case .head:
                let end = find(Self.crlfcrlf)
                // Measured to the blank line, or (not there yet) without the up to 3 bytes that
                // may be its start, so the verdict does not depend on how the bytes arrive.
                let headLength = (end ?? max(pendingStart, pending.count - 3)) - pendingStart
                if headLength > Self.maximumHeadBytes { throw Failure(reason: "header section too long") }
                guard let end else { return }
                try parseHead(pending[pendingStart..<end])
                pendingStart = end + 4
            case .length(let remaining):
                let left = moveToBody(remaining)
                if left > 0 {
                    phase = .length(remaining: left)
                    return
                }
                phase = .done
            case .chunkSize:
                guard let end = find(Self.crlf) else {
                    if pending.count - pendingStart > 4096 { throw Failure(reason: "chunk size line too long") }
                    return
                }
                var size = 0
                var digits = 0
                for byte in pending[pendingStart..<end] {
                    guard let digit = Self.hexValue(byte) else {
                        if byte == UInt8(ascii: ";") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { break }
                        throw Failure(reason: "bad chunk size")
                    }
                    digits += 1
                    guard digits <= 15 else { throw Failure(reason: "chunk size too large") }
                    size = size * 16 + digit
                }
                guard digits > 0 else { throw Failure(reason: "bad chunk size") }
                pendingStart = end + 2
                phase = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let left = moveToBody(remaining)
                if left > 0 {
                    phase = .chunkData(remaining: left)
                    return
                }
                phase = .chunkDataEnd
            case .chunkDataEnd:
                guard pending.count - pendingStart >= 2 else { return }
                guard pending[pendingStart] == 13, pending[pendingStart + 1] == 10 else {
                    throw Failure(reason: "chunk not followed by CRLF")
                }
                pendingStart += 2
                phase = .chunkSize
            case .trailers:
                // Trailer fields are read and dropped; an empty line ends the answer.
                guard let end = find(Self.crlf) else {
                    if pending.count - pendingStart > Self.maximumHeadBytes { throw Failure(reason: "trailers too long") }
                    return
                }
                let empty = end == pendingStart
                pendingStart = end + 2
                if empty { phase = .done }
            case .untilClose:
                body.append(contentsOf: pending[pendingStart...])
                pendingStart = pending.count
                return
            case .done:
                return
            }
        }
    }

    /// Moves up to `remaining` buffered bytes to the body; returns how many are still to come.
    private mutating func moveToBody(_ remaining: Int) -> Int {
        let take = min(remaining, pending.count - pendingStart)
        body.append(contentsOf: pending[pendingStart..<pendingStart + take])
        pendingStart += take
        return remaining - take
    }

    private mutating func parseHead(_ head: ArraySlice<UInt8>) throws(Failure) {
        var lines = head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            line.last == 13 ? line.dropLast() : line
        }
        guard !lines.isEmpty else { throw Failure(reason: "empty status line") }
        let statusLine = lines.removeFirst()
        // "HTTP/1.1 200 OK": version, space, three digits, then an optional reason.
        let parts = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
            let code = Int(String(decoding: parts[1], as: UTF8.self)), (100...999).contains(code)
        else { throw Failure(reason: "bad status line") }
        let http10 = parts[0].elementsEqual("HTTP/1.0".utf8)

        var fields = HTTPHeaders()
        for line in lines {
            guard !line.isEmpty else { continue }
            if line.first == UInt8(ascii: " ") || line.first == UInt8(ascii: "\t") {
                throw Failure(reason: "obsolete header line folding")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex else {
                throw Failure(reason: "header line without a name")
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            guard !name.contains(where: { $0 == " " || $0 == "\t" }) else { throw Failure(reason: "space in a header name") }
            var value = line[(colon + 1)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            fields.add(name, String(decoding: value, as: UTF8.self))
        }

        // Interim answers (100 Continue, 103 Early Hints) are skipped: the real one follows.
        if (100..<200).contains(code) && code != 101 {
            phase = .head
            return
        }
        status = code
        headers = fields

        // A field may come on several lines; they count as one comma-separated list.
        func list(_ name: String) -> [String]? {
            let lines = fields.filter { HTTPHeaders.sameName($0.name, name) }
            guard !lines.isEmpty else { return nil }
            return lines.flatMap { $0.value.lowercased().split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let tokens = list("connection") ?? []
        keepAlive = http10 ? tokens.contains("keep-alive") : !tokens.contains("close")

        if isHEAD || code == 204 || code == 304 || code == 101 {
            phase = .done
            return
        }
        if let codings = list("transfer-encoding") {
            // Transfer-Encoding in an HTTP/1.0 answer is faulty framing: close afterwards (RFC 9112 §6.1).
            if http10 { keepAlive = false }
            guard codings.last == "chunked" else {
                // A body not delimited by chunking runs to the close (RFC 9112 §6.3).
                keepAlive = false
                phase = .untilClose
                return
            }
            phase = .chunkSize
            return
        }
        if let lengths = list("content-length") {
            // Repeated identical values ("5, 5", or on two lines) are allowed; anything else is an error.
            let values = Set(lengths)
            guard values.count == 1, let only = values.first, !only.isEmpty, only.allSatisfy(\.isASCII),
                only.allSatisfy(\.isNumber), let length = Int(only)
            else { throw Failure(reason: "bad Content-Length") }
            phase = length == 0 ? .done : .length(remaining: length)
            return
        }
        keepAlive = false
        phase = .untilClose
    }

    private static let crlf: [UInt8] = [13, 10]
    private static let crlfcrlf: [UInt8] = [13, 10, 13, 10]

    /// The index of `needle` at or after `pendingStart`, resuming where the last unsuccessful
    /// search stopped.
    private mutating func find(_ needle: [UInt8]) -> Int? {
        let n = needle.count
        var i = max(pendingStart, scanned)
        let last = pending.count - n
        while i <= last {
            if pending[i] == needle[0] {
                var j = 1
                while j < n && pending[i + j] == needle[j] { j += 1 }
                if j == n {
                    scanned = 0
                    return i
                }
            }
            i += 1
        }
        // A match may start in the last n − 1 bytes once more arrive.
        scanned = max(pendingStart, pending.count - n + 1)
        return nil
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
}
