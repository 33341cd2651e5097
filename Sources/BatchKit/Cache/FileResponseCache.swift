public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A ``ResponseCache`` on disk: one small JSON file per key under a directory, safe to share
/// between concurrent runs and processes, bounded in total size.
///
/// ```swift
/// let cache = try FileResponseCache(directory: URL(fileURLWithPath: ".batchkit-cache"), maxBytes: 256 << 20)
/// let processor = ConcurrentProcessor(client: client).cached(cache, provider: "openai")
/// ```
///
/// **Layout.** `DIR/ab/abcdef….json`, where `abcdef…` is the key's digest and `ab` its first two
/// hex digits. Each file holds the answer as one batch output line (the format of `batchkit run
/// --output`) inside `{"format":"batchkit-response-cache","version":1,"key":…,"stored_at":…,"line":…}`.
///
/// **Concurrency.** An answer is written to a temporary file in `DIR/tmp/` and renamed into place:
/// `rename(2)` is atomic, so a reader sees a whole entry or none, and two runs storing the same key
/// leave one whole entry (the last). Nothing is locked; any number of processes may share `DIR`.
/// A file that cannot be read or parsed (a half-written file left by a machine crash on a file
/// system without ordered renames) is a miss and is removed.
///
/// **Bounds.** The entries' total size is kept at most `maxBytes`: when a store takes this process's
/// count of the directory over it, the directory is scanned and the entries **least recently used**
/// (by file modification time, which a store sets and a hit refreshes) are removed until the total
/// is at most 90 % of `maxBytes`. Each process sharing the directory enforces the bound when it
/// stores, so between its stores the directory can exceed it by what the others wrote since they
/// last checked. An answer larger than `maxBytes` is not stored. Temporary files older than an hour
/// (from a writer that was killed) are removed by the same scan.
///
/// Failures are never errors of the run: an unreadable entry is a miss, a write that fails is
/// dropped.
public final class FileResponseCache: ResponseCache {
    /// Where the entries are.
    public let directory: URL
    /// The bound on the entries' total size, in bytes.
    public let maxBytes: Int

    /// What a store and an eviction share in this process.
    private struct State {
        /// This process's running count of the directory's size (`nil` until first counted).
        var bytes: Int?
        /// An eviction scan is under way (one at a time per cache object).
        var evicting = false
    }

    private let state = Mutex(State())
    /// The time stamped on stored and hit entries (injectable so eviction order is testable).
    private let now: @Sendable () -> Date

    /// The default bound: 1 GiB (the default of ``init(directory:maxBytes:)``).
    package static let defaultMaxBytes = 1 << 30

    /// A cache in `directory` (created if missing), holding at most `maxBytes` of answers (1 GiB
    /// by default).
    ///
    /// - Throws: ``BatchError/Code/io`` when the directory cannot be created.
    public convenience init(directory: URL, maxBytes: Int = 1 << 30) throws(BatchError) {
        try self.init(directory: directory, maxBytes: maxBytes, now: { Date() })
    }

    /// A cache whose entries are stamped with `now()` (tests).
    package init(directory: URL, maxBytes: Int, now: @escaping @Sendable () -> Date) throws(BatchError) {
        self.directory = directory
        self.maxBytes = max(0, maxBytes)
        self.now = now
        do {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        } catch {
            throw BatchError(.io, "cannot create the response cache directory \(directory.path): \(error.localizedDescription)")
        }
    }

    /// The file of an entry.
    package func fileURL(for key: ResponseCacheKey) -> URL {
        directory.appendingPathComponent(String(key.digest.prefix(2)), isDirectory: true)
            .appendingPathComponent(key.digest + ".json")
    }

    public func lookup(_ key: ResponseCacheKey) async -> ModelResponse? {
        let url = fileURL(for: key)
        guard let data = try? Data(contentsOf: url) else { return nil }
        guard let entry = try? JSONValue(parsing: data), entry["key"]?.stringValue == key.digest,
            let line = entry["line"], let result = try? BatchResult(outputLine: line), let response = result.response
        else {
            try? FileManager.default.removeItem(at: url)
            return nil
        }
        Self.setModificationTime(of: url.path, to: now())  // recently used: evicted last
        return response
    }

    public func store(_ response: ModelResponse, for key: ResponseCacheKey) async {
        let stamp = now()
        let result = BatchResult(id: "cache", outcome: .success(response), attempts: 1, usage: response.usage)
        let entry: JSONValue = [
            "format": "batchkit-response-cache", "version": 1, "key": .string(key.digest),
            "stored_at": .int(Int((stamp.timeIntervalSince1970 * 1000).rounded())), "line": result.outputLine(),
        ]
        let data = entry.serialized()
        guard data.count <= maxBytes else { return }
        let url = fileURL(for: key)
        let temp = directory.appendingPathComponent("tmp", isDirectory: true)
            .appendingPathComponent("\(key.digest).\(getpid()).\(UUID().uuidString)")
        do {
            try data.write(to: temp)
            Self.setModificationTime(of: temp.path, to: stamp)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard rename(temp.path, url.path) == 0 else {
                try? FileManager.default.removeItem(at: temp)
                return
            }
        } catch {
            try? FileManager.default.removeItem(at: temp)
            return
        }
        let mustEvict = state.withLock { s -> Bool in
            guard let bytes = s.bytes else { return !s.evicting }  // first store: count the directory
            s.bytes = bytes + data.count
            return bytes + data.count > maxBytes && !s.evicting
        }
        if mustEvict { evict() }
    }

    /// The entries' total size now, in bytes (a scan of the directory).
    package func currentSize() -> Int { scan().reduce(0) { $0 + $1.size } }

    /// Counts the directory and, when it is over the bound, removes the least recently used
    /// entries until it is at most 90 % of `maxBytes`.
    private func evict() {
        state.withLock { $0.evicting = true }
        var entries = scan()
        var total = entries.reduce(0) { $0 + $1.size }
        if total > maxBytes {
            let target = maxBytes / 10 * 9
            entries.sort { ($0.modified, $0.path) < ($1.modified, $1.path) }
            for entry in entries {
                guard total > target else { break }
                if unlink(entry.path) == 0 || errno == ENOENT { total -= entry.size }
            }
        }
        state.withLock { s in
            s.bytes = total
            s.evicting = false
        }
    }

    private struct Entry {
        var path: String
        var size: Int
        var modified: Double
    }

    /// Every entry with its size and modification time; stale temporary files are removed.
    private func scan() -> [Entry] {
        let fm = FileManager.default
        var entries: [Entry] = []
        let root = directory.path
        let staleBefore = now().timeIntervalSince1970 - 3600
        for name in (try? fm.contentsOfDirectory(atPath: root)) ?? [] {
            let dir = root + "/" + name
            if name == "tmp" {
                for t in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                    if let s = Self.fileStatus(dir + "/" + t), s.modified < staleBefore { unlink(dir + "/" + t) }
                }
                continue
            }
            guard name.utf8.count == 2 else { continue }
            for file in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where file.hasSuffix(".json") {
                let path = dir + "/" + file
                if let s = Self.fileStatus(path) { entries.append(Entry(path: path, size: s.size, modified: s.modified)) }
            }
        }
        return entries
    }

    private static func fileStatus(_ path: String) -> (size: Int, modified: Double)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        #if canImport(Darwin)
        let m = st.st_mtimespec
        #else
        let m = st.st_mtim
        #endif
        return (Int(st.st_size), Double(m.tv_sec) + Double(m.tv_nsec) / 1e9)
    }

    private static func setModificationTime(of path: String, to date: Date) {
        let t = date.timeIntervalSince1970
        var times = [
            timeval(tv_sec: Int(t.rounded(.down)), tv_usec: Int((t - t.rounded(.down)) * 1e6)),
            timeval(tv_sec: Int(t.rounded(.down)), tv_usec: Int((t - t.rounded(.down)) * 1e6)),
        ]
        _ = utimes(path, &times)
    }
}
