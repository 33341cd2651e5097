/// The journal's in-memory index: for each custom id, where its last line is in the file and
/// whether that result succeeded. About 30 bytes an id plus the id's own bytes — the ids packed
/// back to back, one 8-byte slot each in an open-addressing table (load at most 3/4) — instead of
/// a `[String: Entry]` entry of about 130 bytes (and a heap allocation for ids over 15 bytes), so a
/// journal of a million results is indexed in about 50 MB. Everything else a line holds (usage,
/// model, route) is read back from the file when it is asked for.
///
/// Lookups compare the id's bytes (a 32-bit hash tag first), so they are exact.
struct JournalIndex: Sendable {
    /// The ids' UTF-8 bytes, back to back, in the order they were first seen.
    private var idBytes: [UInt8] = []
    /// Where each id's bytes end in ``idBytes``.
    private var idEnds: [Int] = []
    /// Where each id's last line starts in the file.
    private(set) var offsets: [Int] = []
    /// The length of each id's last line, without the newline.
    private(set) var lengths: [UInt32] = []
    /// Whether each id's last result succeeded.
    private(set) var successes: [Bool] = []
    /// 0: empty; else the id's hash's high 32 bits, then its position + 1.
    private var slots: [UInt64] = []

    /// The number of distinct ids.
    var count: Int { idEnds.count }

    /// The id at `position`.
    func id(at position: Int) -> String {
        let start = position == 0 ? 0 : idEnds[position - 1]
        return String(decoding: idBytes[start..<idEnds[position]], as: UTF8.self)
    }

    /// The position of `id`, if it is indexed.
    func position(of id: String) -> Int? {
        guard !slots.isEmpty else { return nil }
        return Self.withBytes(of: id) { bytes in find(bytes, hash: Self.hash(bytes)).position }
    }

    /// Records `id`'s last line (a new id, or a later line replacing an earlier one).
    mutating func record(_ id: String, offset: Int, length: Int, isSuccess: Bool) {
        Self.withBytes(of: id) { bytes in
            let hash = Self.hash(bytes)
            if !slots.isEmpty {
                let found = find(bytes, hash: hash)
                if let p = found.position {
                    offsets[p] = offset
                    lengths[p] = UInt32(length)
                    successes[p] = isSuccess
                    return
                }
            }
            if (count + 1) * 4 > slots.count * 3 { grow() }
            let position = count
            idBytes.append(contentsOf: bytes)
            idEnds.append(idBytes.count)
            offsets.append(offset)
            lengths.append(UInt32(length))
            successes.append(isSuccess)
            let slot = find(bytes, hash: hash).slot
            slots[slot] = Self.slotValue(hash: hash, position: position)
        }
    }

    /// Moves each id's line (compaction): `offsets[i]` for the id at position `i`.
    mutating func replaceOffsets(_ new: [Int]) {
        precondition(new.count == count)
        offsets = new
    }

    /// The positions in the order of their lines in the file.
    func positionsByOffset() -> [Int] {
        (0..<count).sorted { offsets[$0] < offsets[$1] }
    }

    // MARK: Table

    private static func slotValue(hash: UInt64, position: Int) -> UInt64 {
        (hash & 0xFFFF_FFFF_0000_0000) | UInt64(UInt32(position + 1))
    }

    /// The slot holding `bytes`, or the empty slot where it would go.
    private func find(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64) -> (slot: Int, position: Int?) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        let tag = hash & 0xFFFF_FFFF_0000_0000
        while true {
            let s = slots[i]
            if s == 0 { return (i, nil) }
            if s & 0xFFFF_FFFF_0000_0000 == tag {
                let p = Int(UInt32(truncatingIfNeeded: s)) - 1
                if equals(p, bytes) { return (i, p) }
            }
            i = (i + 1) & mask
        }
    }

    private func equals(_ position: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = position == 0 ? 0 : idEnds[position - 1]
        let end = idEnds[position]
        guard end - start == bytes.count else { return false }
        return idBytes.withUnsafeBufferPointer { all in
            var i = 0
            while i < bytes.count {
                if all[start + i] != bytes[i] { return false }
                i += 1
            }
            return true
        }
    }

    private mutating func grow() {
        let capacity = max(1024, slots.count * 2)
        slots = [UInt64](repeating: 0, count: capacity)
        let mask = capacity - 1
        idBytes.withUnsafeBufferPointer { all in
            for p in 0..<count {
                let start = p == 0 ? 0 : idEnds[p - 1]
                let bytes = UnsafeBufferPointer(rebasing: all[start..<idEnds[p]])
                let hash = Self.hash(bytes)
                var i = Int(truncatingIfNeeded: hash) & mask
                while slots[i] != 0 { i = (i + 1) & mask }
                slots[i] = Self.slotValue(hash: hash, position: p)
            }
        }
    }

    private static func withBytes<R>(of id: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = id.utf8.withContiguousStorageIfAvailable(body) { return r }
        return Array(id.utf8).withUnsafeBufferPointer(body)
    }

    /// FNV-1a (64 bits) of the bytes, then mixed (MurmurHash3's finaliser) so the low bits (the
    /// slot) and the high bits (the tag) both depend on every byte.
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }
}
