// NftRule: a rule written the way nft(8) reads — matches, then statements — so that
// Rules/encd.nft and the code agree line by line. `text` renders nft syntax;
// `expressions(queue:)` lowers it to nf_tables expressions (the same dependencies nft
// adds, e.g. `meta l4proto udp` before `udp dport`).

import CNetfilter
import EncCore

public enum NftOp: Sendable, Equatable {
    case eq, neq
    var cmp: UInt32 { self == .eq ? UInt32(NFT_CMP_EQ.rawValue) : UInt32(NFT_CMP_NEQ.rawValue) }
    var text: String { self == .eq ? "==" : "!=" }
    /// nft leaves `==` implicit in plain matches.
    var plain: String { self == .eq ? "" : "!= " }
}

public enum NftMatch: Sendable, Equatable {
    /// `meta mark & MASK == VALUE`
    case mark(mask: UInt32, NftOp, UInt32)
    /// `ct mark & MASK == VALUE`
    case ctMark(mask: UInt32, NftOp, UInt32)
    /// `iifname "enc0"` / `iifname != "enc0"`
    case iifname(NftOp, String)
    case oifname(NftOp, String)
    /// `meta l4proto esp`
    case l4proto(NftOp, UInt8)
    /// `udp dport 4500`
    case udpDport(UInt16)
    /// `udp sport 4500`
    case udpSport(UInt16)
    /// `udp length 9`
    case udpLength(UInt16)
    /// `@th,OFFSET,BITS OP VALUE`: raw transport-header bits (byte aligned, up to 32 bits).
    case transportBits(offset: UInt32, bits: UInt32, NftOp, UInt32)
    /// `fib daddr type local`
    case fibDaddrLocal
    /// `ip saddr . ip daddr @SET` (or ip6)
    case addressPair(AddressFamily, set: String)
    /// `ip6 hoplimit 255 icmpv6 type 133-137`: IPv6 neighbor discovery (router and
    /// neighbor solicitation/advertisement, redirect) as only the link itself can send it.
    case neighborDiscovery
    /// `ip6 daddr ff02::/16`: IPv6 link-local multicast (MLD reports, router solicitations).
    case ip6LinkLocalMulticast
    /// `icmp type 11-12` (.inet) or `icmpv6 type 1-4` (.inet6): ICMP messages whose type
    /// lies in the range (a single type when the range has one value).
    case icmpType(AddressFamily, ClosedRange<UInt8>)
    /// `ct state new,established`: a tracked packet of its connection itself, not a
    /// related one (an ICMP error has other addresses than its connection).
    case ctStateNewOrEstablished
    /// `ct direction original` / `ct direction reply`
    case ctDirection(NftCtDirection)
}

public enum NftCtDirection: UInt8, Sendable {
    case original = 0, reply = 1
}

public enum NftStatement: Sendable, Equatable {
    case counter
    /// `queue num N` (or `queue num N-M fanout`); never with bypass: with no reader
    /// (encd stopped or killed) the kernel drops the packet, it never leaks in cleartext.
    case queue(number: UInt16, total: UInt16)
    /// `queue num N bypass`: with no reader the kernel accepts the packet instead
    /// (NFT_QUEUE_FLAG_BYPASS / NFQ_FLAG_BYPASS). Only for traffic that policy lets pass
    /// in cleartext anyway: `use` flows with ipsec.use_fail_open.
    case queueFailOpen(number: UInt16, total: UInt16)
    /// `meta mark set meta mark & ~MASK | VALUE`
    case setMark(mask: UInt32, value: UInt32)
    /// `meta mark set ct id map @MAP`: the answer kept for the connection; when the
    /// connection is not in the map the rule ends here (nothing after it runs).
    case restoreDecision(map: String, key: NftCacheKey)
    /// `update @MAP { ct id : meta mark & MASK }`: the packet's answer kept for its
    /// connection; an entry already there keeps its answer and only lives longer.
    case saveDecision(map: String, key: NftCacheKey, mask: UInt32)
    /// `@ll,16,32 set meta mark`: the packet mark, in network order, into bytes 2-5 of
    /// the frame's destination MAC (enc0's egress chain, NftEgressTable).
    case markIntoDestinationMAC
    /// The packet goes to the transparent socket on `port` (any local address) without
    /// being changed; the rule goes on only if there is one (prerouting only).
    case tproxy(port: UInt16)
    case verdict(NftVerdict)
}

public struct NftRule: Sendable, Equatable {
    public var matches: [NftMatch]
    public var statements: [NftStatement]
    /// Shown after `#` in Rules/encd.nft (not sent to the kernel).
    public var comment: String?

    public init(_ matches: [NftMatch], _ statements: [NftStatement], comment: String? = nil) {
        self.matches = matches
        self.statements = statements
        self.comment = comment
    }

    /// The rule in nft syntax, without the comment.
    public var text: String {
        (matches.map(NftRule.text) + statements.map(NftRule.text)).joined(separator: " ")
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
    }

    static let protoNames: [UInt8: String] = [1: "icmp", 6: "tcp", 17: "udp", 50: "esp", 51: "ah", 58: "ipv6-icmp"]

    static func text(_ m: NftMatch) -> String {
        switch m {
        case .mark(let mask, let op, let v):
            return mask == .max ? "meta mark \(op.plain)\(hex(v))" : "meta mark & \(hex(mask)) \(op.text) \(hex(v))"
        case .ctMark(let mask, let op, let v):
            return mask == .max ? "ct mark \(op.plain)\(hex(v))" : "ct mark & \(hex(mask)) \(op.text) \(hex(v))"
        case .iifname(let op, let name): return "iifname \(op.plain)\"\(name)\""
        case .oifname(let op, let name): return "oifname \(op.plain)\"\(name)\""
        case .l4proto(let op, let p): return "meta l4proto \(op.plain)\(protoNames[p] ?? String(p))"
        case .udpDport(let port): return "udp dport \(port)"
        case .udpSport(let port): return "udp sport \(port)"
        case .udpLength(let len): return "udp length \(len)"
        case .transportBits(let off, let bits, let op, let v): return "@th,\(off),\(bits) \(op.plain)\(v)"
        case .fibDaddrLocal: return "fib daddr type local"
        case .addressPair(let f, let set):
            let ip = f == .inet ? "ip" : "ip6"
            return "\(ip) saddr . \(ip) daddr @\(set)"
        case .neighborDiscovery: return "ip6 hoplimit 255 icmpv6 type 133-137"
        case .ip6LinkLocalMulticast: return "ip6 daddr ff02::/16"
        case .icmpType(let f, let types):
            let types = types.count == 1 ? "\(types.lowerBound)" : "\(types.lowerBound)-\(types.upperBound)"
            return "\(f == .inet ? "icmp" : "icmpv6") type \(types)"
        case .ctStateNewOrEstablished: return "ct state new,established"
        case .ctDirection(let d): return "ct direction \(d == .original ? "original" : "reply")"
        }
    }

    static func text(_ s: NftStatement) -> String {
        switch s {
        case .counter: return "counter"
        case .queue(let n, let total):
            return total <= 1 ? "queue num \(n)" : "queue num \(n)-\(UInt32(n) + UInt32(total) - 1) fanout"
        case .queueFailOpen(let n, let total):
            return total <= 1 ? "queue num \(n) bypass" : "queue num \(n)-\(UInt32(n) + UInt32(total) - 1) bypass,fanout"
        case .setMark(let mask, let value): return "meta mark set meta mark & \(hex(~mask)) | \(hex(value))"
        case .restoreDecision(let map, let key): return "meta mark set \(key.text) map @\(map)"
        case .saveDecision(let map, let key, let mask): return "update @\(map) { \(key.text) : meta mark & \(hex(mask)) }"
        case .markIntoDestinationMAC: return "@ll,16,32 set meta mark"
        case .tproxy(let port): return "tproxy to :\(port)"
        case .verdict(.accept): return "accept"
        case .verdict(.drop): return "drop"
        case .verdict(.return): return "return"
        case .verdict(.jump(let chain)): return "jump \(chain)"
        }
    }

    /// The nf_tables expressions, with `queue` statements lowered for `backend`.
    public func expressions(queue backend: NftQueueBackend) -> [NftExpr] {
        matches.flatMap(NftRule.lower) + statements.flatMap { NftRule.lower($0, backend) }
    }

    static func lower(_ m: NftMatch) -> [NftExpr] {
        switch m {
        case .mark(let mask, let op, let v):
            return masked(load: .meta(key: UInt32(NFT_META_MARK.rawValue), dreg: .r1), mask: mask, op: op, value: v)
        case .ctMark(let mask, let op, let v):
            return masked(load: .ct(key: UInt32(NFT_CT_MARK.rawValue), dreg: .r1), mask: mask, op: op, value: v)
        case .iifname(let op, let name):
            return [.meta(key: UInt32(NFT_META_IIFNAME.rawValue), dreg: .r1), .cmp(sreg: .r1, op: op.cmp, data: NftBytes.ifname(name))]
        case .oifname(let op, let name):
            return [.meta(key: UInt32(NFT_META_OIFNAME.rawValue), dreg: .r1), .cmp(sreg: .r1, op: op.cmp, data: NftBytes.ifname(name))]
        case .l4proto(let op, let p):
            return [.meta(key: UInt32(NFT_META_L4PROTO.rawValue), dreg: .r1), .cmp(sreg: .r1, op: op.cmp, data: [p])]
        case .udpDport(let port):
            return lower(.l4proto(.eq, UInt8(IPPROTO_UDP))) + [
                .payload(base: UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue), offset: 2, length: 2, dreg: .r1),
                .cmp(sreg: .r1, op: NftOp.eq.cmp, data: NftBytes.net16(port))]
        case .udpSport(let port):
            return lower(.l4proto(.eq, UInt8(IPPROTO_UDP))) + [
                .payload(base: UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue), offset: 0, length: 2, dreg: .r1),
                .cmp(sreg: .r1, op: NftOp.eq.cmp, data: NftBytes.net16(port))]
        case .udpLength(let len):
            return lower(.l4proto(.eq, UInt8(IPPROTO_UDP))) + [
                .payload(base: UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue), offset: 4, length: 2, dreg: .r1),
                .cmp(sreg: .r1, op: NftOp.eq.cmp, data: NftBytes.net16(len))]
        case .transportBits(let off, let bits, let op, let v):
            precondition(off % 8 == 0 && bits % 8 == 0 && bits > 0 && bits <= 32, "byte-aligned fields only")
            let bytes = Array(NftBytes.net32(v).suffix(Int(bits / 8)))
            return [.payload(base: UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue), offset: off / 8, length: bits / 8, dreg: .r1),
                    .cmp(sreg: .r1, op: op.cmp, data: bytes)]
        case .fibDaddrLocal:
            return [.fib(flags: UInt32(NFTA_FIB_F_DADDR.rawValue), result: UInt32(NFT_FIB_RESULT_ADDRTYPE.rawValue), dreg: .r1),
                    .cmp(sreg: .r1, op: NftOp.eq.cmp, data: NftBytes.host32(UInt32(RTN_LOCAL)))]
        case .addressPair(let f, let set):
            let nh = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)
            let proto: UInt8 = f == .inet ? UInt8(NFPROTO_IPV4) : UInt8(NFPROTO_IPV6)
            let family: [NftExpr] = [.meta(key: UInt32(NFT_META_NFPROTO.rawValue), dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [proto])]
            if f == .inet {
                return family + [.payload(base: nh, offset: 12, length: 4, dreg: .r1),
                                 .payload(base: nh, offset: 16, length: 4, dreg: .r32_01),
                                 .lookup(set: set, sreg: .r1, dreg: nil)]
            }
            return family + [.payload(base: nh, offset: 8, length: 16, dreg: .r1),
                             .payload(base: nh, offset: 24, length: 16, dreg: .r2),
                             .lookup(set: set, sreg: .r1, dreg: nil)]
        case .neighborDiscovery:
            let nh = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue), th = UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)
            return [.meta(key: UInt32(NFT_META_NFPROTO.rawValue), dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [UInt8(NFPROTO_IPV6)]),
                    .payload(base: nh, offset: 7, length: 1, dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [255])]
                + lower(.l4proto(.eq, UInt8(IPPROTO_ICMPV6)))
                + [.payload(base: th, offset: 0, length: 1, dreg: .r1),
                   .cmp(sreg: .r1, op: UInt32(NFT_CMP_GTE.rawValue), data: [133]),
                   .cmp(sreg: .r1, op: UInt32(NFT_CMP_LTE.rawValue), data: [137])]
        case .ip6LinkLocalMulticast:
            let nh = UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)
            return [.meta(key: UInt32(NFT_META_NFPROTO.rawValue), dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [UInt8(NFPROTO_IPV6)]),
                    .payload(base: nh, offset: 24, length: 2, dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [0xff, 0x02])]
        case .icmpType(let f, let types):
            let th = UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)
            let proto: UInt8 = f == .inet ? UInt8(NFPROTO_IPV4) : UInt8(NFPROTO_IPV6)
            let l4: UInt8 = f == .inet ? UInt8(IPPROTO_ICMP) : UInt8(IPPROTO_ICMPV6)
            let compare: [NftExpr] = types.count == 1
                ? [.cmp(sreg: .r1, op: NftOp.eq.cmp, data: [types.lowerBound])]
                : [.cmp(sreg: .r1, op: UInt32(NFT_CMP_GTE.rawValue), data: [types.lowerBound]),
                   .cmp(sreg: .r1, op: UInt32(NFT_CMP_LTE.rawValue), data: [types.upperBound])]
            return [.meta(key: UInt32(NFT_META_NFPROTO.rawValue), dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [proto])]
                + lower(.l4proto(.eq, l4))
                + [.payload(base: th, offset: 0, length: 1, dreg: .r1)] + compare
        case .ctStateNewOrEstablished:
            // NF_CT_STATE_BIT: established 2, related 4, new 8 (replies count as established).
            return [.ct(key: UInt32(NFT_CT_STATE.rawValue), dreg: .r1),
                    .bitwise(sreg: .r1, dreg: .r1, mask: NftBytes.host32(0x0a), xor: NftBytes.host32(0)),
                    .cmp(sreg: .r1, op: NftOp.neq.cmp, data: NftBytes.host32(0))]
        case .ctDirection(let d):
            return [.ct(key: UInt32(NFT_CT_DIRECTION.rawValue), dreg: .r1), .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [d.rawValue])]
        }
    }

    static func masked(load: NftExpr, mask: UInt32, op: NftOp, value: UInt32) -> [NftExpr] {
        var out = [load]
        if mask != .max {
            out.append(.bitwise(sreg: .r1, dreg: .r1, mask: NftBytes.host32(mask), xor: NftBytes.host32(0)))
        }
        out.append(.cmp(sreg: .r1, op: op.cmp, data: NftBytes.host32(value)))
        return out
    }

    static func lower(_ s: NftStatement, _ backend: NftQueueBackend) -> [NftExpr] {
        switch s {
        case .counter: return [.counter]
        case .markIntoDestinationMAC:
            // The register holds the mark in host order; the frame gets network order.
            return [.meta(key: UInt32(NFT_META_MARK.rawValue), dreg: .r1),
                    .byteorder(sreg: .r1, dreg: .r1, op: UInt32(NFT_BYTEORDER_HTON.rawValue), length: 4, size: 4),
                    .payloadSet(base: UInt32(NFT_PAYLOAD_LL_HEADER.rawValue), offset: 2, length: 4, sreg: .r1)]
        case .tproxy(let port):
            return [.immediate(dreg: .r1, data: NftBytes.net16(port)), .tproxy(portRegister: .r1)]
        case .queue(let n, let total):
            return lowerQueue(n, total, bypass: false, backend)
        case .queueFailOpen(let n, let total):
            return lowerQueue(n, total, bypass: true, backend)
        case .setMark(let mask, let value):
            return [.meta(key: UInt32(NFT_META_MARK.rawValue), dreg: .r1),
                    .bitwise(sreg: .r1, dreg: .r1, mask: NftBytes.host32(~mask), xor: NftBytes.host32(value)),
                    .metaSet(key: UInt32(NFT_META_MARK.rawValue), sreg: .r1)]
        case .restoreDecision(let map, let key):
            return loadKey(key) + [.lookup(set: map, sreg: .r1, dreg: .r1), .metaSet(key: UInt32(NFT_META_MARK.rawValue), sreg: .r1)]
        case .saveDecision(let map, let key, let mask):
            return loadKey(key) + [
                    .meta(key: UInt32(NFT_META_MARK.rawValue), dreg: .r2),
                    .bitwise(sreg: .r2, dreg: .r2, mask: NftBytes.host32(mask), xor: NftBytes.host32(0)),
                    .dynsetUpdate(set: map, key: .r1, data: .r2)]
        case .verdict(let v): return [.verdict(v)]
        }
    }

    /// A cache key into register 1 (the source MAC right after the id, in the next
    /// 32-bit register, behind nft's `meta iiftype ether` dependency).
    static func loadKey(_ key: NftCacheKey) -> [NftExpr] {
        switch key {
        case .connection:
            return [.ct(key: UInt32(NFT_CT_ID.rawValue), dreg: .r1)]
        case .connectionAndSource:
            return [.meta(key: UInt32(NFT_META_IFTYPE.rawValue), dreg: .r1),
                    .cmp(sreg: .r1, op: NftOp.eq.cmp, data: [1, 0]),      // ARPHRD_ETHER, host order
                    .ct(key: UInt32(NFT_CT_ID.rawValue), dreg: .r1),
                    .payload(base: UInt32(NFT_PAYLOAD_LL_HEADER.rawValue), offset: 6, length: 6, dreg: .r32_01)]
        }
    }

    static func lowerQueue(_ n: UInt16, _ total: UInt16, bypass: Bool, _ backend: NftQueueBackend) -> [NftExpr] {
        let fanout = total > 1
        switch backend {
        case .native:
            let flags = (fanout ? UInt16(NFT_QUEUE_FLAG_CPU_FANOUT) : 0) | (bypass ? UInt16(NFT_QUEUE_FLAG_BYPASS) : 0)
            return [.queue(number: n, total: max(total, 1), flags: flags)]
        case .xtCompat:
            return [.xtTarget(name: "NFQUEUE", revision: 3,
                              info: XtNFQueue.info(number: n, total: max(total, 1), fanout: fanout, bypass: bypass))]
        }
    }
}
