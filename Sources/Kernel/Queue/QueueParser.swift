// QueueParser: reads one NFQNL_MSG_PACKET netlink message (nfq_nlmsg_parse) into a
// QueuedPacket and locates its payload. Packet path: works on the receive buffer in
// place with a caller-owned attribute table; allocates nothing.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter

public enum QueueMessageKind: Equatable {
    /// A packet; its payload is `length` bytes at `offset` from the message start.
    case packet(offset: Int, length: Int)
    /// A netlink error/ack; 0 is an ack.
    case error(Int32)
    /// A packet message without a packet header or payload, or a message of another type.
    case malformed
    /// NLMSG_NOOP / NLMSG_DONE and the like.
    case ignored
}

public struct QueueParser {
    /// Attribute table, NFQA_MAX + 1 entries, reused for every message.
    let attrs: UnsafeMutablePointer<UnsafeMutablePointer<nlattr>?>
    static let attrCount = Int(__NFQA_MAX.rawValue)  // NFQA_MAX + 1
    static let packetType = UInt16(NFNL_SUBSYS_QUEUE << 8) | UInt16(NFQNL_MSG_PACKET.rawValue)

    public init() {
        attrs = .allocate(capacity: QueueParser.attrCount)
        attrs.initialize(repeating: nil, count: QueueParser.attrCount)
    }

    /// Frees the attribute table (the owner calls this once).
    public func deallocate() { attrs.deallocate() }

    /// Walks the netlink messages of one received datagram, in order, and hands each
    /// parsed one to `visit` with its offset in the datagram. Stops at the first message
    /// whose length is impossible (shorter than a header, or past the end) and returns
    /// false then: the rest of the datagram cannot be trusted. The datagram must be
    /// 4-byte aligned, as the kernel's buffers are.
    @discardableResult
    public static func walk(_ datagram: UnsafeRawBufferPointer, parser: QueueParser,
                            _ visit: (QueueMessageKind, QueuedPacket, _ offset: Int) -> Void) -> Bool {
        guard let start = datagram.baseAddress else { return true }
        let length = datagram.count
        var offset = 0
        while offset + 16 <= length {
            let len = Int(start.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard len >= 16, len <= length - offset else { return false }
            var meta = QueuedPacket()
            let kind = parser.parse(start + offset, into: &meta)
            visit(kind, meta, offset)
            offset += (len + 3) & ~3
        }
        return true
    }

    /// Parses the netlink message at `message` (whose `nlmsg_len` the caller has
    /// bounds-checked against the bytes received).
    public func parse(_ message: UnsafeRawPointer, into meta: inout QueuedPacket) -> QueueMessageKind {
        let nlh = message.assumingMemoryBound(to: nlmsghdr.self)
        let type = nlh.pointee.nlmsg_type
        if type == UInt16(NLMSG_ERROR) {
            guard nlh.pointee.nlmsg_len >= 20 else { return .malformed }
            return .error(UnsafeRawPointer(nlh).loadUnaligned(fromByteOffset: 16, as: Int32.self))
        }
        if type < UInt16(NLMSG_MIN_TYPE) { return .ignored }
        guard type == QueueParser.packetType else { return .malformed }
        attrs.update(repeating: nil, count: QueueParser.attrCount)
        guard collectAttributes(nlh),
              let hdrAttr = attrs[Int(NFQA_PACKET_HDR.rawValue)],
              mnl_attr_get_payload_len(hdrAttr) >= 7,
              let payloadAttr = attrs[Int(NFQA_PAYLOAD.rawValue)] else { return .malformed }

        let hdr = UnsafeRawPointer(mnl_attr_get_payload(hdrAttr)!)
        meta = QueuedPacket()
        meta.id = UInt32(bigEndian: hdr.loadUnaligned(as: UInt32.self))
        meta.hwProtocol = UInt16(bigEndian: hdr.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        meta.hook = hdr.load(fromByteOffset: 6, as: UInt8.self)
        meta.mark = be32(NFQA_MARK.rawValue) ?? 0
        meta.inInterface = be32(NFQA_IFINDEX_INDEV.rawValue) ?? 0
        meta.outInterface = be32(NFQA_IFINDEX_OUTDEV.rawValue) ?? 0
        meta.skbInfo = be32(NFQA_SKB_INFO.rawValue) ?? 0
        meta.conntrackInfo = be32(NFQA_CT_INFO.rawValue)
        if let hw = attrs[Int(NFQA_HWADDR.rawValue)], mnl_attr_get_payload_len(hw) >= 10 {
            // struct nfqnl_msg_packet_hw { __be16 hw_addrlen; __u16 pad; __u8 hw_addr[8]; }
            let h = UnsafeRawPointer(mnl_attr_get_payload(hw)!)
            if UInt16(bigEndian: h.loadUnaligned(as: UInt16.self)) == 6 {
                var v: UInt64 = 0
                for i in 0..<6 { v = v << 8 | UInt64(h.load(fromByteOffset: 4 + i, as: UInt8.self)) }
                meta.hardwareSource = v
            }
        }
        if let ct = attrs[Int(NFQA_CT.rawValue)] {
            meta.conntrackMark = QueueParser.nestedBE32(ct, type: UInt16(CTA_MARK.rawValue))
        }

        let length = Int(mnl_attr_get_payload_len(payloadAttr))
        let offset = UnsafeRawPointer(mnl_attr_get_payload(payloadAttr)!) - UnsafeRawPointer(nlh)
        if let cap = be32(NFQA_CAP_LEN.rawValue), Int(cap) > length {
            meta.originalLength = Int(cap)
            meta.isTruncated = true
        } else {
            meta.originalLength = length
        }
        return .packet(offset: offset, length: length)
    }

    /// Fills the attribute table from the message's top-level attributes, reading no
    /// byte at or past `nlmsg_len`. libmnl's walk (nfq_nlmsg_parse) reads up to nlmsg_len
    /// rounded up to 4, but the kernel does not pad its last attribute (the payload:
    /// nlmsg_len is the skb's length), so a datagram may end unpadded and a forged
    /// attribute header in those missing bytes would be read past the datagram (found
    /// twice by FuzzQueue). False when an attribute is shorter than its header or
    /// reaches past the message: the message is malformed.
    private func collectAttributes(_ nlh: UnsafePointer<nlmsghdr>) -> Bool {
        let base = UnsafeRawPointer(nlh)
        let end = Int(nlh.pointee.nlmsg_len)
        var offset = Int(cnf_nlmsg_hdrlen()) + MemoryLayout<nfgenmsg>.size
        guard offset <= end else { return false }
        while end - offset >= MemoryLayout<nlattr>.size {
            let length = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = Int(base.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & cnf_nla_type_mask())
            guard length >= MemoryLayout<nlattr>.size, length <= end - offset else { return false }
            if type < QueueParser.attrCount {
                attrs[type] = UnsafeMutableRawPointer(mutating: base + offset).assumingMemoryBound(to: nlattr.self)
            }
            offset += (length + 3) & ~3
        }
        return true
    }

    private func be32(_ type: UInt32) -> UInt32? {
        guard let a = attrs[Int(type)], mnl_attr_get_payload_len(a) >= 4 else { return nil }
        return UInt32(bigEndian: UnsafeRawPointer(mnl_attr_get_payload(a)!).loadUnaligned(as: UInt32.self))
    }

    /// A big-endian u32 attribute of `type` inside the nested attribute `outer`.
    static func nestedBE32(_ outer: UnsafePointer<nlattr>, type: UInt16) -> UInt32? {
        let base = UnsafeRawPointer(mnl_attr_get_payload(outer)!)
        let end = Int(mnl_attr_get_payload_len(outer))
        var offset = 0
        while offset + 4 <= end {
            let len = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let t = base.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & cnf_nla_type_mask()
            guard len >= 4, offset + len <= end else { return nil }
            if t == type, len >= 8 {
                return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            }
            offset += (len + 3) & ~3
        }
        return nil
    }
}
