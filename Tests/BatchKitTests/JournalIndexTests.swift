import Foundation
import Testing

@testable import BatchKit

/// The journal's compact index (issue 12): exact lookups by id bytes, later lines replacing
/// earlier ones, growth keeping every id, and the order of lines for compaction.
@Suite(.timeLimit(.minutes(5)))
struct JournalIndexTests {
    /// Short, long (over 15 bytes: not a small string), non-ASCII and empty-ish ids.
    static func id(_ i: Int) -> String {
        switch i % 4 {
        case 0: "r\(i)"
        case 1: "request-with-a-long-custom-id-\(i)-" + String(repeating: "x", count: i % 40)
        case 2: "café-\(i)-日本"
        default: "\(i)"
        }
    }

    @Test func everyIDIsFoundExactlyAfterGrowthAndReplacement() {
        var index = JournalIndex()
        let n = 20_000
        for i in 0..<n { index.record(Self.id(i), offset: i * 10, length: i % 300, isSuccess: i % 3 != 0) }
        #expect(index.count == n)
        // A later line for an id replaces its entry; no new id.
        for i in stride(from: 0, to: n, by: 7) { index.record(Self.id(i), offset: 1_000_000 + i, length: 5, isSuccess: true) }
        #expect(index.count == n)
        var wrong = 0
        for i in 0..<n {
            guard let p = index.position(of: Self.id(i)), index.id(at: p) == Self.id(i) else { wrong += 1; continue }
            let replaced = i % 7 == 0
            if index.offsets[p] != (replaced ? 1_000_000 + i : i * 10) { wrong += 1 }
            if index.successes[p] != (replaced || i % 3 != 0) { wrong += 1 }
            if Int(index.lengths[p]) != (replaced ? 5 : i % 300) { wrong += 1 }
        }
        #expect(wrong == 0)
        // Ids that are not there, including prefixes and extensions of ids that are.
        #expect(index.position(of: "r") == nil)
        #expect(index.position(of: "r00") == nil)
        #expect(index.position(of: Self.id(4) + "x") == nil)
        #expect(index.position(of: String(Self.id(1).dropLast())) == nil)
        #expect(index.position(of: "\(n + 3)") == nil)
    }

    @Test func positionsByOffsetFollowTheFile() {
        var index = JournalIndex()
        index.record("a", offset: 0, length: 9, isSuccess: false)
        index.record("b", offset: 10, length: 9, isSuccess: true)
        index.record("a", offset: 20, length: 9, isSuccess: true)  // a's later line
        index.record("c", offset: 30, length: 9, isSuccess: true)
        let order = index.positionsByOffset().map { index.id(at: $0) }
        #expect(order == ["b", "a", "c"])
        index.replaceOffsets([10, 0, 20])
        #expect(index.positionsByOffset().map { index.id(at: $0) } == ["b", "a", "c"])
        #expect(index.offsets == [10, 0, 20])
    }
}
