/// A set of 64-bit fingerprints (of custom ids), exact on the fingerprints, in about 6 bytes per
/// member at a million members (46 bits of Elias–Fano code each, plus a fixed ≈ 0.5 MB), where a
/// sorted `[UInt64]` takes 8 bytes and a `Set<UInt64>` 11–16 bytes and, while it rehashes to grow,
/// briefly the old table as well (16 + 8 MB at a million ids). Nothing large is ever reallocated.
///
/// The members are split by their top 12 bits into 4,096 partitions, each one array of words:
/// its sorted members Elias–Fano coded (the low bits of each member packed, the high bits as a
/// unary-coded bit vector; the partition's 12 bits are implied), then a short unsorted tail of
/// members added since (at most ``tailLimit``, in capacity reserved with the code). A full tail is
/// sorted and merged into a new code of that one partition (about 2 KB at a million members). A
/// lookup finds the candidates with the fingerprint's high bits by counting bits in a few words,
/// compares their low bits, and scans the tail.
///
/// Membership is exact on the 64-bit values: a value is reported only if it was inserted. Two
/// distinct ids share a fingerprint with a chance of about n²/2⁶⁵ (3 in 100 million for a million
/// ids); see each caller for what a shared fingerprint then means.
package struct FingerprintSet: Sendable {
    static let partitionBits = 12
    /// Members added to a partition between merges.
    static let tailLimit = 8
    /// Bits of a member below its partition's.
    private static let suffixBits = 64 - partitionBits
    /// A member's bits below its partition's.
    private static let suffixMask = UInt64.max >> UInt64(partitionBits)

    /// Each partition's words (empty until its first member): `[header][low bits][high bits][tail]`.
    /// The header holds the coded count (low 32 bits), the low-bit width (next 8) and the tail
    /// length (next 8).
    private var partitions: [[UInt64]] = []
    /// The number of members.
    package private(set) var count = 0

    package init() {}

    /// The fingerprint of a custom id (its hash in this process, as 64 bits).
    package static func fingerprint(_ id: String) -> UInt64 { UInt64(bitPattern: Int64(id.hashValue)) }

    private static func partition(_ fingerprint: UInt64) -> Int { Int(fingerprint >> UInt64(suffixBits)) }

    /// Whether `fingerprint` is a member.
    package func contains(_ fingerprint: UInt64) -> Bool {
        guard !partitions.isEmpty else { return false }
        return partitions[Self.partition(fingerprint)].withUnsafeBufferPointer { Self.contains(fingerprint, in: $0) }
    }

    /// Adds `fingerprint`; returns whether it was not a member before.
    @discardableResult
    package mutating func insert(_ fingerprint: UInt64) -> Bool {
        if partitions.isEmpty { partitions = Array(repeating: [], count: 1 << Self.partitionBits) }
        let p = Self.partition(fingerprint)
        if partitions[p].isEmpty {
            partitions[p] = Self.code(sorted: [], tailCapacity: Self.tailLimit)
        } else if partitions[p].withUnsafeBufferPointer({ Self.contains(fingerprint, in: $0) }) {
            return false
        }
        count += 1
        let tail = Self.tailCount(partitions[p][0])
        if tail + 1 < Self.tailLimit {
            partitions[p][0] += 1 << 40
            partitions[p].append(fingerprint & Self.suffixMask)
        } else {
            merge(p, adding: fingerprint)
        }
        return true
    }

    /// Whether the id is a member (by its fingerprint).
    package func contains(id: String) -> Bool { contains(Self.fingerprint(id)) }

    /// Adds the id (by its fingerprint); returns whether it was not a member before.
    @discardableResult
    package mutating func insert(id: String) -> Bool { insert(Self.fingerprint(id)) }

    /// Empties the set and gives its memory back.
    package mutating func removeAll() {
        partitions = []
        count = 0
    }

    /// The members of the set, in increasing order (for tests; decodes every partition).
    package var sortedMembers: [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(count)
        for (p, words) in partitions.enumerated() where !words.isEmpty {
            var members = words.withUnsafeBufferPointer { Self.decode($0) }
            members.append(contentsOf: words[Self.tailStart(words)...])
            members.sort()
            out.append(contentsOf: members.lazy.map { UInt64(p) << UInt64(Self.suffixBits) | $0 })
        }
        return out
    }

    /// Words the members take (headers, codes and tails, without the arrays' own overhead).
    package var wordCount: Int { partitions.reduce(0) { $0 + $1.count } }

    // MARK: - coding

    private static func codedCount(_ header: UInt64) -> Int { Int(header & 0xFFFF_FFFF) }
    private static func lowBits(_ header: UInt64) -> Int { Int((header >> 32) & 0xFF) }
    private static func tailCount(_ header: UInt64) -> Int { Int((header >> 40) & 0xFF) }

    /// The low-bit width for `n` members of a partition: about log₂(2^suffixBits / n), so the
    /// high parts are below 2n and their unary code takes at most 3n bits.
    private static func lowBits(forCount n: Int) -> Int {
        n == 0 ? 0 : Swift.max(0, suffixBits - (Int.bitWidth - n.leadingZeroBitCount))
    }

    private static func lowWords(_ n: Int, _ l: Int) -> Int { (n * l + 63) / 64 }

    /// The number of words of the high-bit vector: n ones and up to (largest high part + 1) zeros.
    private static func highWords(_ n: Int, maxHigh: Int) -> Int { (n + maxHigh + 1 + 63) / 64 }

    /// Index of the first tail word.
    private static func tailStart(_ words: [UInt64]) -> Int {
        words.count - tailCount(words[0])
    }

    /// The Elias–Fano code of `sorted` (suffixes, increasing, distinct), with room reserved for
    /// `tailCapacity` tail members.
    private static func code(sorted: [UInt64], tailCapacity: Int) -> [UInt64] {
        let n = sorted.count
        let l = lowBits(forCount: n)
        let lw = lowWords(n, l)
        let maxHigh = n == 0 ? 0 : Int(sorted[n - 1] >> UInt64(l))
        let hw = n == 0 ? 0 : highWords(n, maxHigh: maxHigh)
        let size = 1 + lw + hw
        return [UInt64](unsafeUninitializedCapacity: size + tailCapacity) { buffer, initialized in
            buffer.initialize(repeating: 0)
            buffer[0] = UInt64(n) | UInt64(l) << 32
            let mask: UInt64 = l == 0 ? 0 : (UInt64.max >> UInt64(64 - l))
            for (i, v) in sorted.enumerated() {
                if l > 0 {
                    let low = v & mask
                    let bit = i * l
                    let w = 1 + bit / 64
                    let s = bit % 64
                    buffer[w] |= low << UInt64(s)
                    if s + l > 64 { buffer[w + 1] |= low >> UInt64(64 - s) }
                }
                let position = Int(v >> UInt64(l)) + i
                buffer[1 + lw + position / 64] |= 1 << UInt64(position % 64)
            }
            initialized = size
        }
    }

    /// The coded members of a partition (suffixes, increasing), without its tail.
    private static func decode(_ words: UnsafeBufferPointer<UInt64>) -> [UInt64] {
        let n = codedCount(words[0])
        let l = lowBits(words[0])
        let lw = lowWords(n, l)
        var out: [UInt64] = []
        out.reserveCapacity(n + tailLimit)
        var i = 0
        var w = 1 + lw
        var zeros = 0
        while i < n {
            var word = words[w]
            let base = (w - 1 - lw) * 64
            while word != 0, i < n {
                let position = base + word.trailingZeroBitCount
                word &= word - 1
                zeros = position - i
                out.append(UInt64(zeros) << UInt64(l) | low(words, i, l))
                i += 1
            }
            w += 1
        }
        return out
    }

    /// The low bits of member `i`.
    @inline(__always)
    private static func low(_ words: UnsafeBufferPointer<UInt64>, _ i: Int, _ l: Int) -> UInt64 {
        guard l > 0 else { return 0 }
        let bit = i * l
        let w = 1 + bit / 64
        let s = bit % 64
        var v = words[w] >> UInt64(s)
        if s + l > 64 { v |= words[w + 1] << UInt64(64 - s) }
        return l == 64 ? v : v & (UInt64.max >> UInt64(64 - l))
    }

    /// Whether `fingerprint` is coded in `words` or in their tail.
    private static func contains(_ fingerprint: UInt64, in words: UnsafeBufferPointer<UInt64>) -> Bool {
        guard !words.isEmpty else { return false }
        let header = words[0]
        let n = codedCount(header)
        let tail = tailCount(header)
        let suffix = fingerprint & suffixMask
        for k in (words.count - tail)..<words.count where words[k] == suffix { return true }
        guard n > 0 else { return false }
        let l = lowBits(header)
        let lw = lowWords(n, l)
        let high = Int(suffix >> UInt64(l))
        let wanted = l == 0 ? 0 : suffix & (UInt64.max >> UInt64(64 - l))
        // Members with high part `high` are the ones right after the high-th zero of the vector.
        let start = 1 + lw
        let end = words.count - tail
        var zerosLeft = high
        var w = start
        var position = 0
        if zerosLeft > 0 {
            while w < end {
                let zeros = (~words[w]).nonzeroBitCount
                if zeros >= zerosLeft { break }
                zerosLeft -= zeros
                w += 1
            }
            guard w < end else { return false }
            // The zerosLeft-th zero in words[w].
            var inverted = ~words[w]
            for _ in 1..<zerosLeft { inverted &= inverted - 1 }
            position = (w - start) * 64 + inverted.trailingZeroBitCount + 1
        }
        // Ones from `position` on are members with this high part, until the next zero.
        var i = position - high
        while i < n {
            let bit = position
            let word = words[start + bit / 64]
            if word & (1 << UInt64(bit % 64)) == 0 { return false }
            let lowBits = low(words, i, l)
            if lowBits == wanted { return true }
            if lowBits > wanted { return false }
            i += 1
            position += 1
        }
        return false
    }

    /// Merges partition `p`'s tail and `adding` into a new code of the partition.
    private mutating func merge(_ p: Int, adding: UInt64) {
        var members = partitions[p].withUnsafeBufferPointer { Self.decode($0) }
        let coded = members.count
        members.append(contentsOf: partitions[p][Self.tailStart(partitions[p])...])
        members.append(adding & Self.suffixMask)
        // The tail is short: insertion sort of the members after the coded (sorted) ones.
        for k in coded..<members.count {
            let v = members[k]
            var j = k
            while j > 0, members[j - 1] > v {
                members[j] = members[j - 1]
                j -= 1
            }
            members[j] = v
        }
        partitions[p] = Self.code(sorted: members, tailCapacity: Self.tailLimit)
    }
}
