// IPLayout: where IPsec inserts or finds its header in an IP packet — the length of
// the IP header(s) that stay in front, the protocol that follows them, and the byte
// that names that protocol (rewritten when ESP/AH is inserted or removed). IPv6
// extension headers that must precede ESP/AH (hop-by-hop, routing, fragment and
// destination options before routing) stay in front; the walk itself is EncCore's.

import EncCore

public struct IPLayout: Sendable, Equatable {
    public var family: AddressFamily
    /// Bytes of IP header (with IPv4 options or IPv6 extension headers) before the payload.
    public var headerLength: Int
    /// The protocol of the payload after `headerLength`.
    public var payloadProtocol: UInt8
    /// Offset of the byte that holds `payloadProtocol`.
    public var protocolFieldOffset: Int
    /// The IP packet's own length per its header (≤ the buffer).
    public var packetLength: Int
    public var source: IPAddress
    public var destination: IPAddress
    public var isFragment: Bool

    /// Reads the layout of the packet at the start of `p`, or nil if it is not a
    /// well-formed IPv4/IPv6 packet that fits in `p`.
    public static func read(_ p: UnsafeMutableRawBufferPointer) -> IPLayout? {
        guard p.count >= 1 else { return nil }
        switch p[0] >> 4 {
        case 4:
            guard let ip = IPv4Header(p), ip.ihl >= 5, ip.headerLength <= p.count else { return nil }
            let total = Int(ip.totalLength)
            guard total >= ip.headerLength, total <= p.count else { return nil }
            return IPLayout(family: .inet, headerLength: ip.headerLength, payloadProtocol: ip.protocol,
                            protocolFieldOffset: 9, packetLength: total, source: ip.source,
                            destination: ip.destination, isFragment: ip.isFragment)
        case 6:
            guard let ip = IPv6Header(p) else { return nil }
            let total = IPv6Header.length + Int(ip.payloadLength)
            guard total <= p.count else { return nil }
            // Walk the headers that precede the IPsec header, tracking the last
            // "next header" byte.
            var at = IPv6Header.length
            var next = ip.nextHeader
            var field = 6
            var fragment = false
            var seen = 0
            loop: while true {
                switch next {
                case IPProtocol.hopByHop, IPProtocol.routing, IPProtocol.destinationOptions, IPProtocol.fragment:
                    guard total - at >= 8, seen < IPv6Extensions.maximumHeaders else { return nil }
                    // Destination options stay in front only when a routing header
                    // follows (they are for the intermediate hops); otherwise they
                    // are for the final destination and go inside (RFC 4303 §3.1.1).
                    if next == IPProtocol.destinationOptions && p[at] != IPProtocol.routing {
                        break loop
                    }
                    let len = next == IPProtocol.fragment ? 8 : (Int(p[at + 1]) + 1) * 8
                    guard total - at >= len else { return nil }
                    if next == IPProtocol.fragment { fragment = true }
                    field = at
                    next = p[at]
                    at += len
                    seen += 1
                default:
                    break loop
                }
            }
            return IPLayout(family: .inet6, headerLength: at, payloadProtocol: next, protocolFieldOffset: field,
                            packetLength: total, source: ip.source, destination: ip.destination, isFragment: fragment)
        default:
            return nil
        }
    }

    /// Writes a new length into the IP header (IPv4 total length with checksum,
    /// IPv6 payload length).
    public static func setLength(_ p: UnsafeMutableRawBufferPointer, family: AddressFamily, total: Int) {
        if family == .inet {
            IPv4Header(unchecked: p).totalLength = UInt16(total)
        } else {
            IPv6Header(unchecked: p).payloadLength = UInt16(total - IPv6Header.length)
        }
    }

    /// Rewrites the protocol byte at `offset` (IPv4: keeps the header checksum right).
    public static func setProtocol(_ p: UnsafeMutableRawBufferPointer, family: AddressFamily, offset: Int, _ proto: UInt8) {
        if family == .inet && offset == 9 {
            IPv4Header(unchecked: p).protocol = proto
        } else {
            p[offset] = proto
        }
    }
}
