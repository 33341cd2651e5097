import Foundation

/// A hybrid run's own copy of the requests it accepted, on disk as interchange batch lines (with
/// their `metadata`), so that what misses the deadline can run in real time without the input
/// ever being held in memory.
final class RequestSpoolWriter {
    private let output: SpoolFileWriter

    init(storage: SpoolStorage, directory: URL) throws(BatchError) {
        output = try SpoolFileWriter(storage: storage, directory: directory, prefix: "requests-")
    }

    var file: URL { output.file }

    func append(_ request: BatchRequest) throws(BatchError) {
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

    /// Flushes and closes the file.
    func finish() throws(BatchError) { try output.finish() }
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
