// PacketError: why PacketInfo.parse rejected a packet. One case per reason so the
// caller can count each drop under its own name; `text` is what a stats tool prints
// ("%llu packets <text>"). Plain enum: returning one allocates nothing.

public enum PacketError: UInt8, Error, CaseIterable, Sendable, CustomStringConvertible {
    case empty = 1
    case badVersion
    case truncatedIPv4Header
    case badIHL
    case ipv4OptionsTruncated
    case badIPv4Checksum
    case totalLengthTooShort
    case totalLengthExceedsPacket
    case trailingBytes
    case fragmentTooLarge
    case truncatedIPv6Header
    case extensionHeaderTruncated
    case extensionChainTooLong
    case hopByHopNotFirst
    case transportTruncated
    case badTCPDataOffset
    case badUDPLength

    /// Short text for counters and logs.
    public var text: StaticString {
        switch self {
        case .empty: return "empty or offset past the buffer"
        case .badVersion: return "with IP version neither 4 nor 6"
        case .truncatedIPv4Header: return "shorter than an IPv4 header"
        case .badIHL: return "with IPv4 header length below 20 bytes"
        case .ipv4OptionsTruncated: return "with IPv4 options past the end"
        case .badIPv4Checksum: return "with bad IPv4 header checksum"
        case .totalLengthTooShort: return "with IPv4 total length shorter than the header"
        case .totalLengthExceedsPacket: return "with IP length larger than the packet"
        case .trailingBytes: return "with bytes after the IP length"
        case .fragmentTooLarge: return "with fragment ending past 65535 bytes"
        case .truncatedIPv6Header: return "shorter than an IPv6 header"
        case .extensionHeaderTruncated: return "with extension header past the end"
        case .extensionChainTooLong: return "with too many extension headers"
        case .hopByHopNotFirst: return "with hop-by-hop options not first"
        case .transportTruncated: return "with truncated transport header"
        case .badTCPDataOffset: return "with TCP data offset below 5"
        case .badUDPLength: return "with UDP length not matching the IP payload"
        }
    }

    public var description: String { "\(text)" }
}
