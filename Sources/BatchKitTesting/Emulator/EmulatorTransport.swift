public import BatchKit
import Foundation

/// An `HTTPTransport` answered by a ``ProviderEmulator`` in-process: no sockets, same answers
/// as the loopback server (wire faults included: a reset throws, a truncated body arrives cut).
public struct EmulatorTransport: HTTPTransport {
    let emulator: ProviderEmulator

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let response = await emulator.handle(try EmulatorRequest(request))
        try Task.checkCancellation()
        if request.downloadsToFile, response.fault == nil, let blob = response.blob {
            // A stored file: copied to the download file, never read into memory.
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-emu-\(UUID().uuidString)")
            try blob.copy(to: url)
            return HTTPResponse(status: response.status, headers: response.headers, bodyFile: url)
        }
        var body = response.body
        switch response.fault {
        case .resetConnection: throw URLError(.networkConnectionLost)
        case .truncateBody(let bytes): body = body.prefix(bytes)
        case .slowBody(let d): try await emulator.sleepFor(d)
        case .none: break
        }
        if request.downloadsToFile {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("batchkit-emu-\(UUID().uuidString)")
            try body.write(to: url)
            return HTTPResponse(status: response.status, headers: response.headers, bodyFile: url)
        }
        return HTTPResponse(status: response.status, headers: response.headers, body: body)
    }
}
