// PacketInfo: what the packet path needs to know about one IP packet — addresses,
// protocol, ports, fragment state, DS field — read once by PacketInfo.parse
// (PacketParser.swift). A plain value: no references, no allocation.

public struct PacketInfo: Sendable, Equatable {
    public var family: AddressFamily = .inet
    public var source: IPAddress = .any(.inet)
    public var destination: IPAddress = .any(.inet)
    /// Offset of the IP header in the buffer that was parsed.
    public var ipOffset = 0
    /// Bytes from the IP header to the upper-layer header: IHL*4 for IPv4 (plus AH
    /// when walked), 40 plus extension headers for IPv6.
    public var headerLength = 0
    /// The packet's length by its IP header: IPv4 total length, IPv6 40 + payload length.
    public var totalLength = 0
    /// Upper-layer protocol (for a non-first IPv6 fragment: the fragment header's next
    /// header).
    public var `protocol`: UInt8 = 0
    /// Offset of the upper-layer header in the buffer that was parsed.
    public var transportOffset = 0
    /// Fragment offset in bytes; 0 for unfragmented packets and first fragments.
    public var fragmentOffset = 0
    public var moreFragments = false
    /// IPv4 identification (16 bits) or the IPv6 fragment header's (32 bits, 0 without one).
    public var identification: UInt32 = 0
    /// True when the ports below were read (TCP, UDP, SCTP; unfragmented or first fragment).
    public var hasPorts = false
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    /// True when icmpType/icmpCode were read (ICMP over IPv4, ICMPv6 over IPv6).
    public var hasICMP = false
    public var icmpType: UInt8 = 0
    public var icmpCode: UInt8 = 0
    /// TCP flags byte when protocol is TCP and the header was read; else 0.
    public var tcpFlags: UInt8 = 0
    /// IPv4 TOS or IPv6 traffic class.
    public var trafficClass: UInt8 = 0
    /// IPv4 TTL or IPv6 hop limit.
    public var ttl: UInt8 = 0
    /// IPv4 DF; always false for IPv6 (which has no such bit).
    public var dontFragment = false

    public init() {}

    public var dscp: UInt8 { trafficClass >> 2 }
    public var ecn: ECN { ECN(bits: trafficClass) }
    /// True for any fragment (an IPv6 atomic fragment, offset 0 without M, is not one).
    public var isFragment: Bool { fragmentOffset != 0 || moreFragments }
    /// Upper-layer bytes (header and data) in this packet.
    public var transportLength: Int { ipOffset + totalLength - transportOffset }
    /// Offset one past the packet's last byte by its IP length.
    public var endOffset: Int { ipOffset + totalLength }
}

/// Choices for PacketInfo.parse. The defaults suit packets from NFQUEUE and TUN.
public struct PacketParseOptions: Sendable, Equatable {
    /// Accept bytes after the IP length (e.g. ESP TFC padding after an inner packet);
    /// otherwise they are `.trailingBytes`.
    public var allowTrailingBytes = false
    /// Walk past AH to the protocol it protects; otherwise AH is the upper layer.
    public var walkAH = false
    /// Verify the IPv4 header checksum.
    public var verifyIPv4Checksum = true

    public init(allowTrailingBytes: Bool = false, walkAH: Bool = false, verifyIPv4Checksum: Bool = true) {
        self.allowTrailingBytes = allowTrailingBytes
        self.walkAH = walkAH
        self.verifyIPv4Checksum = verifyIPv4Checksum
    }
}
