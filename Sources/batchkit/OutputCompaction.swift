import BatchKit
import Foundation

/// Lines bound for a file, written in pieces of 1 MiB or more rather than one write per line.
struct BufferedLineWriter {
    let handle: FileHandle
    private var buffer: [UInt8] = []

    init(_ handle: FileHandle) { self.handle = handle }

    /// Adds `bytes` and a newline; writes what is held once it reaches 1 MiB.
    mutating func append(line bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Writes what is held.
    mutating func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Keeps one line per custom id in an output file: after `--retry-failed` the journal holds the
/// failed line and the new one for the same id; the last line of an id wins.
enum OutputCompaction {
    /// Rewrites `url` with only the last line of each id, atomically (a temporary file, then
    /// rename). Does nothing when no id repeats.
    ///
    /// - Returns: the number of lines dropped.
    @discardableResult
    static func compact(_ url: URL) async throws -> Int {
        var last: [String: Int] = [:]
        var lines = 0
        try await JSONLReader.forEachLine(in: url) { bytes, number in
            guard let id = try? JSONValue(parsing: bytes)["custom_id"]?.stringValue else { return }
            last[id] = number
            lines += 1
        }
        guard lines > last.count else { return 0 }
        let keep = Set(last.values)
        let temporary = URL(fileURLWithPath: url.path + ".compacting")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CommandFailure("\(temporary.path): cannot create")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        do {
            var lines = BufferedLineWriter(handle)
            try await JSONLReader.forEachLine(in: url) { bytes, number in
                guard keep.contains(number) else { return }
                try lines.append(line: bytes)
            }
            try lines.flush()
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw CommandFailure("\(url.path): cannot replace it with the compacted file")
        }
        return lines - last.count
    }
}
