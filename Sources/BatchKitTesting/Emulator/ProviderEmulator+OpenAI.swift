import BatchKit
import Foundation

/// The emulator's OpenAI state (files, batches...). Owned by this file.
struct OpenAIEmulatorState {}

extension ProviderEmulator {
    /// Answers OpenAI requests; `nil` for paths it does not serve (the router answers 404).
    func handleOpenAI(_ request: EmulatorRequest) async -> EmulatorResponse? {
        nil
    }
}
