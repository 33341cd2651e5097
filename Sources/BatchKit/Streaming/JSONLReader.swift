package import Foundation

/// Reads JSON Lines from a file in fixed-size chunks, so a result file of any size is never one
/// in-memory string.
package enum JSONLReader {
    /// Calls `body` with each non-empty line (without its `\n` or `\r\n`) and its 1-based line
    /// number.
    package static func forEachLine(
        in url: URL, chunkSize: Int = 32 << 10,
        _ body: (ArraySlice<UInt8>, Int) async throws -> Void
    ) async throws {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var pending = [UInt8]()
        var lineNumber = 0
        while true {
            guard let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty else { break }
            // What is pending holds no newline (the lines before it were handed out), so only the
            // new bytes are searched: a line many chunks long costs one pass, not one per chunk.
            let searchFrom = pending.count
            pending.append(contentsOf: chunk)
            var start = 0
            var lines: [(Int, Int)] = []
            pending.withUnsafeBufferPointer { buf in
                var i = searchFrom
                while i < buf.count {
                    if buf[i] == 0x0A {
                        lines.append((start, i))
                        start = i + 1
                    }
                    i += 1
                }
            }
            for (s, e) in lines {
                lineNumber += 1
                var end = e
                if end > s, pending[end - 1] == 0x0D { end -= 1 }
                if end == s { continue }
                try await body(pending[s..<end], lineNumber)
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty {
            lineNumber += 1
            var end = pending.count
            if pending[end - 1] == 0x0D { end -= 1 }
            if end > 0 {
                try await body(pending[0..<end], lineNumber)
            }
        }
    }

    /// Calls `body` with each non-empty line (without its `\n` or `\r\n`) and its 1-based line
    /// number, like ``forEachLine(in:chunkSize:_:)``, but synchronously and without copying a
    /// line: the file is read in blocks into one buffer (grown only for a line longer than a
    /// block) and each line is handed over where it lies.
    package static func forEachLineInBlocks(
        of url: URL, blockSize: Int = 4 << 20, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void
    ) throws {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var capacity = max(blockSize, 1)
        var base = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        defer { base.deallocate() }
        var filled = 0
        var lineNumber = 0
        func emit(_ s: Int, _ e: Int) throws {
            lineNumber += 1
            var end = e
            if end > s, base[end - 1] == 0x0D { end -= 1 }
            if end > s { try body(UnsafeBufferPointer(start: base + s, count: end - s), lineNumber) }
        }
        while true {
            if filled == capacity {
                // One line fills the buffer: make room for more of it.
                let larger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2)
                larger.update(from: base, count: filled)
                base.deallocate()
                base = larger
                capacity *= 2
            }
            // read(2) straight into the buffer (FileHandle's reads come back as a new Data each).
            let n = read(handle.fileDescriptor, base + filled, capacity - filled)
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            if n == 0 { break }
            filled += n
            var start = 0
            while start < filled, let nl = memchr(base + start, 0x0A, filled - start) {
                let e = nl.assumingMemoryBound(to: UInt8.self) - base
                try emit(start, e)
                start = e + 1
            }
            if start > 0 {
                memmove(base, base + start, filled - start)
                filled -= start
            }
        }
        if filled > 0 { try emit(0, filled) }
    }

    /// Calls `body` with each non-empty line of in-memory data.
    package static func forEachLine(in data: Data, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void) rethrows {
        try data.withUnsafeBytes { raw in
            let buf = raw.bindMemory(to: UInt8.self)
            var start = 0
            var lineNumber = 0
            func emit(_ s: Int, _ e: Int) throws {
                lineNumber += 1
                var end = e
                if end > s, buf[end - 1] == 0x0D { end -= 1 }
                if end > s { try body(UnsafeBufferPointer(rebasing: buf[s..<end]), lineNumber) }
            }
            for i in 0..<buf.count where buf[i] == 0x0A {
                try emit(start, i)
                start = i + 1
            }
            if start < buf.count { try emit(start, buf.count) }
        }
    }
}
