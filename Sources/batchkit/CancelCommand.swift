import BatchKit
import Foundation

/// `batchkit cancel`: asks the provider to cancel native batch jobs.
enum CancelCommand: Subcommand {
    static let name = "cancel"
    static let summary = "cancel native batch jobs"
    static let usage = """
        usage: batchkit cancel JOB... [--provider P] [--base-url URL]

        Asks the provider to cancel each job and prints its state afterwards. Results finished before
        the cancellation can still be collected with 'batchkit results'.

        \(ProviderOptions.helpText)
        """
    static let spec = ArgumentSpec(options: ProviderOptions.optionNames, flags: [], maxPositional: nil)

    static func run(_ arguments: Arguments) async throws -> Int32 {
        try await JobTable.printEach(arguments) { native, id in try await native.cancel(id) }
    }
}
