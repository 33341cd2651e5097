import Foundation

/// The custom ids of one accepted batch, in order, kept in an ``EmulatorBlob`` (on disk above
/// 64 KB, some 6,000 ids): each id is its UTF-8 length (LEB128) followed by its bytes. What the
/// emulator records of every batch for ``ProviderEmulator/sentCounts`` and billing thus costs a
/// million queued ids disk, not memory; the ids are read back, in 64 KB pieces, only when a test
/// asks.
struct EmulatorIDList: Sendable, Sequence {
    private let blob: EmulatorBlob
    /// The number of ids.
    let count: Int

    /// The ids of `ids`, in order.
    init(_ ids: some Sequence<String>) {
        let builder = Builder()
        for id in ids { builder.append(id) }
        self = builder.finish()
    }

    private init(blob: EmulatorBlob, count: Int) {
        self.blob = blob
        self.count = count
    }

    /// Bytes of the blob read at a time.
    static let pieceSize = 64 << 10

    /// Appends ids one at a time (through a 16 KB buffer).
    final class Builder {
        private let writer = EmulatorBlob.Writer(memoryLimit: EmulatorIDList.pieceSize)
        private var buffer: [UInt8] = []
        private var count = 0

        init() {}

        func append(_ id: String) {
            var length = UInt(id.utf8.count)
            while length >= 0x80 {
                buffer.append(UInt8(length & 0x7F) | 0x80)
                length >>= 7
            }
            buffer.append(UInt8(length))
            buffer.append(contentsOf: id.utf8)
            count += 1
            if buffer.count >= 16 << 10 {
                writer.append(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }

        /// The finished list.
        func finish() -> EmulatorIDList {
            writer.append(buffer)
            buffer = []
            return EmulatorIDList(blob: writer.finish(), count: count)
        }
    }

    /// Reads the ids in order, a piece of the blob at a time.
    struct Iterator: IteratorProtocol {
        let blob: EmulatorBlob
        /// Where the next piece starts in the blob.
        var offset = 0
        var pending: [UInt8] = []
        /// Where the next id starts in `pending`.
        var cursor = 0

        /// Makes `needed` bytes available at `cursor`; false at the end of the blob.
        private mutating func fill(_ needed: Int) -> Bool {
            while pending.count - cursor < needed {
                if cursor > 0 {
                    pending.removeFirst(cursor)
                    cursor = 0
                }
                let piece = blob.read(offset: offset, length: Swift.max(EmulatorIDList.pieceSize, needed - pending.count))
                if piece.isEmpty { return false }
                offset += piece.count
                pending.append(contentsOf: piece)
            }
            return true
        }

        mutating func next() -> String? {
            var length = 0
            var shift = 0
            while true {
                guard shift < 64, fill(1) else { return nil }
                let b = pending[cursor]
                cursor += 1
                length |= Int(b & 0x7F) << shift
                if b < 0x80 { break }
                shift += 7
            }
            guard fill(length) else { return nil }
            defer { cursor += length }
            return String(decoding: pending[cursor..<(cursor + length)], as: UTF8.self)
        }
    }

    func makeIterator() -> Iterator { Iterator(blob: blob) }

    var underestimatedCount: Int { count }

    /// Whether the ids are in a file (not memory).
    var isOnDisk: Bool { blob.fileURL != nil }

    /// The file holding the ids, when they are on disk.
    var onDiskURL: URL? { blob.fileURL }
}

/// Custom ids recorded one at a time (real-time calls per `x-client-request-id`), kept like an
/// ``EmulatorIDList``: appended to one growing list that goes to disk above 64 KB, and counted
/// only when a test asks. What the emulator records of 100,000 real-time calls thus costs no
/// memory, where a `[String: Int]` took about 3 MB; every count read back is exact.
///
/// Not `Sendable`: it lives in the emulator's `Mutex`-guarded state and is only touched there.
final class EmulatorIDLog {
    /// Lists already read back (sealed when a reader asked), in order.
    private var sealed: [EmulatorIDList] = []
    /// The list being appended to (its ids go to disk as it grows).
    private var open = EmulatorIDList.Builder()
    /// Ids in `open`.
    private var openCount = 0
    /// The number of ids recorded.
    private(set) var count = 0

    init() {}

    deinit {
        // Finishing makes a blob whose own deinit removes the file the builder may have written.
        _ = open.finish()
    }

    /// Records one id.
    func append(_ id: String) {
        open.append(id)
        openCount += 1
        count += 1
    }

    /// Every id recorded, in order (the open list is sealed first, so all are read from blobs).
    var lists: [EmulatorIDList] {
        if openCount > 0 {
            sealed.append(open.finish())
            open = EmulatorIDList.Builder()
            openCount = 0
        }
        return sealed
    }

    /// How many times each id was recorded.
    func counts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for list in lists { for id in list { counts[id, default: 0] += 1 } }
        return counts
    }

    /// How many times `id` was recorded.
    func count(of id: String) -> Int {
        lists.reduce(0) { n, list in n + list.reduce(0) { $0 + ($1 == id ? 1 : 0) } }
    }

    /// Whether any id was recorded.
    var isEmpty: Bool { count == 0 }
}
