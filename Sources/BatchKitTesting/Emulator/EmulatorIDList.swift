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
}
