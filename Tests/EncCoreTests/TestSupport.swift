@testable import EncCore

/// Hex golden bytes (white space ignored); traps only on a typo in a test.
func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

func parse(_ p: [UInt8], options: PacketParseOptions = PacketParseOptions()) -> Result<PacketInfo, PacketError> {
    p.withUnsafeBytes { PacketInfo.parse($0, options: options) }
}

func info(_ p: [UInt8], options: PacketParseOptions = PacketParseOptions()) -> PacketInfo? {
    if case .success(let i) = parse(p, options: options) { return i }
    return nil
}

func error(_ p: [UInt8], options: PacketParseOptions = PacketParseOptions()) -> PacketError? {
    if case .failure(let e) = parse(p, options: options) { return e }
    return nil
}

/// The textbook RFC 1071 sum, 16 bits at a time, as an independent reference.
func referenceSum(_ b: [UInt8]) -> UInt32 {
    var s: UInt32 = 0
    var i = 0
    while i + 1 < b.count { s += UInt32(b[i]) << 8 | UInt32(b[i + 1]); i += 2 }
    if i < b.count { s += UInt32(b[i]) << 8 }
    while s > 0xffff { s = (s & 0xffff) + (s >> 16) }
    return s
}

/// Deterministic PRNG (SplitMix64) so a failing fuzz case reproduces.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    static func random(_ n: Int, using g: inout SplitMix) -> [UInt8] {
        (0 ..< n).map { _ in UInt8.random(in: 0 ... 255, using: &g) }
    }
}

let v4a = IPAddress("192.0.2.1")!
let v4b = IPAddress("198.51.100.2")!
let v6a = IPAddress("2001:db8::1")!
let v6b = IPAddress("2001:db8::2")!
