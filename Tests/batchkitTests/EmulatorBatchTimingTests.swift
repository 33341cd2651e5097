import BatchKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `batchkit emulator --batch-seconds N`: a batch takes N seconds. The emulator runs on the wall
/// clock in a child process, so the test cannot move its time; instead the batch is given ten
/// hours, which no loaded machine can use up within the test's time limit, and the state it is in
/// half a second later is checked unconditionally. (Without the option batches end at once, so a
/// lost `--batch-seconds` fails the test.)
@Suite("batchkit emulator batch timing", .timeLimit(.minutes(5)))
struct EmulatorBatchTimingTests {
    @Test func batchWithTwoHundredRequestsIsStillRunningHalfASecondLater() async throws {
        let (process, line) = try await startEmulator(["--port", "0", "--batch-seconds", "36000"])
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
        // Read the batch (without sleeping) until a read is answered half a second after creation;
        // every read on the way must see it running with all 200 requests still processing (one
        // request finishes every 180 s of a 36 000 s batch).
        var reads = 0
        var last: JSONValue = .null
        var wrong: JSONValue?
        repeat {
            let r = try await transport.send(HTTPRequest(url: base.appendingPathComponent("v1/messages/batches/\(id)"), headers: headers))
            #expect(r.status == 200)
            last = try JSONValue(parsing: r.body)
            reads += 1
            if last["processing_status"]?.stringValue != "in_progress" || last["request_counts"]?["processing"]?.intValue != 200 {
                wrong = last
                break
            }
        } while clock.now - created < .milliseconds(500)
        #expect(wrong == nil, "read \(reads) saw \(wrong ?? .null)")
        #expect(last["processing_status"]?.stringValue == "in_progress")
        #expect(last["request_counts"]?["processing"]?.intValue == 200)
        #expect(last["ended_at"] == JSONValue.null)
    }

    /// `--batch-expiry-seconds`: a ten-hour batch that expires after a millisecond ends expired,
    /// every request `expired`. (Without the option it would still be running, so a lost option
    /// fails the test.) Reads are repeated without sleeping until one comes after the expiry.
    @Test func batchExpirySecondsExpiresTheUnfinishedRequests() async throws {
        let (process, line) = try await startEmulator(["--port", "0", "--batch-seconds", "36000", "--batch-expiry-seconds", "0.001"])
        defer { kill(process.processIdentifier, SIGKILL) }
        let base = try #require(URL(string: String(line.split(separator: " ").last ?? "")))
        let transport = URLSessionTransport()
        let headers: HTTPHeaders = ["x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"]
        let requests = (0..<20).map { i -> JSONValue in
            ["custom_id": .string("r\(i)"),
             "params": ["model": "claude-haiku-4-5", "max_tokens": 16, "messages": [["role": "user", "content": .string("q\(i)")]]]]
        }
        let create = try await transport.send(HTTPRequest(
            method: "POST", url: base.appendingPathComponent("v1/messages/batches"), headers: headers,
            body: .data(JSONValue.object(["requests": .array(requests)]).serialized())))
        #expect(create.status == 200)
        let id = try #require(try JSONValue(parsing: create.body)["id"]?.stringValue)
        let clock = ContinuousClock()
        let started = clock.now
        var last: JSONValue = .null
        repeat {
            let r = try await transport.send(HTTPRequest(url: base.appendingPathComponent("v1/messages/batches/\(id)"), headers: headers))
            last = try JSONValue(parsing: r.body)
        } while last["processing_status"]?.stringValue != "ended" && clock.now - started < .seconds(60)
        #expect(last["processing_status"]?.stringValue == "ended")
        #expect(last["request_counts"]?["expired"]?.intValue == 20)
        #expect(last["ended_at"] == last["expires_at"])
    }
}
