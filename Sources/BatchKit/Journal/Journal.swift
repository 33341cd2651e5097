public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The resume journal: an append-only JSON Lines file with one OpenAI batch output line per
/// finished request (see ``BatchResult/outputLine()``), written **before** the result is
/// reported, so a crash loses no finished work and a rerun pays for nothing twice.
///
/// ```swift
/// let journal = try Journal(url: URL(filePath: "out.jsonl"))
/// for await event in processor.journaled(journal).processAsync(requests) { ... }
/// // Run it again after a crash: requests already in out.jsonl are skipped.
/// ```
///
/// Opening reads every line and remembers the last line per custom id. A last line cut by a crash
/// (invalid JSON that starts like one of our lines, `{…`, or zero bytes) is **repaired**: the file
/// is truncated to the end of the last good line (see ``repair``). A complete, valid last line that
/// only lacks its newline is kept and the newline added. Anything else is an error naming the file
/// and line (`out.jsonl:12: …`) and nothing is changed: a bad line before the last, valid JSON that
/// is not a batch output line (an *input* file passed by mistake), or text that is not JSONL.
///
/// Finished ids are the successes, and the failures too unless `retryFailed` is set (the
/// default): then failed ids run again and the new line is appended; the last line of an id wins.
///
/// The file is locked (`flock`) while open, so two processes (or two `Journal` values) cannot
/// append to one journal. The lock is released by ``close()`` or when the last reference goes; a
/// cancelled run may keep a reference for a moment while it winds down, so call ``close()`` before
/// reopening the same file in the same process. One `Journal` value may be used from any task.
///
/// Cost (measured on Linux, debug build, 2 shared cores): about 25 µs per line with ``Durability/flush``
/// (of which ~22 µs is encoding the line) and about 195 µs per line with ``Durability/fsync``;
/// reopening reads about 30 µs per line.
public final class Journal: Sendable {
    /// How hard each line is pushed to storage before the result is reported.
    public enum Durability: Sendable, Hashable {
        /// One `write(2)` per line: the line is in the operating system's page cache before the
        /// result is reported, so it survives the process crashing or being killed (`kill -9`), but
        /// not a power loss. Costs about a system call (a few microseconds) per line.
        case flush
        /// `write(2)` then `fdatasync(2)` (`fsync` on Darwin) per line: survives power loss. Costs
        /// a storage round trip per line (from tens of microseconds on NVMe to milliseconds).
        case fsync
    }

    /// What opening the journal repaired.
    package struct Repair: Sendable, Hashable {
        /// The 1-based number of the line that was cut.
        package var line: Int
        /// Bytes removed from the end of the file (0 when only a missing newline was added).
        package var removedBytes: Int
        /// Why the line was dropped.
        package var reason: String
    }

    /// What the journal knows about one id (the last line written for it).
    package struct Entry: Sendable, Hashable {
        /// Whether the last result of the id succeeded.
        package var isSuccess: Bool
        /// Tokens the result consumed.
        package var usage: Usage
        /// The model that answered, when the body names it.
        package var model: String?
        /// The route of the result.
        package var route: BatchResult.Route
        /// Where the line starts in the file, and its length without the newline.
        var offset: Int
        var length: Int
    }

    /// Totals over the last line of every id.
    package struct Totals: Sendable, Hashable {
        /// Ids whose last result succeeded.
        package var succeeded: Int
        /// Ids whose last result failed.
        package var failed: Int
        /// Tokens consumed by those results (failures usually count zero).
        package var usage: Usage
        /// Their cost in US dollars, over the results a price table could price (see
        /// ``Journal/totals(prices:model:)``); `nil` from ``Journal/totals``.
        package var cost: Double?
        /// Results with usage that the price table could not price.
        package var unpriced: Int = 0
    }

    private struct State {
        var fd: Int32
        var size: Int
        /// Where each id's last line is, and whether it succeeded (see ``JournalIndex``).
        var index: JournalIndex
        /// Result lines in the file (more than `index.count` when ids were run again).
        var lines: Int
        var skipped: Int = 0
        /// Of the skipped, those whose recorded line is a failure.
        var skippedFailures: Int = 0
    }

    /// The journal file.
    package let url: URL
    package let durability: Durability
    /// Whether failed ids run again on a rerun (the default) or count as finished.
    package let retryFailed: Bool
    /// What opening repaired, if anything.
    package let repair: Repair?
    private let state: Mutex<State>

    /// Opens (or creates) the journal at `url`, reading and if needed repairing it.
    ///
    /// - Throws: ``BatchError`` `.validation` with the message `"FILE:LINE: …"` for a bad line
    ///   before the last one; ``BatchError/Code/io`` when the file cannot be opened, read, locked
    ///   or repaired.
    public init(url: URL, durability: Durability = .flush, retryFailed: Bool = true) throws(BatchError) {
        self.url = url
        self.durability = durability
        self.retryFailed = retryFailed
        let path = url.path
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Journal.ioError(path, "cannot open", errno) }
        // A process being spawned shares our open files until its exec closes them (O_CLOEXEC),
        // so a lock just released may still look held for a moment: try a few times, briefly.
        var locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        var tries = 0
        while !locked, errno == EWOULDBLOCK, tries < 20 {
            tries += 1
            usleep(10_000)
            locked = flock(fd, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            let e = errno
            _ = posixClose(fd)
            if e == EWOULDBLOCK { throw BatchError(.io, "\(path): the journal is in use by another process") }
            throw Journal.ioError(path, "cannot lock", e)
        }
        do throws(BatchError) {
            let scan = try Journal.scan(fd: fd, path: path)
            var size = scan.goodEnd
            var repair: Repair?
            if let cut = scan.cut {
                guard ftruncate(fd, off_t(scan.goodEnd)) == 0 else { throw Journal.ioError(path, "cannot repair", errno) }
                repair = Repair(line: cut.line, removedBytes: scan.fileSize - scan.goodEnd, reason: cut.reason)
            } else if scan.missingNewline {
                try Journal.writeAll(fd: fd, [0x0A], path: path)
                size += 1
                repair = Repair(line: scan.lastLine, removedBytes: 0, reason: "the last line had no newline")
            }
            self.repair = repair
            self.state = Mutex(State(fd: fd, size: size, index: scan.index, lines: scan.lines))
        } catch {
            _ = posixClose(fd)
            throw error
        }
    }

    deinit {
        state.withLock { s in
            if s.fd >= 0 { _ = posixClose(s.fd) }
            s.fd = -1
        }
    }

    /// Closes the file and releases its lock. Later appends throw.
    public func close() {
        state.withLock { s in
            if s.fd >= 0 { _ = posixClose(s.fd) }
            s.fd = -1
        }
    }

    // MARK: Queries

    /// Whether `id` needs no further run: its last result succeeded, or failed and
    /// ``retryFailed`` is off.
    package func isFinished(_ id: String) -> Bool {
        state.withLock { s in s.index.position(of: id).map { s.index.successes[$0] || !retryFailed } ?? false }
    }

    /// Whether the last result of `id` succeeded; `nil` when the journal has none.
    package func succeeded(_ id: String) -> Bool? { state.withLock { s in s.index.position(of: id).map { s.index.successes[$0] } } }

    /// Whether the journal has a result for `id`.
    package func contains(_ id: String) -> Bool { state.withLock { $0.index.position(of: id) != nil } }

    /// The number of ids whose last result succeeded.
    package var succeededCount: Int {
        state.withLock { s in s.index.successes.lazy.filter { $0 }.count }
    }

    /// The number of finished ids (see ``isFinished(_:)``) that pass `filter`, without collecting them.
    package func finishedCount(where filter: (String) -> Bool) -> Int {
        state.withLock { s in
            var n = 0
            for p in 0..<s.index.count where (s.index.successes[p] || !retryFailed) && filter(s.index.id(at: p)) { n += 1 }
            return n
        }
    }

    /// The last entry of `id`, if it has one.
    ///
    /// Read back from the file (the index keeps only where the line is); `nil` also when it
    /// cannot be read.
    package func entry(for id: String) -> Entry? {
        state.withLock { s in
            guard let p = s.index.position(of: id), let line = Journal.readLine(s, at: p) else { return nil }
            return (try? JSONValue(parsing: line[...])).flatMap { try? Journal.summarize($0, offset: s.index.offsets[p], length: line.count).1 }
        }
    }

    /// The number of distinct ids in the journal.
    public var count: Int { state.withLock { $0.index.count } }

    /// The ids that need no further run (see ``isFinished(_:)``).
    package var finishedIDs: Set<String> {
        state.withLock { s in
            var ids = Set<String>()
            for p in 0..<s.index.count where s.index.successes[p] || !retryFailed { ids.insert(s.index.id(at: p)) }
            return ids
        }
    }

    /// Totals over the last line of every id: what the journal holds, across every run.
    package var totals: Totals { totals(prices: nil) }

    /// Totals over the last line of every id, with their cost: each result is priced by the model
    /// that answered (as its body names it), else by `model`.
    package func totals(prices: PriceTable?, model: String? = nil) -> Totals {
        state.withLock { s in
            var t = Totals(succeeded: 0, failed: 0, usage: .zero, cost: prices == nil ? nil : 0)
            // Usage and models are not kept in memory: each line is read back.
            for p in 0..<s.index.count {
                guard let line = Journal.readLine(s, at: p), let value = try? JSONValue(parsing: line[...]),
                    let e = try? Journal.summarize(value, offset: s.index.offsets[p], length: line.count).1
                else {
                    if s.index.successes[p] { t.succeeded += 1 } else { t.failed += 1 }
                    continue
                }
                if e.isSuccess { t.succeeded += 1 } else { t.failed += 1 }
                t.usage += e.usage
                guard let prices, e.usage.totalTokens > 0 else { continue }
                if let c = (e.model ?? model).flatMap({ prices.cost(of: e.usage, model: $0) })
                    ?? model.flatMap({ prices.cost(of: e.usage, model: $0) })
                {
                    t.cost! += c
                } else {
                    t.unpriced += 1
                }
            }
            return t
        }
    }

    /// Requests skipped as already finished by ``JournaledProcessor`` since the journal was opened.
    package var skippedCount: Int { state.withLock { $0.skipped } }

    /// Of ``skippedCount``, the requests whose recorded line is a failure (an earlier run's; a
    /// run that skips them has not made them succeed).
    package var skippedFailureCount: Int { state.withLock { $0.skippedFailures } }

    /// Counts `id` as skipped (and as a skipped failure when its recorded line failed).
    func noteSkipped(_ id: String) {
        state.withLock { s in
            s.skipped += 1
            if let position = s.index.position(of: id), !s.index.successes[position] { s.skippedFailures += 1 }
        }
    }

    /// Result lines in the file: more than ``count`` when some ids were run again (a failure
    /// followed by a later line for the same id).
    package var lineCount: Int { state.withLock { $0.lines } }

    /// Rewrites the file with only the last line of each id, in file order, so every id appears
    /// exactly once (`batchkit run` does this at the end of a run whose failures were retried).
    ///
    /// The new file is written beside the old one, synced, and renamed over it (atomic: a crash
    /// leaves either file whole); the journal stays open on the new file. Does nothing when no
    /// line is superseded.
    ///
    /// - Throws: ``BatchError/Code/io`` when the file cannot be written; the journal is then
    ///   unchanged.
    package func compact() throws(BatchError) {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let tempPath = directory + "/." + url.lastPathComponent + ".compact-\(UInt32.random(in: 0...UInt32.max))"
        try state.withLock { (s: inout State) throws(BatchError) in
            guard s.fd >= 0 else { throw BatchError(.io, "\(path): the journal is closed") }
            guard s.lines > s.index.count else { return }
            let out = open(tempPath, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
            guard out >= 0 else { throw Journal.ioError(tempPath, "cannot create", errno) }
            var newOffsets = s.index.offsets
            var size = 0
            do throws(BatchError) {
                var pending = [UInt8]()
                pending.reserveCapacity(1 << 20)
                for p in s.index.positionsByOffset() {
                    let length = Int(s.index.lengths[p])
                    var line = [UInt8](repeating: 0, count: length + 1)
                    let n = line.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress, length, off_t(s.index.offsets[p])) }
                    guard n == length else { throw Journal.ioError(path, "cannot read", errno) }
                    line[length] = 0x0A
                    newOffsets[p] = size
                    size += line.count
                    pending.append(contentsOf: line)
                    if pending.count >= 1 << 20 {
                        try Journal.writeAll(fd: out, pending, path: tempPath)
                        pending.removeAll(keepingCapacity: true)
                    }
                }
                try Journal.writeAll(fd: out, pending, path: tempPath)
                guard fsync(out) == 0 else { throw Journal.ioError(tempPath, "cannot sync", errno) }
                guard flock(out, LOCK_EX | LOCK_NB) == 0 else { throw Journal.ioError(tempPath, "cannot lock", errno) }
                guard rename(tempPath, path) == 0 else { throw Journal.ioError(path, "cannot replace", errno) }
            } catch {
                _ = posixClose(out)
                _ = unlink(tempPath)
                throw error
            }
            // Make the rename itself durable.
            let dir = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
            if dir >= 0 {
                _ = fsync(dir)
                _ = posixClose(dir)
            }
            _ = posixClose(s.fd)
            s.fd = out
            s.size = size
            s.index.replaceOffsets(newOffsets)
            s.lines = s.index.count
        }
    }

    /// The last recorded result of `id`, read back from the file.
    public func result(for id: String) throws(BatchError) -> BatchResult? {
        let path = url.path
        // Read under the lock so `close()` cannot close the descriptor in the middle.
        let bytes: [UInt8]? = try state.withLock { (s: inout State) throws(BatchError) -> [UInt8]? in
            guard let p = s.index.position(of: id) else { return nil }
            return try Journal.readLine(s, at: p, path: path)
        }
        guard let bytes else { return nil }
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes[...]) } catch {
            throw .validation("\(path): the line of \"\(id)\" is no longer valid JSON")
        }
        return try BatchResult(outputLine: value)
    }

    /// Every id's last result, in the order their last lines appear in the file. Reads the whole
    /// file; for large journals prefer iterating the file with ``JSONLReader``.
    public func results() throws(BatchError) -> [BatchResult] {
        let ids: [String] = state.withLock { s in s.index.positionsByOffset().map { s.index.id(at: $0) } }
        var out: [BatchResult] = []
        out.reserveCapacity(ids.count)
        for id in ids { if let r = try result(for: id) { out.append(r) } }
        return out
    }

    // MARK: Appending

    /// Appends `result` as one line and pushes it to storage per ``durability``. Returns once the
    /// line is written: only then may the result be reported.
    ///
    /// A result without ``BatchResult/endedAt`` is recorded as ended now.
    ///
    /// - Throws: ``BatchError/Code/io`` when the write fails (disk full, file closed); the line is
    ///   then not recorded.
    public func append(_ result: BatchResult) throws(BatchError) {
        var stamped = result
        if stamped.endedAt == nil { stamped.endedAt = Date() }
        var line = stamped.outputLineBytes()
        let length = line.count
        line.append(0x0A)
        let isSuccess = result.isSuccess
        let path = url.path
        let durability = self.durability
        try state.withLock { (s: inout State) throws(BatchError) in
            guard s.fd >= 0 else { throw BatchError(.io, "\(path): the journal is closed") }
            do throws(BatchError) {
                try Journal.writeAll(fd: s.fd, line, path: path)
            } catch {
                // A partial line would poison the file: cut it off again.
                _ = ftruncate(s.fd, off_t(s.size))
                throw error
            }
            if durability == .fsync { try Journal.syncData(fd: s.fd, path: path) }
            s.index.record(result.id, offset: s.size, length: length, isSuccess: isSuccess)
            s.size += line.count
            s.lines += 1
        }
    }

    /// Pushes every line appended so far to storage (`fdatasync(2)`, `fsync` on Darwin), whatever
    /// ``durability`` is: for a caller about to remove something a rerun would need if those lines
    /// were lost (the batch tool's ids files of jobs whose results are all here).
    ///
    /// - Throws: ``BatchError/Code/io`` when the journal is closed or the sync fails.
    package func sync() throws(BatchError) {
        let path = url.path
        try state.withLock { (s: inout State) throws(BatchError) in
            guard s.fd >= 0 else { throw BatchError(.io, "\(path): the journal is closed") }
            try Journal.syncData(fd: s.fd, path: path)
        }
    }

    /// `fdatasync(2)` (`fsync` on Darwin) of the journal's descriptor.
    ///
    /// - Throws: ``BatchError/Code/io`` naming `path` when the sync fails.
    private static func syncData(fd: Int32, path: String) throws(BatchError) {
        #if canImport(Darwin)
        let rc = fsync(fd)
        #else
        let rc = fdatasync(fd)
        #endif
        guard rc == 0 else { throw Journal.ioError(path, "cannot sync", errno) }
    }

    // MARK: Reading

    private struct Scan {
        var index = JournalIndex()
        var lines = 0
        /// End of the last good line, newline included.
        var goodEnd = 0
        var fileSize = 0
        var cut: (line: Int, reason: String)?
        var missingNewline = false
        var lastLine = 0
    }

    /// Reads the file in chunks, one line at a time; a bad line is held back until a later line
    /// shows it was not the last.
    private static func scan(fd: Int32, path: String) throws(BatchError) -> Scan {
        var scan = Scan()
        var pending: (line: Int, start: Int, reason: String)?
        var buffer = [UInt8]()
        var bufferStart = 0  // file offset of buffer[0]
        var lineNumber = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var eof = false
        var fileOffset = 0

        func handle(_ bytes: ArraySlice<UInt8>, start: Int, terminated: Bool) throws(BatchError) {
            lineNumber += 1
            var content = bytes
            while let last = content.last, last == 0x0D || last == 0x20 || last == 0x09 { content.removeLast() }
            while let first = content.first, first == 0x20 || first == 0x09 { content.removeFirst() }
            if content.isEmpty {
                if terminated, pending == nil { scan.goodEnd = start + bytes.count + 1 }
                return
            }
            if let p = pending {
                throw .validation("\(path):\(p.line): \(p.reason)")
            }
            let value: JSONValue
            do {
                value = try JSONValue(parsing: content)
            } catch {
                // Only what a torn append can leave is repairable: the start of one of our lines
                // (`{"…`), or zeros (a file system that lost the data after a power cut). Anything
                // else means this is not a journal, and truncating it would destroy data.
                let torn = content.first == UInt8(ascii: "{") || content.allSatisfy { $0 == 0 }
                guard torn else {
                    throw .validation("\(path):\(lineNumber): not valid JSON and not a journal line cut by a crash (\(error))")
                }
                let reason = terminated ? "not valid JSON (\(error))" : "cut short (no newline, \(error))"
                pending = (lineNumber, start, reason)
                return
            }
            // Valid JSON that is not an output line is never a torn write: an error wherever it is.
            let summary: (String, Entry)
            do throws(BatchError) {
                summary = try summarize(value, offset: start, length: bytes.count)
            } catch {
                throw .validation("\(path):\(lineNumber): not a batch output line: \(error.message)", field: error.field)
            }
            let (id, entry) = summary
            scan.index.record(id, offset: entry.offset, length: entry.length, isSuccess: entry.isSuccess)
            scan.lines += 1
            scan.lastLine = lineNumber
            if terminated {
                scan.goodEnd = start + bytes.count + 1
            } else {
                scan.goodEnd = start + bytes.count
                scan.missingNewline = true
            }
        }

        while !eof {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(path, "cannot read", errno)
            }
            if n == 0 { eof = true; break }
            fileOffset += n
            // Only the new bytes can hold newlines: the carried-over tail of a long line was
            // searched already.
            var i = buffer.count
            buffer.append(contentsOf: chunk[0..<n])
            var lineStart = 0
            while let newline = buffer[i...].firstIndex(of: 0x0A) {
                try handle(buffer[lineStart..<newline], start: bufferStart + lineStart, terminated: true)
                lineStart = newline + 1
                i = lineStart
            }
            buffer.removeFirst(lineStart)
            bufferStart += lineStart
        }
        if !buffer.isEmpty {
            try handle(buffer[...], start: bufferStart, terminated: false)
        }
        scan.fileSize = fileOffset
        if let p = pending {
            scan.cut = (p.line, p.reason)
            scan.goodEnd = p.start
            scan.missingNewline = false
        }
        return scan
    }

    /// The id and entry of one parsed line.
    static func summarize(_ value: JSONValue, offset: Int, length: Int) throws(BatchError) -> (String, Entry) {
        // Restoring the whole result keeps one definition of the format; the cost (a body parse
        // per line) is paid once per open.
        let result = try BatchResult(outputLine: value)
        return (result.id, Entry(
            isSuccess: result.isSuccess, usage: result.usage, model: result.response?.model, route: result.route,
            offset: offset, length: length))
    }

    /// The last line of the id at `position` (without its newline), read from the file.
    private static func readLine(_ s: State, at position: Int, path: String) throws(BatchError) -> [UInt8] {
        guard s.fd >= 0 else { throw BatchError(.io, "\(path): the journal is closed") }
        let length = Int(s.index.lengths[position])
        var bytes = [UInt8](repeating: 0, count: length)
        let n = bytes.withUnsafeMutableBytes { pread(s.fd, $0.baseAddress, length, off_t(s.index.offsets[position])) }
        guard n == length else { throw Journal.ioError(path, "cannot read", errno) }
        return bytes
    }

    /// ``readLine(_:at:path:)``, `nil` when it cannot be read.
    private static func readLine(_ s: State, at position: Int) -> [UInt8]? {
        try? readLine(s, at: position, path: "")
    }

    private static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws(BatchError) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(path, "cannot write", errno)
            }
            written += n
        }
    }

    private static func ioError(_ path: String, _ what: String, _ code: Int32) -> BatchError {
        BatchError(.io, "\(path): \(what): \(String(cString: strerror(code)))")
    }
}

/// `close(2)`, out of reach of ``Journal/close()``'s name.
private func posixClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    return Glibc.close(fd)
    #elseif canImport(Musl)
    return Musl.close(fd)
    #else
    return Darwin.close(fd)
    #endif
}

extension BatchError.Code {
    /// Reading or writing a local file (the journal) failed.
    public static let io = BatchError.Code(rawValue: "io")
}
