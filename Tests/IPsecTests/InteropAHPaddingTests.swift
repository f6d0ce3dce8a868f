import Crypto
import EncCore
import Testing
@testable import IPsec

/// AH ICV padding (RFC 4302 §2.6, §3.3.3.2.1, §3.4.4): the sender picks the padding
/// bytes, they are authenticated as carried, and only the ICV itself is zeroed for the
/// computation. Found by the scapy cross-check: encd authenticated zeros but sent
/// whatever the buffer held, and zeroed received padding, so IPv6 AH with a 16-, 24-
/// or 32-byte ICV (padded to 8 bytes) failed at every other implementation.
@Suite struct InteropAHPaddingTests {
    /// IPv6 AH with HMAC-SHA2-256: 12 + 16 = 28 bytes, padded to 32.
    static let icv = 16, ahLength = 32, padding = 4

    @Test(arguments: [IPsecMode.transport, .tunnel])
    func paddingOnTheWireIsZeroWhateverTheBufferHeld(mode: IPsecMode) throws {
        let pair = try SAPair.ah("hmac-sha2-256", mode: mode, from: hostA6, to: hostB6)
        let b = PacketBuffer()
        b.base.initializeMemory(as: UInt8.self, repeating: 0xEE, count: b.capacity)   // stale bytes
        let packet = mode == .tunnel ? sample(netA6, netB6) : sample(hostA6, hostB6)
        #expect(b.load(packet))
        #expect(AH.output(b, sa: pair.out, now: 1, stats: pair.txStats) == .send)
        let wire = b.array
        let padAt = 40 + 12 + Self.icv
        #expect(Array(wire[padAt..<(40 + Self.ahLength)]) == [UInt8](repeating: 0, count: Self.padding))
        #expect(pair.unprotect(wire).value == packet)
    }

    @Test func receivedPaddingIsAuthenticatedAsCarried() throws {
        let pair = try SAPair.ah("hmac-sha2-256", mode: .transport, from: hostA6, to: hostB6)
        let packet = sample(hostA6, hostB6, size: 21)
        var wire = try #require(pair.protect(packet).value)
        // A sender that pads with other bytes: set them and compute the ICV by hand over
        // the IPv6 header (traffic class, flow label, hop limit zeroed), the AH header
        // with the ICV zeroed and the padding as carried, and the payload.
        let padAt = 40 + 12 + Self.icv
        for i in 0..<Self.padding { wire[padAt + i] = 0xA0 | UInt8(i) }
        var input = wire
        input[0] &= 0xF0; input[1] = 0; input[2] = 0; input[3] = 0; input[7] = 0
        for i in 0..<Self.icv { input[40 + 12 + i] = 0 }
        let mac = try Authenticator(algorithm: pair.spec.integrity!, key: pair.spec.integrityKey!)
        mac.reset()
        input.withUnsafeBytes { mac.update($0) }
        var icv = [UInt8](repeating: 0, count: Self.icv)
        #expect(icv.withUnsafeMutableBytes { mac.finish(into: $0.baseAddress!) })
        wire.replaceSubrange((40 + 12)..<padAt, with: icv)
        #expect(pair.unprotect(wire).value == packet)

        // And a change to the padding in transit is caught.
        var again = try #require(pair.protect(packet).value)
        again[padAt] ^= 0x01
        #expect(pair.unprotect(again).drop == .ahAuthFailed)
    }
}
