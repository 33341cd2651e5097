import BatchKit
import BatchKitTesting
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `batchkit emulator`: serves the provider emulator on a local port until SIGINT or SIGTERM.
enum EmulatorCommand: Subcommand {
    static let name = "emulator"
    static let summary = "serve the OpenAI/Anthropic/Gemini emulator on a local port"
    static let usage = """
        usage: batchkit emulator [--port N] [--host 127.0.0.1] [--latency-ms N] [--batch-seconds N]
                                 [--rpm N] [--tpm N] [--api-key K]

        Serves OpenAI, Anthropic and Gemini (real-time and batch endpoints) on one port until
        interrupted (SIGINT or SIGTERM).

          --port N            port to listen on (default 8080; 0 picks a free one)
          --host ADDR         IPv4 address to bind (default 127.0.0.1)
          --latency-ms N      added to every model call (default 0)
          --batch-seconds N   how long a batch takes to complete (default 0: at once)
          --rpm N             requests per minute allowed per key (default unlimited)
          --tpm N             tokens per minute allowed per key (default unlimited)
          --api-key K         the only key accepted (default: any non-empty key)
        """
    static let spec = ArgumentSpec(
        options: ["port", "host", "latency-ms", "batch-seconds", "rpm", "tpm", "api-key"], flags: [])

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let port = try arguments.int("port", in: 0...65535) ?? 8080
        let host = arguments.string("host") ?? "127.0.0.1"
        var configuration = EmulatorConfiguration()
        if let ms = try arguments.int("latency-ms", in: 0...3_600_000) { configuration.latency = .milliseconds(ms) }
        if let seconds = try arguments.double("batch-seconds") { configuration.batchDuration = .seconds(seconds) }
        configuration.requestsPerMinute = try arguments.int("rpm", in: 1...Int.max)
        configuration.tokensPerMinute = try arguments.int("tpm", in: 1...Int.max)
        if let key = arguments.string("api-key") {
            guard !key.isEmpty else { throw UsageError("option '--api-key' needs a non-empty value") }
            configuration.requiredAPIKey = key
        }

        // Route SIGINT/SIGTERM to dispatch sources before anything can be interrupted.
        let (signals, signalContinuation) = AsyncStream<Int32>.makeStream()
        let queue = DispatchQueue(label: "batchkit.emulator.signals")
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { signalContinuation.yield(number) }
            source.resume()
            return source
        }

        let emulator = ProviderEmulator(configuration: configuration)
        let server = try await EmulatorServer.start(emulator: emulator, host: host, port: port)
        printLine("BatchKit emulator listening on \(server.baseURL.absoluteString)")

        var iterator = signals.makeAsyncIterator()
        let received = await iterator.next()
        printError("batchkit emulator: \(received == SIGTERM ? "SIGTERM" : "SIGINT") received, shutting down")
        await server.shutdown()
        for source in sources { source.cancel() }
        return 0
    }
}
