import Foundation

/// An API key that never prints: its `description`, `debugDescription` and reflection (`dump`, and
/// the default description of any struct holding it) all show `<redacted>`. The provider clients
/// keep their keys in one.
package struct APIKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The secret itself, for the one header that carries it.
    package let value: String

    /// A key, or `nil` for `nil` or an empty string.
    package init?(_ value: String?) {
        guard let value, !value.isEmpty else { return nil }
        self.value = value
    }

    /// `value` if given (an empty one meaning "no key"), else the first of the environment
    /// variables `names` that is set and not empty, else `nil`.
    package init?(_ value: String?, environment names: String...) {
        let env = ProcessInfo.processInfo.environment
        let key = value.map { APIKey($0) } ?? names.lazy.compactMap({ APIKey(env[$0]) }).first
        guard let key else { return nil }
        self = key
    }

    package var description: String { "<redacted>" }
    package var debugDescription: String { "<redacted>" }
    package var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// `text` with every occurrence of the key masked (keys shorter than four characters are left
    /// alone: masking them would garble ordinary text).
    package func redact(_ text: String) -> String {
        value.count >= 4 && text.contains(value) ? text.replacingOccurrences(of: value, with: "<redacted>") : text
    }
}
