package import Foundation

/// The custom ids of one chunk, packed and front-coded: each id is stored as the length of the
/// prefix it shares with the id before it, the length of the rest, and the rest (lengths as LEB128
/// varints). Every ``blockSize``-th id starts a block and is stored whole, so reading id `i`
/// decodes at most a block; iterating decodes each id once. Blocks are kept in pages of
/// ``pageSize`` bytes, so a growing list allocates page by page and never copies itself. An id that is the one before it with
/// its trailing decimal number plus one (`row-9` after `row-8`, `n100` after `n99`, `r-010` after
/// `r-009`) is a single mark instead: a shared length one more than the previous id's, which no
/// front-coded id can have. So ids that count up take about 1 byte each, others about their own
/// size plus 2 bytes, where a `String` each would take 16 bytes and more.
package struct PackedIDs: Sendable, Hashable, RandomAccessCollection {
    /// Ids per block.
    package static let blockSize = 32
    /// The bytes of a page: blocks are written into pages of this capacity, and a block never
    /// spans two pages, so a growing list never reallocates (and copies) more than one block.
    package static let pageSize = 16 * 1024

    /// The coded ids, in pages of ``pageSize`` bytes (a page holding a single block longer than
    /// that is as long as its block).
    private var pages: [[UInt8]] = []
    /// Where each block starts: its page (high 32 bits) and its offset in that page.
    private var blockStarts: [UInt64] = []
    private var total = 0
    /// The id appended last, as bytes (the next one is coded against it).
    private var last: [UInt8] = []

    package init() {}

    package init(_ ids: some Sequence<String>) {
        for id in ids { append(id) }
    }

    package mutating func append(_ id: String) {
        var utf8 = Array(id.utf8)
        let isBlockStart = total % Self.blockSize == 0
        if isBlockStart {
            if pages.isEmpty || pages[pages.count - 1].count >= Self.pageSize { Self.addPage(to: &pages) }
            blockStarts.append(UInt64(pages.count - 1) << 32 | UInt64(pages[pages.count - 1].count))
        }
        // What is written: a mark (shared = previous length + 1) or shared, rest length, rest.
        let isIncrement = !isBlockStart && Self.isIncrement(utf8, of: last)
        var shared = 0
        if !isBlockStart, !isIncrement {
            let limit = Swift.min(utf8.count, last.count)
            while shared < limit, utf8[shared] == last[shared] { shared += 1 }
        }
        let size = isIncrement
            ? Self.varintSize(last.count + 1) : Self.varintSize(shared) + Self.varintSize(utf8.count - shared) + utf8.count - shared
        let page = pages.count - 1
        let blockOffset = Int(blockStarts[blockStarts.count - 1] & 0xFFFF_FFFF)
        if pages[page].count + size > Self.pageSize, blockOffset > 0 {
            // The block would overflow its page: it moves to a page of its own.
            Self.addPage(to: &pages)
            pages[page + 1].append(contentsOf: pages[page][blockOffset...])
            pages[page].removeSubrange(blockOffset...)
            blockStarts[blockStarts.count - 1] = UInt64(page + 1) << 32
        }
        if isIncrement {
            Self.appendVarint(last.count + 1, to: &pages[pages.count - 1])
        } else {
            Self.appendVarint(shared, to: &pages[pages.count - 1])
            Self.appendVarint(utf8.count - shared, to: &pages[pages.count - 1])
            pages[pages.count - 1].append(contentsOf: utf8[shared...])
        }
        swap(&last, &utf8)
        total += 1
    }

    private static func varintSize(_ value: Int) -> Int {
        var v = UInt(value)
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    private static func addPage(to pages: inout [[UInt8]]) {
        var page: [UInt8] = []
        page.reserveCapacity(pageSize)
        pages.append(page)
    }

    package var startIndex: Int { 0 }
    package var endIndex: Int { total }

    /// The bytes the coded ids take (without spare capacity).
    package var byteCount: Int { pages.reduce(0) { $0 + $1.count } + blockStarts.count * MemoryLayout<UInt64>.size }

    /// The number of pages (for tests).
    package var pageCount: Int { pages.count }

    /// The largest page's byte count (for tests: over ``pageSize`` only for a page holding a
    /// single block that long).
    package var largestPage: Int { pages.map(\.count).max() ?? 0 }

    /// Gives back the spare capacity of a list that is complete (a chunk that was filled): the
    /// last page is copied to its exact size, and the block index too.
    package mutating func shrink() {
        if !pages.isEmpty { pages[pages.count - 1] = Self.exactCopy(pages[pages.count - 1]) }
        pages = Self.exactCopy(pages)
        blockStarts = Self.exactCopy(blockStarts)
    }

    private static func exactCopy<T>(_ a: [T]) -> [T] {
        guard a.capacity > a.count else { return a }
        return [T](unsafeUninitializedCapacity: a.count) { buffer, initialized in
            initialized = a.withUnsafeBufferPointer { buffer.initialize(fromContentsOf: $0) }
        }
    }

    /// A cursor at the start of block `b`, and the page it reads.
    private func cursor(block b: Int) -> (Cursor, [UInt8]) {
        let start = blockStarts[b]
        return (Cursor(offset: Int(start & 0xFFFF_FFFF)), pages[Int(start >> 32)])
    }

    package subscript(i: Int) -> String {
        precondition(i >= 0 && i < total, "PackedIDs index out of range")
        var (cursor, page) = cursor(block: i / Self.blockSize)
        for _ in 0...(i % Self.blockSize) { cursor.step(page) }
        return String(decoding: cursor.id, as: UTF8.self)
    }

    /// Whether the id at `i` is `id` (decoded as bytes, no `String` made).
    package func id(at i: Int, is id: String) -> Bool {
        precondition(i >= 0 && i < total, "PackedIDs index out of range")
        var (cursor, page) = cursor(block: i / Self.blockSize)
        for _ in 0...(i % Self.blockSize) { cursor.step(page) }
        return cursor.id.elementsEqual(id.utf8)
    }

    /// Decodes the ids in order, each once.
    package struct Iterator: IteratorProtocol {
        let ids: PackedIDs
        var index = 0
        var cursor = Cursor(offset: 0)
        /// The page of the block being read.
        var page: [UInt8] = []

        package mutating func next() -> String? {
            guard index < ids.total else { return nil }
            if index % PackedIDs.blockSize == 0 {
                let start = ids.blockStarts[index / PackedIDs.blockSize]
                page = ids.pages[Int(start >> 32)]
                cursor.offset = Int(start & 0xFFFF_FFFF)
            }
            cursor.step(page)
            index += 1
            return String(decoding: cursor.id, as: UTF8.self)
        }
    }

    package func makeIterator() -> Iterator { Iterator(ids: self) }

    /// Position of each id (the first, should one repeat), for joining results.
    package func positions() -> [String: Int] {
        var out: [String: Int] = [:]
        out.reserveCapacity(count)
        for (i, id) in enumerated() where out[id] == nil { out[id] = i }
        return out
    }

    /// Reads one coded id after another.
    struct Cursor {
        var offset: Int
        /// The id read last.
        var id: [UInt8] = []

        mutating func step(_ bytes: [UInt8]) {
            let shared = PackedIDs.readVarint(bytes, &offset)
            if shared == id.count + 1 {
                PackedIDs.increment(&id)
                return
            }
            let rest = PackedIDs.readVarint(bytes, &offset)
            id.removeLast(id.count - Swift.min(shared, id.count))
            id.append(contentsOf: bytes[offset..<(offset + rest)])
            offset += rest
        }
    }

    /// The digits `0`–`9` at the end of `id`: where they start.
    private static func digitsStart(_ id: [UInt8]) -> Int {
        var k = id.count
        while k > 0, id[k - 1] >= 0x30, id[k - 1] <= 0x39 { k -= 1 }
        return k
    }

    /// Adds one to the decimal number that ends `id` (`a9` → `a10`, `r-009` → `r-010`); `id` ends
    /// with a digit.
    static func increment(_ id: inout [UInt8]) {
        let start = digitsStart(id)
        var j = id.count - 1
        while j >= start, id[j] == 0x39 {
            id[j] = 0x30
            j -= 1
        }
        if j >= start { id[j] += 1 } else { id.insert(0x31, at: start) }
    }

    /// Whether `id` is `previous` with the decimal number that ends it plus one.
    static func isIncrement(_ id: [UInt8], of previous: [UInt8]) -> Bool {
        let n = previous.count
        let start = digitsStart(previous)
        guard start < n else { return false }
        // The last digit that is not 9 goes up by one; the 9s after it become 0s.
        var j = n - 1
        while j >= start, previous[j] == 0x39 { j -= 1 }
        if j >= start {
            guard id.count == n, id[j] == previous[j] + 1 else { return false }
            for i in 0..<j where id[i] != previous[i] { return false }
        } else {
            // All 9s: a 1 goes before them.
            guard id.count == n + 1, id[start] == 0x31 else { return false }
            for i in 0..<start where id[i] != previous[i] { return false }
            j = start
        }
        for i in (j + 1)..<id.count where id[i] != 0x30 { return false }
        return true
    }

    static func appendVarint(_ value: Int, to out: inout [UInt8]) {
        var v = UInt(value)
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func readVarint(_ bytes: [UInt8], _ offset: inout Int) -> Int {
        var value: UInt = 0
        var shift: UInt = 0
        while true {
            let b = bytes[offset]
            offset += 1
            value |= UInt(b & 0x7F) << shift
            if b < 0x80 { return Int(value) }
            shift += 7
        }
    }
}

/// Where each id of a ``PackedIDs`` is, for joining a job's results: one 64-bit entry per id (the
/// top bits of its fingerprint, then its position) in 256 sorted partitions. A 50,000-id job takes
/// about 400 KB in blocks of a few KB, where a `[String: Int]` took 3 MB in one block. A lookup
/// checks the id at each candidate position, so it is exact: two ids sharing a fingerprint only
/// cost a second check, and an id that is not in the list is never found.
package struct IDPositions: Sendable {
    private let ids: PackedIDs
    /// Low bits of an entry holding the position.
    private let positionBits: Int
    private var partitions: [[UInt64]]

    package init(_ ids: PackedIDs) {
        self.ids = ids
        positionBits = Swift.max(1, UInt64.bitWidth - UInt64(Swift.max(1, ids.count - 1)).leadingZeroBitCount)
        partitions = Array(repeating: [], count: 256)
        guard !ids.isEmpty else { return }
        for (i, id) in ids.enumerated() {
            let fingerprint = FingerprintSet.fingerprint(id)
            partitions[Int(fingerprint >> 56)].append((fingerprint >> UInt64(positionBits)) << UInt64(positionBits) | UInt64(i))
        }
        for p in partitions.indices { partitions[p].sort() }
    }

    /// The position of `id` (the first, should one repeat), or `nil` when it is not in the list.
    package subscript(id: String) -> Int? {
        let fingerprint = FingerprintSet.fingerprint(id)
        let bits = UInt64(positionBits)
        let key = (fingerprint >> bits) << bits
        let entries = partitions[Int(fingerprint >> 56)]
        var lo = 0
        var hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        // Entries of one fingerprint prefix are in position order: the first match is the first.
        while lo < entries.count, entries[lo] >> bits == fingerprint >> bits {
            let position = Int(entries[lo] & (UInt64.max >> (64 - bits)))
            if ids.id(at: position, is: id) { return position }
            lo += 1
        }
        return nil
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

    /// Calls `body` with each item's position and encoded data, reading the file in 32 KB pieces.
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

/// A spool file being written: created (with its directory) when the writer is made, appended to
/// through a 64 KB buffer with ``SpoolStorage/write``, closed when finished. A file that cannot be
/// created or written is the spool's `.io` error (``SpoolStorage/writeError(_:file:)``). Chunk
/// files and the hybrid run's request spool are written with it.
final class SpoolFileWriter {
    let file: URL
    private let storage: SpoolStorage
    private var handle: FileHandle?
    /// Bytes appended and not yet written.
    var buffer: [UInt8] = []

    /// Creates `directory/<prefix><UUID>.jsonl`.
    init(storage: SpoolStorage, directory: URL, prefix: String) throws(BatchError) {
        self.storage = storage
        file = directory.appendingPathComponent("\(prefix)\(UUID().uuidString).jsonl")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
                throw BatchError(.io, "cannot create the file", isRetryable: false)
            }
            handle = try FileHandle(forWritingTo: file)
        } catch {
            throw SpoolStorage.writeError(error, file: file)
        }
        buffer.reserveCapacity(Self.bufferSize)
    }

    /// Bytes buffered before a write: small, so a run never holds (or frees) a large block for it.
    static let bufferSize = 64 << 10

    /// Writes the buffer out once it holds 48 KB: the next line (up to 16 KB) still fits in the
    /// reserved ``bufferSize``, so the buffer is not grown.
    func flushIfFull() throws(BatchError) {
        if buffer.count >= Self.bufferSize - (16 << 10) { try flush() }
    }

    func flush() throws(BatchError) {
        guard !buffer.isEmpty, let handle else { return }
        do {
            try storage.write(handle, buffer)
        } catch {
            throw SpoolStorage.writeError(error, file: file)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file (closed even when the flush fails).
    func finish() throws(BatchError) {
        defer {
            try? handle?.close()
            handle = nil
            buffer = []
        }
        try flush()
    }

    /// Closes and removes the file.
    func discard() {
        try? handle?.close()
        handle = nil
        buffer = []
        try? FileManager.default.removeItem(at: file)
    }

    deinit { try? handle?.close() }
}

/// Writes one chunk's items to its spool file.
final class SpoolChunkWriter {
    let groupKey: String
    private let output: SpoolFileWriter
    private(set) var ids = PackedIDs()
    private(set) var bytes = 0
    private var metadata: [Int: [String: String]] = [:]
    var estimate: Double = 0

    init(storage: SpoolStorage, directory: URL, groupKey: String) throws(BatchError) {
        self.groupKey = groupKey
        output = try SpoolFileWriter(storage: storage, directory: directory, prefix: "chunk-")
    }

    var file: URL { output.file }
    var count: Int { ids.count }

    func append(_ item: EncodedBatchItem) throws(BatchError) {
        if !item.metadata.isEmpty { metadata[ids.count] = item.metadata }
        ids.append(item.id)
        // Written out first when the item would not fit: the buffer keeps its reserved size.
        if output.buffer.count + item.data.count + 1 > SpoolFileWriter.bufferSize { try output.flush() }
        output.buffer.append(contentsOf: item.data)
        output.buffer.append(0x0A)
        bytes += item.data.count + 1
        try output.flushIfFull()
    }

    /// Flushes and closes the file; the chunk is ready to submit.
    func finish() throws(BatchError) -> SpooledChunk {
        try output.finish()
        ids.shrink()
        return SpooledChunk(file: file, groupKey: groupKey, ids: ids, bytes: bytes, metadata: metadata, estimate: estimate)
    }

    /// Closes and removes the file (the chunk will not be submitted).
    func discard() { output.discard() }
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
