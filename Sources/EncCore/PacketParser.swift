// PacketInfo.parse: the validating read of one IP packet on the packet path.
//
// Stages: 1. version  2. IPv4 header (IHL, total length, checksum, fragment) or IPv6
// header (payload length, extension walk)  3. the transport header's ports / ICMP type.
// Each malformation returns its own PacketError; nothing traps, nothing allocates
// (the Result carries a plain value and a plain enum).
// Transport checksums are not verified here (see TransportChecksum).

extension PacketInfo {
    /// Parses the IP packet that starts at `offset` of `bytes` and runs to the buffer's
    /// end (or, with `allowTrailingBytes`, to its IP length).
    public static func parse(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0,
                             options: PacketParseOptions = PacketParseOptions()) -> Result<PacketInfo, PacketError> {
        guard offset >= 0, offset < bytes.count else { return .failure(.empty) }
        switch bytes[offset] >> 4 {
        case 4: return parseIPv4(bytes, offset, options)
        case 6: return parseIPv6(bytes, offset, options)
        default: return .failure(.badVersion)
        }
    }

    public static func parse(_ bytes: UnsafeMutableRawBufferPointer, at offset: Int = 0,
                             options: PacketParseOptions = PacketParseOptions()) -> Result<PacketInfo, PacketError> {
        parse(UnsafeRawBufferPointer(bytes), at: offset, options: options)
    }

    static func parseIPv4(_ b: UnsafeRawBufferPointer, _ at: Int, _ options: PacketParseOptions)
        -> Result<PacketInfo, PacketError> {
        let available = b.count - at
        guard available >= IPv4Header.minimumLength else { return .failure(.truncatedIPv4Header) }
        let ihl = Int(b[at] & 0x0f) * 4
        guard ihl >= IPv4Header.minimumLength else { return .failure(.badIHL) }
        guard ihl <= available else { return .failure(.ipv4OptionsTruncated) }
        let total = Int(b.be16(at + 2))
        guard total >= ihl else { return .failure(.totalLengthTooShort) }
        guard total <= available else { return .failure(.totalLengthExceedsPacket) }
        guard total == available || options.allowTrailingBytes else { return .failure(.trailingBytes) }
        if options.verifyIPv4Checksum {
            let sum = Checksum.sum(UnsafeRawBufferPointer(rebasing: b[at ..< at + ihl]))
            guard sum == 0xffff else { return .failure(.badIPv4Checksum) }
        }
        let frag = b.be16(at + 6)
        var info = PacketInfo()
        info.family = .inet
        info.ipOffset = at
        info.totalLength = total
        info.trafficClass = b[at + 1]
        info.identification = UInt32(b.be16(at + 4))
        info.dontFragment = frag & 0x4000 != 0
        info.moreFragments = frag & 0x2000 != 0
        info.fragmentOffset = Int(frag & 0x1fff) * 8
        info.ttl = b[at + 8]
        info.source = IPAddress(v4: b.be32(at + 12))
        info.destination = IPAddress(v4: b.be32(at + 16))
        guard info.fragmentOffset + total - ihl <= 65_535 else { return .failure(.fragmentTooLarge) }

        var proto = b[at + 9]
        var upper = at + ihl
        if proto == IPProtocol.ah && options.walkAH && info.fragmentOffset == 0 {
            switch IPv6Extensions.walk(b, first: proto, start: upper, end: at + total, ipv6: false, walkAH: true) {
            case .failure(let e): return .failure(e)
            case .success(let w): proto = w.upperProtocol; upper = w.upperOffset
            }
        }
        info.protocol = proto
        info.transportOffset = upper
        info.headerLength = upper - at
        if let e = readTransport(b, &info) { return .failure(e) }
        return .success(info)
    }

    static func parseIPv6(_ b: UnsafeRawBufferPointer, _ at: Int, _ options: PacketParseOptions)
        -> Result<PacketInfo, PacketError> {
        let available = b.count - at
        guard available >= IPv6Header.length else { return .failure(.truncatedIPv6Header) }
        let total = IPv6Header.length + Int(b.be16(at + 4))
        guard total <= available else { return .failure(.totalLengthExceedsPacket) }
        guard total == available || options.allowTrailingBytes else { return .failure(.trailingBytes) }
        var info = PacketInfo()
        info.family = .inet6
        info.ipOffset = at
        info.totalLength = total
        info.trafficClass = UInt8(truncatingIfNeeded: b.be32(at) >> 20)
        info.ttl = b[at + 7]
        info.source = IPAddress(family: .inet6, bytes: b.baseAddress! + at + 8)
        info.destination = IPAddress(family: .inet6, bytes: b.baseAddress! + at + 24)

        let walk: ExtensionWalk
        switch IPv6Extensions.walk(b, first: b[at + 6], start: at + IPv6Header.length, end: at + total,
                                   ipv6: true, walkAH: options.walkAH) {
        case .failure(let e): return .failure(e)
        case .success(let w): walk = w
        }
        info.protocol = walk.upperProtocol
        info.transportOffset = walk.upperOffset
        info.headerLength = walk.upperOffset - at
        info.fragmentOffset = walk.fragmentOffset
        info.moreFragments = walk.moreFragments
        info.identification = walk.identification
        if walk.hasFragmentHeader {
            // The fragmentable part starts after the fragment header; it may not reach
            // past 65535 once reassembled (RFC 8200 4.5).
            guard walk.fragmentOffset + (at + total - walk.upperOffset) <= 65_535 else {
                return .failure(.fragmentTooLarge)
            }
        }
        if let e = readTransport(b, &info) { return .failure(e) }
        return .success(info)
    }

    /// Reads ports / ICMP type from the upper-layer header when this packet carries it.
    static func readTransport(_ b: UnsafeRawBufferPointer, _ info: inout PacketInfo) -> PacketError? {
        guard info.fragmentOffset == 0 else { return nil }
        let at = info.transportOffset
        let length = info.endOffset - at
        let whole = !info.moreFragments
        switch info.protocol {
        case IPProtocol.tcp:
            guard length >= TCPHeader.minimumLength else { return .transportTruncated }
            let dataOffset = Int(b[at + 12] >> 4) * 4
            guard dataOffset >= TCPHeader.minimumLength else { return .badTCPDataOffset }
            guard dataOffset <= length || !whole else { return .transportTruncated }
            info.tcpFlags = b[at + 13]
            readPorts(b, at, &info)
        case IPProtocol.udp:
            guard length >= UDPHeader.length else { return .transportTruncated }
            if whole {
                guard Int(b.be16(at + 4)) == length else { return .badUDPLength }
            }
            readPorts(b, at, &info)
        case IPProtocol.sctp:
            guard length >= 12 else { return .transportTruncated }
            readPorts(b, at, &info)
        case IPProtocol.icmp where info.family == .inet, IPProtocol.icmpv6 where info.family == .inet6:
            guard length >= ICMPHeader.length else { return .transportTruncated }
            info.hasICMP = true
            info.icmpType = b[at]
            info.icmpCode = b[at + 1]
        default:
            break
        }
        return nil
    }

    @inline(__always)
    static func readPorts(_ b: UnsafeRawBufferPointer, _ at: Int, _ info: inout PacketInfo) {
        info.hasPorts = true
        info.sourcePort = b.be16(at)
        info.destinationPort = b.be16(at + 2)
    }
}
