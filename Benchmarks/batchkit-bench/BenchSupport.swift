import BatchKit
import Foundation

/// Peak resident set size of this process so far, in MiB (VmHWM from /proc/self/status).
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
        return kb / 1024
    }
    return 0
}

/// CPU time (user + system) used by this process so far, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Prints one JSON line with a scenario's figures on stdout.
func printJSONLine(_ value: JSONValue) {
    FileHandle.standardOutput.write(Data((value.jsonString + "\n").utf8))
}

/// Progress chatter, on stderr so stdout stays one JSON line per scenario.
func chatter(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// The value of `--name` among the arguments, or else of environment variable `env`.
func benchOption(_ name: String, env: String) -> String? {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count { return args[i + 1] }
    return ProcessInfo.processInfo.environment[env]
}
