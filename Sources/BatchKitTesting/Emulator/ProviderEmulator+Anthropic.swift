import BatchKit
import Foundation

/// The emulator's Anthropic state (files, batches...). Owned by this file.
struct AnthropicEmulatorState {}

extension ProviderEmulator {
    /// Answers Anthropic requests; `nil` for paths it does not serve (the router answers 404).
    func handleAnthropic(_ request: EmulatorRequest) async -> EmulatorResponse? {
        nil
    }
}
