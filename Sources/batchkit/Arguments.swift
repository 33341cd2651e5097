import Foundation

/// A command-line usage mistake: printed as one line on stderr, exit code 2.
struct UsageError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Which `--names` a subcommand accepts: options take a value (`--port 8080` or `--port=8080`),
/// flags do not (`--verbose`). `--help` / `-h` is always accepted.
struct ArgumentSpec {
    var options: Set<String> = []
    var flags: Set<String> = []
    /// Whether positional arguments are allowed, and how many at most (`nil`: any number).
    var maxPositional: Int? = 0
}

/// Parsed arguments of one subcommand.
///
/// ```swift
/// let args = try Arguments(["--port", "8080", "--verbose", "in.jsonl"],
///                          spec: ArgumentSpec(options: ["port"], flags: ["verbose"], maxPositional: 1))
/// let port = try args.int("port") ?? 8080
/// ```
struct Arguments {
    private(set) var positional: [String] = []
    private(set) var options: [String: String] = [:]
    private(set) var flags: Set<String> = []

    /// Whether `--help` or `-h` was given.
    var wantsHelp: Bool { flags.contains("help") }

    init(_ arguments: [String], spec: ArgumentSpec) throws {
        var index = 0
        var onlyPositional = false
        while index < arguments.count {
            let arg = arguments[index]
            index += 1
            if onlyPositional || !arg.hasPrefix("-") || arg == "-" {
                positional.append(arg)
                continue
            }
            if arg == "--" {
                onlyPositional = true
                continue
            }
            if arg == "-h" || arg == "--help" {
                flags.insert("help")
                continue
            }
            guard arg.hasPrefix("--") else { throw UsageError("unknown option '\(arg)'") }
            var name = String(arg.dropFirst(2))
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if spec.flags.contains(name) {
                guard inlineValue == nil else { throw UsageError("option '--\(name)' takes no value") }
                flags.insert(name)
            } else if spec.options.contains(name) {
                if let inlineValue {
                    options[name] = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("option '--\(name)' needs a value") }
                    options[name] = arguments[index]
                    index += 1
                }
            } else {
                throw UsageError("unknown option '--\(name)'")
            }
        }
        if let max = spec.maxPositional, positional.count > max, !wantsHelp {
            throw UsageError(max == 0 ? "unexpected argument '\(positional[0])'" : "too many arguments (at most \(max))")
        }
    }

    /// Whether a flag was given.
    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// The value of an option, if given.
    func string(_ name: String) -> String? { options[name] }

    /// An integer option within `range`, if given.
    func int(_ name: String, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int? {
        guard let text = options[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError("option '--\(name)' needs an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    /// A non-negative number option, if given.
    func double(_ name: String) throws -> Double? {
        guard let text = options[name] else { return nil }
        guard let value = Double(text), value.isFinite, value >= 0 else {
            throw UsageError("option '--\(name)' needs a non-negative number, got '\(text)'")
        }
        return value
    }
}

/// One `batchkit` subcommand. Add a type conforming to this and list it in `main.swift`.
protocol Subcommand: Sendable {
    /// The word that selects it (`emulator`).
    static var name: String { get }
    /// One line for `batchkit --help`.
    static var summary: String { get }
    /// The full help text (`batchkit NAME --help`).
    static var usage: String { get }
    /// The options and flags it accepts.
    static var spec: ArgumentSpec { get }
    /// Runs it; returns the process exit code. Throw ``UsageError`` for bad arguments.
    static func run(_ arguments: Arguments) async throws -> Int32
}

/// Writes one line to standard error (above the progress line when one is shown: see ``TerminalDisplay``).
func printError(_ line: String) {
    TerminalDisplay.shared.message(line)
}

/// Writes one line to standard output and flushes it (so a parent process sees it at once).
func printLine(_ line: String) {
    TerminalDisplay.shared.aside { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
}
