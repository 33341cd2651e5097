import BatchKit
import Foundation
import Testing

@testable import BatchKitTesting

@Suite(.timeLimit(.minutes(5)))
struct EmulatorBlobTests {
    /// Lines of a blob read from disk are those of the same bytes read in memory, numbers included
    /// (empty lines count), across the 4 MB pieces it reads.
    @Test func aLargeBlobLivesOnDiskAndReadsLikeMemory() throws {
        var text = ""
        var i = 0
        while text.utf8.count < 9 << 20 {
            text += i % 1000 == 7 ? "\n" : "{\"custom_id\":\"c\(i)\",\"pad\":\"\(String(repeating: "x", count: i % 300))\"}\n"
            i += 1
        }
        text += "{\"last\":true}"  // no final newline
        let data = Data(text.utf8)
        let blob = EmulatorBlob(data)
        #expect(blob.count == data.count)
        var fromDisk: [(String, Int)] = []
        blob.forEachLine { line, n in fromDisk.append((String(decoding: line, as: UTF8.self), n)) }
        var fromMemory: [(String, Int)] = []
        JSONLReader.forEachLine(in: data) { line, n in fromMemory.append((String(decoding: line, as: UTF8.self), n)) }
        try #require(fromDisk.count == fromMemory.count)
        #expect(fromDisk.map(\.0) == fromMemory.map(\.0))
        #expect(fromDisk.map(\.1) == fromMemory.map(\.1))
        #expect(blob.data == data)
        #expect(blob.fileURL != nil)
    }

    /// A writer moves to disk past the memory limit; the file goes when the blob does.
    @Test func aWriterSpillsToDiskAndTheFileGoesWithTheBlob() throws {
        let writer = EmulatorBlob.Writer()
        let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 300_000) + [0x0A]
        for _ in 0..<10 { writer.append(piece) }
        var blob: EmulatorBlob? = writer.finish()
        #expect(blob?.count == piece.count * 10)
        var lines = 0
        blob?.forEachLine { line, _ in if line.count == 300_000 { lines += 1 } }
        #expect(lines == 10)
        let file = try #require(blob?.fileURL)
        #expect(FileManager.default.fileExists(atPath: file.path))
        blob = nil
        #expect(!FileManager.default.fileExists(atPath: file.path))
    }

    /// Pieces read at an offset are the same from memory and from disk, short at the end.
    @Test func readAtAnOffset() throws {
        let data = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let onDisk = EmulatorBlob(data)
        #expect(onDisk.fileURL != nil)
        let inMemory = EmulatorBlob(Data(data.prefix(1000)))
        #expect(inMemory.fileURL == nil)
        #expect(onDisk.read(offset: 2_000_001, length: 12) == data[2_000_001..<2_000_013])
        #expect(onDisk.read(offset: data.count - 5, length: 12) == data.suffix(5))
        #expect(inMemory.read(offset: 990, length: 12) == data[990..<1000])
        #expect(inMemory.read(offset: 5000, length: 12).isEmpty)
    }

    /// A batch's running totals: every prefix reads back right, from memory for a small batch
    /// and from disk for a large one.
    @Test(arguments: [100, 20_000]) func prefixCountsReadBackEveryPrefix(_ lines: Int) throws {
        let builder = EmulatorPrefixCounts.Builder()
        var expected = [EmulatorPrefixCounts.Totals()]
        for i in 0..<lines {
            let ok = i % 7 != 3
            builder.append(ok: ok, inputTokens: ok ? i % 50 + 1 : 0, outputTokens: ok ? 9 : 0)
            var next = expected[expected.count - 1]
            if ok {
                next.ok += 1
                next.inputTokens += i % 50 + 1
                next.outputTokens += 9
            }
            expected.append(next)
        }
        let counts = builder.finish()
        #expect(counts.lines == lines)
        #expect(counts.isOnDisk == (lines * 12 > 64 << 10))
        for k in stride(from: 0, through: lines, by: max(1, lines / 500)) { #expect(counts[k] == expected[k], "k = \(k)") }
        #expect(counts[lines - 1] == expected[lines - 1])
        #expect(counts[lines] == expected[lines])
        #expect(counts[lines + 10] == expected[lines])
        #expect(counts.all == expected[lines])
    }

    @Test func aSmallBlobStaysInMemory() {
        #expect(EmulatorBlob(Data("{}\n".utf8)).fileURL == nil)
    }
}
