// swift-tools-version:6.0
// libFuzzer targets for encd (issue #7): the inbound packet path (ESP, AH, ESP-in-UDP,
// inner IPv4/IPv6 with extension headers and fragments), the NFQUEUE message parser,
// the ipsec.conf parser and the control protocol. Built and run by scripts/fuzz.sh:
//   swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address
// Each target is an executable without main: libFuzzer supplies it.
import PackageDescription

let fuzz: [String] = ["FuzzInbound", "FuzzConfig", "FuzzControl", "FuzzQueue"]

let package = Package(
    name: "encd-fuzz",
    dependencies: [.package(name: "encd", path: "..")],
    targets: fuzz.map {
        .executableTarget(name: $0, dependencies: [.product(name: "EncdLibraries", package: "encd")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    },
    swiftLanguageModes: [.v5]
)
