// ESP input (RFC 4303 §3.4, RFC 3948 §3), in place on one PacketBuffer. Stages, on the
// worker that owns the SA (hash of SPI), in OpenBSD's order:
//   1. outer IP header; UDP encapsulation: non-ESP marker (IKE) → not ours,
//      keepalive 0xFF → dropped
//   2. SA lookup by (destination, SPI, ESP); encapsulation must match the SA
//   3. length and block size; replay pre-check (nothing committed)
//   4. ICV check in constant time, then decryption (ESPTransform.open)
//   5. replay commit, only now that the packet is authentic and its number durably
//      recorded as accepted (SequenceReservation)
//   6. trailer: pad length within the payload, pad bytes 1,2,3,…, next header
//   7. NAT-T: follow the peer's address/port; decapsulate (tunnel: inner packet with
//      RFC 6040 ECN; transport: IP header moved back, checksum fix-up after NAT)
// The inbound policy check (the inner packet must match a flow bound to this SA) is
// the caller's next step, after NAT on enc0 (SPD.inboundAllowed).

import Crypto
import EncCore

public enum InputResult: Equatable, Sendable {
    /// The buffer now holds the decrypted inner (tunnel) or restored (transport) packet.
    case decapsulated(SecurityAssociation)
    /// UDP to the encapsulation port whose first word is zero: IKE, for the socket.
    case notESP
    case dropped(Counter)

    public static func == (a: InputResult, b: InputResult) -> Bool {
        switch (a, b) {
        case (.decapsulated(let x), .decapsulated(let y)): return x === y
        case (.notESP, .notESP): return true
        case (.dropped(let x), .dropped(let y)): return x == y
        default: return false
        }
    }
}

public enum ESPInput {
    /// Processes the ESP or ESP-in-UDP packet in `buffer` (starting at its IP header).
    /// `udpEncapsulation`: the packet arrived as UDP to an encapsulation port.
    public static func process(_ buffer: PacketBuffer, sad: SAD, now: UInt64,
                               stats: CounterBlock<Counter>) -> InputResult {
        let p = buffer.bytes
        guard let outer = IPLayout.read(p) else {
            let reason: Counter = p.count > 0 && p[0] >> 4 != 4 && p[0] >> 4 != 6 ? .espUnsupportedFamily : .espShort
            stats.add(.espInput)
            stats.add(reason)
            return .dropped(reason)
        }
        buffer.trimBack(buffer.count - outer.packetLength)
        var espStart = outer.headerLength
        var udpSourcePort: UInt16 = 0
        let viaUDP = outer.payloadProtocol == IPProtocol.udp
        if viaUDP {
            // RFC 3948 §2.2/§2.3: a one-byte 0xFF payload is a keepalive; a zero first
            // word is the non-ESP marker of IKE, which belongs to the socket.
            let udpPayload = outer.packetLength - espStart - 8
            guard udpPayload >= 1 else { return count(.malformedPacket, stats) }
            if udpPayload == 1 && p[espStart + 8] == 0xFF {
                stats.add(.keepaliveDropped)
                return .dropped(.keepaliveDropped)
            }
            if udpPayload >= 4 && p.be32(espStart + 8) == 0 { return .notESP }
            udpSourcePort = p.be16(espStart)
            espStart += 8
        } else if outer.payloadProtocol != IPProtocol.esp {
            return count(.malformedPacket, stats)
        }
        stats.add(.espInput)
        if viaUDP { stats.add(.espUDPEncapInput) }

        func drop(_ c: Counter, _ sa: SecurityAssociation? = nil) -> InputResult {
            stats.add(c)
            sa?.counters.add(.drops)
            return .dropped(c)
        }
        if outer.isFragment { return drop(.espShort) }
        guard outer.packetLength - espStart >= 8 else { return drop(.espShort) }

        // 2. The SA.
        let spi = p.be32(espStart)
        guard let sa = sad.lookup(destination: outer.destination, spi: spi, proto: .esp) else {
            return drop(.espNoSA)
        }
        // Before anything of the SA is touched: ESP in UDP and plain ESP arrive on
        // different workers (a queue for UDP, raw sockets for ESP), and an SA's state
        // belongs to the one its encapsulation names.
        if viaUDP && sa.spec.encapsulation == nil { return drop(.espUDPForPlainSA) }
        if !viaUDP && sa.spec.encapsulation != nil { return drop(.espRawForUDPSA) }
        guard let esp = sa.esp else { return drop(.espNoTransform, sa) }
        guard !sa.hardExpired else { return drop(.espInvalidSA, sa) }

        // 3. Length, then the replay pre-check.
        let espLength = outer.packetLength - espStart
        guard espLength >= 8 + esp.ivLength + esp.icvLength + 2 else { return drop(.espShort, sa) }
        let sequence: UInt64
        switch sa.replay.check(p.be32(espStart + 4)) {
        case .ok(let s): sequence = s
        case .zero:
            sa.counters.add(.replayDrops)
            return drop(.espReplayZero, sa)
        case .tooOld, .duplicate:
            sa.counters.add(.replayDrops)
            return drop(.espReplay, sa)
        }

        // 4. Authenticate and decrypt.
        let region = UnsafeMutableRawBufferPointer(rebasing: p[espStart..<outer.packetLength])
        switch esp.open(region, sequenceHigh: UInt32(truncatingIfNeeded: sequence >> 32), esn: sa.spec.extendedSequence) {
        case .ok: break
        case .authenticationFailed:
            sa.counters.add(.authFailures)
            return drop(.espAuthFailed, sa)
        case .badLength: return drop(.espBadPadding, sa)
        case .failed: return drop(.espInputCryptoFailed, sa)
        }

        // 5. Commit, once the number is durably recorded as one the SA may accept (so a
        // restarted encd starts its window above it). Only a packet newer than every
        // packet before it may move the peer's NAT-T endpoint, so a replayed packet
        // (with replay checking off, or inside the window) sent from elsewhere cannot
        // redirect our traffic.
        guard sa.mayAccept(sequence) else { return drop(.espReplayStatePending, sa) }
        let newest = sequence > sa.replay.top
        sa.replay.commit(sequence)
        sa.accepted(sequence)

        // 6. Trailer.
        let payloadStart = espStart + 8 + esp.ivLength
        let trailerEnd = outer.packetLength - esp.icvLength
        let padLength = Int(p[trailerEnd - 2])
        let nextHeader = p[trailerEnd - 1]
        let payloadEnd = trailerEnd - 2 - padLength
        guard payloadEnd >= payloadStart else { return drop(.espBadPadding, sa) }
        for i in 0..<padLength where p[payloadEnd + i] != UInt8(truncatingIfNeeded: i + 1) {
            return drop(.espBadPadding, sa)
        }
        let payloadLength = payloadEnd - payloadStart

        // 7. NAT-T and decapsulation.
        if viaUDP && newest, let partner = sad.natPartner(of: sa) {
            partner.learnNATEndpoint(address: outer.source, port: udpSourcePort)
        }
        let result: InputResult
        if sa.spec.mode == .tunnel {
            result = decapsulateTunnel(buffer, outer: outer, payloadStart: payloadStart, payloadEnd: payloadEnd,
                                       nextHeader: nextHeader, sa: sa, stats: stats)
        } else {
            result = decapsulateTransport(buffer, outer: outer, espStart: espStart, payloadStart: payloadStart,
                                          payloadEnd: payloadEnd, nextHeader: nextHeader, viaUDP: viaUDP,
                                          sa: sa, stats: stats)
        }
        if case .decapsulated = result {
            stats.add(.espInputBytes, UInt64(payloadLength))
            sa.account(bytes: payloadLength, now: now, stats: stats)
        }
        return result
    }

    private static func count(_ c: Counter, _ stats: CounterBlock<Counter>) -> InputResult {
        stats.add(c)
        return .dropped(c)
    }

    /// Tunnel mode: the payload is an IP packet (possibly followed by TFC padding);
    /// its ECN field takes the outer CE mark per RFC 6040.
    static func decapsulateTunnel(_ buffer: PacketBuffer, outer: IPLayout, payloadStart: Int, payloadEnd: Int,
                                  nextHeader: UInt8, sa: SecurityAssociation,
                                  stats: CounterBlock<Counter>) -> InputResult {
        func drop(_ c: Counter) -> InputResult {
            stats.add(c)
            sa.counters.add(.drops)
            return .dropped(c)
        }
        let outerDS = TunnelHeader.outerDS(buffer.bytes, family: outer.family)
        switch nextHeader {
        case IPProtocol.ipip, IPProtocol.ipv6: break
        case IPProtocol.noNextHeader: return drop(.espBadNextHeader)   // a dummy TFC packet (RFC 4303 §2.6)
        default: return drop(.espBadNextHeader)
        }
        buffer.trimBack(buffer.count - payloadEnd)
        buffer.trimFront(payloadStart)
        guard TunnelHeader.finishDecapsulation(buffer, nextHeader: nextHeader, outerDS: outerDS) else {
            return drop(.espBadNextHeader)
        }
        return .decapsulated(sa)
    }

    /// Transport mode: the IP header moves back over the ESP header; its protocol and
    /// length are restored. After NAT-T, TCP and UDP checksums computed by the peer
    /// over its own addresses are recomputed over the addresses as received (RFC 3948
    /// §3.1.2: the payload's integrity is already proven by ESP).
    static func decapsulateTransport(_ buffer: PacketBuffer, outer: IPLayout, espStart: Int, payloadStart: Int,
                                     payloadEnd: Int, nextHeader: UInt8, viaUDP: Bool, sa: SecurityAssociation,
                                     stats: CounterBlock<Counter>) -> InputResult {
        let removed = payloadStart - outer.headerLength
        buffer.trimBack(buffer.count - payloadEnd)
        buffer.shiftFront(length: outer.headerLength, by: removed)
        let p = buffer.bytes
        IPLayout.setProtocol(p, family: outer.family, offset: outer.protocolFieldOffset, nextHeader)
        IPLayout.setLength(p, family: outer.family, total: p.count)
        if viaUDP && (nextHeader == IPProtocol.tcp || nextHeader == IPProtocol.udp) {
            // IPv4 UDP with checksum 0 means "none" and stays so.
            let udpWithoutSum = nextHeader == IPProtocol.udp && outer.family == .inet
                && p.count >= outer.headerLength + 8 && p.be16(outer.headerLength + 6) == 0
            if !udpWithoutSum, case .success(let info) = PacketInfo.parse(p) {
                TransportChecksum.fill(p, info: info)
            }
        }
        return .decapsulated(sa)
    }
}
