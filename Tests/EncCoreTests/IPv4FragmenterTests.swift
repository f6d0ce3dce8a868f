import Testing
@testable import EncCore

@Suite struct IPv4FragmenterTests {
    let src = IPAddress("198.18.1.10")!, dst = IPAddress("198.18.2.20")!

    /// Cuts `packet` and returns copies of the fragments.
    func cut(_ packet: [UInt8], mtu: Int) -> [[UInt8]]? {
        var p = packet
        let scratch = PacketBuffer()
        var out: [[UInt8]] = []
        let ok = p.withUnsafeMutableBytes { raw in
            IPv4Fragmenter.fragment(raw, mtu: mtu, into: scratch) { out.append($0.array); return true }
        }
        return ok ? out : nil
    }

    /// Puts fragments back together (payloads by offset) under the first one's header.
    func reassemble(_ frags: [[UInt8]]) -> [UInt8] {
        var payload = [UInt8]()
        for f in frags.sorted(by: { ($0[6] & 0x1f, $0[7]) < ($1[6] & 0x1f, $1[7]) }) {
            let h = Int(f[0] & 0x0f) * 4
            payload += f[h...]
        }
        return payload
    }

    @Test func fragmentsReassembleToTheOriginalPayload() throws {
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let packet = PacketBuilder.udp(source: src, destination: dst, sourcePort: 1, destinationPort: 2, payload: data)
        let frags = try #require(cut(packet, mtu: 1400))
        #expect(frags.count == 3)
        for (i, f) in frags.enumerated() {
            #expect(f.count <= 1400)
            var g = f
            let sumOK = g.withUnsafeMutableBytes { IPv4Header(unchecked: $0).isChecksumValid }
            #expect(sumOK)
            let flags = UInt16(f[6]) << 8 | UInt16(f[7])
            #expect((flags & 0x2000 != 0) == (i < 2))                   // MF on all but the last
            #expect(Int(flags & 0x1fff) * 8 == i * 1376)                 // (1400 - 20) & ~7
            #expect(Array(f[12..<20]) == Array(packet[12..<20]))
            #expect(Array(f[4..<6]) == Array(packet[4..<6]))             // same identification
        }
        #expect(reassemble(frags) == Array(packet[20...]))
    }

    @Test func smallPacketComesOutWhole() throws {
        let packet = PacketBuilder.udp(source: src, destination: dst, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3])
        let frags = try #require(cut(packet, mtu: 1400))
        #expect(frags == [packet])
    }

    @Test func dontFragmentIsRefused() {
        let packet = PacketBuilder.udp(source: src, destination: dst, sourcePort: 1, destinationPort: 2,
                                       payload: [UInt8](repeating: 1, count: 3000), dontFragment: true)
        #expect(cut(packet, mtu: 1400) == nil)
    }

    @Test func aFragmentIsCutFurtherWithItsOffsetAndMoreFragments() throws {
        // The middle piece of an already fragmented packet: offset 1480, MF set.
        let packet = PacketBuilder.ip(source: src, destination: dst, protocol: IPProtocol.udp,
                                      payload: [UInt8](repeating: 9, count: 1480), fragmentOffset: 1480, moreFragments: true)
        let frags = try #require(cut(packet, mtu: 1000))
        #expect(frags.count == 2)
        let o0 = Int(UInt16(frags[0][6] & 0x1f) << 8 | UInt16(frags[0][7])) * 8
        let o1 = Int(UInt16(frags[1][6] & 0x1f) << 8 | UInt16(frags[1][7])) * 8
        #expect(o0 == 1480 && o1 == 1480 + 976)
        #expect(frags[1][6] & 0x20 != 0)                                 // still more after the last piece
    }

    @Test func laterFragmentsKeepOnlyCopiedOptions() throws {
        // Router alert (148, copied) and a record-route option (7, not copied).
        let options: [UInt8] = [148, 4, 0, 0,  7, 7, 4, 0, 0, 0, 0,  0]
        let packet = PacketBuilder.ip(source: src, destination: dst, protocol: IPProtocol.udp,
                                      payload: [UInt8](repeating: 5, count: 2000), options: options)
        let frags = try #require(cut(packet, mtu: 1000))
        #expect(frags[0][0] & 0x0f == 8)                                 // 20 + 12 bytes of options
        #expect(Array(frags[0][20..<32]) == options)
        #expect(frags[1][0] & 0x0f == 6)                                 // 20 + router alert
        #expect(Array(frags[1][20..<24]) == [148, 4, 0, 0])
        #expect(reassemble(frags) == Array(packet[32...]))
    }
}
