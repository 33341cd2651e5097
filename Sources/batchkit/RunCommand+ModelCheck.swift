import BatchKit
import Foundation

extension RunCommand {
    /// Before a native or hybrid run creates its first job: asks the provider's models endpoint
    /// about the first request's model (``ModelCheck``), so that a wrong key or an unknown model
    /// fails at once instead of in every line of a paid job. On with the breaker
    /// (`--max-consecutive-failures`, 0 turns both off).
    ///
    /// - Returns: the run's error when the provider refused (code `systematicFailure`: exit
    ///   status 5); `nil` otherwise. A check that could not be made (network, 5xx) is a warning:
    ///   it never blocks a run.
    static func checkFirstModel(_ requests: BatchRequestFileReader.Requests, backend: any BatchBackend) async -> BatchError? {
        var iterator = requests.makeAsyncIterator()
        guard let first = await iterator.next(), let model = first.model else { return nil }
        switch await ModelCheck.check(backend, model: model) {
        case .accepted, .inconclusive(nil):
            return nil
        case .refused(let error):
            return error
        case .inconclusive(let error?):
            printError(
                "batchkit run: warning: could not check the model \"\(model)\" with the provider before creating jobs "
                    + "(\(error.message)); going on")
            return nil
        }
    }
}
