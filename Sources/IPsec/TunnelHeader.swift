// TunnelHeader: the inner-packet side of tunnel mode, shared by ESP and AH — what the
// outer header copies from the inner one on the way out (DS field, DF), and what the
// inner packet takes from the outer one on the way in (RFC 6040 ECN), after the
// buffer has been cut down to the inner packet.

import EncCore

enum TunnelHeader {
    /// The inner packet's DS byte and (IPv4 only) DF bit.
    static func innerFields(_ p: UnsafeMutableRawBufferPointer, family: AddressFamily) -> (ds: UInt8, df: Bool?) {
        if family == .inet {
            let ip = IPv4Header(unchecked: p)
            return (ip.tos, ip.dontFragment)
        }
        return (IPv6Header(unchecked: p).trafficClass, nil)
    }

    /// The outer header's DS byte (before the buffer is cut).
    static func outerDS(_ p: UnsafeMutableRawBufferPointer, family: AddressFamily) -> UInt8 {
        family == .inet ? IPv4Header(unchecked: p).tos : IPv6Header(unchecked: p).trafficClass
    }

    /// With `buffer` starting at the inner packet: checks that it is an IP packet of the
    /// family `nextHeader` announces, trims what follows it (TFC padding) and applies
    /// the outer ECN mark. False when the packet must be dropped (not IP, wrong family,
    /// or CE outside a Not-ECT packet).
    static func finishDecapsulation(_ buffer: PacketBuffer, nextHeader: UInt8, outerDS: UInt8) -> Bool {
        guard let inner = IPLayout.read(buffer.bytes),
              (inner.family == .inet) == (nextHeader == IPProtocol.ipip) else { return false }
        buffer.trimBack(buffer.count - inner.packetLength)
        let p = buffer.bytes
        if inner.family == .inet {
            let ip = IPv4Header(unchecked: p)
            guard let ds = TunnelDSField.decapsulate(inner: ip.tos, outer: outerDS) else { return false }
            if ds != ip.tos { ip.tos = ds }
        } else {
            let ip = IPv6Header(unchecked: p)
            guard let ds = TunnelDSField.decapsulate(inner: ip.trafficClass, outer: outerDS) else { return false }
            if ds != ip.trafficClass { ip.trafficClass = ds }
        }
        return true
    }
}
