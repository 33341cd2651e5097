import BatchKit
import Foundation

extension RunCommand {
    /// Where native and hybrid runs spool their chunks: `OUT.jsonl.spool/` beside the output (the
    /// journal), on the disk that holds the results rather than the temporary directory. Each run
    /// makes a directory of its own inside; the library removes each chunk's file once its job's
    /// results are in and the run's directory when the run ends. A run killed with `kill -9`
    /// leaves its directory behind: the next run (which holds the journal's lock, so no other run
    /// of this output is using it) removes it before it spools anything.
    static func spoolDirectory(outputPath: String) throws -> URL {
        let directory = URL(fileURLWithPath: outputPath + ".spool", isDirectory: true)
        let manager = FileManager.default
        for name in (try? manager.contentsOfDirectory(atPath: directory.path)) ?? [] where name.hasPrefix("batchkit-spool-") {
            do {
                try manager.removeItem(at: directory.appendingPathComponent(name))
            } catch {
                throw CommandFailure("\(directory.path)/\(name): cannot remove what an earlier run spooled: \(error.localizedDescription)")
            }
        }
        return directory
    }

    /// Removes the spool directory once nothing is left in it (it is kept when it holds anything
    /// else, e.g. files of the user's).
    static func removeSpoolDirectoryIfEmpty(_ directory: URL) {
        guard let left = try? FileManager.default.contentsOfDirectory(atPath: directory.path), left.isEmpty else { return }
        try? FileManager.default.removeItem(at: directory)
    }
}
