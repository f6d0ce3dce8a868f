import Testing
@testable import EncCore

// The golden UDP/IPv4 packet of BuilderTests, read back field by field.
@Test func ipv4ViewReadsEveryField() {
    var p = hex("4600 0025 abcd 4000 4011 0000 c0000201 c6336402  01020304  1194 1194 000d 0000 68656c6c6f")
    //           ^IHL 6 (one option word)                      ^option  ^UDP
    p.withUnsafeMutableBytes { b in
        let ip = IPv4Header(b)!
        ip.updateChecksum()
        #expect(ip.version == 4 && ip.ihl == 6 && ip.headerLength == 24)
        #expect(ip.totalLength == 37 && ip.identification == 0xabcd)
        #expect(ip.dontFragment && !ip.moreFragments && ip.fragmentOffset == 0 && !ip.isFragment)
        #expect(ip.ttl == 64 && ip.protocol == 17)
        #expect(ip.source == v4a && ip.destination == v4b)
        #expect(ip.isChecksumValid)
    }
    let i = info(p)!
    #expect(i.headerLength == 24 && i.transportOffset == 24 && i.sourcePort == 4500 && i.dontFragment)
}

@Test func ipv4SettersKeepHeaderChecksumValid() {
    var p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, payload: [0, 1])
    p.withUnsafeMutableBytes { b in
        let ip = IPv4Header(b)!
        var g = SplitMix(seed: 791)
        for _ in 0 ..< 500 {
            switch g.next() % 8 {
            case 0: ip.tos = UInt8.random(in: 0 ... 255, using: &g)
            case 1: ip.ttl = UInt8.random(in: 0 ... 255, using: &g)
            case 2: ip.ecn = ECN.allCases.randomElement(using: &g)!
            case 3: ip.dscp = UInt8.random(in: 0 ... 63, using: &g)
            case 4: ip.dontFragment.toggle()
            case 5: ip.source = IPAddress(v4: UInt32.random(in: 0 ... .max, using: &g))
            case 6: ip.destination = IPAddress(v4: UInt32.random(in: 0 ... .max, using: &g))
            default: ip.identification = UInt16.random(in: 0 ... .max, using: &g)
            }
            #expect(ip.isChecksumValid)
        }
    }
}

@Test func ipv4FieldEditsChangeOnlyTheirBits() {
    var p = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 1, destinationPort: 2, tos: 0xb8)
    p.withUnsafeMutableBytes { b in
        let ip = IPv4Header(b)!
        ip.ecn = .ce
        #expect(ip.tos == 0xbb && ip.dscp == 46)       // EF kept, CE set
        ip.dscp = 10
        #expect(ip.tos == 0x2b && ip.ecn == .ce)
        #expect(ip.decrementTTL() && ip.ttl == 63)
        ip.ttl = 1
        #expect(!ip.decrementTTL() && ip.ttl == 1)
        #expect(ip.isChecksumValid)
    }
}

@Test func ipv4ViewRefusesShortBuffer() {
    var p = [UInt8](repeating: 0x45, count: 19)
    p.withUnsafeMutableBytes { b in
        #expect(IPv4Header(b) == nil)
        #expect(IPv4Header(b, at: -1) == nil)
    }
}

@Test func ipv4FragmentsCarryPortsOnlyInTheFirst() {
    let whole = PacketBuilder.udp(source: v4a, destination: v4b, sourcePort: 500, destinationPort: 4500,
                                  payload: [UInt8](repeating: 7, count: 100))
    let frags = PacketBuilder.fragments(of: whole, maxData: 48)
    #expect(frags.count == 3)
    let first = info(frags[0])!
    #expect(first.isFragment && first.moreFragments && first.fragmentOffset == 0)
    #expect(first.hasPorts && first.sourcePort == 500 && first.destinationPort == 4500)
    let second = info(frags[1])!
    #expect(second.isFragment && second.fragmentOffset == 48 && !second.hasPorts && second.protocol == 17)
    let last = info(frags[2])!
    #expect(!last.moreFragments && last.fragmentOffset == 96 && last.transportLength == 12)
}
