import BatchKit
import BatchKitTesting
import Foundation
import Testing

/// ``NativeBatchProcessor/checkModel(_:)`` against each provider's models endpoint (emulated):
/// a known model is accepted; an unknown model or a wrong key is refused before any job exists;
/// a server error or a broken connection is inconclusive (a run goes on).
@Suite(.timeLimit(.minutes(5))) struct ModelCheckConformanceTests {
    @Test(arguments: Provider.allCases) func aKnownModelIsAccepted(_ provider: Provider) async {
        let h = EmulatorHarness.inProcess()
        let result = await provider.processor(h).checkModel(provider.model)
        guard case .accepted = result else {
            Issue.record("expected accepted, got \(result)")
            return
        }
    }

    @Test(arguments: Provider.allCases) func anUnknownModelIsRefusedByName(_ provider: Provider) async throws {
        let h = EmulatorHarness.inProcess()
        let model = provider.model + "-does-not-exist"
        let result = await provider.processor(h).checkModel(model)
        guard case .refused(let e) = result else {
            Issue.record("expected refused, got \(result)")
            return
        }
        #expect(e.code == .systematicFailure)
        #expect(e.httpStatus == 404)
        #expect(e.message.contains("refused the model \"\(model)\""), "\(e.message)")
        #expect(e.message.contains("Check the model name"))
        #expect(h.emulator.billing.jobs.isEmpty)
    }

    @Test(arguments: Provider.allCases) func aWrongKeyIsRefusedWithoutShowingIt(_ provider: Provider) async throws {
        let h = EmulatorHarness.inProcess(EmulatorConfiguration(requiredAPIKey: "the-only-right-key-0001"))
        let result = await provider.processor(h).checkModel(provider.model)
        guard case .refused(let e) = result else {
            Issue.record("expected refused, got \(result)")
            return
        }
        #expect(e.code == .systematicFailure)
        // Gemini answers a wrong key with 400 and the reason API_KEY_INVALID.
        #expect(e.httpStatus == (provider == .gemini ? 400 : 401))
        #expect(e.message.contains("Check the API key"), "\(e.message)")
        for key in [Provider.openAIKey, Provider.anthropicKey, Provider.geminiKey] { #expect(!e.message.contains(key)) }
    }

    @Test(arguments: Provider.allCases) func aServerErrorIsInconclusive(_ provider: Provider) async {
        let h = EmulatorHarness.inProcess(EmulatorConfiguration(faults: [EmulatorFault(.status(500), on: .endpoint("/models/"))]))
        let result = await provider.processor(h).checkModel(provider.model)
        guard case .inconclusive(let e?) = result else {
            Issue.record("expected inconclusive with an error, got \(result)")
            return
        }
        #expect(e.code == .server)
    }

    @Test(arguments: Provider.allCases) func aBrokenConnectionIsInconclusive(_ provider: Provider) async {
        let h = EmulatorHarness.inProcess(EmulatorConfiguration(faults: [EmulatorFault(.resetConnection, on: .endpoint("/models/"))]))
        let result = await provider.processor(h).checkModel(provider.model)
        guard case .inconclusive(let e?) = result else {
            Issue.record("expected inconclusive with an error, got \(result)")
            return
        }
        #expect(e.code != .systematicFailure)
    }
}
