import Foundation

/// A hybrid run's own copy of the requests it accepted, on disk as interchange batch lines (with
/// their `metadata`), so that what misses the deadline can run in real time without the input
/// ever being held in memory.
final class RequestSpoolWriter {
    let file: URL
    private let storage: SpoolStorage
    private var handle: FileHandle?
    private var buffer: [UInt8] = []

    init(storage: SpoolStorage, directory: URL) throws(BatchError) {
        self.storage = storage
        file = directory.appendingPathComponent("requests-\(UUID().uuidString).jsonl")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
                throw BatchError(.io, "cannot create the file", isRetryable: false)
            }
            handle = try FileHandle(forWritingTo: file)
        } catch {
            throw SpoolStorage.writeError(error, file: file)
        }
        buffer.reserveCapacity(1 << 18)
    }

    func append(_ request: BatchRequest) throws(BatchError) {
        request.writeBatchLine(into: &buffer)
        if !request.metadata.isEmpty, buffer.last == UInt8(ascii: "}") {
            buffer.removeLast()
            buffer.append(contentsOf: #","metadata":"#.utf8)
            JSONValue.object(request.metadata.mapValues(JSONValue.string)).write(into: &buffer)
            buffer.append(UInt8(ascii: "}"))
        }
        buffer.append(0x0A)
        if buffer.count >= 1 << 18 { try flush() }
    }

    private func flush() throws(BatchError) {
        guard !buffer.isEmpty, let handle else { return }
        do {
            try storage.write(handle, buffer)
        } catch {
            throw SpoolStorage.writeError(error, file: file)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file.
    func finish() throws(BatchError) {
        defer {
            try? handle?.close()
            handle = nil
        }
        try flush()
    }

    deinit { try? handle?.close() }
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
                guard let handle, let piece = try? handle.read(upToCount: 1 << 20), !piece.isEmpty else {
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
