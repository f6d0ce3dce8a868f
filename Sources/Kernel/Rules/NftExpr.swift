// NftExpr: the nf_tables expressions encd's rules are made of, one case per libnftnl
// expression. Values are the bytes the kernel compares (host order for meta/ct/fib
// values, network order for packet payload). NftRule lowers its readable matches and
// statements to these; NftBatch turns them into libnftnl objects.

import CNetfilter

public enum NftRegister: UInt32, Sendable {
    case verdict = 0
    /// 16-byte register 1 (= 32-bit registers 0...3).
    case r1 = 1
    /// 16-byte register 2 (= 32-bit registers 4...7).
    case r2 = 2
    /// 32-bit register 1, right after r1's first word (concatenations of IPv4 fields).
    case r32_01 = 9
}

public enum NftVerdict: Equatable, Sendable {
    case accept, drop, `return`
    case jump(String)
}

public enum NftQueueBackend: String, Equatable, Sendable {
    /// nf_tables' own `queue` expression.
    case native
    /// xtables' NFQUEUE target (rev 3) through nft_compat, for kernels without the above.
    case xtCompat = "xt NFQUEUE (nft_compat)"
}

public enum NftExpr: Equatable, Sendable {
    case meta(key: UInt32, dreg: NftRegister)
    case metaSet(key: UInt32, sreg: NftRegister)
    case ct(key: UInt32, dreg: NftRegister)
    case payload(base: UInt32, offset: UInt32, length: UInt32, dreg: NftRegister)
    /// Writes `length` bytes from `sreg` into the packet (no checksum to fix).
    case payloadSet(base: UInt32, offset: UInt32, length: UInt32, sreg: NftRegister)
    /// Converts `length` bytes of `size`-byte words between host and network order.
    case byteorder(sreg: NftRegister, dreg: NftRegister, op: UInt32, length: UInt32, size: UInt32)
    case cmp(sreg: NftRegister, op: UInt32, data: [UInt8])
    case bitwise(sreg: NftRegister, dreg: NftRegister, mask: [UInt8], xor: [UInt8])
    /// A set lookup; with `dreg`, a map lookup that loads the element's data.
    case lookup(set: String, sreg: NftRegister, dreg: NftRegister?)
    /// `update @map { key : data }` from the packet path (the map's timeout).
    case dynsetUpdate(set: String, key: NftRegister, data: NftRegister)
    case fib(flags: UInt32, result: UInt32, dreg: NftRegister)
    case counter
    case queue(number: UInt16, total: UInt16, flags: UInt16)
    case xtTarget(name: String, revision: UInt32, info: [UInt8])
    case verdict(NftVerdict)
    /// Data into a register (immediate).
    case immediate(dreg: NftRegister, data: [UInt8])
    /// tproxy for either family, the port (network order) in `portRegister`.
    case tproxy(portRegister: NftRegister)

    /// The libnftnl expression name.
    public var name: String {
        switch self {
        case .meta, .metaSet: return "meta"
        case .ct: return "ct"
        case .payload, .payloadSet: return "payload"
        case .byteorder: return "byteorder"
        case .cmp: return "cmp"
        case .bitwise: return "bitwise"
        case .lookup: return "lookup"
        case .dynsetUpdate: return "dynset"
        case .fib: return "fib"
        case .counter: return "counter"
        case .queue: return "queue"
        case .xtTarget: return "target"
        case .verdict, .immediate: return "immediate"
        case .tproxy: return "tproxy"
        }
    }
}

/// Byte helpers for expression data.
enum NftBytes {
    static func host32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    static func net16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func net32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    /// An interface name as nft compares it: the name and its terminating NUL.
    static func ifname(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }
}
