import Testing
@testable import EncCore

/// Rewrites an IPv4 header field and fixes the header checksum, so only the intended
/// malformation remains.
func ipv4(_ p: [UInt8], _ edit: (UnsafeMutableRawBufferPointer) -> Void, fixChecksum: Bool = true) -> [UInt8] {
    var q = p
    q.withUnsafeMutableBytes { b in
        edit(b)
        if fixChecksum {
            let ip = IPv4Header(unchecked: b)
            let len = min(max(ip.headerLength, 20), b.count)
            b.setBE16(10, 0)
            b.setBE16(10, Checksum.compute(UnsafeRawBufferPointer(rebasing: b[0 ..< len])))
        }
    }
    return q
}

let udp4 = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3, 4])
let udp6 = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3, 4])
let tcp4 = PacketBuilder.tcp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2)

@Test func parseRejectsEachMalformationWithItsReason() {
    #expect(error([]) == .empty)
    #expect(error([0x55] + udp4.dropFirst()) == .badVersion)
    #expect(error(Array(udp4.prefix(19))) == .truncatedIPv4Header)
    #expect(error(ipv4(udp4) { $0[0] = 0x44 }) == .badIHL)
    #expect(error(ipv4(udp4) { $0[0] = 0x4f }) == .ipv4OptionsTruncated)    // 60-byte header in 32 bytes
    #expect(error(ipv4(udp4, { $0[8] = 1 }, fixChecksum: false)) == .badIPv4Checksum)
    #expect(error(ipv4(udp4) { $0.setBE16(2, 19) }) == .totalLengthTooShort)
    #expect(error(ipv4(udp4) { $0.setBE16(2, UInt16(udp4.count + 1)) }) == .totalLengthExceedsPacket)
    #expect(error(udp4 + [0]) == .trailingBytes)
    #expect(error(ipv4(udp4) { $0.setBE16(6, 0x1fff) }) == .fragmentTooLarge)   // 65528 + 12 > 65535
    #expect(error(Array(udp6.prefix(39))) == .truncatedIPv6Header)
    #expect(error(Array(udp6.prefix(47))) == .totalLengthExceedsPacket)
    #expect(error(udp6 + [0, 0]) == .trailingBytes)
    #expect(error(ipv4(udp4) { $0.setBE16(24, 9) }) == .badUDPLength)
    #expect(error(ipv4(tcp4) { $0[32] = 0x40 }) == .badTCPDataOffset)
    #expect(error(ipv4(tcp4) { $0[32] = 0x60 }) == .transportTruncated)     // 24-byte header in 20
    let shortUDP = PacketBuilder.ip(source: v4a, destination: v4b, protocol: 17, payload: [0, 1, 0, 2])
    #expect(error(shortUDP) == .transportTruncated)
    let shortICMP6 = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 58, payload: [128, 0, 0, 0])
    #expect(error(shortICMP6) == .transportTruncated)
}

@Test func parseRejectsBadExtensionChains() {
    // Hop-by-hop after a destination options header.
    let late = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 59, payload: [],
                                extensions: [.destinationOptions(), .hopByHop()])
    #expect(error(late) == .hopByHopNotFirst)
    // Nine destination options headers.
    let long = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 59, payload: [],
                                extensions: Array(repeating: .destinationOptions(), count: 9))
    #expect(error(long) == .extensionChainTooLong)
    let eight = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 59, payload: [],
                                 extensions: Array(repeating: .destinationOptions(), count: 8))
    #expect(info(eight)?.protocol == 59)
    // A routing header claiming 16 bytes with 8 present.
    let over = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 59, payload: [],
                                extensions: [.raw(type: 43, bytes: [0, 1, 0, 0, 0, 0, 0, 0])])
    #expect(error(over) == .extensionHeaderTruncated)
    // A header cut below its fixed 8 bytes.
    let cut = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 59, payload: [],
                               extensions: [.raw(type: 60, bytes: [0, 0, 1, 2])])
    #expect(error(cut) == .extensionHeaderTruncated)
    // A first fragment that ends inside the chain.
    let firstFrag = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 17, payload: [],
                                     extensions: [.fragment(offset: 0, more: true, identification: 1),
                                                  .raw(type: 60, bytes: [0, 0, 1])])
    #expect(error(firstFrag) == .extensionHeaderTruncated)
    // IPv6 fragment whose data would end past 65535.
    let huge = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 17, payload: [UInt8](repeating: 0, count: 16),
                                extensions: [.fragment(offset: 65_528, more: false, identification: 1)])
    #expect(error(huge) == .fragmentTooLarge)
    // Truncated AH when asked to walk it.
    let ah = PacketBuilder.ip(source: v4a, destination: v4b, protocol: 51, payload: [17, 4, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 1])
    #expect(error(ah, options: PacketParseOptions(walkAH: true)) == .extensionHeaderTruncated)
    #expect(info(ah)?.protocol == 51)
}

@Test func everyPacketErrorHasDistinctText() {
    let texts = Set(PacketError.allCases.map { $0.description })
    #expect(texts.count == PacketError.allCases.count)
    #expect(PacketError.allCases.allSatisfy { !$0.description.isEmpty })
}

@Test func parseOptionsRelaxTrailingBytesAndChecksum() {
    let padded = info(udp4 + [0, 0, 0], options: PacketParseOptions(allowTrailingBytes: true))!
    #expect(padded.totalLength == udp4.count && padded.endOffset == udp4.count && padded.destinationPort == 2)
    let bad = ipv4(udp4, { $0[8] = 1 }, fixChecksum: false)
    #expect(info(bad, options: PacketParseOptions(verifyIPv4Checksum: false))?.ttl == 1)
}

@Test func parseAtOffsetReportsBufferOffsets() {
    let p = [UInt8](repeating: 0xee, count: 10) + udp4
    let i = p.withUnsafeBytes { b -> PacketInfo? in
        if case .success(let i) = PacketInfo.parse(b, at: 10) { return i }
        return nil
    }!
    #expect(i.ipOffset == 10 && i.transportOffset == 30 && i.endOffset == p.count && i.transportLength == 12)
    #expect(p.withUnsafeBytes { PacketInfo.parse($0, at: p.count) } == .failure(.empty))
    #expect(p.withUnsafeBytes { PacketInfo.parse($0, at: -3) } == .failure(.empty))
}

@Test func parseReadsICMPAndDSFields() {
    let p = PacketBuilder.icmpEcho(source: v4a, destination: v4b, ttl: 9, tos: 0xb9)
    let i = info(p)!
    #expect(i.hasICMP && i.icmpType == 8 && i.icmpCode == 0 && !i.hasPorts)
    #expect(i.dscp == 46 && i.ecn == .ect1 && i.ttl == 9 && !i.dontFragment)
    let t = info(PacketBuilder.tcp(source: v6a, destination: v6b, sourcePort: 3, destinationPort: 4, flags: [.syn, .ece, .cwr]))!
    #expect(t.tcpFlags == 0xc2 && t.family == .inet6 && t.source == v6a && t.destination == v6b)
}

// Fuzz-ish: random bytes, every truncation of valid packets, and random byte flips
// must parse or fail with a reason, never trap (debug builds check every access).
@Test func parseNeverTrapsOnGarbage() {
    var g = SplitMix(seed: 0xf022)
    let seeds = [
        udp4, udp6, tcp4,
        PacketBuilder.icmpEcho(source: v6a, destination: v6b, payload: [1, 2]),
        PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, payload: [1],
                          extensions: [.hopByHop(options: [5, 2, 0, 0]), .routing(type: 4, segmentsLeft: 1),
                                       .fragment(offset: 0, more: true, identification: 5), .destinationOptions()]),
    ]
    let all = PacketParseOptions(allowTrailingBytes: true, walkAH: true, verifyIPv4Checksum: false)
    var outcomes = 0
    func run(_ p: [UInt8]) {
        for o in [PacketParseOptions(), all] {
            if case .success(let i) = parse(p, options: o) {
                #expect(i.transportOffset >= 0 && i.transportOffset <= i.endOffset && i.endOffset <= p.count)
                _ = p.withUnsafeBytes { TransportChecksum.verify($0, info: i) }
                var q = p
                _ = q.withUnsafeMutableBytes { TransportChecksum.fill($0, info: i) }
            }
            outcomes += 1
        }
    }
    for s in seeds {
        for n in 0 ... s.count {
            run(Array(s.prefix(n)))
            run(withLengthFixed(Array(s.prefix(n))))        // reaches the checks past the IP header
        }
        for _ in 0 ..< 2000 {
            var q = s
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &g) {
                q[Int.random(in: 0 ..< q.count, using: &g)] = UInt8.random(in: 0 ... 255, using: &g)
            }
            run(q)
            run(withLengthFixed(q))
        }
    }
    for _ in 0 ..< 5000 {
        var q = [UInt8].random(Int.random(in: 0 ... 120, using: &g), using: &g)
        if !q.isEmpty { q[0] = Bool.random(using: &g) ? 0x45 : 0x60 }
        run(q)
        run(withLengthFixed(q))
    }
    #expect(outcomes > 0)
}

/// Sets the IP length field to the buffer's length (and fixes the IPv4 checksum) so
/// a truncated or mangled packet gets past the IP-level checks.
func withLengthFixed(_ p: [UInt8]) -> [UInt8] {
    guard let first = p.first else { return p }
    if first >> 4 == 4, p.count >= 20 {
        return ipv4(p) { $0.setBE16(2, UInt16(p.count)) }
    }
    if first >> 4 == 6, p.count >= 40 {
        var q = p
        q.withUnsafeMutableBytes { $0.setBE16(4, UInt16(p.count - 40)) }
        return q
    }
    return p
}
