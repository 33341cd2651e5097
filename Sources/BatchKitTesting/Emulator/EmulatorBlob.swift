import BatchKit
import Foundation

/// The contents of a file the emulator stores (uploads, batch output and error files): small ones
/// in memory, larger ones in a file of their own in the temporary directory, removed when the last
/// record holding them goes. One copy however many views refer to it (the file record, the batch
/// that reads it), so a million queued requests cost the emulator disk, not memory.
final class EmulatorBlob: Sendable {
    private enum Storage {
        case memory(Data)
        case disk(URL)
    }

    /// Contents up to this size stay in memory.
    static let memoryLimit = 1 << 20

    private let storage: Storage
    /// The size in bytes.
    let count: Int

    /// A blob holding `data` (written to disk when it is large).
    ///
    /// `data` may be a slice of larger storage (a multipart part of a mapped request body): a blob
    /// on disk is written from it, one in memory keeps a copy of just its bytes, so the blob never
    /// holds on to the storage it came from.
    init(_ data: Data) {
        count = data.count
        if data.count > Self.memoryLimit, let url = Self.newFile(), (try? data.write(to: url)) != nil {
            storage = .disk(url)
        } else {
            storage = .memory(data.startIndex == 0 ? data : data.withUnsafeBytes { Data($0) })
        }
    }

    private init(memory data: Data) {
        storage = .memory(data)
        count = data.count
    }

    private init(disk url: URL, count: Int) {
        storage = .disk(url)
        self.count = count
    }

    static func newFile() -> URL? {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-emulator-\(UUID().uuidString).blob")
        return FileManager.default.createFile(atPath: url.path, contents: nil) ? url : nil
    }

    /// The file holding the contents, when they are on disk.
    var fileURL: URL? {
        if case .disk(let url) = storage { return url }
        return nil
    }

    deinit {
        if case .disk(let url) = storage { try? FileManager.default.removeItem(at: url) }
    }

    /// The whole contents (a download answer).
    var data: Data {
        switch storage {
        case .memory(let d): return d
        case .disk(let url): return (try? Data(contentsOf: url)) ?? Data()
        }
    }

    /// Puts the contents in a new file at `url`: a hard link to the blob's file when it is on disk
    /// (the contents never change; the link outlives the blob), else a copy.
    func copy(to url: URL) throws {
        switch storage {
        case .memory(let d): try d.write(to: url)
        case .disk(let file):
            if (try? FileManager.default.linkItem(at: file, to: url)) == nil {
                try FileManager.default.copyItem(at: file, to: url)
            }
        }
    }

    /// `length` bytes from `offset` (fewer at the end; empty when unreadable).
    func read(offset: Int, length: Int) -> Data {
        switch storage {
        case .memory(let d):
            let start = min(d.count, max(0, offset))
            let end = min(d.count, start + max(0, length))
            return Data(d[d.startIndex + start..<d.startIndex + end])
        case .disk(let url):
            guard let handle = FileHandle(forReadingAtPath: url.path) else { return Data() }
            defer { try? handle.close() }
            guard (try? handle.seek(toOffset: UInt64(max(0, offset)))) != nil else { return Data() }
            return (try? handle.read(upToCount: length)) ?? Data()
        }
    }

    /// Calls `body` with each non-empty line and its 1-based line number, like
    /// `JSONLReader.forEachLine(in:)`. A file on disk is read into one reused 64 KB buffer (grown
    /// only for a line longer than that) and each line is handed over where it lies: no piece or
    /// line is copied, and no transient block is large.
    func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int) -> Void) {
        switch storage {
        case .memory(let d):
            JSONLReader.forEachLine(in: d, body)
        case .disk(let url):
            // An unreadable file ends the lines where it failed, as a short file would.
            try? JSONLReader.forEachLineInBlocks(of: url, blockSize: Self.lineBlockSize, body)
        }
    }

    /// The buffer ``forEachLine(_:)`` reads a file on disk with.
    static let lineBlockSize = 64 << 10

    /// Builds a blob piece by piece, moving to disk once it outgrows ``EmulatorBlob/memoryLimit``.
    final class Writer {
        private var buffer: [UInt8] = []
        private var file: (url: URL, handle: FileHandle)?
        private var written = 0
        /// Contents up to this size stay in memory.
        private let memoryLimit: Int

        init(memoryLimit: Int = EmulatorBlob.memoryLimit) {
            self.memoryLimit = memoryLimit
        }

        var isEmpty: Bool { written == 0 && buffer.isEmpty }

        /// Appends bytes. The buffer is written out before it would outgrow the memory limit, so it
        /// never holds (or frees) more than that, unless one piece is larger.
        func append(_ bytes: some Collection<UInt8>) {
            if buffer.count + bytes.count > memoryLimit { spill() }
            if buffer.capacity == 0 { buffer.reserveCapacity(Swift.min(memoryLimit, 64 << 10)) }
            buffer.append(contentsOf: bytes)
            if buffer.count > memoryLimit { spill() }
        }

        /// Writes the buffer to the file (created on first use).
        private func spill() {
            if file == nil, let url = EmulatorBlob.newFile(), let handle = FileHandle(forWritingAtPath: url.path) {
                file = (url, handle)
            }
            // Without a file (no disk) the contents stay in memory.
            guard let file, !buffer.isEmpty, (try? file.handle.write(contentsOf: buffer)) != nil else { return }
            written += buffer.count
            buffer.removeAll(keepingCapacity: true)
        }

        /// The finished blob.
        func finish() -> EmulatorBlob {
            guard let file else { return buffer.count > memoryLimit ? EmulatorBlob(Data(buffer)) : EmulatorBlob(memory: Data(buffer)) }
            spill()
            try? file.handle.close()
            self.file = nil
            return EmulatorBlob(disk: file.url, count: written)
        }
    }
}
