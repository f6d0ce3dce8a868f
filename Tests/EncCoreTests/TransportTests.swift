import Testing
@testable import EncCore

@Test func natAddressRewriteKeepsAllChecksumsValid() {
    // Rewrite the source the way NAT (or the NAT-T transport fix-up) does, then verify.
    let cases: [([UInt8], IPAddress)] = [
        (PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3]),
         IPAddress("203.0.113.77")!),
        (PacketBuilder.tcp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [5]),
         IPAddress("203.0.113.77")!),
        (PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3]),
         IPAddress("2001:db8:ffff::9")!),
        (PacketBuilder.tcp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2),
         IPAddress("2001:db8:ffff::9")!),
        (PacketBuilder.icmpEcho(source: v6a, destination: v6b), IPAddress("2001:db8:ffff::9")!),
    ]
    for (packet, newSource) in cases {
        var p = packet
        var i = info(p)!
        p.withUnsafeMutableBytes { b in
            let old = i.source
            if i.family == .inet { IPv4Header(b)!.source = newSource } else { IPv6Header(b)!.source = newSource }
            switch i.protocol {
            case IPProtocol.udp: UDPHeader(b, at: i.transportOffset)!.replaceAddress(old: old, new: newSource)
            case IPProtocol.tcp: TCPHeader(b, at: i.transportOffset)!.replaceAddress(old: old, new: newSource)
            default: ICMPv6Header(b, at: i.transportOffset)!.replaceAddress(old: old, new: newSource)
            }
        }
        i = info(p)!                                        // IPv4 header checksum still right
        #expect(i.source == newSource)
        #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: i) })
    }
}

@Test func portEditsKeepChecksumValid() {
    var p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 4500, destinationPort: 4500, payload: [9, 9])
    let i = info(p)!
    p.withUnsafeMutableBytes { b in
        let u = UDPHeader(b, at: i.transportOffset)!
        u.setSourcePort(61_000)
        u.setDestinationPort(4501)
        #expect(u.sourcePort == 61_000 && u.destinationPort == 4501 && u.length == 10)
    }
    #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: info(p)!) })
    var t = PacketBuilder.tcp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, sequence: 7, acknowledgment: 8)
    t.withUnsafeMutableBytes { b in
        let h = TCPHeader(b, at: 40)!
        h.setDestinationPort(443)
        #expect(h.sequenceNumber == 7 && h.acknowledgmentNumber == 8 && h.headerLength == 20 && h.flags == .ack)
        #expect(h.window == 65_535 && h.urgentPointer == 0)
    }
    #expect(t.withUnsafeBytes { TransportChecksum.verify($0, info: info(t)!) })
}

@Test func absentUDPChecksumStaysAbsentOverIPv4() {
    var p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 4500, destinationPort: 4500, payload: [1])
    p[26] = 0; p[27] = 0                                    // no checksum (RFC 768)
    let i = info(p)!
    #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: i) })
    p.withUnsafeMutableBytes { b in
        let u = UDPHeader(b, at: 20)!
        u.replaceAddress(old: v4a, new: v4b)
        u.setSourcePort(1)
        #expect(u.checksum == 0)
    }
    // Over IPv6 a zero UDP checksum is invalid.
    var q = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2)
    q[46] = 0; q[47] = 0
    #expect(!q.withUnsafeBytes { TransportChecksum.verify($0, info: info(q)!) })
}

@Test func udpChecksumThatComputesToZeroIsSentAsAllOnes() {
    // Search a payload word that makes the computed checksum 0; RFC 768 sends 0xffff.
    var found = false
    for w in 0 ... 0xffff {
        let p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2,
                                  payload: [UInt8(w >> 8), UInt8(w & 0xff)])
        if p[26] == 0xff && p[27] == 0xff {
            #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: info(p)!) })
            // An incremental edit that lands on zero must also give 0xffff, not "none".
            var q = p
            q.withUnsafeMutableBytes { b in
                let u = UDPHeader(b, at: 20)!
                u.setSourcePort(3); u.setSourcePort(1)
                #expect(u.checksum == 0xffff)
            }
            found = true
            break
        }
    }
    #expect(found)
}

@Test func icmpViewReadsEcho() {
    var p = PacketBuilder.icmpEcho(source: v4a, destination: v4b, identifier: 0x1234, sequence: 9)
    p.withUnsafeMutableBytes { b in
        let m = ICMPHeader(b, at: 20)!
        #expect(m.type == ICMPType.echoRequest && m.code == 0 && m.identifier == 0x1234 && m.sequenceNumber == 9)
        let old = m.sequenceNumber
        m.sequenceNumber = 10
        m.updateChecksum(old: old, new: 10)
        #expect(ICMPHeader(b, at: 21) == nil)
    }
    #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: info(p)!) })
}
