import BatchKit
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RunCommand {
    /// `batchkit run` under signal handling: the first SIGINT or SIGTERM cancels the run's work —
    /// no new requests; real-time requests in flight cancelled and left out of the output (the
    /// rerun sends them); native jobs left running, recorded in `OUT.jsonl.jobs.json` — then the
    /// output is closed, the summary and how to resume are printed, and the exit status is 130
    /// (SIGINT) or 143 (SIGTERM). A second signal exits at once (see ``Interruption``).
    static func run(_ arguments: Arguments) async throws -> Int32 {
        let interruption = Interruption.install()
        let work = Task { try await execute(arguments, interruption: interruption) }
        interruption.onInterrupt { work.cancel() }
        return try await work.value
    }

    /// Tells what an interrupted run left and how to go on.
    static func printResumeHint(signal: Int32, mode: Mode, outputPath: String, journal: Journal, jobFile: JobFile?) {
        var lines = ["batchkit run: stopped by \(SignalPipe.name(signal)); \(journal.count) result(s) are recorded in \(outputPath)"]
        if mode == .realtime || mode == .hybrid {
            lines.append("  requests that were in flight were cancelled and are not recorded; the rerun sends them")
        }
        if mode != .realtime, let jobFile {
            let open = jobFile.entries.filter { entry in
                (try? jobFile.contains(in: entry) { !journal.contains($0) }) ?? true
            }.map(\.id)
            if !open.isEmpty {
                lines.append(
                    "  \(open.count) batch job(s) left running, recorded in \(jobFile.url.path): \(open.joined(separator: ", "))")
            }
        }
        lines.append("  to resume, run the same command again: \(commandLine())")
        for line in lines { printError(line) }
    }

    /// The command line this process was started with, quoted for a POSIX shell where needed.
    static func commandLine() -> String {
        let words = ["batchkit"] + CommandLine.arguments.dropFirst()
        return words.map { word in
            let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
            return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}

extension Processor {
    /// This processor, leaving out the results a signal cut short (see ``StoppingProcessor``).
    func stopping(on interruption: Interruption) -> StoppingProcessor<Self> {
        StoppingProcessor(base: self, interruption: interruption)
    }
}

/// Passes a processor's events through, except the `.cancelled` results of requests that a
/// signal cut short: those were not answered, so they must not reach the journal (a failed
/// `cancelled` line would make a plain rerun skip them); the rerun sends them again.
struct StoppingProcessor<Base: Processor>: Processor {
    let base: Base
    let interruption: Interruption

    func processAsync(_ requests: some AsyncSequence<BatchRequest, Never> & Sendable) -> BatchEventStream {
        let base = self.base
        let interruption = self.interruption
        return BatchEventStream { sink in
            await sink.relay(base.processAsync(requests)) { event in
                if case .item(let result) = event, result.error?.code == .cancelled, interruption.signal != nil {
                    return .drop
                }
                return .pass
            }
        }
    }
}
