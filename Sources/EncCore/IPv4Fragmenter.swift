// IPv4Fragmenter: RFC 791 fragmentation of one packet into a scratch buffer, one
// fragment at a time, without allocating. encd needs it where the kernel would have
// fragmented after the hook that hands packets to encd: a forwarded IPv4 packet
// without DF, larger than enc0's MTU, reaches the IPsec queue whole.
//
// Options: the first fragment keeps them all; later fragments keep only those whose
// "copied" bit is set (RFC 791 3.1), padded with end-of-list to a 4-byte boundary.

public enum IPv4Fragmenter {
    /// Cuts the IPv4 packet in `packet` into fragments of at most `mtu` bytes. For each
    /// one, in order, `scratch` is loaded with it (leaving `headroom` in front) and
    /// `body` is called; `body` returns false to stop. Returns false, emitting nothing,
    /// when the packet may not or cannot be fragmented (DF set, not IPv4, malformed,
    /// or `mtu` leaves no room for 8 bytes of data after the header).
    @discardableResult
    public static func fragment(_ packet: UnsafeMutableRawBufferPointer, mtu: Int, into scratch: PacketBuffer,
                                headroom: Int = PacketBuffer.defaultHeadroom,
                                _ body: (PacketBuffer) -> Bool) -> Bool {
        guard let ip = IPv4Header(packet), ip.version == 4, ip.ihl >= 5, !ip.dontFragment else { return false }
        let headerLength = ip.headerLength
        let total = Int(ip.totalLength)
        guard total <= packet.count, total >= headerLength, headerLength <= total else { return false }
        // The header later fragments carry: fixed part + copied options, padded.
        var laterHeader = 20
        var at = 20
        while at < headerLength {
            let type = packet[at]
            if type == 0 { break }
            if type == 1 { at += 1; continue }
            guard at + 1 < headerLength else { return false }
            let len = Int(packet[at + 1])
            guard len >= 2, at + len <= headerLength else { return false }
            if type & 0x80 != 0 { laterHeader += len }
            at += len
        }
        laterHeader = (laterHeader + 3) & ~3
        let firstChunk = (mtu - headerLength) & ~7
        let laterChunk = (mtu - laterHeader) & ~7
        guard firstChunk >= 8, laterChunk >= 8 else { return false }

        let baseOffset = ip.fragmentOffset          // the packet may itself be a fragment
        let moreAfter = ip.moreFragments
        var data = headerLength
        var first = true
        while data < total {
            let hlen = first ? headerLength : laterHeader
            let room = first ? firstChunk : laterChunk
            let n = min(room, total - data)
            let last = data + n >= total
            scratch.reset(headroom: headroom)
            guard scratch.append(hlen + n) else { return false }
            let f = scratch.bytes
            let dst = f.baseAddress!
            let src = packet.baseAddress!
            if first {
                dst.copyMemory(from: src, byteCount: headerLength)
            } else {
                dst.copyMemory(from: src, byteCount: 20)
                var out = 20
                var o = 20
                while o < headerLength {
                    let type = packet[o]
                    if type == 0 { break }
                    if type == 1 { o += 1; continue }
                    let len = Int(packet[o + 1])
                    if type & 0x80 != 0 {
                        (dst + out).copyMemory(from: src + o, byteCount: len)
                        out += len
                    }
                    o += len
                }
                while out < hlen { f[out] = 0; out += 1 }
                f[0] = 0x40 | UInt8(hlen / 4)
            }
            (dst + hlen).copyMemory(from: src + data, byteCount: n)
            let offsetUnits = (baseOffset + (data - headerLength)) / 8
            let mf: UInt16 = (!last || moreAfter) ? 0x2000 : 0
            f.setBE16(2, UInt16(hlen + n))
            f.setBE16(6, mf | UInt16(offsetUnits))
            f.setBE16(10, 0)
            IPv4Header(unchecked: f).updateChecksum()
            if !body(scratch) { return true }
            data += n
            first = false
        }
        return true
    }
}
