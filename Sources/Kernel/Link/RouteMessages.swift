// RouteMessages: the rtnetlink requests encd sends, built with libmnl into plain byte
// arrays so tests can compare them with golden bytes. Control path only.
//
//   link:  RTM_NEWLINK  ifinfomsg + IFLA_IFNAME (+ IFLA_MTU)          `ip link set enc0 up mtu M`
//   rule:  RTM_NEWRULE  fib_rule_hdr + FRA_PRIORITY FRA_FWMARK FRA_FWMASK [FRA_IIFNAME] FRA_TABLE|FRA_GOTO
//                                                    `ip rule add fwmark V/M lookup T pref P`
//   route: RTM_NEWROUTE rtmsg + RTA_TABLE RTA_OIF    `ip route add default dev enc0 table T`
//   addr:  RTM_NEWADDR  ifaddrmsg + IFA_LOCAL IFA_ADDRESS  `ip addr add A/L dev enc0`
//   query: RTM_GETROUTE rtmsg + RTA_DST (RTA_SRC RTA_MARK)  `ip route get D from S mark M`
//          RTM_GETLINK  ifinfomsg (index)                   `ip link show dev N`

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import EncCore

public enum RouteOperation: Sendable { case add, delete }

/// An `ip rule` that sends packets whose mark matches `value/mask` to `table`.
public struct MarkRule: Hashable, Sendable, CustomStringConvertible {
    /// What a matching rule does.
    public enum Action: Hashable, Sendable {
        /// Look the route up in this table.
        case lookup(UInt32)
        /// Go on with the rules from this preference.
        case goto(UInt32)
        /// Nothing (a target for `goto`).
        case nop
    }
    public var family: AddressFamily
    public var value: UInt32
    public var mask: UInt32
    public var action: Action
    public var priority: UInt32
    /// Match only lookups for packets that came in on this interface (`iif NAME`).
    public var inputInterface: String?

    public init(family: AddressFamily, value: UInt32, mask: UInt32, table: UInt32, priority: UInt32) {
        self.init(family: family, value: value, mask: mask, action: .lookup(table), priority: priority)
    }

    public init(family: AddressFamily, value: UInt32, mask: UInt32, action: Action, priority: UInt32,
                inputInterface: String? = nil) {
        self.family = family
        self.value = value
        self.mask = mask
        self.action = action
        self.priority = priority
        self.inputInterface = inputInterface
    }

    /// The table a lookup rule names (0 for goto and nop).
    public var table: UInt32 { if case .lookup(let t) = action { t } else { 0 } }

    public var description: String { command(nil) }

    /// The equivalent `ip` command ("ip -4 rule add pref 100 fwmark 0x20000/0x20000 lookup 100").
    public func command(_ op: RouteOperation?) -> String {
        let verb = op.map { $0 == .add ? " add" : " del" } ?? ""
        let iif = inputInterface.map { " iif \($0)" } ?? ""
        let what: String
        switch action {
        case .lookup(let t): what = "lookup \(t)"
        case .goto(let p): what = "goto \(p)"
        case .nop: what = "nop"
        }
        return "ip -\(family == .inet ? 4 : 6) rule\(verb) pref \(priority) fwmark 0x\(String(value, radix: 16))/0x\(String(mask, radix: 16))\(iif) \(what)"
    }
}

public enum RouteMessages {
    static func family(_ f: AddressFamily) -> UInt8 { UInt8(f == .inet ? AF_INET : AF_INET6) }

    /// Builds one message: header, fixed family header of `extra` bytes (filled by
    /// `fill`), then attributes added by `attrs`.
    static func build(type: Int, flags: Int32, seq: UInt32, extra: Int,
                      fill: (UnsafeMutableRawPointer) -> Void,
                      attrs: (UnsafeMutablePointer<nlmsghdr>) -> Void) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 512)
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let nlh = mnl_nlmsg_put_header(raw.baseAddress)!
            nlh.pointee.nlmsg_type = UInt16(type)
            nlh.pointee.nlmsg_flags = UInt16(Int32(NLM_F_REQUEST) | Int32(NLM_F_ACK) | flags)
            nlh.pointee.nlmsg_seq = seq
            fill(mnl_nlmsg_put_extra_header(nlh, extra)!)
            attrs(nlh)
            return Int(nlh.pointee.nlmsg_len)
        }
        return Array(buffer.prefix(length))
    }

    /// `ip link set NAME up [mtu MTU]` (or down), addressed by name.
    public static func setLink(name: String, up: Bool, mtu: UInt32?, seq: UInt32) -> [UInt8] {
        build(type: Int(RTM_NEWLINK), flags: 0, seq: seq, extra: MemoryLayout<ifinfomsg>.size, fill: { p in
            let info = p.assumingMemoryBound(to: ifinfomsg.self)
            info.pointee.ifi_family = UInt8(AF_UNSPEC)
            info.pointee.ifi_change = UInt32(IFF_UP)
            info.pointee.ifi_flags = up ? UInt32(IFF_UP) : 0
        }, attrs: { nlh in
            mnl_attr_put_strz(nlh, UInt16(IFLA_IFNAME), name)
            if let mtu { mnl_attr_put_u32(nlh, UInt16(IFLA_MTU), mtu) }
        })
    }

    /// `ip rule add|del pref P fwmark V/M [iif NAME] lookup T|goto P|nop`. Adds are exclusive (EEXIST when
    /// the same rule is present).
    public static func rule(_ op: RouteOperation, _ rule: MarkRule, seq: UInt32) -> [UInt8] {
        let type = op == .add ? Int(RTM_NEWRULE) : Int(RTM_DELRULE)
        let flags = op == .add ? Int32(NLM_F_CREATE) | Int32(NLM_F_EXCL) : 0
        return build(type: type, flags: flags, seq: seq, extra: MemoryLayout<fib_rule_hdr>.size, fill: { p in
            let hdr = p.assumingMemoryBound(to: fib_rule_hdr.self)
            hdr.pointee.family = family(rule.family)
            hdr.pointee.table = UInt8(RT_TABLE_UNSPEC.rawValue)
            switch rule.action {
            case .lookup: hdr.pointee.action = UInt8(FR_ACT_TO_TBL)
            case .goto: hdr.pointee.action = UInt8(FR_ACT_GOTO)
            case .nop: hdr.pointee.action = UInt8(FR_ACT_NOP)
            }
        }, attrs: { nlh in
            mnl_attr_put_u32(nlh, UInt16(FRA_PRIORITY), rule.priority)
            mnl_attr_put_u32(nlh, UInt16(FRA_FWMARK), rule.value)
            mnl_attr_put_u32(nlh, UInt16(FRA_FWMASK), rule.mask)
            if let iif = rule.inputInterface { mnl_attr_put_strz(nlh, UInt16(FRA_IIFNAME), iif) }
            switch rule.action {
            case .lookup(let t): mnl_attr_put_u32(nlh, UInt16(FRA_TABLE), t)
            case .goto(let p): mnl_attr_put_u32(nlh, UInt16(FRA_GOTO), p)
            case .nop: break
            }
        })
    }

    /// `ip route replace|del default dev IFINDEX table T` for `family`.
    public static func defaultRoute(_ op: RouteOperation, family f: AddressFamily, table: UInt32,
                                    ifindex: UInt32, seq: UInt32) -> [UInt8] {
        let type = op == .add ? Int(RTM_NEWROUTE) : Int(RTM_DELROUTE)
        let flags = op == .add ? Int32(NLM_F_CREATE) | Int32(NLM_F_REPLACE) : 0
        return build(type: type, flags: flags, seq: seq, extra: MemoryLayout<rtmsg>.size, fill: { p in
            let rt = p.assumingMemoryBound(to: rtmsg.self)
            rt.pointee.rtm_family = family(f)
            rt.pointee.rtm_table = UInt8(RT_TABLE_UNSPEC.rawValue)
            if op == .add {
                rt.pointee.rtm_protocol = UInt8(RTPROT_STATIC)
                // A device route: link scope for IPv4 (as `ip route` does); IPv6 routes are universe.
                rt.pointee.rtm_scope = f == .inet ? UInt8(RT_SCOPE_LINK.rawValue) : UInt8(RT_SCOPE_UNIVERSE.rawValue)
                rt.pointee.rtm_type = UInt8(RTN_UNICAST)
            } else {
                rt.pointee.rtm_scope = UInt8(RT_SCOPE_NOWHERE.rawValue)
            }
        }, attrs: { nlh in
            mnl_attr_put_u32(nlh, UInt16(RTA_TABLE.rawValue), table)
            mnl_attr_put_u32(nlh, UInt16(RTA_OIF.rawValue), ifindex)
        })
    }

    /// `ip addr add|del ADDRESS/LEN dev IFINDEX`. Adds replace an identical address.
    public static func address(_ op: RouteOperation, _ prefix: IPPrefix, host: IPAddress, ifindex: UInt32, seq: UInt32) -> [UInt8] {
        let type = op == .add ? Int(RTM_NEWADDR) : Int(RTM_DELADDR)
        let flags = op == .add ? Int32(NLM_F_CREATE) | Int32(NLM_F_REPLACE) : 0
        return build(type: type, flags: flags, seq: seq, extra: MemoryLayout<ifaddrmsg>.size, fill: { p in
            let ifa = p.assumingMemoryBound(to: ifaddrmsg.self)
            ifa.pointee.ifa_family = family(prefix.family)
            ifa.pointee.ifa_prefixlen = UInt8(prefix.length)
            ifa.pointee.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
            ifa.pointee.ifa_index = ifindex
        }, attrs: { nlh in
            let bytes = host.bytes
            mnl_attr_put(nlh, UInt16(IFA_LOCAL), bytes.count, bytes)
            mnl_attr_put(nlh, UInt16(IFA_ADDRESS), bytes.count, bytes)
        })
    }

    /// `ip route get DESTINATION [from SOURCE] mark MARK`: the route a packet takes.
    public static func getRoute(to destination: IPAddress, from source: IPAddress?, mark: UInt32, seq: UInt32) -> [UInt8] {
        build(type: Int(RTM_GETROUTE), flags: 0, seq: seq, extra: MemoryLayout<rtmsg>.size, fill: { p in
            let rt = p.assumingMemoryBound(to: rtmsg.self)
            rt.pointee.rtm_family = family(destination.family)
            rt.pointee.rtm_dst_len = UInt8(destination.family.bitCount)
            if source != nil { rt.pointee.rtm_src_len = UInt8(destination.family.bitCount) }
        }, attrs: { nlh in
            let dst = destination.bytes
            mnl_attr_put(nlh, UInt16(RTA_DST.rawValue), dst.count, dst)
            if let source, source.family == destination.family {
                let src = source.bytes
                mnl_attr_put(nlh, UInt16(RTA_SRC.rawValue), src.count, src)
            }
            mnl_attr_put_u32(nlh, UInt16(RTA_MARK.rawValue), mark)
        })
    }

    /// `ip link show dev INDEX`.
    public static func getLink(index: UInt32, seq: UInt32) -> [UInt8] {
        build(type: Int(RTM_GETLINK), flags: 0, seq: seq, extra: MemoryLayout<ifinfomsg>.size, fill: { p in
            let info = p.assumingMemoryBound(to: ifinfomsg.self)
            info.pointee.ifi_family = UInt8(AF_UNSPEC)
            info.pointee.ifi_index = Int32(bitPattern: index)
        }, attrs: { _ in })
    }

    /// From an RTM_NEWROUTE reply: the output interface and the route's MTU metric (a
    /// cached path MTU shows here too); nil for what it lacks.
    public static func parseRoute(_ message: [UInt8]) -> (outputInterface: UInt32?, mtu: UInt32?) {
        var oif: UInt32?, mtu: UInt32?
        attributes(message, after: MemoryLayout<rtmsg>.size) { type, value in
            if type == UInt16(RTA_OIF.rawValue), value.count >= 4 { oif = value.loadUnaligned(as: UInt32.self) }
            if type == UInt16(RTA_METRICS.rawValue) {
                attributes(value) { t, v in
                    if t == UInt16(RTAX_MTU), v.count >= 4 { mtu = v.loadUnaligned(as: UInt32.self) }
                }
            }
        }
        return (oif, mtu.flatMap { $0 == 0 ? nil : $0 })
    }

    /// From an RTM_NEWLINK reply: the interface's MTU.
    public static func parseLinkMTU(_ message: [UInt8]) -> UInt32? {
        var mtu: UInt32?
        attributes(message, after: MemoryLayout<ifinfomsg>.size) { type, value in
            if type == UInt16(IFLA_MTU), value.count >= 4 { mtu = value.loadUnaligned(as: UInt32.self) }
        }
        return mtu
    }

    /// Calls `body` with each attribute of a message (after its netlink header and the
    /// family header of `fixed` bytes); malformed attributes end the walk.
    static func attributes(_ message: [UInt8], after fixed: Int, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        message.withUnsafeBytes { raw in
            let start = 16 + ((fixed + 3) & ~3)
            guard raw.count >= start else { return }
            attributes(UnsafeRawBufferPointer(rebasing: raw[start...]), body)
        }
    }

    static func attributes(_ raw: UnsafeRawBufferPointer, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        var offset = 0
        while offset + 4 <= raw.count {
            let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & cnf_nla_type_mask()
            guard length >= 4, offset + length <= raw.count else { return }
            body(type, UnsafeRawBufferPointer(rebasing: raw[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }
}
