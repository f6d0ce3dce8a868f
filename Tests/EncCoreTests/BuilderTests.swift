import Testing
@testable import EncCore

// Golden packets produced independently with scapy 2.x (raw(IP(...)/UDP(...)/...)).

// UDP/IPv4: 45 ver/IHL, 00 TOS, 0021 total 33, 0000 id, 0000 flags, 40 TTL, 11 UDP,
// 8e95 hdr checksum, c0000201 192.0.2.1, c6336402 198.51.100.2 | 1194 sport 4500,
// 1194 dport 4500, 000d length 13, aca2 checksum | "hello"
@Test func udpIPv4MatchesGoldenBytes() {
    let p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 4500, destinationPort: 4500,
                              payload: Array("hello".utf8))
    #expect(p == hex("4500 0021 0000 0000 4011 8e95 c0000201 c6336402  1194 1194 000d aca2  68656c6c6f"))
}

// TCP/IPv4 SYN: 45 00 0028 len 40, 0007 id, 4000 DF, 40 TTL, 06 TCP, 4e92 checksum,
// addresses | 9c40 sport 40000, 0016 dport 22, 00000001 seq, 00000000 ack,
// 50 offset 5, 02 SYN, ffff window, 2754 checksum, 0000 urgent
@Test func tcpIPv4MatchesGoldenBytes() {
    let p = PacketBuilder.tcp(source: v4a, destination: v4b, sourcePort: 40000, destinationPort: 22,
                              flags: .syn, sequence: 1, identification: 7, dontFragment: true)
    #expect(p == hex("4500 0028 0007 4000 4006 4e92 c0000201 c6336402  9c40 0016 00000001 00000000 5002 ffff 2754 0000"))
}

// ICMP echo/IPv4: ... 01 ICMP, 8ea6 checksum | 08 echo request, 00 code, 192d checksum,
// 0001 id, 0001 seq | "ping"
@Test func icmpEchoIPv4MatchesGoldenBytes() {
    let p = PacketBuilder.icmpEcho(source: v4a, destination: v4b, payload: Array("ping".utf8))
    #expect(p == hex("4500 0020 0000 0000 4001 8ea6 c0000201 c6336402  0800 192d 0001 0001 70696e67"))
}

// UDP/IPv6: 6 ver, 00 TC, 00000 flow, 000b payload 11, 11 UDP, 40 hop limit,
// 2001:db8::1, 2001:db8::2 | 0035 0035 ports 53, 000b length, 1a90 checksum | "hi!"
@Test func udpIPv6MatchesGoldenBytes() {
    let p = PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 53, destinationPort: 53,
                              payload: Array("hi!".utf8))
    #expect(p == hex("60000000 000b 11 40 20010db8000000000000000000000001 20010db8000000000000000000000002 0035 0035 000b 1a90 686921"))
}

// ICMPv6 echo: 000c payload 12, 3a ICMPv6 | 80 echo request, 00, 4571 checksum, 0001, 0001 | "ping"
@Test func icmpv6EchoMatchesGoldenBytes() {
    let p = PacketBuilder.icmpEcho(source: v6a, destination: v6b, payload: Array("ping".utf8))
    #expect(p == hex("60000000 000c 3a 40 20010db8000000000000000000000001 20010db8000000000000000000000002 8000 4571 0001 0001 70696e67"))
}

@Test func builtPacketsParseAndVerify() {
    let packets = [
        PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3]),
        PacketBuilder.udp(source: v6a, destination: v6b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3]),
        PacketBuilder.tcp(source: v6a, destination: v6b, sourcePort: 5, destinationPort: 6, flags: [.syn, .ack], payload: [9]),
        PacketBuilder.icmpEcho(source: v6a, destination: v6b, reply: true),
    ]
    for p in packets {
        guard let i = info(p) else { Issue.record("parse failed"); continue }
        #expect(p.withUnsafeBytes { TransportChecksum.verify($0, info: i) })
        var q = p
        q[q.count - 1] ^= 0x40
        #expect(!q.withUnsafeBytes { TransportChecksum.verify($0, info: i) })
    }
}

@Test func transportChecksumFillRecomputesAfterEdit() {
    var p = PacketBuilder.tcp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3, 4])
    let i = info(p)!
    p[p.count - 1] = 0x77
    p.withUnsafeMutableBytes { b in
        #expect(!TransportChecksum.verify(UnsafeRawBufferPointer(b), info: i))
        #expect(TransportChecksum.fill(b, info: i))
        #expect(TransportChecksum.verify(UnsafeRawBufferPointer(b), info: i))
    }
}

@Test func packetBufferHoldsBuiltPacket() {
    let p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2)
    let buf = PacketBuffer(packet: p, headroom: 64)
    #expect(buf.headroom == 64 && buf.array == p)
    if case .success(let i) = PacketInfo.parse(buf.bytes) { #expect(i.destinationPort == 2) } else { Issue.record("parse") }
}
