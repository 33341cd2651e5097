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
        _ = try Self.linesMatchingMemory(blob, data)
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

    /// A blob on disk is read through one small reused buffer: lines that straddle its edges,
    /// lines several times longer than it, CRLF endings, empty lines and a last line without a
    /// newline all read (with their numbers) as the same bytes do in memory.
    @Test func linesReadThroughTheReusedBufferLikeMemory() throws {
        let block = EmulatorBlob.lineBlockSize
        var bytes: [UInt8] = []
        var i = 0
        while bytes.count < (3 << 20) / 2 {
            switch i % 97 {
            case 5: bytes += Array("\r\n".utf8)  // an empty CRLF line
            case 11: bytes += Array("\n".utf8)  // an empty line
            case 23: bytes += [UInt8](repeating: UInt8(ascii: "L"), count: block * 3 + 17) + Array("\r\n".utf8)
            default:
                // Lengths that walk every offset relative to the buffer's edge.
                bytes += Array("{\"i\":\(i),\"p\":\"\(String(repeating: "é", count: i % 1_013))\"}".utf8) + (i % 3 == 0 ? [0x0D, 0x0A] : [0x0A])
            }
            i += 1
        }
        bytes += Array("{\"last\":\"no newline\"}".utf8)
        let data = Data(bytes)
        let blob = EmulatorBlob(data)
        #expect(blob.fileURL != nil)
        let fromDisk = try Self.linesMatchingMemory(blob, data)
        #expect(fromDisk.contains { $0.0.utf8.count == block * 3 + 17 })
        #expect(!fromDisk.contains { $0.0.hasSuffix("\r") || $0.0.isEmpty })
        #expect(fromDisk.last?.0 == "{\"last\":\"no newline\"}")
    }

    /// A blob made from a slice of larger storage (a multipart part of a request body) keeps a
    /// zero-based copy of just those bytes in memory, and writes them when large.
    @Test func aBlobFromASliceKeepsOnlyItsBytes() throws {
        let whole = Data((0..<(EmulatorBlob.memoryLimit * 3)).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let small = EmulatorBlob(whole[1_000..<2_000])
        #expect(small.fileURL == nil)
        #expect(small.data.startIndex == 0)
        #expect(small.data == whole[1_000..<2_000])
        let large = EmulatorBlob(whole[5..<(whole.count - 5)])
        #expect(large.fileURL != nil)
        #expect(large.count == whole.count - 10)
        #expect(large.data == whole[5..<(whole.count - 5)])
    }

    /// With `sharingStorage`, a file part is a slice of the body (same bytes, same storage),
    /// never a copy; the default parse still gives zero-based copies.
    @Test func aMultipartPartCanShareTheBodyStorage() throws {
        let file = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        var body = Data("--B0\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".utf8)
        body += Data("--B0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n".utf8)
        let fileStart = body.count
        body += file
        body += Data("\r\n--B0--\r\n".utf8)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-multipart-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try body.write(to: url)
        let mapped = try Data(contentsOf: url, options: .alwaysMapped)
        let shared = try MultipartForm.parse(body: mapped, contentType: "multipart/form-data; boundary=B0", sharingStorage: true)
        try #require(shared.count == 2)
        #expect(shared[0].text == "batch")
        #expect(shared[1].filename == "a.jsonl")
        #expect(shared[1].data == file)
        #expect(shared[1].data.startIndex == fileStart)
        let bodyBase = mapped.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let partBase = shared[1].data.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(partBase == bodyBase + UInt(fileStart))
        let copied = try MultipartForm.parse(body: mapped, contentType: "multipart/form-data; boundary=B0")
        try #require(copied.count == 2)
        #expect(copied[1].data.startIndex == 0)
        #expect(copied[1].data == file)
        #expect(EmulatorBlob(shared[1].data).data == file)
    }

    /// A batch's id list reads back in order, whatever the ids: empty, non-ASCII, with a length
    /// over one LEB128 byte, longer than a read piece; a small list stays in memory, a large
    /// one goes to disk.
    @Test func idListsReadBackInOrder() throws {
        let odd = ["", "é😀", String(repeating: "x", count: 200), String(repeating: "y", count: EmulatorIDList.pieceSize * 2 + 3), "z"]
        let small = EmulatorIDList(odd.prefix(3))
        #expect(small.count == 3)
        #expect(!small.isOnDisk)
        #expect(Array(small) == Array(odd.prefix(3)))
        let ids = (0..<20_000).map { "row-\($0)" } + odd + (0..<5_000).map { "tail-\($0)" }
        let large = EmulatorIDList(ids)
        #expect(large.count == ids.count)
        #expect(large.isOnDisk)
        let back = Array(large)
        try #require(back.count == ids.count)
        #expect(back == ids)
        #expect(Array(EmulatorIDList([String]())).isEmpty)
    }

    /// The lines (text, number) `blob` reads, after checking they are those `JSONLReader` reads
    /// from `data` in memory, in the same order with the same numbers.
    static func linesMatchingMemory(_ blob: EmulatorBlob, _ data: Data) throws -> [(String, Int)] {
        var fromDisk: [(String, Int)] = []
        blob.forEachLine { line, n in fromDisk.append((String(decoding: line, as: UTF8.self), n)) }
        var fromMemory: [(String, Int)] = []
        JSONLReader.forEachLine(in: data) { line, n in fromMemory.append((String(decoding: line, as: UTF8.self), n)) }
        try #require(fromDisk.count == fromMemory.count)
        #expect(fromDisk.map(\.0) == fromMemory.map(\.0))
        #expect(fromDisk.map(\.1) == fromMemory.map(\.1))
        return fromDisk
    }
}
