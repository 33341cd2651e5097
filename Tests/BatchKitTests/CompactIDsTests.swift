import BatchKit
import BatchKitTesting
import Foundation
import Testing

@testable import BatchKit

/// The compact structures a native run keeps per id: ``FingerprintSet`` (duplicate detection,
/// hybrid's finished ids) and front-coded ``PackedIDs`` (each job's ids).
@Suite(.timeLimit(.minutes(5)))
struct CompactIDsTests {
    /// Ids of every shape: counting up, sharing long prefixes, longer than a one-byte length,
    /// non-ASCII, one character, and repeats.
    static let mixedIDs: [String] = {
        var ids: [String] = []
        for i in 0..<200 { ids.append("row-\(i)") }
        ids.append("x")
        ids.append(String(repeating: "p", count: 300) + "a")
        ids.append(String(repeating: "p", count: 300) + "b")
        ids.append(String(repeating: "p", count: 130))
        ids.append("émoji-🙂-1")
        ids.append("émoji-🙂-2")
        ids.append("row-1")  // a repeat, far from its first
        ids.append("")
        for i in 0..<70 { ids.append(UUID(uuidString: String(format: "00000000-0000-0000-0000-%012d", i))!.uuidString) }
        return ids
    }()

    @Test func packedIDsGiveBackEveryIDByIndexAndInOrder() throws {
        let packed = PackedIDs(Self.mixedIDs)
        try #require(packed.count == Self.mixedIDs.count)
        #expect(Array(packed) == Self.mixedIDs)
        for i in Self.mixedIDs.indices { #expect(packed[i] == Self.mixedIDs[i], "index \(i)") }
        // Backwards, across block starts.
        for i in Self.mixedIDs.indices.reversed() where i % PackedIDs.blockSize <= 1 { #expect(packed[i] == Self.mixedIDs[i]) }
        // The first position of a repeated id.
        let positions = packed.positions()
        #expect(positions["row-1"] == 1)
        #expect(positions["x"] == 200)
        #expect(positions.count == Set(Self.mixedIDs).count)
    }

    @Test func packedIDsAreEqualWhenTheirIDsAre() {
        var built = PackedIDs()
        for id in Self.mixedIDs { built.append(id) }
        #expect(built == PackedIDs(Self.mixedIDs))
        #expect(built != PackedIDs(Self.mixedIDs.dropLast()))
        #expect(PackedIDs().isEmpty)
    }

    /// Ids that count up cost about a byte each (a mark for "the previous one plus one"), not
    /// the 11+ of their bytes and an offset.
    @Test func countingIDsTakeAFewBytesEach() {
        let n = 50_000
        let packed = PackedIDs((0..<n).lazy.map { "request-\($0)" })
        #expect(packed.count == n)
        #expect(packed.byteCount < 2 * n, "\(packed.byteCount) bytes for \(n) ids")
        #expect(packed[n - 1] == "request-\(n - 1)")
        #expect(packed[12_345] == "request-12345")
    }

    @Test func fingerprintSetRefusesRepeatsAndKeepsEveryMember() {
        var set = FingerprintSet()
        var rng = SystemRandomNumberGenerator()
        var values: [UInt64] = []
        for _ in 0..<60_000 { values.append(rng.next()) }
        // Many in one partition too (same top bits), so its tail is merged many times.
        for i in 0..<2_000 { values.append(0xABC0_0000_0000_0000 | UInt64(i * 7919)) }
        var accepted = 0
        for v in values where set.insert(v) { accepted += 1 }
        #expect(accepted == values.count)
        #expect(set.count == values.count)
        var refused = 0
        for v in values where !set.insert(v) { refused += 1 }
        #expect(refused == values.count)
        #expect(values.allSatisfy { set.contains($0) })
        var absent = 0
        for _ in 0..<10_000 where !set.contains(rng.next()) { absent += 1 }
        #expect(absent == 10_000)
        set.removeAll()
        #expect(set.count == 0)
        #expect(!set.contains(values[0]))
        let again = set.insert(values[0])
        #expect(again)
    }

    @Test func fingerprintSetByID() {
        var set = FingerprintSet()
        let a = set.insert(id: "a")
        let b = set.insert(id: "b")
        let a2 = set.insert(id: "a")
        #expect(a && b && !a2)
        #expect(set.contains(id: "b"))
        #expect(!set.contains(id: "c"))
    }

    /// A repeated id is refused before anything is sent, with an error naming where it is in
    /// the input; the first request with that id and all distinct ids go through.
    @Test func aDuplicateIDIsRefusedNamingItsPosition() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 1000, maxBytes: 1 << 20))
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let requests = (0..<5).map { chatRequest("d\($0)") } + [chatRequest("d2")] + (5..<8).map { chatRequest("d\($0)") }
        let events = await runNative(processor.processAsync(requests), clock: clock)
        let items = events.items
        try #require(items.count == 9)
        let failures = items.filter { !$0.isSuccess }
        try #require(failures.count == 1)
        let error = try #require(failures[0].error)
        #expect(failures[0].id == "d2")
        #expect(error.code == .validation)
        #expect(error.field == "id")
        #expect(error.message.contains("duplicate id \"d2\" at request 6 of the input"), "\(error.message)")
        #expect(items.filter(\.isSuccess).count == 8)
        #expect(backend.submitted.flatMap { $0 }.sorted() == (0..<8).map { "d\($0)" })
    }

    /// Many distinct ids: none is taken for a duplicate.
    @Test func distinctIDsAreNeverRefused() async throws {
        let clock = ManualClock()
        let backend = FakeBackend(limits: .init(maxRequests: 5_000, maxBytes: 8 << 20))
        let processor = NativeBatchProcessor(backend: backend, configuration: .init(pollInterval: .seconds(1)), clock: clock)
        let n = 20_000
        let events = await runNative(processor.processAsync((0..<n).map { chatRequest("distinct-\($0)") }), clock: clock)
        #expect(events.items.count == n)
        #expect(events.items.allSatisfy { $0.isSuccess })
        #expect(events.summary?.succeeded == n)
    }

    /// A job's reported flags, 64 to a word: each position sets and clears alone, across words.
    @Test func positionFlagsSetAndClearAlone() {
        for count in [0, 1, 63, 64, 65, 130, 1_000] {
            var flags = PositionFlags(count: count)
            var expected = [Bool](repeating: false, count: count)
            for i in stride(from: 0, to: count, by: 3) {
                flags[i] = true
                expected[i] = true
            }
            for i in stride(from: 0, to: count, by: 6) {
                flags[i] = false
                expected[i] = false
            }
            #expect((0..<count).map { flags[$0] } == expected, "count \(count)")
        }
    }

    /// The "plus one" mark: carries (`9` → `10`, `n99` → `n100`), kept leading zeros
    /// (`r-009` → `r-010`), pure numbers, and near misses that are front-coded instead (plus two,
    /// a lost leading zero, no trailing digits, a different prefix) all read back exactly.
    @Test func countingIDsWithCarriesReadBack() throws {
        let ids = ["8", "9", "10", "11", "n98", "n99", "n100", "n101", "r-008", "r-009", "r-010", "r-011", "r-099", "r-100",
            "a9", "a11", "a12", "b13", "x", "y", "x0", "x1", "x01", "x02", "999", "1000", "1001", "0", "1", "z-1", "z-2", "z-2",
            "09", "10", "9-9", "9-10", "é9", "é10", "row", "row1", "row2"]
        let many = ids + (0..<3_000).map { "id-\($0)" } + (995..<1_010).map { "k\($0)" } + ids
        for list in [ids, many] {
            let packed = PackedIDs(list)
            try #require(packed.count == list.count)
            #expect(Array(packed) == list)
            for i in list.indices { #expect(packed[i] == list[i], "index \(i)") }
        }
        var a: [UInt8] = Array("n99".utf8)
        PackedIDs.increment(&a)
        #expect(String(decoding: a, as: UTF8.self) == "n100")
        #expect(PackedIDs.isIncrement(Array("r-010".utf8), of: Array("r-009".utf8)))
        #expect(!PackedIDs.isIncrement(Array("r-10".utf8), of: Array("r-009".utf8)))
        #expect(!PackedIDs.isIncrement(Array("y".utf8), of: Array("x".utf8)))
    }

    /// A job's result join: each id's position (the first of a repeat), and nothing for an id that
    /// is not in the list, whatever the fingerprints.
    @Test func idPositionsFindEveryIDAndOnlyThose() throws {
        let ids = Self.mixedIDs + (0..<5_000).map { "job-\($0)" }
        let positions = IDPositions(PackedIDs(ids))
        var first: [String: Int] = [:]
        for (i, id) in ids.enumerated() where first[id] == nil { first[id] = i }
        for (id, i) in first { #expect(positions[id] == i, "\(id)") }
        for absent in ["job-5000", "row-200", "", "X", "job-"] where first[absent] == nil { #expect(positions[absent] == nil, "\(absent)") }
        #expect(IDPositions(PackedIDs())["a"] == nil)
        #expect(IDPositions(PackedIDs(["only"]))["only"] == 0)
    }
}
