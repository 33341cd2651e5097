package import Foundation

/// Reads JSON Lines from a file in fixed-size chunks, so a result file of any size is never one
/// in-memory string.
package enum JSONLReader {
    /// Calls `body` with each non-empty line (without its `\n` or `\r\n`) and its 1-based line
    /// number.
    package static func forEachLine(
        in url: URL, chunkSize: Int = 1 << 20,
        _ body: (ArraySlice<UInt8>, Int) async throws -> Void
    ) async throws {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var pending = [UInt8]()
        var lineNumber = 0
        while true {
            guard let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty else { break }
            pending.append(contentsOf: chunk)
            var start = 0
            var lines: [(Int, Int)] = []
            pending.withUnsafeBufferPointer { buf in
                var i = 0
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
