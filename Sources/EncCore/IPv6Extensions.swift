// The IPv6 extension-header walk (RFC 8200 4): from the fixed header to the first
// upper-layer header, with the fragment header's fields picked up on the way.
//
// Walked: hop-by-hop (0, only first), routing (43), fragment (44), destination
// options (60), and AH (51) when asked. Everything else ends the walk and is the
// upper layer: TCP, UDP, ICMPv6, ESP (50, encrypted beyond), IPIP, IPv6, GRE, No Next
// Header (59), and headers encd does not interpret (Mobility, HIP, Shim6).
// A non-first fragment ends the walk at the fragment header: what follows is data.
// The same walk skips AH after an IPv4 header (`ipv6: false`). Bounded by
// `maximumHeaders`; every read is bounds-checked against `end`; no allocation.

public struct ExtensionWalk: Sendable, Equatable {
    /// The upper-layer protocol (or, for a non-first fragment, the fragment header's
    /// next header).
    public var upperProtocol: UInt8
    /// Offset of the upper-layer header in the buffer.
    public var upperOffset: Int
    /// Extension headers passed.
    public var headerCount: Int = 0
    public var hasFragmentHeader = false
    /// Fragment offset in bytes.
    public var fragmentOffset = 0
    public var moreFragments = false
    public var identification: UInt32 = 0
}

public enum IPv6Extensions {
    /// Longest chain accepted (RFC 8200's recommended order has at most 7 including a
    /// repeated destination options header; AH adds one).
    public static let maximumHeaders = 8

    /// Walks from `start` (the first byte after the IP header), whose header type is
    /// `first`, to the upper layer, never reading at or past `end`.
    public static func walk(_ bytes: UnsafeRawBufferPointer, first: UInt8, start: Int, end: Int,
                            ipv6: Bool = true, walkAH: Bool = false) -> Result<ExtensionWalk, PacketError> {
        guard start >= 0, start <= end, end <= bytes.count else { return .failure(.extensionHeaderTruncated) }
        var w = ExtensionWalk(upperProtocol: first, upperOffset: start)
        var next = first
        var at = start
        while true {
            let length: Int
            let following: UInt8
            switch next {
            case IPProtocol.hopByHop where ipv6, IPProtocol.routing where ipv6,
                 IPProtocol.destinationOptions where ipv6:
                if next == IPProtocol.hopByHop && w.headerCount != 0 { return .failure(.hopByHopNotFirst) }
                guard end - at >= 8 else { return .failure(.extensionHeaderTruncated) }
                following = bytes[at]
                length = (Int(bytes[at + 1]) + 1) * 8
            case IPProtocol.fragment where ipv6:
                guard end - at >= 8 else { return .failure(.extensionHeaderTruncated) }
                following = bytes[at]
                length = 8
                let field = bytes.be16(at + 2)
                w.hasFragmentHeader = true
                w.fragmentOffset = Int(field >> 3) * 8
                w.moreFragments = field & 1 != 0
                w.identification = bytes.be32(at + 4)
                if w.fragmentOffset != 0 {
                    // Later fragments carry data only; the protocol is the declared one.
                    w.headerCount += 1
                    guard w.headerCount <= maximumHeaders else { return .failure(.extensionChainTooLong) }
                    w.upperProtocol = following
                    w.upperOffset = at + 8
                    return .success(w)
                }
            case IPProtocol.ah where walkAH:
                guard end - at >= 12 else { return .failure(.extensionHeaderTruncated) }
                following = bytes[at]
                length = (Int(bytes[at + 1]) + 2) * 4
            default:
                w.upperProtocol = next
                w.upperOffset = at
                return .success(w)
            }
            guard length <= end - at else { return .failure(.extensionHeaderTruncated) }
            w.headerCount += 1
            guard w.headerCount <= maximumHeaders else { return .failure(.extensionChainTooLong) }
            at += length
            next = following
        }
    }
}
