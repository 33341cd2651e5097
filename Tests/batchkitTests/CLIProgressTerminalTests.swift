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

/// `batchkit run` with a real terminal as its stderr: a pseudo-terminal opened by the test, the
/// bytes the child writes read from its master side and replayed on a tiny screen model (`\r`,
/// `\n`, `ESC[K`, wrapping at the width). The runs are driven by the emulator (real latency, or a
/// `ManualClock` where the test must act while requests are in flight); nothing asserts wall time.
@Suite("batchkit run: progress on a terminal", .timeLimit(.minutes(5)))
struct CLIProgressTerminalTests {
    static let environment = ["OPENAI_API_KEY": "sk-cli-test-key-0001"]

    @Test func atEightyColumnsTheScreenHoldsOneProgressLineNotOnePerUpdate() async throws {
        let dir = try TempDir()
        let count = 120
        try dir.write("in.jsonl", Fixtures.chatLines(count))
        let pty = try PseudoTerminal(columns: 80, rows: 24)
        // 120 answers of 20 ms each, two at a time: over a second of redraws on any machine.
        try await withEmulator(EmulatorConfiguration(latency: .milliseconds(20))) { _, url in
            let child = try TerminalChild(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "2"], in: dir.url,
                environment: Self.environment, stderr: pty)
            let status = await child.exitStatus()
            let bytes = await pty.finish()
            #expect(status == 0, "\(String(decoding: bytes, as: UTF8.self))")
            let draws = StatusDraws(bytes)
            #expect(draws.lines.count >= 2, "the line was drawn \(draws.lines.count) time(s)")
            #expect(draws.lines.allSatisfy { $0.count <= 79 }, "\(draws.lines.map(\.count).max() ?? 0) columns")

            var screen = Screen(columns: 80)
            screen.feed(bytes)
            #expect(!screen.wrapped, "a line wrapped: \(screen.rows)")
            #expect(screen.widest <= 80)
            let text = screen.rows.filter { !$0.isEmpty }
            #expect(text.count == 1, "\(text)")
            let last = try #require(text.last)
            #expect(last.contains("\(count)/\(count) 100%"), "\(last)")
            #expect(last.count <= 79)
            #expect(try Fixtures.outputIDs(dir.file("out.jsonl")).count == count)
        }
    }

    @Test func afterAResizeToFiftyColumnsTheLineIsRedrawnToFitFifty() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(40))
        let pty = try PseudoTerminal(columns: 80, rows: 24)
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(latency: .seconds(10)), clock: clock) { emulator, url in
            let child = try TerminalChild(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "4"], in: dir.url,
                environment: Self.environment, stderr: pty)
            // Four answers come and the line is drawn at 80 columns; four more requests wait on the clock.
            await clock.sleepers(atLeast: 4)
            clock.advance(by: .seconds(10))
            let drawn = await pty.wait { StatusDraws($0).lines.contains { $0.contains("/40 ") } }
            #expect(drawn, "no progress line: \(String(decoding: pty.received, as: UTF8.self))")
            let wide = try #require(StatusDraws(pty.received).lines.last)
            #expect(wide.count > 49 && wide.count <= 79, "\(wide)")

            // The window shrinks. The kernel sends SIGWINCH to the terminal's foreground process
            // group; this terminal is not the child's controlling terminal, so the test sends it.
            let before = pty.received.count
            try pty.resize(columns: 50, rows: 24)
            _ = kill(child.pid, SIGWINCH)
            // Nothing else can redraw now (every request waits on the clock): the resize must.
            let redrawn = await pty.wait { bytes in
                StatusDraws(Array(bytes[before...])).lines.contains { $0.contains("/40 ") && $0.count <= 49 }
            }
            #expect(redrawn, "no redraw for 50 columns: \(String(decoding: pty.received[before...], as: UTF8.self))")

            // The rest of the run answers at once.
            emulator.update { $0.latency = .zero }
            clock.advance(by: .seconds(10))
            let status = await child.exitStatus()
            let bytes = await pty.finish()
            #expect(status == 0, "\(String(decoding: bytes, as: UTF8.self))")

            // Every line drawn from the resize's redraw on fits 50 columns, and on a 50-column
            // screen they leave one line.
            let after = Array(bytes[before...])
            let start = try #require(StatusDraws.startOfFirstDraw(in: after) { $0.count <= 49 })
            let later = StatusDraws(Array(after[start...])).lines
            #expect(!later.isEmpty)
            #expect(later.allSatisfy { $0.count <= 49 }, "\(later.filter { $0.count > 49 })")
            var screen = Screen(columns: 50)
            screen.feed(Array(after[start...]))
            #expect(!screen.wrapped, "\(screen.rows)")
            let text = screen.rows.filter { !$0.isEmpty }
            #expect(text.count == 1, "\(text)")
            #expect(text.last?.contains("40/40 100%") == true, "\(text)")
        }
    }

    @Test func aMessageDuringTheRunIsPrintedAboveTheProgressLine() async throws {
        let dir = try TempDir()
        try dir.write("in.jsonl", Fixtures.chatLines(12))
        let pty = try PseudoTerminal(columns: 80, rows: 24)
        let clock = ManualClock()
        try await withEmulator(EmulatorConfiguration(latency: .seconds(10)), clock: clock) { _, url in
            let child = try TerminalChild(
                ["run", "in.jsonl", "--output", "out.jsonl", "--base-url", url, "--concurrency", "4"], in: dir.url,
                environment: Self.environment, stderr: pty)
            await clock.sleepers(atLeast: 4)
            clock.advance(by: .seconds(10))
            let drawn = await pty.wait { StatusDraws($0).lines.contains { $0.contains("/12 ") } }
            #expect(drawn)
            // SIGINT: its notice is written by another thread while the line is shown.
            _ = kill(child.pid, SIGINT)
            let status = await child.exitStatus()
            let bytes = await pty.finish()
            #expect(status == 130, "\(String(decoding: bytes, as: UTF8.self))")

            // (Messages longer than the width wrap, as on any terminal; the status line never does.)
            var screen = Screen(columns: 80)
            screen.feed(bytes)
            let text = screen.rows.filter { !$0.isEmpty }
            let progress = text.indices.filter { text[$0].contains("/12 ") }
            try #require(progress.count == 1, "\(text)")
            #expect(text[progress[0]].count <= 79)
            let notice = try #require(text.firstIndex { $0.hasPrefix("batchkit: SIGINT received") }, "\(text)")
            #expect(notice < progress[0])
            #expect(
                text[notice..<progress[0]].joined() == "batchkit: SIGINT received; stopping (finishing the output; a second signal exits at once)",
                "the notice is not right above the line: \(text)")
            #expect(text.contains { $0.hasPrefix("batchkit run: stopped by SIGINT") }, "\(text)")
        }
    }

    @Test func theScreenModelCountsAWrappedLine() {
        // The model itself can fail: a 100-column line redrawn twice at 80 columns leaves rows.
        var screen = Screen(columns: 80)
        let line = String(repeating: "x", count: 100)
        screen.feed(Array(("\r" + line + "\u{1B}[K\r" + line + "\u{1B}[K").utf8))
        #expect(screen.wrapped)
        #expect(screen.rows.filter { !$0.isEmpty }.count == 3)
        #expect(StatusDraws(Array(("\r" + line + "\u{1B}[K").utf8)).lines == [line])
    }
}

// MARK: - A pseudo-terminal and a child on it

/// A pseudo-terminal pair: the child gets the slave side as its stderr, the test reads the
/// master side on a thread of its own (blocking reads never run on a Swift concurrency thread).
final class PseudoTerminal: Sendable {
    let master: Int32
    /// Open until the child is started, then closed here (the child holds its own copy).
    let slave: Int32

    private struct State {
        var bytes: [UInt8] = []
        var finished = false
        var stopping = false
        var waiters: [(id: Int, predicate: @Sendable ([UInt8]) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = []
        var finishWaiters: [CheckedContinuation<[UInt8], Never>] = []
        var nextID = 0
    }

    private let state = Mutex(State())

    init(columns: UInt16, rows: UInt16) throws {
        let master = PTY.openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0, PTY.grantpt(master) == 0, PTY.unlockpt(master) == 0, let name = PTY.ptsname(master) else {
            throw PseudoTerminalError("cannot open a pseudo-terminal (errno \(errno))")
        }
        // CLOEXEC: a child another test starts meanwhile must not inherit it (the child that
        // gets it as stderr gets a dup, without the flag).
        let slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else {
            close(master)
            throw PseudoTerminalError("cannot open \(String(cString: name)) (errno \(errno))")
        }
        self.master = master
        self.slave = slave
        try resize(columns: columns, rows: rows)
        Thread.detachNewThread { [self] in readLoop() }
    }

    /// Sets the window size (`TIOCSWINSZ` on the master).
    func resize(columns: UInt16, rows: UInt16) throws {
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        #if canImport(Glibc)
        let request = UInt(TIOCSWINSZ)
        #else
        let request = TIOCSWINSZ
        #endif
        guard ioctl(master, request, &size) == 0 else { throw PseudoTerminalError("TIOCSWINSZ failed (errno \(errno))") }
    }

    /// Everything received so far.
    var received: [UInt8] { state.withLock { $0.bytes } }

    /// Reads until the slave side is closed everywhere (EIO), or, once ``finish()`` was called,
    /// until nothing more is waiting to be read.
    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 50)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if ready == 0 {
                if state.withLock({ $0.stopping }) { break }
                continue
            }
            let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            if n <= 0 { break }  // EIO: no slave is open any more
            let chunk = Array(buffer[0..<n])
            let ready2: [(CheckedContinuation<Bool, Never>, Bool)] = state.withLock { s in
                s.bytes.append(contentsOf: chunk)
                var out: [(CheckedContinuation<Bool, Never>, Bool)] = []
                let bytes = s.bytes
                s.waiters.removeAll { w in
                    guard w.predicate(bytes) else { return false }
                    out.append((w.continuation, true))
                    return true
                }
                return out
            }
            for (c, v) in ready2 { c.resume(returning: v) }
        }
        let (waiters, finishers, bytes) = state.withLock { s in
            s.finished = true
            defer {
                s.waiters = []
                s.finishWaiters = []
            }
            return (s.waiters.map(\.continuation), s.finishWaiters, s.bytes)
        }
        for w in waiters { w.resume(returning: false) }
        for f in finishers { f.resume(returning: bytes) }
        close(master)
    }

    /// Waits until the bytes received satisfy `predicate` (true), the terminal is closed, or
    /// `timeout` passes (false; a safety net).
    func wait(timeout: Duration = .seconds(60), _ predicate: @escaping @Sendable ([UInt8]) -> Bool) async -> Bool {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                    let now: Bool? = self.state.withLock { s in
                        if predicate(s.bytes) { return true }
                        if s.finished { return false }
                        s.waiters.append((id, predicate, c))
                        return nil
                    }
                    if let now { c.resume(returning: now) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)  // a safety net only
                return false
            }
            let first = await group.next() ?? false
            let stale = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            stale?.resume(returning: false)
            group.cancelAll()
            return first
        }
    }

    /// After the child has exited: reads what is left and returns every byte received.
    func finish() async -> [UInt8] {
        await withCheckedContinuation { (c: CheckedContinuation<[UInt8], Never>) in
            let done: [UInt8]? = state.withLock { s in
                s.stopping = true
                if s.finished { return s.bytes }
                s.finishWaiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}

/// `posix_openpt`, `grantpt`, `unlockpt` and `ptsname`. Glibc's module map leaves them out
/// (they need `_XOPEN_SOURCE`), so on Linux they are looked up in the C library by name.
enum PTY {
    #if canImport(Glibc)
    private static func function<T>(_ name: String, as type: T.Type) -> T {
        guard let symbol = dlsym(nil, name) else { fatalError("\(name) is not in the C library") }
        return unsafeBitCast(symbol, to: type)
    }
    static let openpt = function("posix_openpt", as: (@convention(c) (Int32) -> Int32).self)
    static let grantpt = function("grantpt", as: (@convention(c) (Int32) -> Int32).self)
    static let unlockpt = function("unlockpt", as: (@convention(c) (Int32) -> Int32).self)
    static let ptsname = function("ptsname", as: (@convention(c) (Int32) -> UnsafeMutablePointer<CChar>?).self)
    #else
    static let openpt = posix_openpt
    static let grantpt = Darwin.grantpt
    static let unlockpt = Darwin.unlockpt
    static let ptsname = Darwin.ptsname
    #endif
}

struct PseudoTerminalError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `batchkit ARGS` with its stderr on a pseudo-terminal (stdout to /dev/null).
final class TerminalChild: Sendable {
    /// `Process` is not `Sendable`; it is only touched here to start it and read its pid
    /// (thread-safe); the exit status is kept in the `Mutex`.
    private struct ProcessBox: @unchecked Sendable { let process: Process }
    private struct State {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    private let box: ProcessBox
    private let state = Mutex(State())

    init(_ arguments: [String], in directory: URL, environment: [String: String], stderr pty: PseudoTerminal) throws {
        let binary = try #require(CLI.binary, "the batchkit executable was not found next to the test bundle; build it first")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = CLI.environment(environment)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(fileDescriptor: pty.slave, closeOnDealloc: false)
        box = ProcessBox(process: process)
        process.terminationHandler = { [weak self] p in self?.exited(p.terminationStatus) }
        defer { close(pty.slave) }  // the child has its own copy: EIO on the master once it exits
        try process.run()
    }

    var pid: Int32 { box.process.processIdentifier }

    private func exited(_ status: Int32) {
        let waiters = state.withLock { s in
            s.status = status
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: status) }
    }

    /// Waits for the exit; a child still running after `timeout` (a safety net) is killed and
    /// the test fails.
    func exitStatus(timeout: Duration = .seconds(120)) async -> Int32 {
        let pid = self.pid
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            Issue.record("batchkit did not finish within \(timeout); killed")
            _ = kill(pid, SIGKILL)
        }
        defer { watchdog.cancel() }
        return await withCheckedContinuation { (c: CheckedContinuation<Int32, Never>) in
            let done: Int32? = state.withLock { s in
                if let st = s.status { return st }
                s.waiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}

// MARK: - Reading what a terminal shows

/// The status lines drawn in a byte stream: each `\r … ESC[K` with no newline inside.
struct StatusDraws {
    var lines: [String] = []

    init(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for segment in text.components(separatedBy: "\u{1B}[K").dropLast() {
            guard let cr = segment.lastIndex(of: "\r") else { continue }
            let line = String(segment[segment.index(after: cr)...])
            if !line.isEmpty, !line.contains("\n") { lines.append(line) }
        }
    }

    /// The offset of the `\r` that starts the first drawn line satisfying `predicate`.
    static func startOfFirstDraw(in bytes: [UInt8], where predicate: (String) -> Bool) -> Int? {
        var lineStart: Int?
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case 0x0D: lineStart = i
            case 0x0A: lineStart = nil
            case 0x1B where i + 2 < bytes.count && bytes[i + 1] == 0x5B && bytes[i + 2] == 0x4B:
                if let start = lineStart {
                    let line = String(decoding: bytes[(start + 1)..<i], as: UTF8.self)
                    if !line.isEmpty, predicate(line) { return start }
                }
            default: break
            }
            i += 1
        }
        return nil
    }
}

/// A terminal screen, as much of one as a status line needs: printable characters, `\r`, `\n`,
/// `ESC[K` / `ESC[0K` / `ESC[2K`, other escape sequences ignored, and a wrap when a character is
/// written past the last column (what a wrapped status line does to a real terminal).
struct Screen {
    let columns: Int
    private(set) var grid: [[Character]] = [[]]
    private var row = 0
    private var column = 0
    /// Whether any line wrapped.
    private(set) var wrapped = false
    /// The most columns any row held.
    private(set) var widest = 0

    init(columns: Int) { self.columns = columns }

    /// The rows, trailing blanks removed.
    var rows: [String] {
        grid.map { String($0).replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
    }

    mutating func feed(_ bytes: [UInt8]) {
        let scalars = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
        var i = 0
        while i < scalars.count {
            let c = scalars[i]
            i += 1
            switch c {
            case "\r":
                column = 0
            case "\n":
                newRow()
            case "\u{1B}":
                guard i < scalars.count, scalars[i] == "[" else { continue }
                i += 1
                var parameter = ""
                while i < scalars.count, scalars[i].value >= 0x30, scalars[i].value <= 0x3F {
                    parameter.unicodeScalars.append(scalars[i])
                    i += 1
                }
                guard i < scalars.count else { return }
                let final = scalars[i]
                i += 1
                if final == "K" {
                    switch parameter {
                    case "", "0": grid[row].removeSubrange(min(column, grid[row].count)...)
                    case "2": grid[row] = Array(repeating: " ", count: min(column, grid[row].count))
                    default: break
                    }
                }
            default:
                guard c.value >= 0x20 else { continue }
                if column >= columns {
                    wrapped = true
                    newRow()
                }
                while grid[row].count < column { grid[row].append(" ") }
                if column < grid[row].count {
                    grid[row][column] = Character(c)
                } else {
                    grid[row].append(Character(c))
                }
                column += 1
                widest = max(widest, grid[row].count)
            }
        }
    }

    private mutating func newRow() {
        row += 1
        column = 0
        if row == grid.count { grid.append([]) }
    }
}
