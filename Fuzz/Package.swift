// swift-tools-version:6.0
// libFuzzer targets for encd (issue #7): the inbound packet path (ESP, AH, ESP-in-UDP,
// inner IPv4/IPv6 with extension headers and fragments), the NFQUEUE message parser,
// the ipsec.conf parser, the control protocol, encd-iked's IKEv2 message codec and its exchanges. Built and run by scripts/fuzz.sh
// (coverage and AddressSanitizer on, libFuzzer linked without its main: FuzzDriver).
import PackageDescription

let fuzz: [String] = ["FuzzInbound", "FuzzConfig", "FuzzControl", "FuzzQueue", "FuzzIKE", "FuzzIKEEngine"]

let package = Package(
    name: "encd-fuzz",
    dependencies: [.package(name: "encd", path: "..")],
    targets: [.target(name: "FuzzDriver")] + fuzz.map {
        .executableTarget(name: $0, dependencies: ["FuzzDriver", .product(name: "EncdLibraries", package: "encd")])
    },
    swiftLanguageModes: [.v5]
)
