import Crypto
import EncCore
import Testing
@testable import IPsec

@Suite struct AHTests {
    @Test(arguments: IntegrityAlgorithm.table.map(\.name), [IPsecMode.tunnel, .transport])
    func roundTripBothFamilies(auth: String, mode: IPsecMode) throws {
        for (a, b) in [(hostA4, hostB4), (hostA6, hostB6)] {
            let pair = try SAPair.ah(auth, mode: mode, from: a, to: b, esn: mode == .tunnel)
            let packet = mode == .tunnel ? sample(a == hostA4 ? netA4 : netA6, a == hostA4 ? netB4 : netB6) : sample(a, b)
            let wire = try #require(pair.protect(packet).value)
            let proto = a.family == .inet ? wire[9] : wire[6]
            #expect(proto == IPProtocol.ah)
            #expect(pair.unprotect(wire).value == packet)
        }
    }

    @Test func headerLengthIsPaddedPerFamily() {
        #expect(AH.headerLength(icv: 12, family: .inet) == 24)
        #expect(AH.headerLength(icv: 16, family: .inet) == 28)
        #expect(AH.headerLength(icv: 16, family: .inet6) == 32)
        #expect(AH.headerLength(icv: 24, family: .inet6) == 40)
    }

    @Test func mutableFieldsMayChangeInTransit() throws {
        let pair = try SAPair.ah()
        var wire = try #require(pair.protect(sample(netA4, netB4)).value)
        wire.withUnsafeMutableBytes { p in
            let ip = IPv4Header(unchecked: p)
            ip.ttl = ip.ttl - 3                 // routers on the way
            ip.tos = 0x03                       // ECN CE on the outer header... inner is Not-ECT
        }
        // The ICV still verifies; the CE mark on a Not-ECT inner packet is then dropped per RFC 6040.
        #expect(pair.unprotect(wire).drop == .ahInputProcessing)
        var wire2 = try #require(pair.protect(sample(netA4, netB4)).value)
        wire2.withUnsafeMutableBytes { IPv4Header(unchecked: $0).ttl = 7 }
        #expect(pair.unprotect(wire2).value != nil)
    }

    @Test func immutableFieldChangeFailsVerification() throws {
        let pair = try SAPair.ah(mode: .transport)
        var wire = try #require(pair.protect(sample(hostA4, hostB4)).value)
        wire[wire.count - 1] ^= 1                           // payload
        #expect(pair.unprotect(wire).drop == .ahAuthFailed)
        var wire2 = try #require(pair.protect(sample(hostA4, hostB4)).value)
        wire2.withUnsafeMutableBytes { IPv4Header(unchecked: $0).identification ^= 1 }   // immutable
        #expect(pair.unprotect(wire2).drop == .ahAuthFailed)
        #expect(CounterSnapshot(summing: [pair.rxStats]).value(.badauth, in: .ah) == 2)
    }

    @Test func wrongAuthenticatorLengthIsCounted() throws {
        let pair = try SAPair.ah()
        var wire = try #require(pair.protect(sample(netA4, netB4)).value)
        wire[21] = 3                                         // claims a 20-byte AH
        #expect(pair.unprotect(wire).drop == .ahBadAuthLength)
    }

    @Test func replayIsRefused() throws {
        let pair = try SAPair.ah()
        let wire = try #require(pair.protect(sample(netA4, netB4)).value)
        #expect(pair.unprotect(wire).value != nil)
        #expect(pair.unprotect(wire).drop == .ahReplay)
    }

    @Test func ipv4OptionsSurviveTransportMode() throws {
        // A router-alert option (immutable) and a timestamp option (mutable).
        let pair = try SAPair.ah(mode: .transport)
        var packet = sample(hostA4, hostB4)
        let options: [UInt8] = [148, 4, 0, 0,  68, 8, 5, 0, 0, 0, 0, 0]
        packet.insert(contentsOf: options, at: 20)
        packet.withUnsafeMutableBytes { p in
            p[0] = 0x48                                       // IHL 8 words
            IPv4Header(unchecked: p).totalLength = UInt16(p.count)
            IPv4Header(unchecked: p).updateChecksum()
        }
        var wire = try #require(pair.protect(packet).value)
        wire[20 + 4 + 7] = 0x55                               // the timestamp changes in transit
        wire.withUnsafeMutableBytes { IPv4Header(unchecked: $0).updateChecksum() }
        let back = try #require(pair.unprotect(wire).value)
        #expect(back.count == packet.count)
    }
}

@Suite struct NATTraversalTests {
    let encap = UDPEncapsulation(port: 4500)

    @Test(arguments: [IPsecMode.tunnel, .transport])
    func udpEncapsulatedRoundTrip(mode: IPsecMode) throws {
        let pair = try SAPair.esp("aes-128-gcm", mode: mode, udp: encap)
        let packet = mode == .tunnel ? sample(netA4, netB4) : sample(hostA4, hostB4)
        let wire = try #require(pair.protect(packet).value)
        #expect(wire[9] == IPProtocol.udp)
        #expect(wire.withUnsafeBytes { $0.be16(20) } == 4500 && wire.withUnsafeBytes { $0.be16(22) } == 4500)
        #expect(wire.withUnsafeBytes { $0.be16(26) } == 0)   // RFC 3948: IPv4 UDP checksum zero
        #expect(pair.unprotect(wire).value == packet)
        let s = CounterSnapshot(summing: [pair.rxStats, pair.txStats])
        #expect(s.value(.udpencin, in: .esp) == 1 && s.value(.udpencout, in: .esp) == 1)
    }

    @Test func ipv6UDPEncapsulationCarriesAChecksum() throws {
        let pair = try SAPair.esp("aes-128-gcm", from: hostA6, to: hostB6, udp: encap)
        let wire = try #require(pair.protect(sample(netA6, netB6)).value)
        var parsed = wire
        let ok = parsed.withUnsafeMutableBytes { p -> Bool in
            guard case .success(let info) = PacketInfo.parse(p) else { return false }
            return TransportChecksum.verify(UnsafeRawBufferPointer(p), info: info)
        }
        #expect(ok)
        #expect(pair.unprotect(wire).value == sample(netA6, netB6))
    }

    @Test func keepaliveIsDroppedAndCounted() throws {
        let pair = try SAPair.esp("aes-128-gcm", udp: encap)
        let ka = PacketBuilder.udp(source: hostA4, destination: hostB4, sourcePort: 4500, destinationPort: 4500, payload: [0xFF])
        #expect(pair.unprotect(ka).drop == .keepaliveDropped)
        #expect(pair.rxStats[.espInput] == 0)
    }

    @Test func nonESPMarkerIsLeftForIKE() throws {
        let pair = try SAPair.esp("aes-128-gcm", udp: encap)
        let ike = PacketBuilder.udp(source: hostA4, destination: hostB4, sourcePort: 4500, destinationPort: 4500,
                                    payload: [0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
        let b = PacketBuffer()
        b.load(ike)
        #expect(ESPInput.process(b, sad: pair.sad, now: 0, stats: pair.rxStats) == .notESP)
        #expect(b.array == ike)
    }

    @Test func encapsulationMustMatchTheSA() throws {
        let plain = try SAPair.esp("aes-128-gcm")
        let udp = try SAPair.esp("aes-128-gcm", udp: encap)
        let rawWire = try #require(plain.protect(sample(netA4, netB4)).value)
        let udpWire = try #require(udp.protect(sample(netA4, netB4)).value)
        #expect(udp.unprotect(rawWire).drop == .espRawForUDPSA)
        #expect(plain.unprotect(udpWire).drop == .espUDPForPlainSA)
        // Packets of the other kind arrive on the other input worker (raw sockets for
        // ESP, a queue for ESP in UDP): they must not touch the SA, whose state belongs
        // to the worker its encapsulation names.
        #expect(plain.inbound.counters[.drops] == 0)
        #expect(udp.inbound.counters[.drops] == 0)
    }

    @Test func peerBehindNATIsFollowed() throws {
        // gw A (inbound SA B→A pairs with outbound A→B): B's packets arrive from a NAT.
        var toA = try SAPair.esp("aes-128-gcm", from: hostB4, to: hostA4, spi: 0x3000, udp: encap)
        let fromA = try SecurityAssociation(try SAPair.esp("aes-128-gcm", from: hostA4, to: hostB4, udp: encap).spec,
                                            direction: .outbound, store: nil, now: 0)
        toA.sad = SAD([toA.inbound, fromA])       // the SAD pairs them for NAT-T
        var wire = try #require(toA.protect(sample(netB4, netA4)).value)
        let nat = IPAddress("203.0.113.9")!
        wire.withUnsafeMutableBytes { p in
            IPv4Header(unchecked: p).source = nat
            p.setBE16(20, 62000)                            // NAT's source port
        }
        #expect(toA.unprotect(wire).value != nil)
        let (addr, port) = fromA.natEndpoint()
        #expect(addr == nat && port == 62000)
        // A's next packet goes to the NAT's address and port.
        let b = PacketBuffer()
        b.load(sample(netA4, netB4))
        #expect(ESPOutput.process(b, sa: fromA, now: 0, stats: CounterBlock()) == .send)
        #expect(IPv4Header(unchecked: b.bytes).destination == nat)
        #expect(b.bytes.be16(22) == 62000)
    }

    @Test func replayedPacketFromElsewhereDoesNotMoveThePeer() throws {
        // Replay checking off (OpenBSD's default for manual SAs): a copy of an old
        // authentic packet, re-sent from another address and port, is accepted but must
        // not redirect the outbound SA.
        var toA = try SAPair.esp("aes-128-gcm", from: hostB4, to: hostA4, spi: 0x3000, replay: 0, udp: encap)
        let fromA = try SecurityAssociation(try SAPair.esp("aes-128-gcm", from: hostA4, to: hostB4, udp: encap).spec,
                                            direction: .outbound, store: nil, now: 0)
        toA.sad = SAD([toA.inbound, fromA])       // the SAD pairs them for NAT-T
        let first = try #require(toA.protect(sample(netB4, netA4)).value)
        let second = try #require(toA.protect(sample(netB4, netA4)).value)
        #expect(toA.unprotect(first).value != nil)
        #expect(toA.unprotect(second).value != nil)
        #expect(fromA.natEndpoint().1 == nil)          // same address and port as configured: nothing learned
        var replayed = first
        replayed.withUnsafeMutableBytes { p in
            IPv4Header(unchecked: p).source = IPAddress("203.0.113.66")!
            p.setBE16(20, 31337)
        }
        #expect(toA.unprotect(replayed).value != nil)  // accepted: replay checking is off
        #expect(fromA.natEndpoint().0 == nil && fromA.natEndpoint().1 == nil)
    }

    @Test func transportChecksumIsFixedUpAfterNAT() throws {
        // B sends TCP in transport mode from its private address; a NAT rewrites the
        // outer source. After decapsulation the TCP checksum must fit the address A sees.
        let privateB = IPAddress("198.18.7.7")!
        let pair = try SAPair.esp("aes-128-gcm", mode: .transport, from: privateB, to: hostA4, udp: encap)
        let segment = PacketBuilder.tcp(source: privateB, destination: hostA4, sourcePort: 40000, destinationPort: 22,
                                        payload: Array("hello".utf8))
        var wire = try #require(pair.protect(segment).value)
        let nat = IPAddress("203.0.113.9")!
        wire.withUnsafeMutableBytes { IPv4Header(unchecked: $0).source = nat }
        var back = try #require(pair.unprotect(wire).value)
        let ok = back.withUnsafeMutableBytes { p -> Bool in
            guard case .success(let info) = PacketInfo.parse(p) else { return false }
            return info.source == nat && TransportChecksum.verify(UnsafeRawBufferPointer(p), info: info)
        }
        #expect(ok)
    }
}
