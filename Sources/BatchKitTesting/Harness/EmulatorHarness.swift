public import BatchKit
public import Foundation

/// How a test reaches the emulator. Tests that exercise a client or processor run over every
/// wire (`@Test(arguments: Wire.allCases)`): the same answers must come through the in-process
/// transport and through both HTTP transports on a loopback socket.
public enum Wire: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The emulator's in-process transport (no sockets).
    case inProcess
    /// `URLSessionTransport` to an ``EmulatorServer`` on a loopback port.
    case loopback
    /// `PlainHTTPTransport` (the lean HTTP/1.1 client) to an ``EmulatorServer`` on a loopback port.
    case plainLoopback

    public var description: String { rawValue }
}

/// An emulator on a ``ManualClock``, reachable over one ``Wire``: the shared fixture of the
/// provider test suites.
///
/// ```swift
/// try await withEmulatorHarness(.plainLoopback, .init(batchDuration: .seconds(60))) { h in
///     let client = OpenAIClient(apiKey: "sk-test", baseURL: h.root.appendingPathComponent("v1"), transport: h.transport)
///     ...
/// }
/// ```
public struct EmulatorHarness: Sendable {
    /// The emulator answering every request.
    public let emulator: ProviderEmulator
    /// The emulator's clock (batch progress, rate windows, latency), also for the code under test.
    public let clock: ManualClock
    /// The transport to the emulator over the chosen wire.
    public let transport: any HTTPTransport
    /// The emulator's root URL (`http://host:port`, or a placeholder in process), without `/v1`.
    public let root: URL
    /// The wire the transport uses.
    public let wire: Wire
    /// The loopback server, when the wire uses one.
    public let server: EmulatorServer?

    /// The placeholder root of the in-process wire (never resolved).
    public static let inProcessRoot = URL(string: "http://emulator.invalid")!

    /// An emulator with `configuration` on a fresh manual clock, reached in process (nothing to
    /// shut down).
    public static func inProcess(_ configuration: EmulatorConfiguration = .init()) -> EmulatorHarness {
        let clock = ManualClock()
        let emulator = ProviderEmulator(configuration: configuration, clock: clock)
        return EmulatorHarness(
            emulator: emulator, clock: clock, transport: emulator.transport, root: inProcessRoot, wire: .inProcess, server: nil)
    }

    /// Starts an emulator with `configuration` on a fresh manual clock, reachable over `wire`.
    /// Call ``shutdown()`` when done (``withEmulatorHarness(_:_:_:)`` does).
    public static func start(_ wire: Wire, _ configuration: EmulatorConfiguration = .init()) async throws -> EmulatorHarness {
        switch wire {
        case .inProcess:
            return inProcess(configuration)
        case .loopback, .plainLoopback:
            let clock = ManualClock()
            let emulator = ProviderEmulator(configuration: configuration, clock: clock)
            let server = try await EmulatorServer.start(emulator: emulator)
            // A generous timeout: the emulator answers from tasks on the shared concurrency pool,
            // which a parallel test run on two loaded cores can hold for tens of seconds; a tight
            // one turned that wait into spurious timeouts (30 s failed a CI run).
            let transport: any HTTPTransport =
                wire == .loopback
                ? URLSessionTransport(configuration: .init(defaultTimeout: .seconds(240)))
                : PlainHTTPTransport(configuration: .init(defaultTimeout: .seconds(240)))
            return EmulatorHarness(emulator: emulator, clock: clock, transport: transport, root: server.baseURL, wire: wire, server: server)
        }
    }

    /// Stops the loopback server, if any.
    public func shutdown() async { await server?.shutdown() }

    /// Sends a raw request to the emulator over the harness's wire.
    public func send(
        _ method: String, _ path: String, headers: HTTPHeaders = [:], body: Data? = nil
    ) async throws -> HTTPResponse {
        let url = URL(string: root.absoluteString + path)!
        return try await transport.send(HTTPRequest(method: method, url: url, headers: headers, body: body.map { .data($0) }))
    }
}

/// Runs `body` with a fresh ``EmulatorHarness`` and always shuts it down.
public func withEmulatorHarness<T>(
    _ wire: Wire, _ configuration: EmulatorConfiguration = .init(), _ body: (EmulatorHarness) async throws -> T
) async throws -> T {
    let harness = try await EmulatorHarness.start(wire, configuration)
    do {
        let result = try await body(harness)
        await harness.shutdown()
        return result
    } catch {
        await harness.shutdown()
        throw error
    }
}
