import BatchKit
import Foundation

/// The emulator's Gemini state (files, batches...). Owned by this file.
struct GeminiEmulatorState {}

extension ProviderEmulator {
    /// Answers Gemini requests; `nil` for paths it does not serve (the router answers 404).
    func handleGemini(_ request: EmulatorRequest) async -> EmulatorResponse? {
        nil
    }
}
