// PacketBuilder: whole IPv4/IPv6 packets with correct checksums, for tests, the
// benchmark and control-path probes. Not for the packet path: it returns arrays.
// The family follows the addresses; mixing families is a programming error.

public enum PacketBuilder {
    /// An IPv6 extension header to place between the fixed header and the upper layer,
    /// in the order given. Options are padded to 8 bytes with Pad1/PadN.
    public enum IPv6Extension: Sendable, Equatable {
        case hopByHop(options: [UInt8] = [])
        case routing(type: UInt8, segmentsLeft: UInt8, data: [UInt8] = [0, 0, 0, 0])
        /// `offset` in bytes (a multiple of 8).
        case fragment(offset: Int, more: Bool, identification: UInt32)
        case destinationOptions(options: [UInt8] = [])
        /// Raw bytes of a header of type `type`; byte 0 (next header) is filled in.
        case raw(type: UInt8, bytes: [UInt8])

        var type: UInt8 {
            switch self {
            case .hopByHop: return IPProtocol.hopByHop
            case .routing: return IPProtocol.routing
            case .fragment: return IPProtocol.fragment
            case .destinationOptions: return IPProtocol.destinationOptions
            case .raw(let t, _): return t
            }
        }

        func encoded(next: UInt8) -> [UInt8] {
            var out: [UInt8]
            switch self {
            case .hopByHop(let opts), .destinationOptions(let opts):
                out = [next, 0] + opts
                PacketBuilder.padOptions(&out)
                out[1] = UInt8(out.count / 8 - 1)
            case .routing(let type, let left, let data):
                out = [next, 0, type, left] + data
                while out.count % 8 != 0 { out.append(0) }
                out[1] = UInt8(out.count / 8 - 1)
            case .fragment(let offset, let more, let id):
                precondition(offset % 8 == 0 && offset <= 0xfff8, "fragment offset must be a multiple of 8")
                let field = UInt16(offset) | (more ? 1 : 0)
                out = [next, 0, UInt8(field >> 8), UInt8(field & 0xff),
                       UInt8(id >> 24), UInt8((id >> 16) & 0xff), UInt8((id >> 8) & 0xff), UInt8(id & 0xff)]
            case .raw(_, let bytes):
                out = bytes
                if !out.isEmpty { out[0] = next }
            }
            return out
        }
    }

    // MARK: IP

    /// An IP packet around `payload`. IPv4 fields: `identification`, `dontFragment`,
    /// `fragmentOffset` (bytes), `moreFragments`, `options` (padded to 4 bytes).
    /// IPv6 fields: `flowLabel`, `extensions` (the upper layer follows the last).
    public static func ip(source: IPAddress, destination: IPAddress, protocol proto: UInt8,
                          payload: [UInt8], ttl: UInt8 = 64, tos: UInt8 = 0,
                          identification: UInt16 = 0, dontFragment: Bool = false,
                          fragmentOffset: Int = 0, moreFragments: Bool = false,
                          options: [UInt8] = [], flowLabel: UInt32 = 0,
                          extensions: [IPv6Extension] = []) -> [UInt8] {
        precondition(source.family == destination.family, "address families differ")
        if source.family == .inet {
            var opts = options
            while opts.count % 4 != 0 { opts.append(0) }
            precondition(opts.count <= 40, "IPv4 options longer than 40 bytes")
            let hlen = 20 + opts.count
            let total = hlen + payload.count
            precondition(total <= 65_535 && fragmentOffset % 8 == 0 && fragmentOffset <= 0xfff8)
            var out = [UInt8](repeating: 0, count: total)
            out.withUnsafeMutableBytes { b in
                b[0] = 0x40 | UInt8(hlen / 4)               // version 4, IHL
                b[1] = tos                                  // DSCP + ECN
                b.setBE16(2, UInt16(total))                 // total length
                b.setBE16(4, identification)                // identification
                b.setBE16(6, (dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0)
                             | UInt16(fragmentOffset / 8))  // flags, fragment offset
                b[8] = ttl                                  // TTL
                b[9] = proto                                // protocol
                source.write(to: b.baseAddress! + 12)       // source
                destination.write(to: b.baseAddress! + 16)  // destination
                for (i, o) in opts.enumerated() { b[20 + i] = o }
                for (i, p) in payload.enumerated() { b[hlen + i] = p }
                IPv4Header(unchecked: b).updateChecksum()   // header checksum
            }
            return out
        }
        var chain = [UInt8]()
        let types = extensions.map(\.type) + [proto]
        for (i, e) in extensions.enumerated() { chain += e.encoded(next: types[i + 1]) }
        let plen = chain.count + payload.count
        precondition(plen <= 65_535, "IPv6 payload longer than 65535 bytes")
        var out = [UInt8](repeating: 0, count: 40)
        out.withUnsafeMutableBytes { b in
            b.setBE32(0, 0x6000_0000 | (UInt32(tos) << 20) | (flowLabel & 0xfffff)) // version, TC, flow
            b.setBE16(4, UInt16(plen))                      // payload length
            b[6] = types[0]                                 // next header
            b[7] = ttl                                      // hop limit
            source.write(to: b.baseAddress! + 8)            // source
            destination.write(to: b.baseAddress! + 24)      // destination
        }
        return out + chain + payload
    }

    // MARK: transports

    /// A UDP datagram in an IP packet, checksum filled in.
    public static func udp(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                           payload: [UInt8] = [], ttl: UInt8 = 64, tos: UInt8 = 0,
                           identification: UInt16 = 0, dontFragment: Bool = false,
                           extensions: [IPv6Extension] = []) -> [UInt8] {
        var seg = [UInt8](repeating: 0, count: UDPHeader.length) + payload
        seg.withUnsafeMutableBytes { b in
            b.setBE16(0, sourcePort)                        // source port
            b.setBE16(2, destinationPort)                   // destination port
            b.setBE16(4, UInt16(truncatingIfNeeded: b.count)) // length
        }
        fillChecksum(&seg, at: 6, source, destination, IPProtocol.udp)
        return ip(source: source, destination: destination, protocol: IPProtocol.udp, payload: seg, ttl: ttl,
                  tos: tos, identification: identification, dontFragment: dontFragment, extensions: extensions)
    }

    /// A TCP segment (no options) in an IP packet, checksum filled in.
    public static func tcp(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                           flags: TCPFlags = [.ack], sequence: UInt32 = 0, acknowledgment: UInt32 = 0,
                           window: UInt16 = 65_535, payload: [UInt8] = [], ttl: UInt8 = 64, tos: UInt8 = 0,
                           identification: UInt16 = 0, dontFragment: Bool = false) -> [UInt8] {
        var seg = [UInt8](repeating: 0, count: TCPHeader.minimumLength) + payload
        seg.withUnsafeMutableBytes { b in
            b.setBE16(0, sourcePort)                        // source port
            b.setBE16(2, destinationPort)                   // destination port
            b.setBE32(4, sequence)                          // sequence number
            b.setBE32(8, acknowledgment)                    // acknowledgment number
            b[12] = 5 << 4                                  // data offset 5 words
            b[13] = flags.rawValue                          // flags
            b.setBE16(14, window)                           // window
        }
        fillChecksum(&seg, at: 16, source, destination, IPProtocol.tcp)
        return ip(source: source, destination: destination, protocol: IPProtocol.tcp, payload: seg, ttl: ttl,
                  tos: tos, identification: identification, dontFragment: dontFragment)
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) echo request or reply, checksum filled in.
    public static func icmpEcho(source: IPAddress, destination: IPAddress, identifier: UInt16 = 1,
                                sequence: UInt16 = 1, payload: [UInt8] = [], reply: Bool = false,
                                ttl: UInt8 = 64, tos: UInt8 = 0) -> [UInt8] {
        let v4 = source.family == .inet
        var msg = [UInt8](repeating: 0, count: ICMPHeader.length) + payload
        msg[0] = v4 ? (reply ? ICMPType.echoReply : ICMPType.echoRequest)
                    : (reply ? ICMPv6Type.echoReply : ICMPv6Type.echoRequest)   // type; code 0
        msg.withUnsafeMutableBytes { b in
            b.setBE16(4, identifier)                        // identifier
            b.setBE16(6, sequence)                          // sequence number
        }
        let proto = v4 ? IPProtocol.icmp : IPProtocol.icmpv6
        fillChecksum(&msg, at: 2, source, destination, proto)
        return ip(source: source, destination: destination, protocol: proto, payload: msg, ttl: ttl, tos: tos)
    }

    /// Splits an IPv4 or IPv6 packet into fragments carrying at most `maxData` bytes of
    /// fragmentable data each (rounded down to a multiple of 8). IPv6 fragments get a
    /// fragment header after any leading hop-by-hop/routing headers.
    public static func fragments(of packet: [UInt8], maxData: Int, identification: UInt32 = 0x1234) -> [[UInt8]] {
        let step = max(8, maxData / 8 * 8)
        var out = [[UInt8]]()
        if packet[0] >> 4 == 4 {
            let hlen = Int(packet[0] & 0x0f) * 4
            let header = Array(packet[0 ..< hlen])
            let data = Array(packet[hlen...])
            var at = 0
            repeat {
                let n = min(step, data.count - at)
                let more = at + n < data.count
                out.append(ip(source: IPAddress(v4: beWord(header, 12)), destination: IPAddress(v4: beWord(header, 16)),
                              protocol: header[9], payload: Array(data[at ..< at + n]), ttl: header[8], tos: header[1],
                              identification: UInt16(truncatingIfNeeded: identification), fragmentOffset: at,
                              moreFragments: more, options: Array(header[20...])))
                at += n
            } while at < data.count
            return out
        }
        // IPv6: the unfragmentable part is the fixed header plus leading HBH/routing.
        var next = packet[6]
        var unfrag = 40
        var nextAt = 6
        while next == IPProtocol.hopByHop || next == IPProtocol.routing {
            nextAt = unfrag
            next = packet[unfrag]
            unfrag += (Int(packet[unfrag + 1]) + 1) * 8
        }
        let data = Array(packet[unfrag...])
        var at = 0
        repeat {
            let n = min(step, data.count - at)
            let more = at + n < data.count
            var head = Array(packet[0 ..< unfrag])
            head[nextAt] = IPProtocol.fragment
            let frag = IPv6Extension.fragment(offset: at, more: more, identification: identification).encoded(next: next)
            var f = head + frag + data[at ..< at + n]
            let plen = f.count - 40
            f[4] = UInt8(plen >> 8)
            f[5] = UInt8(plen & 0xff)
            out.append(f)
            at += n
        } while at < data.count
        return out
    }

    // MARK: helpers

    static func fillChecksum(_ seg: inout [UInt8], at field: Int, _ src: IPAddress, _ dst: IPAddress, _ proto: UInt8) {
        let body = seg.withUnsafeBytes { Checksum.sum($0) }
        let sum = proto == IPProtocol.icmp
            ? body
            : Checksum.combine(body, Checksum.pseudoHeader(source: src, destination: dst, protocol: proto, length: seg.count))
        var c = Checksum.finish(sum)
        if c == 0 && proto == IPProtocol.udp { c = 0xffff }
        seg[field] = UInt8(c >> 8)
        seg[field + 1] = UInt8(c & 0xff)
    }

    static func padOptions(_ h: inout [UInt8]) {
        let pad = (8 - h.count % 8) % 8
        if pad == 1 { h.append(0) }                         // Pad1
        else if pad >= 2 { h += [1, UInt8(pad - 2)] + [UInt8](repeating: 0, count: pad - 2) } // PadN
    }

    static func beWord(_ a: [UInt8], _ i: Int) -> UInt32 {
        UInt32(a[i]) << 24 | UInt32(a[i + 1]) << 16 | UInt32(a[i + 2]) << 8 | UInt32(a[i + 3])
    }
}

extension PacketBuffer {
    /// A buffer holding `packet` after `headroom` bytes (tests and control path).
    public convenience init(packet: [UInt8], headroom: Int = PacketBuffer.defaultHeadroom,
                            capacity: Int = PacketBuffer.defaultCapacity) {
        self.init(capacity: max(capacity, headroom + packet.count), headroom: headroom)
        load(packet, headroom: headroom)
    }
}
