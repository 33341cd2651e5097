import BatchKit
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The built `batchkit` executable, next to the test bundle (or `BATCHKIT_BIN`). Tests that need
/// it `#require` it: a missing binary fails them rather than skipping them.
var batchkitBinary: URL? { CLI.binary }

/// Runs the tool to completion; returns exit code, stdout and stderr.
func runBatchkit(_ arguments: [String]) async throws -> (Int32, String, String) {
    let process = Process()
    let binary: URL = try #require(batchkitBinary)
    process.executableURL = binary
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return try await withCheckedThrowingContinuation { continuation in
        Thread {
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            continuation.resume(returning: (
                process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
            ))
        }.start()
    }
}

/// Starts `batchkit emulator` with `arguments`; returns the process and the first line it printed
/// (read on a thread of its own, never blocking a Swift concurrency thread).
func startEmulator(_ arguments: [String]) async throws -> (Process, String) {
    let process = Process()
    let binary: URL = try #require(batchkitBinary)
    process.executableURL = binary
    process.arguments = ["emulator"] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let line = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
        Thread {
            // Bounded: the process prints the line at once, or the test's time limit ends it.
            var bytes: [UInt8] = []
            while true {
                let chunk = out.fileHandleForReading.readData(ofLength: 1)
                if chunk.isEmpty || chunk.first == 0x0A { break }
                bytes += chunk
            }
            continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
        }.start()
    }
    return (process, line)
}

@Suite("batchkit emulator", .timeLimit(.minutes(5)))
struct EmulatorCommandTests {
    @Test(arguments: [["frobnicate"], ["emulator", "--bogus"], ["emulator", "--port"], ["emulator", "--port", "x"],
                      ["emulator", "stray"], ["emulator", "--faults", "500,bogus"], ["emulator", "--fault-rate", "1.5"],
                      ["emulator", "--seed", "-1"], ["emulator", "--slow-ms", "100"]])
    func usageErrorsAreOneLineWithExitCode2(_ arguments: [String]) async throws {
        let (status, stdout, stderr) = try await runBatchkit(arguments)
        #expect(status == 2)
        #expect(stdout.isEmpty)
        #expect(stderr.split(separator: "\n").count == 1, "\(stderr)")
    }

    @Test func helpGoesToStdout() async throws {
        let (status, stdout, _) = try await runBatchkit(["emulator", "--help"])
        #expect(status == 0)
        #expect(stdout.contains("--latency-ms"))
    }

    @Test func servesUntilSIGTERM() async throws {
        let (process, line) = try await startEmulator(["--port", "0", "--api-key", "sk-cli-test"])
        #expect(line.hasPrefix("BatchKit emulator listening on http://127.0.0.1:"))
        let base = try #require(URL(string: String(line.split(separator: " ").last ?? "")))
        let transport = URLSessionTransport()
        let ok = try await transport.send(HTTPRequest(url: base.appendingPathComponent("v1/models"),
            headers: ["Authorization": "Bearer wrong-key"]))
        #expect((400..<500).contains(ok.status))  // 401 once routes check keys; 404 before
        #expect(!String(decoding: ok.body, as: UTF8.self).contains("sk-cli-test"))
        kill(process.processIdentifier, SIGTERM)
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            Thread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }.start()
        }
        #expect(status == 0)
    }

    @Test func injectsScheduledFaultsAndWritesTheBillingFileAtExit() async throws {
        let billingFile = FileManager.default.temporaryDirectory.appendingPathComponent("billing-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: billingFile) }
        let (process, line) = try await startEmulator([
            "--port", "0", "--faults", "503", "--fault-rate", "1", "--seed", "9", "--billing-file", billingFile.path,
        ])
        let base = try #require(URL(string: String(line.split(separator: " ").last ?? "")))
        let transport = URLSessionTransport()
        let faulted = try await transport.send(HTTPRequest(
            url: base.appendingPathComponent("v1/batches"), headers: ["Authorization": "Bearer sk-test"]))
        #expect(faulted.status == 503)
        // The debug route is never faulted.
        let billing = try await transport.send(HTTPRequest(url: base.appendingPathComponent("_emulator/billing")))
        #expect(billing.status == 200)
        #expect(try JSONValue(parsing: billing.body)["jobs"]?.arrayValue == [])
        kill(process.processIdentifier, SIGTERM)
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            Thread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }.start()
        }
        #expect(status == 0)
        let written = try JSONValue(parsing: Data(contentsOf: billingFile))
        #expect(written["billed"]?.objectValue?.isEmpty == true)
        #expect(written["paid_twice"] != nil)
    }
}
