/// A set of 64-bit fingerprints (of custom ids) that grows without ever holding two copies of
/// itself: about 8 bytes per member, where a `Set<UInt64>` takes 11–16 bytes and, while it
/// rehashes to grow, briefly the old table as well (16 + 8 MB at a million ids).
///
/// The members are split by their top 12 bits into 4,096 partitions. Each partition keeps its
/// members in a sorted array plus a short unsorted tail; a full tail is sorted and merged into the
/// array, which only ever copies that one partition (a few KB at a million members). A lookup is a
/// binary search in one partition and a scan of its tail.
///
/// Fingerprints come from ``fingerprint(_:)`` (the id's hash in this process). Two distinct ids
/// share one with a chance of about n²/2⁶⁵ (3 in 100 million for a million ids); callers that
/// refuse duplicates would then refuse the later one.
package struct FingerprintSet: Sendable {
    private static let partitionBits = 12
    private static let tailLimit = 16

    /// Sorted members of each partition (empty until the first insert).
    private var sorted: [[UInt64]] = []
    /// Members not yet merged into `sorted`, per partition (at most ``tailLimit``).
    private var tails: [[UInt64]] = []
    /// The number of members.
    package private(set) var count = 0

    package init() {}

    /// The fingerprint of a custom id (its hash in this process, as 64 bits).
    package static func fingerprint(_ id: String) -> UInt64 { UInt64(bitPattern: Int64(id.hashValue)) }

    private static func partition(_ fingerprint: UInt64) -> Int { Int(fingerprint >> UInt64(64 - partitionBits)) }

    /// Whether `fingerprint` is a member.
    package func contains(_ fingerprint: UInt64) -> Bool {
        guard !sorted.isEmpty else { return false }
        let p = Self.partition(fingerprint)
        return Self.search(sorted[p], fingerprint) || tails[p].contains(fingerprint)
    }

    /// Adds `fingerprint`; returns whether it was not a member before.
    @discardableResult
    package mutating func insert(_ fingerprint: UInt64) -> Bool {
        if sorted.isEmpty {
            sorted = Array(repeating: [], count: 1 << Self.partitionBits)
            tails = Array(repeating: [], count: 1 << Self.partitionBits)
        }
        let p = Self.partition(fingerprint)
        if Self.search(sorted[p], fingerprint) || tails[p].contains(fingerprint) { return false }
        tails[p].append(fingerprint)
        count += 1
        if tails[p].count >= Self.tailLimit { merge(p) }
        return true
    }

    /// Whether the id is a member (by its fingerprint).
    package func contains(id: String) -> Bool { contains(Self.fingerprint(id)) }

    /// Adds the id (by its fingerprint); returns whether it was not a member before.
    @discardableResult
    package mutating func insert(id: String) -> Bool { insert(Self.fingerprint(id)) }

    /// Empties the set and gives its memory back.
    package mutating func removeAll() {
        sorted = []
        tails = []
        count = 0
    }

    /// Sorts partition `p`'s tail into its sorted array (a new array of exactly the merged size).
    private mutating func merge(_ p: Int) {
        let tail = tails[p].sorted()
        tails[p].removeAll(keepingCapacity: true)
        let old = sorted[p]
        var merged: [UInt64] = []
        merged.reserveCapacity(old.count + tail.count)
        var i = 0
        var j = 0
        while i < old.count, j < tail.count {
            if old[i] < tail[j] {
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

    private static func search(_ a: [UInt64], _ x: UInt64) -> Bool {
        var lo = 0
        var hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo < a.count && a[lo] == x
    }
}
