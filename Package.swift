// swift-tools-version:6.0
// encd: the OpenBSD IPsec model (enc0, SPD at [X], ESP/AH, NAT-T) on Linux nftables.
// Module map: ../shared/DESIGN.md "Suggested module layout"; Docs/architecture.md.
import PackageDescription

let package = Package(
    name: "encd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "encd", targets: ["encd"]),
        .executable(name: "encctl", targets: ["encctl"]),
        .executable(name: "encd-iked", targets: ["encd-iked"]),
        .executable(name: "ikectl", targets: ["ikectl"]),
        .executable(name: "encstat", targets: ["encstat"]),
        // For the fuzzing package in Fuzz/ (libFuzzer targets over the packet path,
        // the configuration parser and the control protocol); encd itself links none.
        .library(name: "EncdLibraries", targets: ["EncCore", "Crypto", "IPsec", "Config", "Control", "Kernel", "Daemon", "IKE", "IKECrypto"]),
    ],
    targets: [
        // C enters only through these three shims.
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CNetfilter", pkgConfig: "libnetfilter_queue",
                       providers: [.apt(["libnetfilter-queue-dev", "libnftnl-dev", "libmnl-dev"])]),
        .target(name: "CEncShim"),
        // Counting malloc/free for encbench and AllocationTests only (never encd).
        .target(name: "CAllocCounter"),

        // Pure libraries: no syscalls below Kernel.
        .target(name: "EncCore"),
        .target(name: "Crypto", dependencies: ["CCrypto", "EncCore"]),
        .target(name: "IPsec", dependencies: ["EncCore", "Crypto"]),
        .target(name: "Config", dependencies: ["EncCore", "Crypto", "IPsec"]),
        .target(name: "Control", dependencies: ["EncCore", "IPsec", "Config"]),
        // encd-iked's IKEv2 (issue #10): pure, clock and randomness injected.
        .target(name: "IKE", dependencies: ["IKECrypto", "Crypto", "EncCore"]),
        .target(name: "IKECrypto", dependencies: ["CCrypto", "Crypto", "EncCore"]),
        .target(name: "IKEConfig", dependencies: ["Config", "IKE", "IKECrypto", "Crypto", "EncCore"]),

        // Kernel glue and the daemon.
        .target(name: "Kernel", dependencies: ["CNetfilter", "CEncShim", "EncCore"]),
        .target(name: "Daemon", dependencies: ["EncCore", "Crypto", "IPsec", "Config", "Control", "Kernel"]),
        .target(name: "IKEDaemon", dependencies: ["IKE", "IKECrypto", "IKEConfig", "Config", "Control", "Crypto", "EncCore", "CEncShim"]),

        // Thin executables.
        .executableTarget(name: "encd", dependencies: ["Daemon"]),
        .executableTarget(name: "encctl", dependencies: ["Control", "Config"]),
        .executableTarget(name: "encd-iked", dependencies: ["IKEDaemon", "IKEConfig", "Config"]),
        .executableTarget(name: "ikectl", dependencies: ["IKEDaemon", "Control"]),
        .executableTarget(name: "encstat", dependencies: ["Control", "Kernel"]),
        .executableTarget(name: "encbench", dependencies: ["EncCore", "Crypto", "IPsec", "CAllocCounter", "CCrypto"]),

        .testTarget(name: "EncCoreTests", dependencies: ["EncCore"]),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto", "EncCore"]),
        .testTarget(name: "IPsecTests", dependencies: ["IPsec", "Crypto", "EncCore"],
                    resources: [.copy("Interop")]),
        .testTarget(name: "AllocationTests", dependencies: ["IPsec", "Crypto", "EncCore", "CAllocCounter"]),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "IPsec", "Crypto", "EncCore"]),
        .testTarget(name: "KernelTests", dependencies: ["Kernel", "EncCore", "CAllocCounter"]),
        .testTarget(name: "IKETests", dependencies: ["IKE", "IKECrypto", "IKEConfig", "Config", "Crypto", "IPsec", "EncCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ControlTests", dependencies: ["Control", "Config", "IPsec", "EncCore"]),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Kernel", "Config", "IPsec", "Crypto", "EncCore", "CAllocCounter"]),
    ],
    swiftLanguageModes: [.v5]
)
