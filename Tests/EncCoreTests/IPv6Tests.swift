import Testing
@testable import EncCore

// Hop-by-hop + routing + fragment (offset 0, M set) + destination options -> UDP.
// Hand-labelled bytes after the 40-byte fixed header (next header 0):
//   HBH:   2b next=routing, 00 len 8 bytes, 01 04 00000000  PadN 4
//   RH:    2c next=fragment, 00 len 8 bytes, 04 type, 00 segments left, 00000000
//   Frag:  3c next=dstopts, 00, 0001 offset 0 M=1, 12345678 identification
//   DstO:  11 next=UDP, 00 len 8, 01 04 00000000  PadN 4
//   UDP:   0035 0035 ports, 0010 length 16, 0000 checksum, 8 data bytes
@Test func ipv6WalkPassesHopByHopRoutingFragmentDestinationToUDP() {
    let header = hex("60000000 0030 00 40 20010db8000000000000000000000001 20010db8000000000000000000000002")
    let chain = hex("""
        2b00 0104 00000000
        2c00 0400 00000000
        3c00 0001 12345678
        1100 0104 00000000
        0035 0035 0010 0000 0102030405060708
        """)
    let p = header + chain
    let i = info(p)!
    #expect(i.family == .inet6 && i.protocol == 17)
    #expect(i.headerLength == 72 && i.transportOffset == 72)
    #expect(i.hasPorts && i.sourcePort == 53 && i.destinationPort == 53)
    #expect(i.isFragment && i.moreFragments && i.fragmentOffset == 0 && i.identification == 0x1234_5678)
    #expect(i.totalLength == 88 && i.ttl == 64)

    // The builder encodes the same chain.
    let built = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 17, payload: Array(chain[32...]),
                                 extensions: [.hopByHop(), .routing(type: 4, segmentsLeft: 0),
                                              .fragment(offset: 0, more: true, identification: 0x1234_5678),
                                              .destinationOptions()])
    #expect(built == p)
}

@Test func ipv6NonFirstFragmentEndsWalkWithoutPorts() {
    let p = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 17, payload: [UInt8](repeating: 1, count: 16),
                             extensions: [.fragment(offset: 1232, more: false, identification: 9)])
    let i = info(p)!
    #expect(i.isFragment && !i.moreFragments && i.fragmentOffset == 1232)
    #expect(i.protocol == 17 && !i.hasPorts && i.transportOffset == 48)
}

@Test func ipv6AtomicFragmentIsNotAFragment() {
    let p = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2,
                              extensions: [.fragment(offset: 0, more: false, identification: 1)])
    let i = info(p)!
    #expect(!i.isFragment && i.hasPorts && i.destinationPort == 2)
    #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: i) })
}

@Test func ipv6BuilderFragmentsReassembleToOffsets() {
    let whole = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 7, destinationPort: 8,
                                  payload: [UInt8](repeating: 3, count: 200), extensions: [.hopByHop()])
    let frags = PacketBuilder.fragments(of: whole, maxData: 64)
    #expect(frags.count == 4)
    var offsets = [Int]()
    for f in frags {
        let i = info(f)!
        offsets.append(i.fragmentOffset)
        #expect(i.hasPorts == (i.fragmentOffset == 0))
    }
    #expect(offsets == [0, 64, 128, 192])
}

@Test func ahIsUpperLayerUnlessWalked() {
    // AH: next=UDP, payload length 4 -> (4+2)*4 = 24 bytes, SPI, sequence, 12-byte ICV.
    var ah = hex("11 04 0000 00001000 00000001") + [UInt8](repeating: 0xaa, count: 12)
    ah += PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 9, destinationPort: 10).suffix(8)
    let p6 = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 51, payload: ah)
    #expect(info(p6)!.protocol == 51)
    let walked = info(p6, options: PacketParseOptions(walkAH: true))!
    #expect(walked.protocol == 17 && walked.destinationPort == 10 && walked.headerLength == 64)

    let p4 = PacketBuilder.ip(source: v4a, destination: v4b, protocol: 51, payload: ah)
    #expect(info(p4)!.protocol == 51 && info(p4)!.transportOffset == 20)
    let walked4 = info(p4, options: PacketParseOptions(walkAH: true))!
    #expect(walked4.protocol == 17 && walked4.transportOffset == 44 && walked4.sourcePort == 9)
}

@Test func espEndsTheWalk() {
    let p = PacketBuilder.ip(source: v6a, destination: v6b, protocol: 50, payload: hex("00001000 00000001 deadbeef"),
                             extensions: [.destinationOptions()])
    let i = info(p, options: PacketParseOptions(walkAH: true))!
    #expect(i.protocol == 50 && i.transportOffset == 48 && !i.hasPorts)
}

@Test func ipv6ViewSettersTouchOnlyTheirField() {
    var p = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, tos: 0xb9)
    p.withUnsafeMutableBytes { b in
        let ip = IPv6Header(b)!
        ip.flowLabel = 0xabcde
        #expect(ip.trafficClass == 0xb9 && ip.dscp == 46 && ip.ecn == .ect1 && ip.version == 6)
        ip.ecn = .ce
        #expect(ip.trafficClass == 0xbb && ip.flowLabel == 0xabcde)
        #expect(ip.decrementHopLimit() && ip.hopLimit == 63)
        ip.source = v6b
        #expect(ip.source == v6b && ip.destination == v6b && ip.payloadLength == 8 && ip.nextHeader == 17)
    }
    #expect(p[0] == 0x6b && p[1] == 0xba && p[2] == 0xbc && p[3] == 0xde)
}
