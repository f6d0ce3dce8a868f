// Upper-layer checksums of a parsed packet: TCP, UDP and ICMPv6 over their
// pseudo-header, ICMPv4 over the message alone. Used by builders, by tests, and where
// a packet's transport checksum must be recomputed (e.g. after NAT-T transport mode
// when the original addresses are unknown). Whole (unfragmented) packets only.
// The IPv6 pseudo-header uses the header's destination; with a routing header whose
// segments are not yet visited the final destination differs (RFC 8200 8.1) and
// this computes the wrong value — encd neither builds nor rewrites such packets.

public enum TransportChecksum {
    /// Offset of the checksum field within the upper-layer header, or nil when the
    /// protocol has none encd computes.
    public static func fieldOffset(protocol proto: UInt8, family: AddressFamily) -> Int? {
        switch proto {
        case IPProtocol.tcp: return 16
        case IPProtocol.udp: return 6
        case IPProtocol.icmp where family == .inet: return 2
        case IPProtocol.icmpv6 where family == .inet6: return 2
        default: return nil
        }
    }

    /// The ones' complement sum of the upper-layer bytes, with the pseudo-header when
    /// the protocol uses one; nil when the packet is a fragment, the protocol has no
    /// checksum here, or the bytes are not inside the buffer.
    static func partial(_ bytes: UnsafeRawBufferPointer, _ info: PacketInfo) -> UInt32? {
        guard !info.isFragment, fieldOffset(protocol: info.protocol, family: info.family) != nil else { return nil }
        let length = info.transportLength
        guard let body = Checksum.sum(bytes, offset: info.transportOffset, count: length) else { return nil }
        if info.protocol == IPProtocol.icmp { return body }
        let pseudo = Checksum.pseudoHeader(source: info.source, destination: info.destination,
                                           protocol: info.protocol, length: length)
        return Checksum.combine(body, pseudo)
    }

    /// True when the stored upper-layer checksum is right. A zero UDP checksum over
    /// IPv4 (none sent) counts as right; over IPv6 it is wrong (RFC 8200 8.1).
    public static func verify(_ bytes: UnsafeRawBufferPointer, info: PacketInfo) -> Bool {
        if info.protocol == IPProtocol.udp, !info.isFragment,
           info.transportOffset >= 0, info.transportOffset + UDPHeader.length <= bytes.count,
           bytes.be16(info.transportOffset + 6) == 0 {
            return info.family == .inet
        }
        guard let sum = partial(bytes, info) else { return false }
        return sum == 0xffff
    }

    /// Computes and stores the upper-layer checksum; false when it cannot (fragment,
    /// no checksum for the protocol, bytes outside the buffer).
    @discardableResult
    public static func fill(_ bytes: UnsafeMutableRawBufferPointer, info: PacketInfo) -> Bool {
        guard let field = fieldOffset(protocol: info.protocol, family: info.family), !info.isFragment,
              info.transportOffset >= 0, info.transportLength >= field + 2,
              info.transportOffset + info.transportLength <= bytes.count else { return false }
        let at = info.transportOffset + field
        bytes.setBE16(at, 0)
        guard let sum = partial(UnsafeRawBufferPointer(bytes), info) else { return false }
        var c = Checksum.finish(sum)
        if c == 0 && info.protocol == IPProtocol.udp { c = 0xffff }
        bytes.setBE16(at, c)
        return true
    }
}
