// AH (RFC 4302), both directions, in place on one PacketBuffer. Stages on the SA's
// worker:
//   output: sequence number → head (tunnel: outer IP + AH; transport: IP header
//           moved forward, AH inserted) → ICV over the packet with mutable fields
//           zeroed → ICV written
//   input:  outer IP → SA lookup (destination, SPI, AH) → header length vs the SA's
//           ICV → replay pre-check → ICV check (constant time) → replay commit →
//           decapsulation
// The ICV input (RFC 4302 §3.3.3): the IP header with its mutable fields zeroed (IPv4
// TOS, flags/fragment offset, TTL, checksum and mutable options; IPv6 traffic class,
// flow label, hop limit and options whose type says they change en route), the AH
// header with the ICV zeroed (its padding kept as sent), the payload, then the high
// ESN half. The zeroing is done on a copy placed in the buffer's headroom, so nothing
// is allocated.

import Crypto
import EncCore

public enum AH {
    /// AH's fixed part: next header, length, reserved, SPI, sequence number.
    static let fixedLength = 12
    static let zeros = [UInt8](repeating: 0, count: 64)

    /// The AH header length for an ICV, padded to 4 bytes (IPv4) or 8 (IPv6).
    static func headerLength(icv: Int, family: AddressFamily) -> Int {
        let raw = fixedLength + icv
        let align = family == .inet ? 4 : 8
        return (raw + align - 1) / align * align
    }

    // MARK: Output

    public static func output(_ buffer: PacketBuffer, sa: SecurityAssociation, now: UInt64,
                              tunnel: TunnelPolicy = TunnelPolicy(),
                              stats: CounterBlock<Counter>) -> OutputResult {
        stats.add(.ahOutput)
        func drop(_ c: Counter) -> OutputResult {
            stats.add(c)
            sa.counters.add(.drops)
            return .dropped(c)
        }
        guard let auth = sa.ah else { return drop(.ahNoTransform) }
        guard !sa.hardExpired else { return drop(.ahInvalidSA) }
        guard let inner = IPLayout.read(buffer.bytes) else { return drop(.malformedPacket) }
        buffer.trimBack(buffer.count - inner.packetLength)
        let spec = sa.spec
        let isTunnel = spec.mode == .tunnel
        if !isTunnel && inner.isFragment { return drop(.malformedPacket) }
        let outerFamily = isTunnel ? spec.destination.family : inner.family
        let outerLength = isTunnel ? (outerFamily == .inet ? 20 : 40) : 0
        let ahLength = headerLength(icv: auth.icvLength, family: outerFamily)
        guard buffer.count + outerLength + ahLength <= 65_535 else { return drop(.ahTooBig) }
        guard buffer.headroom >= outerLength + ahLength + 128 else { return drop(.ahTooBig) }
        guard let seq = sa.takeSequence() else {
            return drop(sa.exhausted ? .ahSequenceWrap : .ahSequenceReserveFailed)
        }
        let payloadLength = buffer.count - (isTunnel ? 0 : inner.headerLength)
        let (innerDS, innerDF) = TunnelHeader.innerFields(buffer.bytes, family: inner.family)
        let nextHeader: UInt8
        let ahAt: Int
        if isTunnel {
            nextHeader = inner.family == .inet ? IPProtocol.ipip : IPProtocol.ipv6
            buffer.prepend(outerLength + ahLength)
            ahAt = outerLength
            OuterHeader.write(buffer.bytes, source: spec.source, destination: spec.destination, proto: IPProtocol.ah,
                              totalLength: buffer.count,
                              dsField: TunnelDSField.encapsulate(inner: innerDS, mode: tunnel.ecn),
                              dontFragment: tunnel.dontFragment.outerDF(innerDF: innerDF),
                              identification: UInt16(truncatingIfNeeded: seq), ttl: tunnel.ttl)
        } else {
            nextHeader = inner.payloadProtocol
            buffer.shiftFront(length: inner.headerLength, by: -ahLength)
            ahAt = inner.headerLength
            let p = buffer.bytes
            IPLayout.setProtocol(p, family: inner.family, offset: inner.protocolFieldOffset, IPProtocol.ah)
            IPLayout.setLength(p, family: inner.family, total: p.count)
        }
        let p = buffer.bytes
        p[ahAt] = nextHeader
        p[ahAt + 1] = UInt8(ahLength / 4 - 2)
        p.setBE16(ahAt + 2, 0)
        p.setBE32(ahAt + 4, spec.spi)
        p.setBE32(ahAt + 8, UInt32(truncatingIfNeeded: seq))
        // ICV padding (RFC 4302 §3.3.3.2.1): its bytes are authenticated as sent, so
        // they must be written, not left as whatever the buffer held. Zeros.
        let padAt = ahAt + fixedLength + auth.icvLength
        (p.baseAddress! + padAt).initializeMemory(as: UInt8.self, repeating: 0, count: ahAt + ahLength - padAt)
        guard computeICV(buffer, family: outerFamily, ahAt: ahAt, ahLength: ahLength, auth: auth,
                         sequenceHigh: spec.extendedSequence ? UInt32(truncatingIfNeeded: seq >> 32) : nil) else {
            return drop(.ahOutputCryptoFailed)
        }
        guard auth.finish(into: p.baseAddress! + ahAt + fixedLength) else { return drop(.ahOutputCryptoFailed) }
        stats.add(.ahOutputBytes, UInt64(payloadLength))
        sa.account(bytes: payloadLength, now: now, stats: stats)
        return .send
    }

    // MARK: Input

    public static func input(_ buffer: PacketBuffer, sad: SAD, now: UInt64,
                             stats: CounterBlock<Counter>) -> InputResult {
        stats.add(.ahInput)
        func drop(_ c: Counter, _ sa: SecurityAssociation? = nil) -> InputResult {
            stats.add(c)
            sa?.counters.add(.drops)
            return .dropped(c)
        }
        guard let outer = IPLayout.read(buffer.bytes), outer.payloadProtocol == IPProtocol.ah,
              !outer.isFragment else {
            let v = buffer.count > 0 ? buffer.bytes[0] >> 4 : 4
            return drop(v != 4 && v != 6 ? .ahUnsupportedFamily : .ahShort)
        }
        buffer.trimBack(buffer.count - outer.packetLength)
        let p = buffer.bytes
        let ahAt = outer.headerLength
        guard p.count - ahAt >= fixedLength else { return drop(.ahShort) }
        let spi = p.be32(ahAt + 4)
        guard let sa = sad.lookup(destination: outer.destination, spi: spi, proto: .ah) else { return drop(.ahNoSA) }
        guard let auth = sa.ah else { return drop(.ahNoTransform, sa) }
        guard !sa.hardExpired else { return drop(.ahInvalidSA, sa) }
        let ahLength = (Int(p[ahAt + 1]) + 2) * 4
        guard ahLength == headerLength(icv: auth.icvLength, family: outer.family) else {
            return drop(.ahBadAuthLength, sa)
        }
        guard p.count - ahAt >= ahLength else { return drop(.ahShort, sa) }
        let sequence: UInt64
        switch sa.replay.check(p.be32(ahAt + 8)) {
        case .ok(let s): sequence = s
        case .zero:
            sa.counters.add(.replayDrops)
            return drop(.ahReplayZero, sa)
        case .tooOld, .duplicate:
            sa.counters.add(.replayDrops)
            return drop(.ahReplay, sa)
        }
        guard buffer.headroom >= 128 + outer.headerLength else { return drop(.ahInputProcessing, sa) }
        guard computeICV(buffer, family: outer.family, ahAt: ahAt, ahLength: ahLength, auth: auth,
                         sequenceHigh: sa.spec.extendedSequence ? UInt32(truncatingIfNeeded: sequence >> 32) : nil) else {
            return drop(.ahInputProcessing, sa)
        }
        guard auth.verify(UnsafeRawPointer(p.baseAddress! + ahAt + fixedLength)) else {
            sa.counters.add(.authFailures)
            return drop(.ahAuthFailed, sa)
        }
        guard sa.mayAccept(sequence) else { return drop(.ahReplayStatePending, sa) }
        sa.replay.commit(sequence)
        sa.accepted(sequence)
        let nextHeader = p[ahAt]
        let payloadLength = p.count - ahAt - ahLength
        let result: InputResult
        if sa.spec.mode == .tunnel {
            guard nextHeader == IPProtocol.ipip || nextHeader == IPProtocol.ipv6 else { return drop(.ahInputProcessing, sa) }
            let outerDS = TunnelHeader.outerDS(p, family: outer.family)
            buffer.trimFront(ahAt + ahLength)
            guard TunnelHeader.finishDecapsulation(buffer, nextHeader: nextHeader, outerDS: outerDS) else {
                return drop(.ahInputProcessing, sa)
            }
            result = .decapsulated(sa)
        } else {
            buffer.shiftFront(length: ahAt, by: ahLength)
            let q = buffer.bytes
            IPLayout.setProtocol(q, family: outer.family, offset: outer.protocolFieldOffset, nextHeader)
            IPLayout.setLength(q, family: outer.family, total: q.count)
            result = .decapsulated(sa)
        }
        stats.add(.ahInputBytes, UInt64(payloadLength))
        sa.account(bytes: payloadLength, now: now, stats: stats)
        return result
    }

    // MARK: ICV

    /// Runs the authenticator over the packet as RFC 4302 §3.3.3.1 defines it, leaving
    /// the result pending in `auth` (finish or verify next). The IP header is copied
    /// into the headroom and its mutable fields are zeroed there.
    static func computeICV(_ buffer: PacketBuffer, family: AddressFamily, ahAt: Int, ahLength: Int,
                           auth: Authenticator, sequenceHigh: UInt32?) -> Bool {
        let p = buffer.bytes
        guard buffer.headroom >= ahAt else { return false }
        let scratch = UnsafeMutableRawBufferPointer(start: buffer.base, count: ahAt)
        scratch.copyMemory(from: UnsafeRawBufferPointer(rebasing: p[0..<ahAt]))
        guard zeroMutableFields(scratch, family: family) else { return false }
        auth.reset()
        auth.update(UnsafeRawBufferPointer(scratch))
        auth.update(UnsafeRawBufferPointer(rebasing: p[ahAt..<(ahAt + fixedLength)]))
        // The ICV counts as zeros; its padding counts as carried (RFC 4302 §3.4.4 zeroes
        // the ICV only, not the padding after it).
        zeros.withUnsafeBytes { z in
            var left = auth.icvLength
            while left > 0 {
                let n = min(left, z.count)
                auth.update(UnsafeRawBufferPointer(rebasing: z[0..<n]))
                left -= n
            }
        }
        auth.update(UnsafeRawBufferPointer(rebasing: p[(ahAt + fixedLength + auth.icvLength)...]))
        if let high = sequenceHigh {
            withUnsafeBytes(of: high.bigEndian) { auth.update($0) }
        }
        return true
    }

    /// Zeroes what may change in transit (RFC 4302 §3.3.3.1.1 and Appendix A).
    static func zeroMutableFields(_ h: UnsafeMutableRawBufferPointer, family: AddressFamily) -> Bool {
        if family == .inet {
            h[1] = 0                      // TOS
            h.setBE16(6, 0)               // flags, fragment offset
            h[8] = 0                      // TTL
            h.setBE16(10, 0)              // header checksum
            var at = 20
            while at < h.count {
                let type = h[at]
                if type == 0 { break }                        // end of options
                if type == 1 { at += 1; continue }            // no-op
                guard at + 1 < h.count else { return false }
                let len = Int(h[at + 1])
                guard len >= 2, at + len <= h.count else { return false }
                // Immutable: security (130), extended security (133), commercial
                // security (134), router alert (148), SDMDD (149). Everything else is
                // zeroed whole (loose/strict source routes included, a documented
                // simplification).
                switch type {
                case 130, 133, 134, 148, 149: break
                default: (h.baseAddress! + at).initializeMemory(as: UInt8.self, repeating: 0, count: len)
                }
                at += len
            }
            return true
        }
        // IPv6: traffic class and flow label, hop limit.
        h[0] &= 0xf0
        h[1] = 0
        h[2] = 0
        h[3] = 0
        h[7] = 0
        var next = h[6]
        var at = 40
        while at < h.count {
            guard at + 2 <= h.count else { return false }
            let len = next == IPProtocol.fragment ? 8 : (Int(h[at + 1]) + 1) * 8
            guard at + len <= h.count else { return false }
            if next == IPProtocol.hopByHop || next == IPProtocol.destinationOptions {
                var o = at + 2
                while o < at + len {
                    let type = h[o]
                    if type == 0 { o += 1; continue }          // Pad1
                    guard o + 1 < at + len else { return false }
                    let olen = Int(h[o + 1])
                    guard o + 2 + olen <= at + len else { return false }
                    if type & 0x20 != 0 {                      // changes en route
                        (h.baseAddress! + o + 2).initializeMemory(as: UInt8.self, repeating: 0, count: olen)
                    }
                    o += 2 + olen
                }
            }
            next = h[at]
            at += len
        }
        return true
    }
}
