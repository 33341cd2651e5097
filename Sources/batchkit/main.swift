import Foundation

/// The `batchkit` command-line tool: a dispatcher over subcommands.
enum BatchKitTool {
    /// Every subcommand; add new ones here.
    static let subcommands: [any Subcommand.Type] = [
        RunCommand.self,
        SubmitCommand.self,
        StatusCommand.self,
        ResultsCommand.self,
        CancelCommand.self,
        ListCommand.self,
        EstimateCommand.self,
        ReportCommand.self,
        DemoCommand.self,
        EmulatorCommand.self,
    ]

    static var usage: String {
        var text = "usage: batchkit <subcommand> [options]\n\nsubcommands:\n"
        let width = subcommands.map { $0.name.count }.max() ?? 0
        for command in subcommands {
            text += "  \(command.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(command.summary)\n"
        }
        text += "\nRun 'batchkit <subcommand> --help' for its options."
        return text
    }

    /// Parses the command line, runs the subcommand, returns the exit code: 0 success,
    /// 1 failure, 2 usage error (one line on stderr).
    static func run(_ argv: [String]) async -> Int32 {
        let args = Array(argv.dropFirst())
        guard let name = args.first else {
            printError(usage)
            return 2
        }
        if name == "--help" || name == "-h" || name == "help" {
            printLine(usage)
            return 0
        }
        guard let command = subcommands.first(where: { $0.name == name }) else {
            printError("batchkit: unknown subcommand '\(name)' (run 'batchkit --help')")
            return 2
        }
        do {
            let parsed = try Arguments(Array(args.dropFirst()), spec: command.spec)
            if parsed.wantsHelp {
                printLine(command.usage)
                return 0
            }
            return try await command.run(parsed)
        } catch let error as UsageError {
            printError("batchkit \(name): \(error.message) (run 'batchkit \(name) --help')")
            return 2
        } catch {
            printError("batchkit \(name): \(error)")
            return 1
        }
    }
}

exit(await BatchKitTool.run(CommandLine.arguments))
