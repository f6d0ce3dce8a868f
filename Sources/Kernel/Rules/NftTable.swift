// NftTable: a whole nf_tables table as values — sets, base chains with hook and
// priority, regular chains, rules — and its nft(8) text. encd installs it in one
// batch (NftBatch) and Rules/encd.nft is this text for the default configuration.

import CNetfilter
import EncCore

public enum NftHook: String, Sendable {
    case prerouting, input, forward, output, postrouting
    /// A netdev chain's hook on one device's transmit path (NF_NETDEV_EGRESS).
    case egress
    var number: UInt32 {
        switch self {
        case .egress: return UInt32(NF_NETDEV_EGRESS.rawValue)
        case .prerouting: return UInt32(NF_INET_PRE_ROUTING.rawValue)
        case .input: return UInt32(NF_INET_LOCAL_IN.rawValue)
        case .forward: return UInt32(NF_INET_FORWARD.rawValue)
        case .output: return UInt32(NF_INET_LOCAL_OUT.rawValue)
        case .postrouting: return UInt32(NF_INET_POST_ROUTING.rawValue)
        }
    }
}

public struct NftBaseChain: Sendable, Equatable {
    /// "filter" or "route" (route re-routes local output when the mark changes).
    public var type: String
    public var hook: NftHook
    public var priority: Int32
    /// The device of a netdev chain.
    public var device: String?
    public init(type: String, hook: NftHook, priority: Int32, device: String? = nil) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.device = device
    }
}

public struct NftChain: Sendable, Equatable {
    public var name: String
    /// nil for a regular chain reached by `jump`.
    public var base: NftBaseChain?
    public var comment: String?
    public var rules: [NftRule]
    public init(_ name: String, base: NftBaseChain? = nil, comment: String? = nil, rules: [NftRule]) {
        self.name = name
        self.base = base
        self.comment = comment
        self.rules = rules
    }
}

/// A set of (source, destination) address pairs with prefix ranges:
/// `type ipv4_addr . ipv4_addr; flags interval;`.
public struct NftAddressPairSet: Sendable, Equatable {
    public var name: String
    public var family: AddressFamily
    public var comment: String?
    public init(_ name: String, family: AddressFamily, comment: String? = nil) {
        self.name = name
        self.family = family
        self.comment = comment
    }
    var typeText: String { family == .inet ? "ipv4_addr . ipv4_addr" : "ipv6_addr . ipv6_addr" }
    /// Bytes of one field (address).
    var fieldLength: Int { family == .inet ? 4 : 16 }
    /// nft's datatype ids (TYPE_IPADDR 7, TYPE_IP6ADDR 8), concatenated 6 bits apart.
    var keyType: UInt32 { family == .inet ? (7 << 6) | 7 : (8 << 6) | 8 }
}

/// A connection cache (`typeof ct id : meta mark`): [X]'s answer (encd's bits of the
/// mark) per conntrack id, added from the packet path when the answer is saved and
/// forgotten after `timeoutSeconds` without a save (or when encd flushes it).
public struct NftCacheSet: Sendable, Equatable {
    public var name: String
    public var key: NftCacheKey
    public var size: UInt32
    public var timeoutSeconds: UInt32
    public var comment: String?
    public init(_ name: String, key: NftCacheKey = .connection, size: UInt32 = 65536, timeoutSeconds: UInt32 = 600, comment: String? = nil) {
        self.name = name
        self.key = key
        self.size = size
        self.timeoutSeconds = timeoutSeconds
        self.comment = comment
    }
    /// nft's TYPE_MARK: the data of `... : meta mark`.
    static let dataType: UInt32 = 19
}

/// What a connection cache is keyed by.
public enum NftCacheKey: Sendable, Equatable {
    /// `ct id`
    case connection
    /// `ct id . ether saddr`: the connection and the frame's source (for frames encd
    /// writes into enc0, the SA that carried the packet).
    case connectionAndSource

    var text: String { self == .connection ? "ct id" : "ct id . ether saddr" }
    /// Bytes of the key: each field padded to 4 (ether saddr: 6 -> 8).
    var length: UInt32 { self == .connection ? 4 : 12 }
    /// Bytes of each field, unpadded.
    var fieldLengths: [UInt8] { self == .connection ? [4] : [4, 6] }
    /// nft's datatype ids, concatenated 6 bits apart: TYPE_INTEGER (4) for the id alone;
    /// in a concatenation TYPE_MARK (19, 32 bits) stands for it, since nft(8) 1.0.6 can
    /// list a concatenation only of fixed-size types (TYPE_ETHERADDR 9) when the set
    /// carries no typeof description.
    var type: UInt32 { self == .connection ? 4 : (19 << 6) | 9 }
}

/// Table flags from linux/netfilter/nf_tables.h. Debian bookworm's headers (Linux 6.1)
/// stop at OWNER; PERSIST came with Linux 6.9, so its value is written here.
public enum NftTableFlags {
    /// Only the netlink socket that created the table may change or delete it.
    public static let owner = UInt32(NFT_TABLE_F_OWNER.rawValue)
    /// With `owner`: the table stays when its owner's socket closes (orphaned; the next
    /// owner may take it over or delete it). NFT_TABLE_F_PERSIST, Linux >= 6.9.
    public static let persist: UInt32 = 0x4
}

/// The guard table that covers a reinstall: the chains whose rules read sets, with
/// those sets, under another name (`table.name` + "_guard"). nf_tables makes the
/// elements of a set created in a transaction visible only after the new generation
/// is already live, so for a moment a new table's rules see empty sets and [X] would
/// let everything pass: while the real table is replaced, the guard (created before,
/// its sets long visible) queues and drops what it must, and is deleted after.
/// The guard needs no connection cache: its chains keep only the rules that do not
/// read one (every packet it sees goes to [X]).
extension NftTable {
    public var guardTable: NftTable {
        let names = Set(sets.map(\.name))
        let cacheNames = caches.map(\.name)
        let chainsWithSets = chains.filter { c in c.rules.contains { r in names.contains { r.text.contains("@" + $0) } } }
        return NftTable(name: name + "_guard", sets: sets, chains: chainsWithSets.map { c in
            var c = c
            c.rules = c.rules.filter { r in !cacheNames.contains { r.text.contains("@" + $0) } }
            return c
        })
    }
}

public struct NftTable: Sendable, Equatable {
    public var name: String
    public var sets: [NftAddressPairSet]
    public var caches: [NftCacheSet]
    public var chains: [NftChain]
    public var header: [String]
    public init(name: String, header: [String] = [], sets: [NftAddressPairSet], caches: [NftCacheSet] = [], chains: [NftChain]) {
        self.name = name
        self.header = header
        self.sets = sets
        self.caches = caches
        self.chains = chains
    }

    /// The table in nft syntax (`nft -f` input), family inet.
    public var text: String {
        var out = header.map { $0.isEmpty ? "#" : "# " + $0 }
        out.append("table inet \(name) {")
        for set in sets {
            if let c = set.comment { out.append("    # " + c) }
            out.append("    set \(set.name) {")
            out.append("        type \(set.typeText)")
            out.append("        flags interval")
            out.append("    }")
            out.append("")
        }
        for cache in caches {
            if let c = cache.comment { out.append(contentsOf: c.split(separator: "\n").map { "    # " + $0 }) }
            out.append("    map \(cache.name) {")
            out.append("        typeof \(cache.key.text) : meta mark")
            out.append("        size \(cache.size)")
            out.append("        flags dynamic,timeout")
            out.append("        timeout \(cache.timeoutSeconds)s")
            out.append("    }")
            out.append("")
        }
        for (i, chain) in chains.enumerated() {
            if let c = chain.comment {
                out.append(contentsOf: c.split(separator: "\n").map { "    # " + $0 })
            }
            out.append("    chain \(chain.name) {")
            if let b = chain.base {
                out.append("        type \(b.type) hook \(b.hook.rawValue) priority \(b.priority); policy accept;")
            }
            for rule in chain.rules {
                out.append("        " + rule.text + (rule.comment.map { "  # " + $0 } ?? ""))
            }
            out.append("    }")
            if i + 1 < chains.count { out.append("") }
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }
}

/// enc0's egress table (family netdev): one chain at the device's egress hook whose
/// only rule copies the packet mark into the frame's destination MAC, bytes 2-5
/// (`@ll,16,32 set meta mark`), so encd, reading the frame from the TAP, learns the
/// [X] answer. It runs after everything the inet family does to the packet (NAT on
/// enc0, the admin's filter, conntrack's confirmation). nft(8) 1.0.6 lists this rule
/// but refuses it as input (a mark where it expects an integer), so encd builds it
/// with libnftnl.
public struct NftEgressTable: Sendable, Equatable {
    public var name: String
    public var device: String
    public let chain: NftChain
    public init(name: String, device: String) {
        self.name = name
        self.device = device
        chain = NftChain("mark_to_mac", base: NftBaseChain(type: "filter", hook: .egress, priority: 0, device: device),
                         rules: [NftRule([], [.markIntoDestinationMAC])])
    }

    /// The table as nft(8) lists it.
    public var text: String {
        var out = ["table netdev \(name) {", "    chain \(chain.name) {"]
        if let b = chain.base {
            out.append("        type \(b.type) hook \(b.hook.rawValue) device \"\(device)\" priority \(b.priority); policy accept;")
        }
        out += chain.rules.map { "        " + $0.text }
        out += ["    }", "}", ""]
        return out.joined(separator: "\n")
    }
}

/// Elements for a set, installed together with its table (`RulesetControl.install`).
public struct NftSetContents {
    public var set: NftAddressPairSet
    /// (source prefix, destination prefix) pairs.
    public var pairs: [(IPPrefix, IPPrefix)]
    public init(_ set: NftAddressPairSet, _ pairs: [(IPPrefix, IPPrefix)]) {
        self.set = set
        self.pairs = pairs
    }
}
