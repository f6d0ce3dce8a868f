// ESP output (RFC 4303 §3.3), in place on one PacketBuffer. Stages, all on the worker
// that owns the SA (so sequence numbers leave in order):
//   1. checks: transform present, SA usable, result fits in an IP packet
//   2. sequence number: taken from the SA, reserved ahead in the SequenceStore
//   3. trailer: [TFC padding] padding 1,2,3,… pad length, next header, ICV room
//   4. head: tunnel — outer IP [+ UDP] + ESP header before the inner packet;
//            transport — the IP header moves forward to open room for [UDP +] ESP
//   5. seal: IV, encryption and ICV by the SA's ESPTransform
//   6. outer header fields: lengths, protocol, checksums, DS field, DF, TTL
// Every drop bumps one counter and leaves through `drop`.

import Crypto
import EncCore

/// How tunnel mode builds the outer header (RFC 4301 §5.1.2 and §8.1, RFC 6040).
public struct TunnelPolicy: Sendable, Equatable {
    public var ttl: UInt8
    public var dontFragment: DFBitPolicy
    public var ecn: TunnelECN.Mode
    /// Pad tunnel-mode payloads up to a multiple of this many bytes (RFC 4303 §2.7
    /// traffic flow confidentiality); 0 = off.
    public var tfcPadTo: Int

    public init(ttl: UInt8 = 64, dontFragment: DFBitPolicy = .copy, ecn: TunnelECN.Mode = .normal, tfcPadTo: Int = 0) {
        self.ttl = ttl
        self.dontFragment = dontFragment
        self.ecn = ecn
        self.tfcPadTo = tfcPadTo
    }
}

/// The result of output processing; the buffer then holds the packet to send.
public enum OutputResult: Equatable, Sendable {
    case send
    case dropped(Counter)
}

public enum ESPOutput {
    /// Protects the IP packet in `buffer` with `sa`. On `.send` the buffer holds the
    /// ESP (or UDP-encapsulated ESP) packet, addressed to the SA's destination (or the
    /// peer's NAT-T endpoint learned from its traffic).
    public static func process(_ buffer: PacketBuffer, sa: SecurityAssociation, now: UInt64,
                               tunnel: TunnelPolicy = TunnelPolicy(),
                               stats: CounterBlock<Counter>) -> OutputResult {
        stats.add(.espOutput)
        func drop(_ c: Counter) -> OutputResult {
            stats.add(c)
            sa.counters.add(.drops)
            return .dropped(c)
        }
        guard let esp = sa.esp else { return drop(.espNoTransform) }
        guard !sa.hardExpired else { return drop(.espInvalidSA) }
        guard let inner = IPLayout.read(buffer.bytes) else { return drop(.malformedPacket) }
        // Anything after the IP packet's own length (there should be none) is not sent.
        buffer.trimBack(buffer.count - inner.packetLength)

        let spec = sa.spec
        let isTunnel = spec.mode == .tunnel
        let udpLength = spec.encapsulation != nil ? 8 : 0
        let outerLength = isTunnel ? (spec.destination.family == .inet ? 20 : 40) : 0
        let keptHeader = isTunnel ? 0 : inner.headerLength
        let nextHeader: UInt8 = isTunnel ? (inner.family == .inet ? IPProtocol.ipip : IPProtocol.ipv6)
                                         : inner.payloadProtocol
        if !isTunnel && inner.isFragment { return drop(.malformedPacket) }

        var payloadLength = buffer.count - keptHeader
        var tfc = 0
        if isTunnel && tunnel.tfcPadTo > 0 {
            tfc = (tunnel.tfcPadTo - payloadLength % tunnel.tfcPadTo) % tunnel.tfcPadTo
            payloadLength += tfc
        }
        let align = esp.padAlignment
        let padLength = (align - (payloadLength + 2) % align) % align
        let trailerLength = tfc + padLength + 2 + esp.icvLength
        let espHeaderLength = 8 + esp.ivLength
        let headLength = outerLength + udpLength + espHeaderLength
        let finalLength = keptHeader + headLength + payloadLength + padLength + 2 + esp.icvLength
        guard finalLength <= 65_535 else { return drop(.espTooBig) }
        guard buffer.headroom >= headLength, buffer.tailroom >= trailerLength else { return drop(.espTooBig) }

        guard let seq = sa.takeSequence() else {
            return drop(sa.exhausted ? .espSequenceWrap : .espSequenceReserveFailed)
        }

        // 3. Trailer.
        let oldEnd = buffer.count
        buffer.append(trailerLength)
        var p = buffer.bytes
        var at = oldEnd
        if tfc > 0 {
            (p.baseAddress! + at).initializeMemory(as: UInt8.self, repeating: 0, count: tfc)
            at += tfc
        }
        for i in 0..<padLength { p[at + i] = UInt8(truncatingIfNeeded: i + 1) }
        at += padLength
        p[at] = UInt8(padLength)
        p[at + 1] = nextHeader

        // 4. Head.
        let (innerDS, innerDF) = TunnelHeader.innerFields(p, family: inner.family)
        if isTunnel {
            buffer.prepend(headLength)
        } else {
            buffer.shiftFront(length: keptHeader, by: -(udpLength + espHeaderLength))
        }
        p = buffer.bytes
        let espStart = (isTunnel ? outerLength : keptHeader) + udpLength
        p.setBE32(espStart, spec.spi)
        p.setBE32(espStart + 4, UInt32(truncatingIfNeeded: seq))

        // 5. Seal.
        let region = UnsafeMutableRawBufferPointer(rebasing: p[espStart...])
        guard esp.seal(region, sequence: seq, esn: spec.extendedSequence) else {
            return drop(.espOutputCryptoFailed)
        }

        // 6. Outer header.
        let (peerAddress, peerPort) = sa.natEndpoint()
        let destination = isTunnel ? (peerAddress ?? spec.destination) : inner.destination
        if isTunnel {
            OuterHeader.write(p, source: spec.source, destination: destination,
                              proto: udpLength > 0 ? IPProtocol.udp : IPProtocol.esp,
                              totalLength: p.count, dsField: TunnelDSField.encapsulate(inner: innerDS, mode: tunnel.ecn),
                              dontFragment: tunnel.dontFragment.outerDF(innerDF: innerDF),
                              identification: UInt16(truncatingIfNeeded: seq), ttl: tunnel.ttl)
        } else {
            IPLayout.setProtocol(p, family: inner.family, offset: inner.protocolFieldOffset,
                                 udpLength > 0 ? IPProtocol.udp : IPProtocol.esp)
            IPLayout.setLength(p, family: inner.family, total: p.count)
        }
        if let encap = spec.encapsulation {
            let udpAt = espStart - 8
            OuterHeader.writeUDP(p, at: udpAt, sourcePort: encap.port,
                                 destinationPort: peerPort ?? encap.peerPort ?? encap.port,
                                 family: destination.family)
            stats.add(.espUDPEncapOutput)
        }
        stats.add(.espOutputBytes, UInt64(payloadLength))
        sa.account(bytes: payloadLength, now: now, stats: stats)
        return .send
    }
}
