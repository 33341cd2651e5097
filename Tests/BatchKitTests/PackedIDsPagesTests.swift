import BatchKitTesting
import Testing

@testable import BatchKit

/// ``PackedIDs`` in fixed-size pages, on seeded random ids: every id comes back by index, in
/// order and by comparison; no page outgrows ``PackedIDs/pageSize`` unless one block alone is
/// longer; lists built the same way are equal; shrinking keeps the ids.
@Suite(.timeLimit(.minutes(5)))
struct PackedIDsPagesTests {
    /// `n` ids from `rng`: runs of counting ids, random ids of 1–`maxLength` bytes (some
    /// non-ASCII), ids sharing long prefixes, and repeats.
    static func ids(_ n: Int, maxLength: Int, _ rng: inout SplitMix64) -> [String] {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_é🙂")
        var out: [String] = []
        while out.count < n {
            switch rng.next() % 4 {
            case 0:
                let prefix = String((0..<Int(1 + rng.next() % 8)).map { _ in alphabet[Int(rng.next() % 26)] })
                let start = Int(rng.next() % 1_000)
                for k in 0..<Int(1 + rng.next() % 100) { out.append("\(prefix)\(start + k)") }
            case 1:
                out.append(String((0..<Int(1 + rng.next() % UInt64(maxLength))).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }))
            case 2:
                let base = out.last ?? "x"
                out.append(base + String(alphabet[Int(rng.next() % UInt64(alphabet.count))]))
            default:
                if let earlier = out.randomElement(using: &rng) { out.append(earlier) }
            }
        }
        return Array(out.prefix(n))
    }

    static func checkRoundTrip(_ ids: [String], _ rng: inout SplitMix64, label: String) throws {
        var packed = PackedIDs()
        for id in ids { packed.append(id) }
        try #require(packed.count == ids.count, "\(label)")
        #expect(Array(packed) == ids, "\(label): in order")
        var wrong = 0
        for _ in 0..<min(ids.count, 3_000) {
            let i = Int(rng.next() % UInt64(ids.count))
            if packed[i] != ids[i] { wrong += 1 }
            if !packed.id(at: i, is: ids[i]) { wrong += 1 }
            let other = ids[Int(rng.next() % UInt64(ids.count))]
            if packed.id(at: i, is: other) != (other == ids[i]) { wrong += 1 }
            if packed.id(at: i, is: ids[i] + "x") { wrong += 1 }
        }
        #expect(wrong == 0, "\(label): \(wrong) wrong answers by index")
        #expect(packed == PackedIDs(ids), "\(label)")
        var shrunk = packed
        shrunk.shrink()
        #expect(shrunk == packed, "\(label): shrink changed the list")
        #expect(Array(shrunk) == ids, "\(label): after shrink")
        // The result join's positions: the first position of each id.
        let positions = IDPositions(packed)
        var first: [String: Int] = [:]
        for (i, id) in ids.enumerated() where first[id] == nil { first[id] = i }
        var misplaced = 0
        for (id, i) in first where positions[id] != i { misplaced += 1 }
        if positions["absent-\(rng.next())"] != nil { misplaced += 1 }
        #expect(misplaced == 0, "\(label): \(misplaced) positions wrong")
    }

    @Test func seededIDsRoundTripAcrossPages() throws {
        for seed: UInt64 in [1, 2, 3, 99, 2_026] {
            var rng = SplitMix64(seed: seed)
            for n in [0, 1, 31, 32, 33, 1_000, 20_000] {
                let ids = Self.ids(n, maxLength: 80, &rng)
                try Self.checkRoundTrip(ids, &rng, label: "seed \(seed) n=\(n)")
                let packed = PackedIDs(ids)
                #expect(packed.largestPage <= PackedIDs.pageSize, "seed \(seed) n=\(n): a page of \(packed.largestPage) bytes")
                if packed.byteCount > 2 * PackedIDs.pageSize { #expect(packed.pageCount >= 2, "seed \(seed) n=\(n)") }
            }
        }
    }

    /// Ids so long that one block of 32 is longer than a page: such a block gets a page of its
    /// own, as long as it is, and every id still reads back.
    @Test func blocksLongerThanAPageGetPagesOfTheirOwn() throws {
        var rng = SplitMix64(seed: 77)
        // Random ids of 600-1,500 bytes, sharing no prefix: a block of 32 takes about 34 KB.
        let ids = (0..<400).map { _ in String((0..<Int(600 + rng.next() % 900)).map { _ in Character(Unicode.Scalar(UInt8(97 + rng.next() % 26))) }) }
        try Self.checkRoundTrip(ids, &rng, label: "long ids")
        let packed = PackedIDs(ids)
        #expect(packed.largestPage > PackedIDs.pageSize)
        #expect(packed.pageCount > 10)
    }

    /// A chunk of 50,000 counting ids (the benchmark's shape): about a byte each, in a few pages.
    @Test func countingIDsFillPagesInOrder() {
        let n = 50_000
        let packed = PackedIDs((0..<n).lazy.map { "n\($0)" })
        #expect(packed.count == n)
        #expect(packed.byteCount < 2 * n)
        #expect(packed.pageCount >= 3)
        #expect(packed.largestPage <= PackedIDs.pageSize)
        #expect(packed[n - 1] == "n\(n - 1)")
        #expect(Array(packed).enumerated().allSatisfy { $0.element == "n\($0.offset)" })
    }
}
