import Crypto
import EncCore
import Testing
@testable import IPsec

/// Every ESP cipher × mode × address family, with and without ESN: what goes in
/// comes out, and the wire carries ESP.
@Suite struct ESPRoundTripTests {
    static let ciphers = EncryptionAlgorithm.table.map(\.name)

    @Test(arguments: ciphers, [false, true])
    func tunnelRoundTripEveryCipher(cipher: String, esn: Bool) throws {
        let legacy = EncryptionAlgorithm.named(cipher)!.cipher.isLegacy
        if legacy && !CryptoProviders.isLegacyAvailable { Issue.record("legacy provider missing"); return }
        for (outer, inner) in [((hostA4, hostB4), (netA4, netB4)), ((hostA6, hostB6), (netA6, netB6)),
                               ((hostA4, hostB4), (netA6, netB6)), ((hostA6, hostB6), (netA4, netB4))] {
            let pair = try SAPair.esp(cipher, from: outer.0, to: outer.1, esn: esn)
            for size in [0, 1, 15, 16, 17, 100, 1400] {
                let packet = sample(inner.0, inner.1, size: size)
                let wire = try #require(pair.protect(packet).value)
                #expect(wire[0] >> 4 == (outer.0.family == .inet ? 4 : 6))
                let proto = outer.0.family == .inet ? wire[9] : wire[6]
                #expect(proto == IPProtocol.esp)
                if EncryptionAlgorithm.named(cipher)!.cipher != .null && EncryptionAlgorithm.named(cipher)!.cipher != .aesGMAC {
                    // The inner payload does not appear in clear on the wire.
                    #expect(!contains(wire, Array(packet.suffix(16))) || size < 16)
                }
                #expect(pair.unprotect(wire).value == packet, "\(cipher) \(outer) \(inner) \(size)")
            }
        }
    }

    @Test(arguments: ciphers)
    func transportRoundTripEveryCipher(cipher: String) throws {
        if EncryptionAlgorithm.named(cipher)!.cipher.isLegacy && !CryptoProviders.isLegacyAvailable { return }
        for (a, b) in [(hostA4, hostB4), (hostA6, hostB6)] {
            let pair = try SAPair.esp(cipher, mode: .transport, from: a, to: b)
            for packet in [sample(a, b), PacketBuilder.tcp(source: a, destination: b, sourcePort: 1, destinationPort: 2, payload: [1, 2, 3]),
                           PacketBuilder.icmpEcho(source: a, destination: b, payload: [9, 9])] {
                let wire = try #require(pair.protect(packet).value)
                #expect(pair.unprotect(wire).value == packet)
            }
        }
    }

    @Test(arguments: IntegrityAlgorithm.table.map(\.name))
    func everyIntegrityAlgorithmWithAES(auth: String) throws {
        let pair = try SAPair.esp("aes-128", auth: auth, esn: true)
        let packet = sample(netA4, netB4)
        let wire = try #require(pair.protect(packet).value)
        #expect(pair.unprotect(wire).value == packet)
        var bad = try #require(pair.protect(packet).value)   // sequence 2
        bad[bad.count - 1] ^= 1
        #expect(pair.unprotect(bad).drop == .espAuthFailed)
    }

    @Test func paddingIsOneTwoThreeAndAligned() throws {
        let pair = try SAPair.esp("null", auth: "hmac-sha1")
        let packet = sample(netA4, netB4, size: 3)   // 28 + 3 = 31 bytes inner
        let wire = try #require(pair.protect(packet).value)
        // outer 20 + SPI/seq 8 + payload 31 + pad 3 + 2 + ICV 12
        #expect(wire.count == 20 + 8 + 31 + 3 + 2 + 12)
        let trailer: [UInt8] = Array(wire[59..<64])
        let expected: [UInt8] = [1, 2, 3, 3, IPProtocol.ipip]
        #expect(trailer == expected)
    }

    @Test func outerHeaderFollowsInnerDSFieldAndDF() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        let packet = PacketBuilder.udp(source: netA4, destination: netB4, sourcePort: 1, destinationPort: 2,
                                       payload: [1], tos: 0xB8 | 0x02, dontFragment: true)
        let wire = try #require(pair.protect(packet).value)
        #expect(wire[1] == 0xBA)                     // DSCP EF and ECT(0) copied (RFC 6040 normal mode)
        #expect(wire[6] & 0x40 != 0)                 // DF copied
        #expect(wire[8] == 64)                       // fresh TTL
        let headerSum: UInt16 = wire.withUnsafeBytes { Checksum.compute(UnsafeRawBufferPointer(rebasing: $0[0..<20])) }
        #expect(headerSum == 0)
    }

    @Test func congestionMarkReachesInnerPacket() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        let packet = PacketBuilder.udp(source: netA4, destination: netB4, sourcePort: 1, destinationPort: 2,
                                       payload: [1], tos: 0x02)    // ECT(0)
        var wire = try #require(pair.protect(packet).value)
        setOuterTOS(&wire, 0x03)                                   // a router marks CE outside
        let inner = try #require(pair.unprotect(wire).value)
        #expect(inner[1] & 3 == 3)
    }

    @Test func congestionMarkOnNotECTInnerIsDropped() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        var wire = try #require(pair.protect(sample(netA4, netB4)).value)   // Not-ECT inside
        setOuterTOS(&wire, 0x03)
        #expect(pair.unprotect(wire).drop != nil)
    }

    @Test func tfcPaddingIsRemovedOnInput() throws {
        let pair = try SAPair.esp("aes-256-gcm")
        let b = PacketBuffer()
        let packet = sample(netA4, netB4, size: 10)
        b.load(packet)
        #expect(ESPOutput.process(b, sa: pair.out, now: 1, tunnel: TunnelPolicy(tfcPadTo: 256), stats: pair.txStats) == .send)
        #expect(b.count >= 256)
        #expect(pair.unprotect(b.array).value == packet)
    }
}

func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= hay.count, !needle.isEmpty else { return false }
    for i in 0...(hay.count - needle.count) where Array(hay[i..<(i + needle.count)]) == needle { return true }
    return false
}

/// Rewrites the outer IPv4 TOS byte and its header checksum, as a router would.
func setOuterTOS(_ wire: inout [UInt8], _ tos: UInt8) {
    wire.withUnsafeMutableBytes { p in
        IPv4Header(unchecked: p).tos = tos
    }
}
