package import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams an OpenAI batch input file (JSON Lines of `{"custom_id", "method", "url", "body"}`)
/// as ``BatchRequest``s, a chunk at a time: a file of any size is never in memory.
///
/// Errors name the file, the line and the field, ready to show a user:
/// `input.jsonl:12: missing field "custom_id"`, `input.jsonl:7: duplicate custom_id "q1" (first on line 3)`.
/// Blank lines are skipped (line numbers still count them).
///
/// ```swift
/// let reader = BatchRequestFileReader(url: URL(filePath: "input.jsonl"))
/// let count = try reader.validate()                      // one pass: syntax, fields, unique ids
/// for await event in processor.processAsync(reader.requests()) { ... }   // a second, lazy pass
/// ```
package struct BatchRequestFileReader: Sendable {
    /// One request and the 1-based line it came from.
    package struct Line: Sendable {
        package var request: BatchRequest
        package var lineNumber: Int
    }

    /// The file read.
    package let url: URL
    /// How the file is named in errors (by default its path as given).
    package let displayName: String
    /// Bytes read at a time.
    package let chunkSize: Int

    /// - Parameters:
    ///   - url: the JSONL file.
    ///   - displayName: the name errors use; defaults to `url.path`.
    ///   - chunkSize: bytes read per system call.
    package init(url: URL, displayName: String? = nil, chunkSize: Int = 1 << 20) {
        self.url = url
        self.displayName = displayName ?? url.path
        self.chunkSize = max(1, chunkSize)
    }

    /// Opens the file for one pass.
    ///
    /// - Throws: an ``BatchError/Code/io`` error naming the file when it cannot be opened.
    package func makeLineIterator() throws(BatchError) -> LineIterator {
        LineIterator(source: try LineSource(path: url.path, name: displayName, chunkSize: chunkSize), name: displayName)
    }

    /// Calls `body` with every request in file order.
    ///
    /// - Throws: the first bad line's error (`FILE:LINE: …`), or an I/O error naming the file.
    package func forEach(_ body: (Line) throws(BatchError) -> Void) throws(BatchError) {
        var lines = try makeLineIterator()
        while let line = try lines.next() { try body(line) }
    }

    /// Reads the whole file once and checks that every line is a valid batch line and that no
    /// custom id repeats. Remembers a 64-bit fingerprint per id (about 8 bytes each, see
    /// ``FingerprintSet``), not the ids or the requests.
    ///
    /// A fingerprint seen before is only a suspect: the file is read again from the start, up to
    /// that line, for the id itself. A duplicate is reported with the line that has it first; two
    /// distinct ids that merely share a fingerprint are let through (so a valid file is never
    /// refused). The second read happens at most once per suspect line, and for a valid file
    /// almost never (about n²/2⁶⁵ for n ids).
    ///
    /// - Parameters:
    ///   - each: called with every valid line, e.g. to count a shard or estimate cost.
    ///   - fingerprint: the 64-bit fingerprint of an id (tests pass a coarse one to force the
    ///     confirming read).
    /// - Returns: the number of requests.
    /// - Throws: the first problem: `FILE:LINE: not valid JSON …`, `FILE:LINE: missing field "custom_id"`,
    ///   `FILE:LINE: duplicate custom_id "x" (first on line N)` (field `custom_id`), or an I/O error.
    @discardableResult
    package func validate(
        _ each: ((Line) throws(BatchError) -> Void)? = nil,
        fingerprint: (String) -> UInt64 = FingerprintSet.fingerprint
    ) throws(BatchError) -> Int {
        var seen = FingerprintSet()
        var count = 0
        let name = displayName
        try forEach { (line: Line) throws(BatchError) in
            if !seen.insert(fingerprint(line.request.id)), let first = try firstLine(of: line.request.id, before: line.lineNumber) {
                throw .validation(
                    "\(name):\(line.lineNumber): duplicate custom_id \"\(line.request.id)\" (first on line \(first))",
                    field: "custom_id")
            }
            count += 1
            try each?(line)
        }
        return count
    }

    /// The number of the first line before `lineNumber` whose custom id is `id`, or `nil` (a
    /// separate read of the file from its start).
    func firstLine(of id: String, before lineNumber: Int) throws(BatchError) -> Int? {
        var lines = try makeLineIterator()
        while let line = try lines.next(), line.lineNumber < lineNumber {
            if line.request.id == id { return line.lineNumber }
        }
        return nil
    }

    /// The requests as a lazy `AsyncSequence` for ``Processor/processAsync(_:)``: the file is read
    /// as the processor pulls.
    ///
    /// - Parameters:
    ///   - transform: maps each request (change its model...) or drops it (`nil`: another shard,
    ///     already finished...).
    ///   - onError: called once if the file cannot be read or a bad line is met; the sequence then
    ///     ends. Call ``validate(_:)`` first to report such problems before anything runs.
    package func requests(
        transform: @escaping @Sendable (BatchRequest) -> BatchRequest? = { $0 },
        onError: @escaping @Sendable (BatchError) -> Void = { _ in }
    ) -> Requests {
        Requests(reader: self, transform: transform, onError: onError)
    }

    /// The lazy sequence ``requests(transform:onError:)`` returns.
    package struct Requests: AsyncSequence, Sendable {
        package typealias Element = BatchRequest
        package typealias Failure = Never

        let reader: BatchRequestFileReader
        let transform: @Sendable (BatchRequest) -> BatchRequest?
        let onError: @Sendable (BatchError) -> Void

        /// Pulls lines from the file as they are asked for.
        package struct AsyncIterator: AsyncIteratorProtocol {
            let reader: BatchRequestFileReader
            let transform: @Sendable (BatchRequest) -> BatchRequest?
            let onError: @Sendable (BatchError) -> Void
            var lines: LineIterator?
            var done = false

            package mutating func next() async -> BatchRequest? { nextRequest() }

            package mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? {
                nextRequest()
            }

            mutating func nextRequest() -> BatchRequest? {
                guard !done else { return nil }
                do throws(BatchError) {
                    if lines == nil { lines = try reader.makeLineIterator() }
                    while let line = try lines!.next() {
                        if let request = transform(line.request) { return request }
                    }
                } catch {
                    onError(error)
                }
                done = true
                lines = nil
                return nil
            }
        }

        package func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(reader: reader, transform: transform, onError: onError)
        }
    }

    /// A synchronous pass over the file.
    package struct LineIterator {
        let source: LineSource
        let name: String

        /// The next request, or `nil` at the end of the file.
        ///
        /// - Throws: the line's error, `FILE:LINE: …` with ``BatchError/field`` set when a field is at fault.
        package mutating func next() throws(BatchError) -> Line? {
            while let (bytes, number) = try source.nextLine() {
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                do throws(BatchError) {
                    return Line(request: try BatchRequest(batchLine: bytes, lineNumber: nil), lineNumber: number)
                } catch {
                    var e = error
                    e.message = "\(name):\(number): \(error.message)"
                    throw e
                }
            }
            return nil
        }
    }

    /// Reads lines from a file descriptor in chunks. Used by one iterator (one task) at a time.
    final class LineSource {
        private let fd: Int32
        private let name: String
        private let chunkSize: Int
        private var buffer: [UInt8] = []
        private var chunk: [UInt8] = []
        private var start = 0
        private var searched = 0
        private var eof = false
        private var lineNumber = 0

        init(path: String, name: String, chunkSize: Int) throws(BatchError) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw BatchError(.io, "\(name): cannot read (\(String(cString: strerror(errno))))")
            }
            var info = stat()
            if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                _ = close(fd)
                throw BatchError(.io, "\(name): cannot read (it is a directory)")
            }
            self.fd = fd
            self.name = name
            self.chunkSize = chunkSize
        }

        deinit { _ = close(fd) }

        /// The next line without its newline, and its 1-based number; `nil` at the end.
        func nextLine() throws(BatchError) -> (ArraySlice<UInt8>, Int)? {
            while true {
                if let newline = buffer[searched...].firstIndex(of: 0x0A) {
                    let line = buffer[start..<newline]
                    start = newline + 1
                    searched = start
                    lineNumber += 1
                    return (line, lineNumber)
                }
                searched = buffer.count
                if eof {
                    guard start < buffer.count else { return nil }
                    let line = buffer[start...]
                    start = buffer.count
                    searched = start
                    lineNumber += 1
                    return (line, lineNumber)
                }
                // Drop consumed bytes before reading more, so the buffer holds about one chunk.
                if start > 0 {
                    buffer.removeFirst(start)
                    searched -= start
                    start = 0
                }
                if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: chunkSize) }
                let n = chunk.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress, raw.count) }
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    throw BatchError(.io, "\(name): cannot read (\(String(cString: strerror(e))))")
                }
                buffer.append(contentsOf: chunk[0..<n])
                if n == 0 { eof = true }
            }
        }
    }
}
