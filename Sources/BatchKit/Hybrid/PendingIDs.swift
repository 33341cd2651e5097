/// The ids of a hybrid run's accepted requests that have no result yet: about 2 bytes per
/// pending id, exact for the ids that were inserted, and smaller as results come in (what misses
/// a deadline is a tenth of the run; it alone is left when the real-time phase starts, and a
/// partition that lost three quarters of its keys is copied into a smaller array).
///
/// Each id is kept as a 28-bit key of its hash: the top 12 bits pick one of 4,096 partitions, the
/// next 16 are stored (a sorted array of `UInt16` per partition plus a short unsorted tail, as
/// ``FingerprintSet`` does). A key inserted once belongs to one id: the id is pending while its
/// key is there, and its first ``remove(_:)`` takes the key out. A key inserted more than once
/// (two ids sharing 28 bits: about 1,900 pairs among a million ids) is *ambiguous*: its entries
/// stay, and which of its ids were removed is kept exactly, as strings, in a small side table. So
/// no id is ever taken for another: the answers are exact, not probabilistic.
///
/// Two rules make that hold; ``HybridBook`` keeps both:
/// - every ``insert(_:)`` comes before the first ``remove(_:)`` (an id inserted after another
///   with the same key was removed would be taken for that one: a key's count must be known
///   whole before it is read);
/// - ``contains(_:)`` and ``remove(_:)`` are asked only about inserted ids (an id never
///   inserted may share a key with one that was).
struct PendingIDs {
    private static let partitionBits = 12
    private static let tailLimit = 16

    /// The hash the keys are cut from (``FingerprintSet/fingerprint(_:)``; tests inject one that
    /// collides).
    private let hash: @Sendable (String) -> UInt64
    /// Sorted keys of each partition (empty until the first insert).
    private var sorted: [[UInt16]] = []
    /// Keys not yet merged into `sorted`, per partition (at most ``tailLimit``).
    private var tails: [[UInt16]] = []
    /// The removed ids of ambiguous keys.
    private var removedAmbiguous = Set<String>()
    /// Whether a remove happened (inserts must all come before).
    private var removing = false

    init(hash: @escaping @Sendable (String) -> UInt64 = FingerprintSet.fingerprint) {
        self.hash = hash
    }

    /// The partition and key of `id`.
    private func key(_ id: String) -> (partition: Int, key: UInt16) {
        let h = hash(id)
        return (Int(h >> UInt64(64 - Self.partitionBits)), UInt16(truncatingIfNeeded: h >> UInt64(64 - Self.partitionBits - 16)))
    }

    /// Adds an id that waits for a result. All inserts come before the first ``remove(_:)``.
    mutating func insert(_ id: String) {
        assert(!removing, "PendingIDs: an insert after a remove could take a new id for a removed one")
        if sorted.isEmpty {
            sorted = Array(repeating: [], count: 1 << Self.partitionBits)
            tails = Array(repeating: [], count: 1 << Self.partitionBits)
        }
        let (p, k) = key(id)
        tails[p].append(k)
        if tails[p].count >= Self.tailLimit { merge(p) }
    }

    /// Whether `id` (an inserted id) still waits for a result.
    func contains(_ id: String) -> Bool {
        guard !sorted.isEmpty else { return false }
        let (p, k) = key(id)
        switch occurrences(of: k, in: p) {
        case 0: return false
        case 1: return true
        default: return !removedAmbiguous.contains(id)
        }
    }

    /// Marks `id` (an inserted id) as having its result; returns whether it was still waiting
    /// (`false`: its result was already counted).
    @discardableResult
    mutating func remove(_ id: String) -> Bool {
        removing = true
        guard !sorted.isEmpty else { return false }
        let (p, k) = key(id)
        switch occurrences(of: k, in: p) {
        case 0:
            return false
        case 1:
            if let i = tails[p].firstIndex(of: k) {
                tails[p].remove(at: i)
            } else {
                sorted[p].remove(at: Self.lowerBound(sorted[p], k))
                // Memory follows the ids left: a partition down to a quarter of its room is
                // copied into one its size (amortized: each copy follows 3/4 as many removals).
                if sorted[p].capacity >= 32, sorted[p].count < sorted[p].capacity / 4 {
                    var smaller: [UInt16] = []
                    smaller.reserveCapacity(sorted[p].count)
                    smaller.append(contentsOf: sorted[p])
                    sorted[p] = smaller
                }
            }
            return true
        default:
            return removedAmbiguous.insert(id).inserted
        }
    }

    /// The keys the sorted partitions have room for (their memory, 2 bytes each).
    var sortedCapacity: Int { sorted.reduce(0) { $0 + $1.capacity } }

    /// How many times key `k` is in partition `p` (0, 1, or 2 for "more than once").
    private func occurrences(of k: UInt16, in p: Int) -> Int {
        var n = 0
        for t in tails[p] where t == k { n += 1 }
        if n >= 2 { return 2 }
        let a = sorted[p]
        var i = Self.lowerBound(a, k)
        while i < a.count, a[i] == k, n < 2 {
            n += 1
            i += 1
        }
        return n
    }

    /// Sorts partition `p`'s tail into its sorted array (a new array of exactly the merged size).
    private mutating func merge(_ p: Int) {
        let tail = tails[p].sorted()
        tails[p].removeAll(keepingCapacity: true)
        let old = sorted[p]
        var merged: [UInt16] = []
        merged.reserveCapacity(old.count + tail.count)
        var i = 0
        var j = 0
        while i < old.count, j < tail.count {
            if old[i] <= tail[j] {
                merged.append(old[i])
                i += 1
            } else {
                merged.append(tail[j])
                j += 1
            }
        }
        merged.append(contentsOf: old[i...])
        merged.append(contentsOf: tail[j...])
        sorted[p] = merged
    }

    /// The first index of `a` whose element is not below `x`.
    private static func lowerBound(_ a: [UInt16], _ x: UInt16) -> Int {
        var lo = 0
        var hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
