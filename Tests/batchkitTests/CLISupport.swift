import BatchKit
import BatchKitTesting
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a finished `batchkit` process printed and returned.
struct CLIResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    /// The non-empty lines of stderr that are not progress lines.
    var errorLines: [String] {
        stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.hasPrefix("progress:") }
    }
}

/// Runs the built `batchkit` executable as a child process.
enum CLI {
    /// The `batchkit` executable next to the test bundle (same build directory).
    static let binary: URL? = {
        if let path = ProcessInfo.processInfo.environment["BATCHKIT_BIN"] { return URL(fileURLWithPath: path) }
        var dir = Bundle.main.bundleURL
        let fm = FileManager.default
        // Linux: .build/debug/batchkitPackageTests.xctest is the runner; macOS: a bundle inside debug/.
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("batchkit")
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: candidate.path, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            dir.deleteLastPathComponent()
        }
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("batchkit")
        return fm.isExecutableFile(atPath: argv0.path) ? argv0 : nil
    }()

    /// The environment children get: no provider keys unless given.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var env: [String: String] = [:]
        let parent = ProcessInfo.processInfo.environment
        for name in ["PATH", "HOME", "TMPDIR", "LANG"] { env[name] = parent[name] }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Starts `batchkit ARGS` in `directory`.
    static func start(
        _ arguments: [String], in directory: URL, environment extra: [String: String] = ["OPENAI_API_KEY": "sk-cli-test-key-0001"],
        liveStderr: Bool = true
    ) throws -> RunningCLI {
        let binary = try #require(CLI.binary, "the batchkit executable was not found next to the test bundle; build it first")
        return try RunningCLI(
            binary: binary, arguments: arguments, directory: directory, environment: environment(extra), liveStderr: liveStderr)
    }

    /// Runs `batchkit ARGS` to completion (killed after `timeout`, which fails the test).
    static func run(
        _ arguments: [String], in directory: URL,
        environment extra: [String: String] = ["OPENAI_API_KEY": "sk-cli-test-key-0001"], timeout: Duration = .seconds(180)
    ) async throws -> CLIResult {
        let child = try start(arguments, in: directory, environment: extra, liveStderr: false)
        return await child.finish(timeout: timeout)
    }
}

/// A running child process. stdout goes to a file; stderr to a file, or (when watched live) to a
/// pipe drained by a thread doing blocking reads.
final class RunningCLI: Sendable {
    /// `Process` is not `Sendable`; it is only touched here to start it, read its pid and wait
    /// (all thread-safe), and the rest of the state is in `Mutex`es.
    private struct ProcessBox: @unchecked Sendable { let process: Process }

    private struct State {
        var stderr = Data()
        var status: Int32?
        var exitWaiters: [CheckedContinuation<Int32, Never>] = []
        var lineWaiters: [(id: Int, predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextWaiter = 0
        var stderrClosed = false
    }

    private let box: ProcessBox
    private let state = Mutex(State())
    private let stdoutFile: URL
    private let stderrFile: URL?

    init(binary: URL, arguments: [String], directory: URL, environment: [String: String], liveStderr: Bool) throws {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = environment
        let id = UUID().uuidString
        stdoutFile = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-out-\(id)")
        _ = FileManager.default.createFile(atPath: stdoutFile.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: stdoutFile)
        process.standardInput = FileHandle.nullDevice
        var pipe: Pipe?
        if liveStderr {
            stderrFile = nil
            pipe = Pipe()
            process.standardError = pipe
        } else {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-err-\(id)")
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            stderrFile = url
            process.standardError = try FileHandle(forWritingTo: url)
        }
        box = ProcessBox(process: process)
        process.terminationHandler = { [weak self] p in
            self?.exited(p.terminationStatus)
        }
        try process.run()
        if let pipe {
            try? pipe.fileHandleForWriting.close()
            let fd = pipe.fileHandleForReading.fileDescriptor
            let reader = pipe.fileHandleForReading
            Thread.detachNewThread { [weak self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0, errno == EINTR { continue }
                    if n <= 0 { break }
                    self?.stderrArrived(Data(buffer[0..<n]))
                }
                self?.stderrArrived(Data())
                _ = reader  // keep the descriptor open until the loop ends
            }
        }
    }

    var pid: Int32 { box.process.processIdentifier }

    /// What the child has written to a live stderr so far.
    var stderrSoFar: String { state.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    private func stderrArrived(_ data: Data) {
        let ready: [(CheckedContinuation<Bool, Never>, Bool)] = state.withLock { s in
            if data.isEmpty { s.stderrClosed = true } else { s.stderr.append(data) }
            guard !s.lineWaiters.isEmpty else { return [] }
            let lines = String(decoding: s.stderr, as: UTF8.self).split(separator: "\n").map(String.init)
            var ready: [(CheckedContinuation<Bool, Never>, Bool)] = []
            s.lineWaiters.removeAll { w in
                if lines.contains(where: w.predicate) { ready.append((w.continuation, true)); return true }
                if s.stderrClosed { ready.append((w.continuation, false)); return true }
                return false
            }
            return ready
        }
        for (c, value) in ready { c.resume(returning: value) }
    }

    private func exited(_ status: Int32) {
        let waiters = state.withLock { s in
            s.status = status
            defer { s.exitWaiters = [] }
            return s.exitWaiters
        }
        for w in waiters { w.resume(returning: status) }
    }

    /// Waits until a stderr line satisfies `predicate` (true), the child closes stderr, or
    /// `timeout` passes (false). Needs a child started with live stderr.
    func waitForStderrLine(timeout: Duration = .seconds(120), where predicate: @escaping @Sendable (String) -> Bool) async -> Bool {
        let id = state.withLock { s -> Int in s.nextWaiter += 1; return s.nextWaiter }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let resumeNow: Bool? = self.state.withLock { s in
                        let lines = String(decoding: s.stderr, as: UTF8.self).split(separator: "\n").map(String.init)
                        if lines.contains(where: predicate) { return true }
                        if s.stderrClosed { return false }
                        s.lineWaiters.append((id, predicate, c))
                        return nil
                    }
                    if let resumeNow { c.resume(returning: resumeNow) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)  // a safety net only: the line normally comes first
                return false
            }
            let first = await group.next() ?? false
            // Release the other waiter.
            let stale = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard let i = s.lineWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.lineWaiters.remove(at: i).continuation
            }
            stale?.resume(returning: false)
            group.cancelAll()
            return first
        }
    }

    /// Sends SIGKILL.
    func kill9() { _ = kill(pid, SIGKILL) }

    /// Waits for the exit (SIGKILL after `timeout`, recorded as a test failure) and returns what
    /// the child printed.
    func finish(timeout: Duration = .seconds(180)) async -> CLIResult {
        let status = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await self.exitStatus() }
            group.addTask {
                try? await Task.sleep(for: timeout)  // a safety net only
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil {
                Issue.record("batchkit did not finish within \(timeout); killed")
                self.kill9()
            }
            group.cancelAll()
            return first
        }
        let final: Int32
        if let status { final = status } else { final = await exitStatus() }
        let out = (try? Data(contentsOf: stdoutFile)) ?? Data()
        try? FileManager.default.removeItem(at: stdoutFile)
        var err: Data
        if let stderrFile {
            err = (try? Data(contentsOf: stderrFile)) ?? Data()
            try? FileManager.default.removeItem(at: stderrFile)
        } else {
            err = state.withLock { $0.stderr }
        }
        return CLIResult(status: final, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    private func exitStatus() async -> Int32 {
        await withCheckedContinuation { (c: CheckedContinuation<Int32, Never>) in
            let done: Int32? = state.withLock { s in
                if let st = s.status { return st }
                s.exitWaiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}

/// A temporary directory for one test, removed at the end.
final class TempDir: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: file(name))
    }
}

/// Input files and output checks.
enum Fixtures {
    /// `count` chat lines with ids `r0`… (OpenAI batch input JSONL).
    static func chatLines(_ count: Int, prefix: String = "r", model: String = "gpt-4o-mini") -> String {
        (0..<count).map { i in
            #"{"custom_id":"\#(prefix)\#(i)","method":"POST","url":"/v1/chat/completions","body":{"model":"\#(model)","messages":[{"role":"user","content":"Classify ticket \#(i)"}],"max_tokens":8}}"#
        }.joined(separator: "\n") + "\n"
    }

    /// The custom ids of the complete lines of an output file, in order (repeats kept).
    static func outputIDs(_ url: URL) throws -> [String] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if !text.hasSuffix("\n") { lines.removeLast() }  // a line cut by a kill
        return lines.filter { !$0.isEmpty }.compactMap { line in
            (try? JSONValue(parsing: String(line)))?["custom_id"]?.stringValue
        }
    }

    /// The output lines as JSON.
    static func outputLines(_ url: URL) throws -> [JSONValue] {
        let text = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        return try text.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
    }
}

/// A loopback emulator for `batchkit run --mode hybrid --deadline 2s`: a batch takes 100 s of
/// the emulator's manual clock, which only the server moves (the test does not: on a loaded
/// machine it could react after the CLI's real-time deadline): to 50 s as soon as a job is
/// created, and 11 s on (past the 10 s cancellation drain) when the CLI cancels it at its
/// deadline. The CLI never races the submission against the deadline, so however slow the
/// machine, the job is created and cancelled at 50 s with about half of its items finished
/// (items finish evenly over the first 90 s); the rest run in real time.
func startHybridEmulator() async throws -> (emulator: ProviderEmulator, server: EmulatorServer) {
    let clock = ManualClock()
    let emulator = ProviderEmulator(configuration: EmulatorConfiguration(batchDuration: .seconds(100)), clock: clock)
    let server = try await EmulatorServer.start { request in
        let response = await emulator.handle(request)
        if request.method == "POST", request.path.hasSuffix("/cancel") { clock.advance(by: .seconds(11)) }
        if request.method == "POST", request.path.hasSuffix("/v1/batches") { clock.advance(by: .seconds(50)) }
        return response
    }
    return (emulator, server)
}
