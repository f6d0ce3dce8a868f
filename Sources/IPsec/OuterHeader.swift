// OuterHeader: writes the tunnel-mode outer IPv4/IPv6 header and the RFC 3948 UDP
// header in place. Addresses come from the SA; the DS field and DF from TunnelPolicy.

import EncCore

enum OuterHeader {
    /// Writes an IPv4 (20 bytes) or IPv6 (40 bytes) header at the start of `p`, for a
    /// packet of `totalLength` bytes.
    static func write(_ p: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress,
                      proto: UInt8, totalLength: Int, dsField: UInt8, dontFragment: Bool,
                      identification: UInt16, ttl: UInt8) {
        if destination.family == .inet {
            p[0] = 0x45
            p[1] = dsField
            p.setBE16(2, UInt16(totalLength))
            p.setBE16(4, identification)
            p.setBE16(6, dontFragment ? 0x4000 : 0)
            p[8] = ttl
            p[9] = proto
            p.setBE16(10, 0)
            source.write(to: p.baseAddress! + 12)
            destination.write(to: p.baseAddress! + 16)
            IPv4Header(unchecked: p).updateChecksum()
        } else {
            p.setBE32(0, 6 << 28 | UInt32(dsField) << 20)
            p.setBE16(4, UInt16(totalLength - IPv6Header.length))
            p[6] = proto
            p[7] = ttl
            source.write(to: p.baseAddress! + 8)
            destination.write(to: p.baseAddress! + 24)
        }
    }

    /// Writes the UDP header of RFC 3948 at `at`, covering the rest of the packet.
    /// IPv4: checksum 0 (RFC 3948 §2.1). IPv6: computed, as IPv6 requires (RFC 8200).
    static func writeUDP(_ p: UnsafeMutableRawBufferPointer, at: Int, sourcePort: UInt16,
                         destinationPort: UInt16, family: AddressFamily) {
        let length = p.count - at
        p.setBE16(at, sourcePort)
        p.setBE16(at + 2, destinationPort)
        p.setBE16(at + 4, UInt16(length))
        p.setBE16(at + 6, 0)
        if family == .inet6 {
            let ip = IPv6Header(unchecked: p)
            let seg = UnsafeRawBufferPointer(rebasing: p[at...])
            let sum = Checksum.combine(
                Checksum.pseudoHeader(source: ip.source, destination: ip.destination,
                                      protocol: IPProtocol.udp, length: length),
                Checksum.sum(seg))
            var c = Checksum.finish(sum)
            if c == 0 { c = 0xffff }
            p.setBE16(at + 6, c)
        }
    }
}
