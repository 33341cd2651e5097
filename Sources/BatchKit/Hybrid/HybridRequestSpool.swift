import Foundation

/// A hybrid run's own copy of the requests it accepted, on disk as interchange batch lines (with
/// their `metadata`), so that what misses the deadline can run in real time without the input
/// ever being held in memory.
final class RequestSpoolWriter {
    private let output: SpoolFileWriter
    /// The accepted ids alone, each its UTF-8 length (LEB128) and bytes: read back when
    /// submission has ended (``forEachID(in:_:)``), so the run's ``PendingIDs`` are not held
    /// beside submission's own set of every id.
    private let ids: SpoolFileWriter

    init(storage: SpoolStorage, directory: URL) throws(BatchError) {
        output = try SpoolFileWriter(storage: storage, directory: directory, prefix: "requests-")
        ids = try SpoolFileWriter(storage: storage, directory: directory, prefix: "ids-")
    }

    var file: URL { output.file }
    var idsFile: URL { ids.file }

    func append(_ request: BatchRequest) throws(BatchError) {
        var length = UInt(request.id.utf8.count)
        while length >= 0x80 {
            ids.buffer.append(UInt8(length & 0x7F) | 0x80)
            length >>= 7
        }
        ids.buffer.append(UInt8(length))
        ids.buffer.append(contentsOf: request.id.utf8)
        try ids.flushIfFull()
        request.writeBatchLine(into: &output.buffer)
        if !request.metadata.isEmpty, output.buffer.last == UInt8(ascii: "}") {
            output.buffer.removeLast()
            output.buffer.append(contentsOf: #","metadata":"#.utf8)
            JSONValue.object(request.metadata.mapValues(JSONValue.string)).write(into: &output.buffer)
            output.buffer.append(UInt8(ascii: "}"))
        }
        output.buffer.append(0x0A)
        try output.flushIfFull()
    }

    /// Flushes and closes the files.
    func finish() throws(BatchError) {
        var failure: BatchError?
        do { try output.finish() } catch { failure = error }
        do { try ids.finish() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    /// Calls `body` with each id of an ids file, in order; returns how many. Throws when the
    /// file cannot be read or ends inside an id.
    static func forEachID(in file: URL, _ body: (String) -> Void) throws(BatchError) -> Int {
        guard let handle = FileHandle(forReadingAtPath: file.path) else {
            throw BatchError(.io, "cannot read the spooled ids \(file.lastPathComponent)", isRetryable: false)
        }
        defer { try? handle.close() }
        var pending: [UInt8] = []
        var start = 0
        var count = 0
        var atEnd = false
        while true {
            // One id from `start`, if all of it is there.
            var i = start
            var length = 0
            var shift = 0
            var complete = false
            while i < pending.count, shift < 64 {
                let b = pending[i]
                i += 1
                length |= Int(b & 0x7F) << shift
                if b < 0x80 {
                    complete = pending.count - i >= length
                    break
                }
                shift += 7
            }
            if complete {
                body(String(decoding: pending[i..<(i + length)], as: UTF8.self))
                count += 1
                start = i + length
                continue
            }
            if atEnd {
                guard start == pending.count else {
                    throw BatchError(.io, "the spooled ids \(file.lastPathComponent) end inside an id", isRetryable: false)
                }
                return count
            }
            pending.removeFirst(start)
            start = 0
            let piece: Data?
            do {
                piece = try handle.read(upToCount: 64 << 10)
            } catch {
                throw BatchError(.io, "cannot read the spooled ids \(file.lastPathComponent): \(error)", isRetryable: false)
            }
            if let piece, !piece.isEmpty { pending.append(contentsOf: piece) } else { atEnd = true }
        }
    }
}

/// The spooled requests a ``HybridBook`` has no result for yet, read back one at a time.
struct PendingSpooledRequests: AsyncSequence, Sendable {
    typealias Failure = Never
    let file: URL
    let book: HybridBook

    struct AsyncIterator: AsyncIteratorProtocol {
        let book: HybridBook
        let handle: FileHandle?
        var pending: [UInt8] = []
        var start = 0
        var atEnd = false

        mutating func next() async -> BatchRequest? { step() }
        mutating func next(isolation actor: isolated (any Actor)?) async throws(Never) -> BatchRequest? { step() }

        mutating func step() -> BatchRequest? {
            while true {
                if let newline = pending[start...].firstIndex(of: 0x0A) {
                    let line = pending[start..<newline]
                    start = newline + 1
                    guard !line.isEmpty, let request = try? BatchRequest(batchLine: line) else { continue }
                    if book.isFinished(request.id) { continue }
                    return request
                }
                if atEnd { return nil }
                pending.removeFirst(start)
                start = 0
                guard let handle, let piece = try? handle.read(upToCount: 64 << 10), !piece.isEmpty else {
                    atEnd = true
                    try? handle?.close()
                    if !pending.isEmpty { pending.append(0x0A) }
                    continue
                }
                pending.append(contentsOf: piece)
            }
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(book: book, handle: FileHandle(forReadingAtPath: file.path))
    }
}
