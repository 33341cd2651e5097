import BatchKitTesting
import Testing

@testable import BatchKit

/// ``FingerprintSet`` (Elias–Fano-coded partitions with a short tail each) against a
/// `Set<UInt64>` on seeded values of many shapes: every insert answers as the reference does,
/// every member is found, and no other value is, including the values next to members.
@Suite(.timeLimit(.minutes(5)))
struct FingerprintSetTests {
    /// Values of one shape, from `rng`.
    enum Shape: CaseIterable {
        /// Uniform 64-bit values.
        case uniform
        /// All in one partition (same top 12 bits).
        case onePartition
        /// One partition, and only the lowest 20 bits vary: many share their high part, so the
        /// low bits decide.
        case sharedHighParts
        /// Runs of consecutive values in a few partitions.
        case consecutive
        /// The extremes: 0, all ones, partition edges, single bits.
        case edges

        func values(_ n: Int, _ rng: inout SplitMix64) -> [UInt64] {
            switch self {
            case .uniform: return (0..<n).map { _ in rng.next() }
            case .onePartition:
                let top = rng.next() & 0xFFF0_0000_0000_0000
                return (0..<n).map { _ in top | (rng.next() >> 12) }
            case .sharedHighParts:
                let base = rng.next() & 0xFFFF_FFFF_FFF0_0000
                return (0..<n).map { _ in base | (rng.next() & 0xF_FFFF) }
            case .consecutive:
                var out: [UInt64] = []
                while out.count < n {
                    let start = rng.next()
                    for k in 0..<UInt64(1 + rng.next() % 40) { out.append(start &+ k) }
                }
                return Array(out.prefix(n))
            case .edges:
                var out: [UInt64] = [0, 1, UInt64.max, UInt64.max - 1, 1 << 63, 1 << 52, (1 << 52) - 1]
                for p in [0, 1, 2_047, 4_094, 4_095] as [UInt64] {
                    out.append(p << 52)
                    out.append(p << 52 | ((1 << 52) - 1))
                }
                for b in 0..<64 { out.append(1 << UInt64(b)) }
                while out.count < n { out.append(out[Int(rng.next() % UInt64(out.count))] ^ (1 << (rng.next() % 64))) }
                return Array(out.prefix(n))
            }
        }
    }

    /// Inserts `values` (and repeats of earlier ones) into a set and a reference, checking each
    /// answer, then every member, the members' neighbours and random values.
    static func check(_ values: [UInt64], seed: UInt64, _ rng: inout SplitMix64, label: String) {
        var set = FingerprintSet()
        var reference = Set<UInt64>()
        var mismatches = 0
        for (k, v) in values.enumerated() {
            if set.insert(v) != reference.insert(v).inserted { mismatches += 1 }
            // Now and then a repeat of an earlier value, which must be refused.
            if k % 7 == 3 {
                let again = values[Int(rng.next() % UInt64(k + 1))]
                if set.insert(again) != reference.insert(again).inserted { mismatches += 1 }
            }
        }
        #expect(mismatches == 0, "\(label) seed \(seed): \(mismatches) inserts answered unlike a Set")
        #expect(set.count == reference.count, "\(label) seed \(seed)")
        #expect(set.sortedMembers == reference.sorted(), "\(label) seed \(seed): members differ")
        var wrong = 0
        for v in values {
            if !set.contains(v) { wrong += 1 }
            for near in [v &+ 1, v &- 1, v ^ 1, v ^ (1 << 20), v ^ (1 << 51), v ^ (1 << 52)] where set.contains(near) != reference.contains(near) {
                wrong += 1
            }
        }
        for _ in 0..<2_000 {
            let v = rng.next()
            if set.contains(v) != reference.contains(v) { wrong += 1 }
        }
        #expect(wrong == 0, "\(label) seed \(seed): \(wrong) lookups answered unlike a Set")
    }

    @Test(arguments: Shape.allCases)
    func answersLikeASetOnSeededValues(shape: Shape) {
        for seed: UInt64 in [1, 2, 3, 42, 2_026] {
            var rng = SplitMix64(seed: seed &* 0x9E37_79B9 &+ UInt64(Shape.allCases.firstIndex(of: shape)!))
            for n in [0, 1, 7, 8, 9, 300, 5_000] {
                Self.check(shape.values(n, &rng), seed: seed, &rng, label: "\(shape) n=\(n)")
            }
        }
    }

    /// Enough members that every partition is coded many times over (several merges each).
    @Test func answersLikeASetAtScale() {
        var rng = SplitMix64(seed: 12)
        Self.check(Shape.uniform.values(150_000, &rng), seed: 12, &rng, label: "uniform 150k")
    }

    /// About 6 bytes a member at a million members (46 bits of code, the 12 partition bits implied,
    /// plus headers and reserved tails), where a sorted `[UInt64]` takes 8.
    @Test func takesUnderSixAndAHalfBytesAMember() {
        var rng = SplitMix64(seed: 7)
        var set = FingerprintSet()
        let n = 1_000_000
        for _ in 0..<n { set.insert(rng.next()) }
        #expect(set.count == n)
        let bytes = set.wordCount * 8
        #expect(Double(bytes) / Double(n) < 6.5, "\(bytes) bytes for \(n) members")
    }

    @Test func removeAllEmptiesTheSet() {
        var rng = SplitMix64(seed: 5)
        var set = FingerprintSet()
        let values = (0..<1_000).map { _ in rng.next() }
        for v in values { set.insert(v) }
        set.removeAll()
        #expect(set.count == 0)
        #expect(set.sortedMembers.isEmpty)
        #expect(values.allSatisfy { !set.contains($0) })
        let inserted = set.insert(values[0])
        #expect(inserted)
        #expect(set.contains(values[0]))
    }
}
