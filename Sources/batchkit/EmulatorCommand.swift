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
                                 [--batch-expiry-seconds N] [--rpm N] [--tpm N] [--api-key K] [--tls-cert PEM --tls-key PEM]
                                 [--faults LIST] [--fault-rate P] [--seed N] [--slow-ms N]
                                 [--billing-file FILE]

        Serves OpenAI, Anthropic and Gemini (real-time and batch endpoints) on one port until
        interrupted (SIGINT or SIGTERM).

          --port N            port to listen on (default 8080; 0 picks a free one)
          --host ADDR         IPv4 address to bind (default 127.0.0.1)
          --latency-ms N      added to every model call (default 0)
          --batch-seconds N   how long a batch takes to complete (default 0: at once)
          --batch-expiry-seconds N
                              batches expire N seconds after creation, with what is unfinished
                              reported expired (default: 24 hours, as the providers)
          --rpm N             requests per minute allowed per key (default unlimited)
          --tpm N             tokens per minute allowed per key (default unlimited)
          --api-key K         the only key accepted (default: any non-empty key)

        Breaking things on request (to rehearse failures):
          --faults LIST       faults to inject on every route, comma-separated: 500, 503, 429,
                              reset (connection closed), cut (half the body), slow (answer held
                              back), or all (default all when --fault-rate is given)
          --fault-rate P      probability in 0...1 that one call meets a fault (default 0.1 when
                              --faults is given). Half of the 500, 503 and reset faults hit after
                              the request took effect (a job created, only the answer lost)
          --seed N            seed of the fault schedule and of ids (default 42)
          --slow-ms N         how long a slow answer is held back (default 1500)
          --billing-file FILE at exit, write per custom id the number of batch jobs that ran it
                              (JSON; also served at GET /_emulator/billing)
          --tls-cert PEM      serve https with this certificate chain (needs --tls-key;
                              Linux, with the system's libssl.so.3)
          --tls-key PEM       the certificate's private key
        """
    static let spec = ArgumentSpec(
        options: [
            "port", "host", "latency-ms", "batch-seconds", "batch-expiry-seconds", "rpm", "tpm", "api-key", "faults", "fault-rate", "seed", "slow-ms",
            "billing-file", "tls-cert", "tls-key",
        ], flags: [])

    static func run(_ arguments: Arguments) async throws -> Int32 {
        let port = try arguments.int("port", in: 0...65535) ?? 8080
        let host = arguments.string("host") ?? "127.0.0.1"
        var configuration = EmulatorConfiguration()
        if let ms = try arguments.int("latency-ms", in: 0...3_600_000) { configuration.latency = .milliseconds(ms) }
        if let seconds = try arguments.double("batch-seconds") { configuration.batchDuration = .seconds(seconds) }
        if let seconds = try arguments.double("batch-expiry-seconds") {
            guard seconds > 0 else { throw UsageError("option '--batch-expiry-seconds' needs a positive number of seconds") }
            configuration.batchExpiry = .seconds(seconds)
        }
        configuration.requestsPerMinute = try arguments.int("rpm", in: 1...Int.max)
        configuration.tokensPerMinute = try arguments.int("tpm", in: 1...Int.max)
        if let key = arguments.string("api-key") {
            guard !key.isEmpty else { throw UsageError("option '--api-key' needs a non-empty value") }
            configuration.requiredAPIKey = key
        }
        configuration.faultSchedule = try faultSchedule(arguments)
        if let seed = arguments.string("seed") {
            guard let value = UInt64(seed) else {
                throw UsageError("option '--seed' needs a non-negative integer, got '\(seed)'")
            }
            configuration.seed = value
        }
        let billingFile = arguments.string("billing-file").map { URL(fileURLWithPath: $0) }

        // Route SIGINT/SIGTERM to a stream before anything can be interrupted.
        let signals = SignalPipe.install([SIGINT, SIGTERM])

        let certificate = arguments.string("tls-cert")
        let key = arguments.string("tls-key")
        guard (certificate == nil) == (key == nil) else { throw UsageError("options '--tls-cert' and '--tls-key' go together") }

        let emulator = ProviderEmulator(configuration: configuration)
        let shutdown: @Sendable () async -> Void
        if let certificate, let key {
            #if canImport(Glibc)
            let server = try await TLSEmulatorServer.start(
                emulator: emulator, identity: TLSServerIdentity(certificateChainFile: certificate, privateKeyFile: key), host: host,
                port: port)
            printLine("BatchKit emulator listening on \(server.baseURL.absoluteString)")
            shutdown = {
                await server.shutdown()
                printError("batchkit emulator: served \(server.requestsServed) requests over \(server.connectionsAccepted) connections")
            }
            #else
            throw UsageError("option '--tls-cert' is supported on Linux only")
            #endif
        } else {
            let server = try await EmulatorServer.start(emulator: emulator, host: host, port: port)
            printLine("BatchKit emulator listening on \(server.baseURL.absoluteString)")
            shutdown = {
                await server.shutdown()
                printError("batchkit emulator: served \(server.requestsServed) requests over \(server.connectionsAccepted) connections")
            }
        }

        var iterator = signals.makeAsyncIterator()
        let received = await iterator.next()
        printError("batchkit emulator: \(received == SIGTERM ? "SIGTERM" : "SIGINT") received, shutting down")
        await shutdown()
        if let billingFile {
            do {
                try emulator.billing.json.serialized().write(to: billingFile, options: .atomic)
            } catch {
                throw CommandFailure("\(billingFile.path): could not write the billing file (\(error))")
            }
        }
        return 0
    }

    /// `--faults`, `--fault-rate` and `--slow-ms` as a schedule (`nil` when neither of the first two is given).
    static func faultSchedule(_ arguments: Arguments) throws -> EmulatorFaultSchedule? {
        let list = arguments.string("faults")
        let rateText = arguments.string("fault-rate")
        let slow = try arguments.int("slow-ms", in: 0...3_600_000)
        guard list != nil || rateText != nil else {
            if slow != nil { throw UsageError("--slow-ms needs --faults or --fault-rate") }
            return nil
        }
        var kinds = Set(EmulatorFaultSchedule.Kind.allCases)
        if let list {
            guard let parsed = EmulatorFaultSchedule.Kind.parse(list) else {
                throw UsageError("option '--faults' takes a comma-separated list of 500, 503, 429, reset, cut, slow or all, got '\(list)'")
            }
            kinds = parsed
        }
        var rate = 0.1
        if let rateText {
            guard let value = Double(rateText), value.isFinite, (0...1).contains(value) else {
                throw UsageError("option '--fault-rate' needs a probability in 0...1, got '\(rateText)'")
            }
            rate = value
        }
        var schedule = EmulatorFaultSchedule(rate: rate, kinds: kinds)
        if let slow { schedule.slowAnswer = .milliseconds(slow) }
        return schedule
    }
}
