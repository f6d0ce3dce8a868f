import Crypto
import EncCore
import Testing
@testable import IPsec

/// Every way an inbound ESP packet is refused: each one is dropped, counted once
/// under its own counter, and leaves the SA usable.
@Suite struct ESPInputDropTests {
    let packet = sample(netA4, netB4)

    @Test func tamperedCiphertextFailsVerification() throws {
        let pair = try SAPair.esp("aes-128", auth: "hmac-sha2-256")
        var wire = try #require(pair.protect(packet).value)
        wire[20 + 8 + 16 + 3] ^= 0x80                       // a ciphertext byte after SPI, seq and IV
        #expect(pair.unprotect(wire).drop == .espAuthFailed)
        #expect(pair.rxStats[.espAuthFailed] == 1)
        #expect(pair.inbound.counters[.authFailures] == 1)
        // The window did not move: the genuine packet with the same number still passes.
        #expect(pair.unprotect(try #require(SAPair.resend(pair, packet))).value == packet)
    }

    @Test(arguments: ["aes-128-gcm", "chacha20-poly1305", "aes-256-gmac", "aesctr", "3des-cbc"])
    func tamperedICVFailsVerification(cipher: String) throws {
        let pair = try SAPair.esp(cipher, auth: "hmac-sha1")
        var wire = try #require(pair.protect(packet).value)
        wire[wire.count - 2] ^= 1
        #expect(pair.unprotect(wire).drop == .espAuthFailed)
        let snapshot = CounterSnapshot(summing: [pair.rxStats])
        #expect(snapshot.value(.badauth, in: .esp) == 1)
        #expect(snapshot.value(.input, in: .esp) == 1)
    }

    @Test func tamperedSequenceNumberFailsVerification() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        var wire = try #require(pair.protect(packet).value)
        wire[20 + 7] ^= 0x10                                // sequence number low byte
        #expect(pair.unprotect(wire).drop == .espAuthFailed)
    }

    @Test func unknownSPIHasNoSA() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        var wire = try #require(pair.protect(packet).value)
        wire[20 + 3] ^= 0x01                                // SPI
        #expect(pair.unprotect(wire).drop == .espNoSA)
        #expect(CounterSnapshot(summing: [pair.rxStats]).value(.notdb, in: .esp) == 1)
    }

    @Test func replayedPacketIsDropped() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        let wire = try #require(pair.protect(packet).value)
        #expect(pair.unprotect(wire).value == packet)
        #expect(pair.unprotect(wire).drop == .espReplay)
        #expect(pair.inbound.counters[.replayDrops] == 1)
        #expect(CounterSnapshot(summing: [pair.rxStats]).report(.esp, hideZeros: true) ==
                "esp:\n\t2 input ESP packets\n\t1 possibly replayed packet received\n\t128 input bytes\n")
    }

    @Test func truncatedPacketsAreShort() throws {
        let pair = try SAPair.esp("aes-128-gcm")
        let wire = try #require(pair.protect(packet).value)
        for cut in [21, 27, 20 + 8 + 8 + 10] {
            var short = Array(wire[0..<cut])
            short.withUnsafeMutableBytes { IPv4Header(unchecked: $0).totalLength = UInt16(cut) }
            #expect(pair.unprotect(short).drop == .espShort, "cut at \(cut)")
        }
    }

    @Test func cbcCiphertextNotBlockAlignedIsBadPayloadSize() throws {
        let pair = try SAPair.esp("aes-128", auth: "hmac-sha2-256")
        var wire = try #require(pair.protect(packet).value)
        // Insert one byte into the ciphertext: the ICV no longer matches either, but
        // the length check comes first.
        wire.insert(0, at: 20 + 8 + 16)
        let length = UInt16(wire.count)
        wire.withUnsafeMutableBytes { IPv4Header(unchecked: $0).totalLength = length }
        let drop = pair.unprotect(wire).drop
        #expect(drop == .espBadPadding || drop == .espAuthFailed)
    }

    @Test func badPaddingBytesAreRefusedAfterAuthentication() throws {
        // Build a packet whose padding is wrong but whose ICV is right.
        let pair = try SAPair.esp("null", auth: "hmac-sha2-256")
        let inner = sample(netA4, netB4, size: 3)           // 31 bytes → pad 3
        var wire = try #require(pair.protect(inner).value)
        let padAt = 20 + 8 + 31
        wire[padAt] = 9                                      // must be 1
        reseal(&wire, pair: pair, espStart: 20, sequence: 1)
        #expect(pair.unprotect(wire).drop == .espBadPadding)
    }

    @Test func padLengthBeyondPayloadIsRefused() throws {
        let pair = try SAPair.esp("null", auth: "hmac-sha2-256")
        var wire = try #require(pair.protect(sample(netA4, netB4, size: 3)).value)
        wire[20 + 8 + 31 + 3] = 200                          // pad length > payload
        reseal(&wire, pair: pair, espStart: 20, sequence: 1)
        #expect(pair.unprotect(wire).drop == .espBadPadding)
    }

    @Test func unknownNextHeaderInTunnelModeIsRefused() throws {
        let pair = try SAPair.esp("null", auth: "hmac-sha2-256")
        var wire = try #require(pair.protect(sample(netA4, netB4, size: 3)).value)
        wire[20 + 8 + 31 + 4] = IPProtocol.noNextHeader      // a dummy (TFC) packet
        reseal(&wire, pair: pair, espStart: 20, sequence: 1)
        #expect(pair.unprotect(wire).drop == .espBadNextHeader)
    }

    @Test func forgedPacketsNeverTrap() throws {
        // Random bytes behind a valid outer header and SPI: always a counted drop.
        let pair = try SAPair.esp("aes-128-gcm")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let n = Int.random(in: 0..<120, using: &rng)
            var body: [UInt8] = [0, 0, 0x10, 0x00] + (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { body = Array(body.prefix(Int.random(in: 0...body.count, using: &rng))) }
            let wire = PacketBuilder.ip(source: hostA4, destination: hostB4, protocol: IPProtocol.esp, payload: body)
            #expect(pair.unprotect(wire).drop != nil)
        }
        let s = CounterSnapshot(summing: [pair.rxStats])
        #expect(s.value(.input, in: .esp) == 500)
        #expect(s.value(.idrops, in: .ipsec) == 500)
    }

    @Test func sequenceExhaustionWithoutESNStopsTheSA() throws {
        let store = MemorySequenceStore()
        let spec = try SAPair.esp("aes-128-gcm").spec
        store.preload(spec, through: UInt64(UInt32.max) - 2)
        let pair = try SAPair(spec, store: store)
        #expect(pair.protect(packet).value != nil)           // 0xFFFFFFFE
        #expect(pair.protect(packet).value != nil)           // 0xFFFFFFFF
        #expect(pair.protect(packet).drop == .espSequenceWrap)
        #expect(pair.protect(packet).drop == .espSequenceWrap)
        #expect(pair.out.exhausted)
        #expect(CounterSnapshot(summing: [pair.txStats]).value(.wrap, in: .esp) == 2)
    }

    @Test func extendedSequenceNumbersCrossTheLowHalf() throws {
        let store = MemorySequenceStore()
        let spec = try SAPair.esp("aes-128-gcm", esn: true).spec
        store.preload(spec, through: UInt64(UInt32.max) - 1)
        let pair = try SAPair(spec, store: store)
        pair.inbound.replay.reset(top: UInt64(UInt32.max) - 1)
        for _ in 0..<3 {
            #expect(pair.unprotect(try #require(pair.protect(packet).value)).value == packet)
        }
        #expect(pair.inbound.replay.top == 1 << 32 | 1)
    }

    @Test func sequenceNumbersContinueAboveTheReservationAfterRestart() throws {
        let store = MemorySequenceStore()
        let spec = try SAPair.esp("aes-128-gcm").spec
        let first = try SecurityAssociation(spec, direction: .outbound, store: store, now: 0, reservationChunk: 100)
        first.activate()
        for _ in 0..<5 { _ = first.takeSequence() }
        // "Crash": a new SA object from the same store starts above everything reserved.
        let second = try SecurityAssociation(spec, direction: .outbound, store: store, now: 0, reservationChunk: 100)
        second.activate()
        #expect(second.takeSequence() == 101)
        #expect(store.reserveCalls == 2)
    }

    @Test func failedReservationDropsInsteadOfReusing() throws {
        let store = MemorySequenceStore()
        store.failReservations = true
        let pair = try SAPair(try SAPair.esp("aes-128-gcm").spec, store: store)
        #expect(pair.protect(packet).drop == .espSequenceReserveFailed)
    }

    @Test func hardPacketLifetimeInvalidatesTheSA() throws {
        let pair = try SAPair.esp("aes-128-gcm", hard: Lifetime(packets: 2), soft: Lifetime(packets: 1))
        #expect(pair.protect(packet).value != nil)
        #expect(pair.txStats[.saSoftExpired] == 1)
        #expect(pair.protect(packet).value != nil)
        #expect(pair.txStats[.saHardExpired] == 1)
        #expect(pair.protect(packet).drop == .espInvalidSA)
        #expect(pair.txStats[.saSoftExpired] == 1)
    }

    @Test func timeLifetimeIsReportedOnce() throws {
        let pair = try SAPair.esp("aes-128-gcm", hard: Lifetime(seconds: 10))
        #expect(pair.out.checkLifetime(now: 5) == .none)
        #expect(pair.out.checkLifetime(now: 10) == .hard)
        #expect(pair.out.checkLifetime(now: 11) == .none)
        #expect(pair.out.hardExpired)
    }
}

extension SAPair {
    /// Re-protects `packet` on a fresh outbound SA with the same keys, so the
    /// sequence number starts at 1 again (a genuine retransmission from the sender's
    /// point of view).
    static func resend(_ pair: SAPair, _ packet: [UInt8]) -> [UInt8]? {
        guard let fresh = try? SAPair(pair.spec) else { return nil }
        return fresh.protect(packet).value
    }
}

/// Recomputes the HMAC ICV of a null-cipher ESP packet after a test edited it.
func reseal(_ wire: inout [UInt8], pair: SAPair, espStart: Int, sequence: UInt64) {
    let spec = pair.spec
    let auth = try! Authenticator(algorithm: spec.integrity!, key: spec.integrityKey!)
    wire.withUnsafeMutableBytes { p in
        let icvAt = p.count - auth.icvLength
        auth.reset()
        auth.update(UnsafeRawBufferPointer(rebasing: p[espStart..<icvAt]))
        _ = auth.finish(into: p.baseAddress! + icvAt)
    }
}
