package import Foundation

/// The custom ids of one chunk, packed: their UTF-8 bytes back to back and where each ends (about
/// the ids' own size, instead of a `String` and a dictionary slot each).
package struct PackedIDs: Sendable, Hashable, RandomAccessCollection {
    private var bytes: [UInt8] = []
    private var ends: [UInt32] = []

    package init() {}

    package init(_ ids: some Sequence<String>) {
        for id in ids { append(id) }
    }

    package mutating func append(_ id: String) {
        bytes.append(contentsOf: id.utf8)
        ends.append(UInt32(bytes.count))
    }

    package var startIndex: Int { 0 }
    package var endIndex: Int { ends.count }

    package subscript(i: Int) -> String {
        let start = i == 0 ? 0 : Int(ends[i - 1])
        return String(decoding: bytes[start..<Int(ends[i])], as: UTF8.self)
    }

    /// Position of each id (the first, should one repeat), for joining results.
    package func positions() -> [String: Int] {
        var out: [String: Int] = [:]
        out.reserveCapacity(count)
        for i in indices where out[self[i]] == nil { out[self[i]] = i }
        return out
    }
}

/// Where a native run spools its chunks: each chunk is encoded straight into a file of its own
/// (one encoded item per line) in a directory of the run's own under ``directory``, so memory does
/// not grow with the input; uploads stream from the file and resubmissions re-read it. A chunk's
/// file is removed once its job's results are in, and the run's directory when the run ends.
package struct SpoolStorage: Sendable {
    /// The parent of each run's spool directory.
    package var directory: URL
    /// Appends bytes to an open spool file. Tests replace it to fail like a full disk.
    package var write: @Sendable (FileHandle, [UInt8]) throws -> Void

    package init(directory: URL, write: @escaping @Sendable (FileHandle, [UInt8]) throws -> Void = { try $0.write(contentsOf: $1) }) {
        self.directory = directory
        self.write = write
    }

    /// Spool files in the temporary directory.
    package static var temporary: SpoolStorage { SpoolStorage(directory: FileManager.default.temporaryDirectory) }

    /// A fresh directory for one run (created on first use).
    package func runDirectory() -> URL {
        directory.appendingPathComponent("batchkit-spool-\(UUID().uuidString)", isDirectory: true)
    }

    /// A spool write failed: the error says what to do, and that finished work is kept.
    package static func writeError(_ error: any Error, file: URL) -> BatchError {
        let reason = (error as? BatchError)?.message ?? (error as NSError).localizedDescription
        return BatchError(
            .io,
            "cannot write the batch spool file \(file.lastPathComponent) in \(file.deletingLastPathComponent().path) (\(reason)): is the disk full? No further requests were submitted; every result already finished is reported. Free some space and rerun",
            isRetryable: false)
    }
}

/// One chunk written to its spool file: what a job is created from, and what its tracking keeps
/// (the ids, packed; the metadata of the items that have any), never the encoded bodies.
package struct SpooledChunk: Sendable {
    /// The spool file: each item's encoded data on a line of its own, in order.
    package var file: URL
    /// The items' group key.
    package var groupKey: String
    /// The items' custom ids, in file order.
    package var ids: PackedIDs
    /// The bytes of the items, a newline after each (what the byte limits count).
    package var bytes: Int
    /// ``BatchRequest/metadata`` of the items that have any, by position.
    package var metadata: [Int: [String: String]]
    /// The estimated cost of the chunk (with a budget).
    package var estimate: Double

    package var count: Int { ids.count }

    /// Calls `body` with each item's position and encoded data, reading the file in 1 MB pieces.
    package func forEachItem(_ body: (Int, ArraySlice<UInt8>) async throws -> Void) async throws {
        var position = 0
        try await JSONLReader.forEachLine(in: file) { line, _ in
            try await body(position, line)
            position += 1
        }
    }

    /// The items, read back into memory (for backends that build a request body in memory).
    package func items() async throws -> [EncodedBatchItem] {
        var out: [EncodedBatchItem] = []
        out.reserveCapacity(count)
        try await forEachItem { i, data in
            guard i < ids.count else { return }
            out.append(EncodedBatchItem(id: ids[i], data: Data(data), groupKey: groupKey, metadata: metadata[i] ?? [:]))
        }
        guard out.count == count else {
            throw BatchError(.io, "the spool file \(file.lastPathComponent) holds \(out.count) requests, expected \(count)", isRetryable: false)
        }
        return out
    }

    /// Removes the spool file.
    package func remove() { try? FileManager.default.removeItem(at: file) }
}

/// Writes one chunk's items to its spool file through a 256 KB buffer.
final class SpoolChunkWriter {
    let file: URL
    let groupKey: String
    let storage: SpoolStorage
    private var handle: FileHandle?
    private var buffer: [UInt8] = []
    private(set) var ids = PackedIDs()
    private(set) var bytes = 0
    private var metadata: [Int: [String: String]] = [:]
    var estimate: Double = 0

    init(storage: SpoolStorage, directory: URL, groupKey: String) throws(BatchError) {
        self.storage = storage
        self.groupKey = groupKey
        self.file = directory.appendingPathComponent("chunk-\(UUID().uuidString).jsonl")
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

    var count: Int { ids.count }

    func append(_ item: EncodedBatchItem) throws(BatchError) {
        if !item.metadata.isEmpty { metadata[ids.count] = item.metadata }
        ids.append(item.id)
        buffer.append(contentsOf: item.data)
        buffer.append(0x0A)
        bytes += item.data.count + 1
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

    /// Flushes and closes the file; the chunk is ready to submit.
    func finish() throws(BatchError) -> SpooledChunk {
        try flush()
        try? handle?.close()
        handle = nil
        return SpooledChunk(file: file, groupKey: groupKey, ids: ids, bytes: bytes, metadata: metadata, estimate: estimate)
    }

    /// Closes and removes the file (the chunk will not be submitted).
    func discard() {
        try? handle?.close()
        handle = nil
        try? FileManager.default.removeItem(at: file)
    }

    deinit { try? handle?.close() }
}

/// Packs encoded items into spooled chunks within the limits, one open chunk per group key.
final class SpoolChunker {
    let limits: BatchLimits
    let storage: SpoolStorage
    let directory: URL
    private var open: [String: SpoolChunkWriter] = [:]

    init(limits: BatchLimits, storage: SpoolStorage, directory: URL) {
        self.limits = limits
        self.storage = storage
        self.directory = directory
    }

    /// Adds an item (with its estimated cost); returns the group's previous chunk when the item
    /// does not fit in it.
    func add(_ item: EncodedBatchItem, estimate: Double = 0) throws(BatchError) -> SpooledChunk? {
        let size = item.data.count + 1
        var full: SpooledChunk?
        if let writer = open[item.groupKey], writer.count > 0,
            writer.count >= limits.maxRequests || writer.bytes + size > limits.maxBytes
        {
            open[item.groupKey] = nil
            do {
                full = try writer.finish()
            } catch {
                writer.discard()
                throw error
            }
        }
        let writer: SpoolChunkWriter
        if let w = open[item.groupKey] {
            writer = w
        } else {
            writer = try SpoolChunkWriter(storage: storage, directory: directory, groupKey: item.groupKey)
            open[item.groupKey] = writer
        }
        try writer.append(item)
        writer.estimate += estimate
        return full
    }

    /// The remaining partial chunks, in group-key order.
    func drain() throws(BatchError) -> [SpooledChunk] {
        var out: [SpooledChunk] = []
        for key in open.keys.sorted() {
            guard let writer = open.removeValue(forKey: key) else { continue }
            if writer.count == 0 {
                writer.discard()
            } else {
                out.append(try writer.finish())
            }
        }
        return out
    }

    /// Closes and removes the open chunks' files (their items were never submitted).
    func discardAll() {
        for writer in open.values { writer.discard() }
        open = [:]
    }
}
