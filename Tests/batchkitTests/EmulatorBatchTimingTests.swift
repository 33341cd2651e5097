import BatchKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `batchkit emulator --batch-seconds 2`: a 200-request batch is still running half a second later.
@Suite("batchkit emulator batch timing", .enabled(if: batchkitBinary != nil), .timeLimit(.minutes(1)))
struct EmulatorBatchTimingTests {
    @Test func batchWithTwoHundredRequestsIsStillRunningHalfASecondLater() async throws {
        let (process, line) = try await startEmulator(["--port", "0", "--batch-seconds", "2"])
        // Never wait for the child on a Swift concurrency thread: the emulators of other tests
        // need those threads. SIGKILL needs no cooperation from the child.
        defer { kill(process.processIdentifier, SIGKILL) }
        let base = try #require(URL(string: String(line.split(separator: " ").last ?? "")))
        let transport = URLSessionTransport()
        let headers: HTTPHeaders = ["x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"]
        let requests = (0..<200).map { i -> JSONValue in
            ["custom_id": .string("r\(i)"),
             "params": ["model": "claude-haiku-4-5", "max_tokens": 16, "messages": [["role": "user", "content": .string("q\(i)")]]]]
        }
        let clock = ContinuousClock()
        let created = clock.now
        let create = try await transport.send(HTTPRequest(
            method: "POST", url: base.appendingPathComponent("v1/messages/batches"), headers: headers,
            body: .data(JSONValue.object(["requests": .array(requests)]).serialized())))
        #expect(create.status == 200)
        let id = try #require(try JSONValue(parsing: create.body)["id"]?.stringValue)
        // Poll (without sleeping) until half a second has passed, then look once more.
        var status = ""
        var checkedAt = Duration.zero
        while clock.now - created < .milliseconds(500) || checkedAt < .milliseconds(500) {
            let r = try await transport.send(HTTPRequest(url: base.appendingPathComponent("v1/messages/batches/\(id)"), headers: headers))
            status = try JSONValue(parsing: r.body)["processing_status"]?.stringValue ?? ""
            checkedAt = clock.now - created
        }
        // The answer was produced before `checkedAt`; if a loaded machine let it pass the 2 s mark,
        // no conclusion can be drawn, so only a timely answer is checked.
        if checkedAt < .milliseconds(1900) {
            #expect(status == "in_progress")
        }
        #expect(checkedAt >= .milliseconds(500))
    }
}
