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

    @Test func aSmallBlobStaysInMemory() {
        #expect(EmulatorBlob(Data("{}\n".utf8)).fileURL == nil)
    }
}
