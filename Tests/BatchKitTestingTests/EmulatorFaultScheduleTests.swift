import BatchKit
import Foundation
import Testing
@testable import BatchKitTesting

/// The seeded fault schedule (every route, before or after the request took effect) and the
/// per-id billing ledger, driven in-process on a `ManualClock`.
@Suite("Emulator fault schedule and billing", .timeLimit(.minutes(5)))
struct EmulatorFaultScheduleTests {
    static let openAIKey: HTTPHeaders = ["Authorization": "Bearer sk-test", "Content-Type": "application/json"]

    static func upload(_ emulator: ProviderEmulator, ids: [String]) async throws -> String {
        let lines = ids.map {
            #"{"custom_id":"\#($0)","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}}"#
        }.joined(separator: "\n")
        let boundary = "b0undary"
        var body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
        body += "Content-Type: application/jsonl\r\n\r\n\(lines)\n\r\n--\(boundary)--\r\n"
        let response = await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/files",
            headers: ["Authorization": "Bearer sk-test", "Content-Type": "multipart/form-data; boundary=\(boundary)"],
            body: Data(body.utf8)))
        #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        return try #require(try JSONValue(parsing: response.body)["id"]?.stringValue)
    }

    static func create(_ emulator: ProviderEmulator, file: String) async -> EmulatorResponse {
        await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/batches", headers: openAIKey,
            body: Data(#"{"input_file_id":"\#(file)","endpoint":"/v1/chat/completions","completion_window":"24h"}"#.utf8)))
    }

    @Test func aFaultAfterTheEffectCreatesTheJobAndLosesTheAnswer() async throws {
        let emulator = ProviderEmulator(configuration: .init(), clock: ManualClock())
        let file = try await Self.upload(emulator, ids: ["a", "b"])
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.internalError], afterEffectShare: 1) }
        let lost = await Self.create(emulator, file: file)
        #expect(lost.status == 500)
        // The job exists although its creator never heard of it: a blind retry pays twice.
        #expect(emulator.billing.jobs.count == 1)
        let retried = await Self.create(emulator, file: file)
        #expect(retried.status == 500)
        #expect(emulator.billing.paidTwice.keys.sorted() == ["a", "b"])
        #expect(emulator.scheduledFaultCounts[.internalError] == 2)
    }

    @Test func aFaultBeforeTheEffectCreatesNothing() async throws {
        let emulator = ProviderEmulator(configuration: .init(), clock: ManualClock())
        let file = try await Self.upload(emulator, ids: ["a"])
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.internalError, .rateLimited, .reset], afterEffectShare: 0) }
        for _ in 0..<12 {
            let r = await Self.create(emulator, file: file)
            #expect(r.status == 500 || r.status == 429)
            if r.status == 429 { #expect(r.headers["retry-after"] == "1") }
        }
        #expect(emulator.billing.jobs.isEmpty)
        #expect(emulator.scheduledFaultCounts.values.reduce(0, +) == 12)
    }

    @Test func cutAndSlowAnswersComeAfterTheEffect() async throws {
        let clock = ManualClock()
        let emulator = ProviderEmulator(configuration: .init(), clock: clock)
        let file = try await Self.upload(emulator, ids: ["a"])
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.cut]) }
        let cut = await Self.create(emulator, file: file)
        #expect(cut.status == 200)
        #expect(cut.fault == .truncateBody(bytes: cut.body.count / 2))
        #expect(emulator.billing.jobs.count == 1)

        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.slow], slowAnswer: .seconds(5)) }
        let slow = Task { await emulator.handle(EmulatorRequest(method: "GET", path: "/v1/batches", headers: Self.openAIKey)) }
        await clock.sleepers(atLeast: 1)
        clock.advance(by: .seconds(5))
        #expect(await slow.value.status == 200)
    }

    @Test func theScheduleIsSeededAndSparesTheDebugRoute() async throws {
        func draws(seed: UInt64) async -> [Int] {
            let emulator = ProviderEmulator(
                configuration: .init(faultSchedule: EmulatorFaultSchedule(rate: 0.3, kinds: [.internalError, .unavailable, .rateLimited], afterEffectShare: 0), seed: seed),
                clock: ManualClock())
            var statuses: [Int] = []
            for _ in 0..<40 {
                statuses.append(await emulator.handle(EmulatorRequest(method: "GET", path: "/v1/batches", headers: Self.openAIKey)).status)
            }
            for _ in 0..<20 {
                #expect(await emulator.handle(EmulatorRequest(method: "GET", path: "/_emulator/billing")).status == 200)
            }
            return statuses
        }
        let a = await draws(seed: 7)
        #expect(a == (await draws(seed: 7)))
        #expect(a != (await draws(seed: 8)))
        #expect(a.contains(200) && a.contains { $0 != 200 })
    }

    @Test func everyRouteCanFail() async throws {
        // Uploads, polls, result downloads, lists and real-time calls alike.
        let emulator = ProviderEmulator(configuration: .init(), clock: ManualClock())
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.unavailable], afterEffectShare: 0) }
        let paths = [
            ("POST", "/v1/files"), ("GET", "/v1/batches/batch_x"), ("GET", "/v1/files/file-x/content"), ("GET", "/v1/batches"),
            ("POST", "/v1/chat/completions"), ("POST", "/v1/messages"), ("GET", "/v1/messages/batches/msgbatch_x/results"),
            ("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent"), ("GET", "/download/v1beta/files/x:download"),
        ]
        for (method, path) in paths {
            #expect(await emulator.handle(EmulatorRequest(method: method, path: path, headers: Self.openAIKey)).status == 503, "\(path)")
        }
    }

    @Test func aCancelledJobBillsWhatRanBeforeTheCancel() async throws {
        let clock = ManualClock()
        let emulator = ProviderEmulator(configuration: .init(batchDuration: .seconds(100)), clock: clock)
        let ids = (0..<10).map { "r\($0)" }
        let file = try await Self.upload(emulator, ids: ids)
        let created = try JSONValue(parsing: (await Self.create(emulator, file: file)).body)
        let batch = try #require(created["id"]?.stringValue)
        // Items finish evenly over 90 s: at 45 s, half have run.
        clock.advance(by: .seconds(45))
        let cancel = await emulator.handle(EmulatorRequest(method: "POST", path: "/v1/batches/\(batch)/cancel", headers: Self.openAIKey))
        #expect(cancel.status == 200)
        clock.advance(by: .seconds(100))
        let billing = emulator.billing
        #expect(billing.jobs.first?.cancelled == true)
        #expect(billing.jobs.first?.billed == 5)
        #expect(ids.map { billing.jobCount(customID: $0) } == Array(repeating: 1, count: 5) + Array(repeating: 0, count: 5))

        // A second job for the same ids, not cancelled: the first five are now paid twice.
        _ = await Self.create(emulator, file: file)
        #expect(emulator.billing.paidTwice.keys.sorted() == Array(ids.prefix(5)).sorted())
        let json = emulator.billing.json
        #expect(json["paid_twice"]?["r0"]?.arrayValue?.count == 2)
        let served = await emulator.handle(EmulatorRequest(method: "GET", path: "/_emulator/billing"))
        #expect(try JSONValue(parsing: served.body)["billed"]?["r0"]?.intValue == 2)
    }

    @Test func anthropicAndGeminiCancelsBillTheirShare() async throws {
        let clock = ManualClock()
        let emulator = ProviderEmulator(configuration: .init(batchDuration: .seconds(100)), clock: clock)
        let anthropicHeaders: HTTPHeaders = ["x-api-key": "ak-test", "anthropic-version": "2023-06-01", "content-type": "application/json"]
        let items = (0..<10).map {
            #"{"custom_id":"a\#($0)","params":{"model":"claude-haiku-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}}"#
        }.joined(separator: ",")
        let created = await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/messages/batches", headers: anthropicHeaders, body: Data(#"{"requests":[\#(items)]}"#.utf8)))
        let anthropicID = try #require(try JSONValue(parsing: created.body)["id"]?.stringValue)

        let inline = (0..<10).map {
            #"{"request":{"contents":[{"parts":[{"text":"hi"}]}]},"metadata":{"key":"g\#($0)"}}"#
        }.joined(separator: ",")
        let gemini = await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
            headers: ["x-goog-api-key": "gk-test", "content-type": "application/json"],
            body: Data(#"{"batch":{"inputConfig":{"requests":{"requests":[\#(inline)]}}}}"#.utf8)))
        #expect(gemini.status == 200, "\(String(decoding: gemini.body, as: UTF8.self))")
        let geminiName = try #require(try JSONValue(parsing: gemini.body)["name"]?.stringValue)

        clock.advance(by: .seconds(30))
        #expect(await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1/messages/batches/\(anthropicID)/cancel", headers: anthropicHeaders)).status == 200)
        #expect(await emulator.handle(EmulatorRequest(
            method: "POST", path: "/v1beta/\(geminiName):cancel", headers: ["x-goog-api-key": "gk-test"])).status == 200)
        let billing = emulator.billing
        // Anthropic: 30 % had run and the cancel drains 1 s more (31 %); Gemini stops at once.
        #expect(billing.jobs.map(\.billed) == [3, 3])
        #expect(billing.jobs.allSatisfy { $0.cancelled })
        #expect(billing.jobCount(customID: "a2") == 1 && billing.jobCount(customID: "a3") == 0)
        #expect(billing.jobCount(customID: "g2") == 1 && billing.jobCount(customID: "g3") == 0)
    }

    @Test func realTimeAnswersAreCountedAndAnIDPaidInAJobAndInRealTimeIsFound() async throws {
        let emulator = ProviderEmulator(configuration: .init(), clock: ManualClock())
        func chat(_ id: String) async -> Int {
            var headers = Self.openAIKey
            headers["x-client-request-id"] = id
            return await emulator.handle(EmulatorRequest(
                method: "POST", path: "/v1/chat/completions", headers: headers,
                body: Data(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.utf8))).status
        }
        #expect(await chat("r0") == 200)
        // Refused before it took effect: not billed.
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.rateLimited]) }
        #expect(await chat("r1") == 429)
        // Answered, then the answer lost: billed.
        emulator.update { $0.faultSchedule = EmulatorFaultSchedule(rate: 1, kinds: [.reset], afterEffectShare: 1) }
        #expect(await chat("r2") == 500)
        emulator.update { $0.faultSchedule = nil }
        #expect(emulator.billing.realtimeCalls == ["r0": 1, "r2": 1])

        let file = try await Self.upload(emulator, ids: ["r0", "r1"])
        #expect(await Self.create(emulator, file: file).status == 200)
        #expect(emulator.billing.paidInJobAndRealtime == ["r0"])
        #expect(emulator.billing.paidTwice.isEmpty)
    }
}
