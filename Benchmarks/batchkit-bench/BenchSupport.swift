import BatchKit
import Foundation

/// Peak resident set size of this process in MB (`VmHWM` in `/proc/self/status`); 0 where
/// that file does not exist.
func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        return kilobytes / 1024
    }
    return 0
}

/// Prints one JSON object on one line of stdout: `scenario` first, then the other keys sorted.
func printJSONLine(_ fields: [String: JSONValue]) {
    var keys = fields.keys.sorted()
    if let i = keys.firstIndex(of: "scenario") { keys.insert(keys.remove(at: i), at: 0) }
    let body = keys.map { key in JSONValue.string(key).jsonString + ":" + fields[key]!.jsonString }
    FileHandle.standardOutput.write(Data(("{" + body.joined(separator: ",") + "}\n").utf8))
}

/// Writes chatter to stderr (stdout carries only the JSON line).
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// A number rounded to `places` decimals, as JSON.
func rounded(_ value: Double, _ places: Int = 1) -> JSONValue {
    let scale = pow(10, Double(places))
    return .double((value * scale).rounded() / scale)
}

/// The value of `--name` in the arguments after the scenario, or of environment variable `env`.
func benchOption(_ name: String, env: String) -> String? {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count { return args[i + 1] }
    return ProcessInfo.processInfo.environment[env]
}
