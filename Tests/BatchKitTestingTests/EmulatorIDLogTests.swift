import BatchKit
import Foundation
import Testing

@testable import BatchKitTesting

/// Issue 12: the emulator records real-time calls (sent counts, and the billing ledger's
/// real-time calls) in ``EmulatorIDLog``s, on disk when large, counted exactly when asked.
@Suite(.timeLimit(.minutes(5)))
struct EmulatorIDLogTests {
    /// Seeded ids with repeats (a few ids recorded many times, most once), of varied lengths.
    static func recorded(_ n: Int, seed: UInt64) -> [String] {
        var state = seed
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return (0..<n).map { i in
            switch next() % 10 {
            case 0: return "hot-\(next() % 7)"
            case 1: return "é🙂-\(next() % 50_000)" + String(repeating: "x", count: Int(next() % 200))
            default: return "rt-\(i)"
            }
        }
    }

    static func model(_ ids: [String]) -> [String: Int] { ids.reduce(into: [:]) { $0[$1, default: 0] += 1 } }

    @Test(arguments: [1 as UInt64, 2])
    func countsAreExactAcrossReadsAndOnDisk(seed: UInt64) throws {
        let ids = Self.recorded(30_000, seed: seed)
        let log = EmulatorIDLog()
        #expect(log.isEmpty)
        #expect(log.counts().isEmpty)
        // Read part-way (sealing what was written), then keep appending, then read again.
        for id in ids.prefix(10_000) { log.append(id) }
        #expect(log.counts() == Self.model(Array(ids.prefix(10_000))))
        for id in ids.dropFirst(10_000) { log.append(id) }
        #expect(log.count == ids.count)
        let lists = log.lists
        #expect(lists.reduce(0) { $0 + $1.count } == ids.count)
        #expect(lists.contains { $0.isOnDisk }, "30,000 ids go to disk")
        #expect(Array(lists.joined()) == ids, "in the order recorded")
        #expect(log.counts() == Self.model(ids))
        for id in ["hot-3", ids[12_345], "never"] { #expect(log.count(of: id) == Self.model(ids)[id, default: 0], "\(id)") }
        // Reading again without appending adds no list.
        #expect(log.lists.count == lists.count)
    }

    @Test func theLogsFileIsRemovedWithIt() throws {
        let file: URL
        do {
            let log = EmulatorIDLog()
            for id in Self.recorded(20_000, seed: 3) { log.append(id) }
            file = try #require(log.lists.compactMap { $0.onDiskURL }.first)
            #expect(FileManager.default.fileExists(atPath: file.path))
        }
        #expect(!FileManager.default.fileExists(atPath: file.path))
    }

    /// Through the emulator: `sentCounts`, `sentCount(customID:)` and `billing.realtimeCalls` match
    /// the calls made, read before and after more calls (a 429 is sent but not billed).
    @Test func theEmulatorCountsRealTimeCallsExactly() async throws {
        let emulator = ProviderEmulator(configuration: .init(), clock: ManualClock())
        func chat(_ id: String) async -> Int {
            var headers: HTTPHeaders = ["Authorization": "Bearer sk-test", "Content-Type": "application/json"]
            headers["x-client-request-id"] = id
            return await emulator.handle(EmulatorRequest(
                method: "POST", path: "/v1/chat/completions", headers: headers,
                body: Data(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.utf8))).status
        }
        let ids = Self.recorded(300, seed: 9)
        for id in ids.prefix(200) { #expect(await chat(id) == 200) }
        #expect(emulator.sentCounts == Self.model(Array(ids.prefix(200))))
        #expect(emulator.billing.realtimeCalls == Self.model(Array(ids.prefix(200))))
        for id in ids.dropFirst(200) { #expect(await chat(id) == 200) }
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.rateLimited]) }
        #expect(await chat("limited") == 429)
        emulator.update { $0.faultSchedule = nil }
        let sent = Self.model(ids)
        #expect(emulator.billing.realtimeCalls == sent, "the 429 is not billed")
        // (Whether a call refused by a scheduled fault counts as received is the fault's business.)
        #expect(emulator.sentCounts.filter { $0.key != "limited" } == sent)
        #expect(emulator.sentCount(customID: "hot-1") == sent["hot-1", default: 0])
        #expect(emulator.sentCount(customID: ids[250]) == sent[ids[250], default: 0])
        #expect(emulator.sentCount(customID: "never") == 0)
    }
}
