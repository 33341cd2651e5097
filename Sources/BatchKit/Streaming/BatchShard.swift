/// One of `count` deterministic slices of a set of requests, chosen by a stable hash of the custom
/// id: run `count` processes, one per shard, and together they cover every request exactly once.
///
/// The hash is 64-bit FNV-1a of the id's UTF-8 bytes — the same in every process, on every
/// machine and in every release (unlike Swift's seeded `hashValue`).
///
/// ```swift
/// let shard = try BatchShard(parsing: "2/8")          // the third of eight
/// let mine = requests.filter { shard.contains($0.id) }
/// ```
package struct BatchShard: Sendable, Hashable, CustomStringConvertible {
    /// This shard, in `0..<count`.
    package let index: Int
    /// How many shards there are.
    package let count: Int

    /// The shard `index` of `count` (`0 <= index < count`).
    package init(index: Int, count: Int) throws(BatchError) {
        guard count >= 1, (0..<count).contains(index) else {
            throw .validation("a shard is i/n with 0 <= i < n, got \(index)/\(count)", field: "shard")
        }
        self.index = index
        self.count = count
    }

    /// Parses `i/n` (`0/4`, `3/4`).
    package init(parsing text: String) throws(BatchError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw .validation("a shard is i/n with 0 <= i < n (e.g. 0/4), got '\(text)'", field: "shard")
        }
        try self.init(index: i, count: n)
    }

    /// Whether the request with this custom id belongs to this shard.
    package func contains(_ id: String) -> Bool {
        Int(BatchShard.fnv1a(id) % UInt64(count)) == index
    }

    /// `i/n`.
    package var description: String { "\(index)/\(count)" }

    /// 64-bit FNV-1a of the UTF-8 bytes of `text`.
    package static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
