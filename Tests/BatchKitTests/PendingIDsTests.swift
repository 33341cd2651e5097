import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKit

/// ``PendingIDs``, the hybrid run's record of which accepted ids still wait for a result, checked
/// against an exact `Set<String>` model, with its real hash and with hashes that force keys to
/// collide (all ids one key, a handful of keys, one key shared by exactly two ids).
@Suite(.timeLimit(.minutes(5)))
struct PendingIDsTests {
    /// A seeded generator, so a failure repeats.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Random ids of random lengths (some counting, some random letters, some non-ASCII), unique.
    static func ids(_ n: Int, seed: UInt64) -> [String] {
        var rng = Seeded(state: seed)
        var out: [String] = []
        var seen = Set<String>()
        while out.count < n {
            let id: String
            switch rng.next() % 3 {
            case 0: id = "req-\(rng.next() % 1_000_000)"
            case 1: id = String((0..<Int(1 + rng.next() % 40)).map { _ in Character(UnicodeScalar(UInt8(97 + rng.next() % 26))) })
            default: id = "é-\(rng.next() % 10_000)-🙂"
            }
            if seen.insert(id).inserted { out.append(id) }
        }
        return out
    }

    /// Inserts `ids`, then removes a random half of them one at a time (some twice), checking
    /// after every step that each id's answer is the model's.
    func checkAgainstModel(_ ids: [String], hash: @escaping @Sendable (String) -> UInt64, seed: UInt64) {
        var pending = PendingIDs(hash: hash)
        for id in ids { pending.insert(id) }
        var model = Set(ids)
        #expect(ids.allSatisfy { pending.contains($0) }, "every id inserted is pending")
        var rng = Seeded(state: seed)
        let removals = ids.shuffled(using: &rng).prefix(ids.count / 2)
        for (step, id) in removals.enumerated() {
            let first = pending.remove(id)
            #expect(first == (model.remove(id) != nil), "first remove of \(id)")
            let second = pending.remove(id)
            #expect(!second, "a second remove of \(id) finds it gone")
            #expect(!pending.contains(id))
            // Every few steps, every id against the model (all of them: an ambiguous key's other
            // ids must still be pending).
            if step % 7 == 0 {
                let wrong = ids.filter { pending.contains($0) != model.contains($0) }
                #expect(wrong.isEmpty, "after removing \(id): \(wrong.prefix(5))")
            }
        }
        let wrong = ids.filter { pending.contains($0) != model.contains($0) }
        #expect(wrong.isEmpty, "at the end: \(wrong.prefix(5))")
        // Whatever is left can be removed, exactly once each.
        for id in ids where model.contains(id) {
            let removed = pending.remove(id)
            #expect(removed, "\(id) left, removed once")
        }
        #expect(!ids.contains { pending.contains($0) })
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func theRealHashAnswersLikeASet(seed: UInt64) {
        checkAgainstModel(Self.ids(3_000, seed: seed), hash: FingerprintSet.fingerprint, seed: seed)
    }

    @Test func everyIDOnOneKeyIsStillExact() {
        checkAgainstModel(Self.ids(300, seed: 7), hash: { _ in 0 }, seed: 7)
    }

    @Test func aHandfulOfKeysMixAmbiguousAndSingleKeys() {
        // Keys by the id's length mod 5 (partition bits and stored bits both vary); length-1 ids
        // of one letter are alone on theirs more often.
        checkAgainstModel(
            Self.ids(1_000, seed: 11), hash: { id in UInt64(id.utf8.count % 5) << 60 | UInt64(id.utf8.count % 3) << 40 }, seed: 11)
    }

    @Test func aKeySharedByTwoIDsKeepsBothUntilEachIsRemoved() {
        // "a" and "b" share a key; "c" is alone on the same partition's next key.
        let keys: [String: UInt64] = ["a": 0x1234_5000_0000_0000, "b": 0x1234_5000_0000_0000, "c": 0x1234_6000_0000_0000]
        var pending = PendingIDs(hash: { keys[$0] ?? 0 })
        func remove(_ id: String) -> Bool { pending.remove(id) }
        for id in ["a", "b", "c"] { pending.insert(id) }
        #expect(remove("a"))
        #expect(!pending.contains("a"))
        #expect(pending.contains("b"), "b is not taken for a")
        #expect(pending.contains("c"))
        #expect(!remove("a"))
        #expect(remove("c"))
        #expect(pending.contains("b"))
        #expect(remove("b"))
        #expect(!pending.contains("b"))
    }

    @Test func nothingIsPendingInAnEmptySet() {
        var pending = PendingIDs()
        func remove(_ id: String) -> Bool { pending.remove(id) }
        #expect(!pending.contains("x"))
        #expect(!remove("x"))
    }

    /// Every id in one partition (the top 12 bits zero): removing them gives the memory back (the
    /// partition is copied smaller as it empties), and the answers stay the model's throughout.
    @Test func aPartitionThatEmptiesShrinks() {
        let hash: @Sendable (String) -> UInt64 = { FingerprintSet.fingerprint($0) >> 12 }
        let ids = Self.ids(2_000, seed: 21)
        checkAgainstModel(ids, hash: hash, seed: 21)
        var pending = PendingIDs(hash: hash)
        for id in ids { pending.insert(id) }
        let full = pending.sortedCapacity
        #expect(full >= 1_900, "\(full)")
        for id in ids { pending.remove(id) }
        #expect(pending.sortedCapacity < full / 4, "\(pending.sortedCapacity) of \(full)")
        #expect(!ids.contains { pending.contains($0) })
    }
}
