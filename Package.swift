// swift-tools-version: 6.0
import PackageDescription

/// Every target: Swift 6 language mode and the upcoming features that keep the surface honest
/// (`any` spelled out for existentials; imports internal unless a file re-exports on purpose).
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "BatchKit",
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        .library(name: "BatchKit", targets: ["BatchKit"]),
        .library(name: "BatchKitOpenAI", targets: ["BatchKitOpenAI"]),
        .library(name: "BatchKitAnthropic", targets: ["BatchKitAnthropic"]),
        .library(name: "BatchKitGemini", targets: ["BatchKitGemini"]),
        .library(name: "BatchKitReport", targets: ["BatchKitReport"]),
        .library(name: "BatchKitTesting", targets: ["BatchKitTesting"]),
        .executable(name: "batchkit", targets: ["batchkit"]),
        .executable(name: "batchkit-bench", targets: ["batchkit-bench"]),
    ],
    dependencies: [],
    targets: [
        .target(name: "BatchKit", swiftSettings: strict),
        .target(name: "BatchKitOpenAI", dependencies: ["BatchKit"], swiftSettings: strict),
        .target(name: "BatchKitAnthropic", dependencies: ["BatchKit"], swiftSettings: strict),
        .target(name: "BatchKitGemini", dependencies: ["BatchKit"], swiftSettings: strict),
        .target(name: "BatchKitReport", dependencies: ["BatchKit"], swiftSettings: strict),
        .target(name: "BatchKitTesting", dependencies: ["BatchKit"], swiftSettings: strict),
        .executableTarget(
            name: "batchkit",
            dependencies: [
                "BatchKit", "BatchKitOpenAI", "BatchKitAnthropic", "BatchKitGemini", "BatchKitReport", "BatchKitTesting",
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "batchkit-bench",
            dependencies: ["BatchKit", "BatchKitOpenAI", "BatchKitReport", "BatchKitTesting"],
            path: "Benchmarks/batchkit-bench",
            swiftSettings: strict
        ),
        .testTarget(name: "BatchKitTests", dependencies: ["BatchKit", "BatchKitTesting"], swiftSettings: strict),
        .testTarget(name: "BatchKitOpenAITests", dependencies: ["BatchKitOpenAI", "BatchKitTesting"], swiftSettings: strict),
        .testTarget(name: "BatchKitAnthropicTests", dependencies: ["BatchKitAnthropic", "BatchKitTesting"], swiftSettings: strict),
        .testTarget(name: "BatchKitGeminiTests", dependencies: ["BatchKitGemini", "BatchKitTesting"], swiftSettings: strict),
        .testTarget(
            name: "BatchKitConformanceTests",
            dependencies: ["BatchKit", "BatchKitOpenAI", "BatchKitAnthropic", "BatchKitGemini", "BatchKitTesting"],
            swiftSettings: strict
        ),
        .testTarget(name: "BatchKitReportTests", dependencies: ["BatchKit", "BatchKitReport", "BatchKitTesting"], swiftSettings: strict),
        .testTarget(name: "BatchKitTestingTests", dependencies: ["BatchKitTesting"], swiftSettings: strict),
        .testTarget(
            name: "batchkitTests",
            dependencies: ["BatchKit", "BatchKitTesting"],
            swiftSettings: strict
        ),
    ]
)
