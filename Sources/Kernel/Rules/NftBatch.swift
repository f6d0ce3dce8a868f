// NftBatch: turns NftTable values into one nf_tables batch (NFNL_MSG_BATCH_BEGIN ...
// BATCH_END) with libnftnl. Every message asks for an ack; `acked` maps each sequence
// number to what the message does, so an error names the chain or rule it came from.
// Control path only.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import EncCore

public struct NftBatch {
    public private(set) var bytes: [UInt8] = []
    /// seq -> "add rule inet encd spd_output: counter queue num 0".
    public private(set) var acked: [UInt32: String] = [:]
    /// Batch begin/end: no ack, but an error there ends the wait.
    public private(set) var unacked: [UInt32: String] = [:]
    private var seq: UInt32
    private var nextSetID: UInt32 = 1
    private var setIDs: [String: UInt32] = [:]

    static let family = UInt16(NFPROTO_INET)

    public init(firstSeq: UInt32) {
        seq = firstSeq
        put("batch begin", ack: false) { buf, s in nftnl_batch_begin(buf, s) }
    }

    /// Closes the batch; the result is ready to send.
    public mutating func finish() {
        put("batch end", ack: false) { buf, s in nftnl_batch_end(buf, s) }
    }

    /// Appends one message built by `build` into scratch memory of `room` bytes.
    private mutating func put(_ what: String, ack: Bool = true, room: Int = 8192,
                              _ build: (UnsafeMutablePointer<CChar>, UInt32) -> UnsafeMutablePointer<nlmsghdr>?) {
        let s = seq
        seq &+= 1
        var scratch = [UInt8](repeating: 0, count: room)
        let length = scratch.withUnsafeMutableBytes { raw -> Int in
            let nlh = build(raw.baseAddress!.assumingMemoryBound(to: CChar.self), s)!
            return (Int(nlh.pointee.nlmsg_len) + 3) & ~3
        }
        precondition(length <= room, "netlink message overflowed its scratch buffer")
        bytes.append(contentsOf: scratch.prefix(length))
        if ack { acked[s] = what } else { unacked[s] = what }
    }

    private static func header(_ buf: UnsafeMutablePointer<CChar>, _ type: Int, _ flags: Int32, _ seq: UInt32,
                               family: UInt16 = NftBatch.family) -> UnsafeMutablePointer<nlmsghdr> {
        nftnl_nlmsg_build_hdr(buf, UInt16(type), family, UInt16(Int32(NLM_F_ACK) | flags), seq)!
    }

    // MARK: enc0's egress table

    static let netdevFamily = UInt16(NFPROTO_NETDEV)

    /// A netdev table message for `name` of `type`.
    private mutating func putNetdevTable(_ what: String, _ name: String, type: UInt32, flags: Int32, tableFlags: UInt32 = 0) {
        put(what) { b, s in
            Self.withTable(name, family: Self.netdevFamily) { t in
                if tableFlags != 0 { nftnl_table_set_u32(t, UInt16(NFTNL_TABLE_FLAGS.rawValue), tableFlags) }
                let nlh = Self.header(b, Int(type), flags, s, family: Self.netdevFamily)
                nftnl_table_nlmsg_build_payload(nlh, t)
                return nlh
            }
        }
    }

    /// Creates `table` (family netdev; an old one of that name deleted in the same
    /// transaction) with one chain at enc0's egress hook that writes each frame's
    /// packet mark into the last four bytes of its destination MAC
    /// (`@ll,16,32 set meta mark`): how the [X] answer reaches encd when it reads the
    /// outbound side from enc0 (the mark itself does not cross a TAP read).
    public mutating func replaceEgressTable(_ table: NftEgressTable, flags: UInt32 = 0) {
        let name = table.name
        putNetdevTable("add table netdev \(name) (placeholder for the delete)", name, type: NFT_MSG_NEWTABLE.rawValue, flags: Int32(NLM_F_CREATE))
        putNetdevTable("delete table netdev \(name)", name, type: NFT_MSG_DELTABLE.rawValue, flags: 0)
        putNetdevTable("add table netdev \(name)", name, type: NFT_MSG_NEWTABLE.rawValue, flags: Int32(NLM_F_CREATE) | Int32(NLM_F_EXCL),
                       tableFlags: flags)
        addChain(table.chain, table: name, family: Self.netdevFamily)
        for rule in table.chain.rules { addRule(rule, chain: table.chain.name, table: name, queue: .native, family: Self.netdevFamily) }
    }

    // MARK: tables

    /// Creates `table.name` from scratch: an old table of that name (left by a crashed
    /// encd) is deleted in the same transaction, so there is no moment without rules.
    /// `contents` fill the new sets in that transaction too: rules that match on a set
    /// never see it empty (an empty [X] candidate set would let protected traffic
    /// through in cleartext while the old table's sets are already gone).
    ///
    /// `flags` go on the new table: encd's own is owned by its netlink socket (no other
    /// process may change or delete it, `nft flush ruleset` passes it by) and persists
    /// when encd exits, failing closed (`NftTableFlags`).
    public mutating func replaceTable(_ table: NftTable, queue backend: NftQueueBackend, contents: [NftSetContents] = [],
                                      flags: UInt32 = 0) {
        put("add table inet \(table.name) (placeholder for the delete)") { b, s in
            Self.withTable(table.name) { t in
                let nlh = Self.header(b, Int(NFT_MSG_NEWTABLE.rawValue), Int32(NLM_F_CREATE), s)
                nftnl_table_nlmsg_build_payload(nlh, t)
                return nlh
            }
        }
        deleteTable(table.name)
        put("add table inet \(table.name)") { b, s in
            Self.withTable(table.name) { t in
                if flags != 0 { nftnl_table_set_u32(t, UInt16(NFTNL_TABLE_FLAGS.rawValue), flags) }
                let nlh = Self.header(b, Int(NFT_MSG_NEWTABLE.rawValue), Int32(NLM_F_CREATE) | Int32(NLM_F_EXCL), s)
                nftnl_table_nlmsg_build_payload(nlh, t)
                return nlh
            }
        }
        for set in table.sets { addSet(set, table: table.name) }
        for cache in table.caches { addCache(cache, table: table.name) }
        for c in contents { addElements(c.set, table: table.name, pairs: c.pairs) }
        for chain in table.chains { addChain(chain, table: table.name) }
        for chain in table.chains {
            for rule in chain.rules { addRule(rule, chain: chain.name, table: table.name, queue: backend) }
        }
    }

    public mutating func deleteTable(_ name: String) {
        put("delete table inet \(name)") { b, s in
            Self.withTable(name) { t in
                let nlh = Self.header(b, Int(NFT_MSG_DELTABLE.rawValue), 0, s)
                nftnl_table_nlmsg_build_payload(nlh, t)
                return nlh
            }
        }
    }

    /// A lone NFT_MSG_GETTABLE request for `name` (outside any batch); the kernel
    /// answers with the table or ENOENT.
    public static func getTable(_ name: String, seq: UInt32) -> [UInt8] {
        var scratch = [CChar](repeating: 0, count: 512)
        let length = scratch.withUnsafeMutableBufferPointer { b -> Int in
            withTable(name) { t in
                let nlh = header(b.baseAddress!, Int(NFT_MSG_GETTABLE.rawValue), 0, seq)
                nftnl_table_nlmsg_build_payload(nlh, t)
                return Int(nlh.pointee.nlmsg_len)
            }
        }
        return scratch.prefix(length).map { UInt8(bitPattern: $0) }
    }

    static func withTable<R>(_ name: String, family: UInt16 = NftBatch.family, _ body: (OpaquePointer) -> R) -> R {
        let t = nftnl_table_alloc()!
        defer { nftnl_table_free(t) }
        nftnl_table_set_str(t, UInt16(NFTNL_TABLE_NAME.rawValue), name)
        nftnl_table_set_u32(t, UInt16(NFTNL_TABLE_FAMILY.rawValue), UInt32(family))
        return body(t)
    }

    // MARK: sets

    mutating func addSet(_ set: NftAddressPairSet, table: String) {
        let id = nextSetID
        nextSetID += 1
        setIDs[set.name] = id
        put("add set inet \(table) \(set.name) { type \(set.typeText); flags interval; }") { b, s in
            let st = nftnl_set_alloc()!
            defer { nftnl_set_free(st) }
            nftnl_set_set_str(st, UInt16(NFTNL_SET_TABLE.rawValue), table)
            nftnl_set_set_str(st, UInt16(NFTNL_SET_NAME.rawValue), set.name)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(NftBatch.family))
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_FLAGS.rawValue), UInt32(NFT_SET_INTERVAL.rawValue) | UInt32(NFT_SET_CONCAT.rawValue))
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_KEY_TYPE.rawValue), set.keyType)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_KEY_LEN.rawValue), UInt32(2 * set.fieldLength))
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_ID.rawValue), id)
            var fields: [UInt8] = [UInt8(set.fieldLength), UInt8(set.fieldLength)]
            nftnl_set_set_data(st, UInt16(NFTNL_SET_DESC_CONCAT.rawValue), &fields, UInt32(fields.count))
            let nlh = Self.header(b, Int(NFT_MSG_NEWSET.rawValue), Int32(NLM_F_CREATE), s)
            nftnl_set_nlmsg_build_payload(nlh, st)
            return nlh
        }
    }

    /// A connection cache: a map from the conntrack id to a mark, filled from the
    /// packet path (`update`), elements expiring after the map's timeout.
    mutating func addCache(_ cache: NftCacheSet, table: String) {
        let id = nextSetID
        nextSetID += 1
        setIDs[cache.name] = id
        put("add map inet \(table) \(cache.name) { typeof \(cache.key.text) : meta mark; size \(cache.size); flags dynamic,timeout; timeout \(cache.timeoutSeconds)s; }") { b, s in
            let st = nftnl_set_alloc()!
            defer { nftnl_set_free(st) }
            nftnl_set_set_str(st, UInt16(NFTNL_SET_TABLE.rawValue), table)
            nftnl_set_set_str(st, UInt16(NFTNL_SET_NAME.rawValue), cache.name)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(NftBatch.family))
            let concat = cache.key.fieldLengths.count > 1 ? UInt32(NFT_SET_CONCAT.rawValue) : 0
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_FLAGS.rawValue),
                              UInt32(NFT_SET_MAP.rawValue) | UInt32(NFT_SET_TIMEOUT.rawValue) | UInt32(NFT_SET_EVAL.rawValue) | concat)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_KEY_TYPE.rawValue), cache.key.type)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_KEY_LEN.rawValue), cache.key.length)
            // nft(8) rebuilds a concatenated key from the field lengths; without them it
            // cannot list the map (nor the ruleset).
            var fields = cache.key.fieldLengths
            if fields.count > 1 { nftnl_set_set_data(st, UInt16(NFTNL_SET_DESC_CONCAT.rawValue), &fields, UInt32(fields.count)) }
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_DATA_TYPE.rawValue), NftCacheSet.dataType)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_DATA_LEN.rawValue), 4)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_DESC_SIZE.rawValue), cache.size)
            nftnl_set_set_u64(st, UInt16(NFTNL_SET_TIMEOUT.rawValue), UInt64(cache.timeoutSeconds) * 1000)
            nftnl_set_set_u32(st, UInt16(NFTNL_SET_ID.rawValue), id)
            let nlh = Self.header(b, Int(NFT_MSG_NEWSET.rawValue), Int32(NLM_F_CREATE), s)
            nftnl_set_nlmsg_build_payload(nlh, st)
            return nlh
        }
    }

    /// Empties a set (NFT_MSG_DELSETELEM without elements).
    public mutating func flushSet(named name: String, table: String) {
        put("flush set inet \(table) \(name)") { b, s in
            Self.withSet(named: name, table: table) { st in
                let nlh = Self.header(b, Int(NFT_MSG_DELSETELEM.rawValue), 0, s)
                nftnl_set_elems_nlmsg_build_payload(nlh, st)
                return nlh
            }
        }
    }

    /// Replaces the elements of an address-pair set: flush, then add `pairs`
    /// (source prefix, destination prefix) as ranges.
    public mutating func replaceElements(of set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) {
        flushSet(named: set.name, table: table)
        addElements(set, table: table, pairs: pairs)
    }

    /// Adds `pairs` (source prefix, destination prefix) to a set as ranges.
    mutating func addElements(_ set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) {
        guard !pairs.isEmpty else { return }
        let id = setIDs[set.name]   // a set created earlier in this batch
        put("add element inet \(table) \(set.name) (\(pairs.count) pairs)", room: 256 + pairs.count * 128) { b, s in
            Self.withSet(set, table: table) { st in
                if let id { nftnl_set_set_u32(st, UInt16(NFTNL_SET_ID.rawValue), id) }
                for (src, dst) in pairs {
                    let e = nftnl_set_elem_alloc()!
                    var key = Self.low(src) + Self.low(dst)
                    var end = Self.high(src) + Self.high(dst)
                    nftnl_set_elem_set(e, UInt16(NFTNL_SET_ELEM_KEY), &key, UInt32(key.count))
                    nftnl_set_elem_set(e, UInt16(NFTNL_SET_ELEM_KEY_END), &end, UInt32(end.count))
                    nftnl_set_elem_add(st, e)
                }
                let nlh = Self.header(b, Int(NFT_MSG_NEWSETELEM.rawValue), Int32(NLM_F_CREATE), s)
                nftnl_set_elems_nlmsg_build_payload(nlh, st)
                return nlh
            }
        }
    }

    static func withSet<R>(_ set: NftAddressPairSet, table: String, _ body: (OpaquePointer) -> R) -> R {
        withSet(named: set.name, table: table, body)
    }

    static func withSet<R>(named name: String, table: String, _ body: (OpaquePointer) -> R) -> R {
        let st = nftnl_set_alloc()!
        defer { nftnl_set_free(st) }
        nftnl_set_set_str(st, UInt16(NFTNL_SET_TABLE.rawValue), table)
        nftnl_set_set_str(st, UInt16(NFTNL_SET_NAME.rawValue), name)
        nftnl_set_set_u32(st, UInt16(NFTNL_SET_FAMILY.rawValue), UInt32(NftBatch.family))
        return body(st)
    }

    static func low(_ p: IPPrefix) -> [UInt8] { p.address.bytes }
    /// The prefix's last address: every host bit set. IPAddress holds the address
    /// left-aligned in two words (IPv4 in the top 32 bits of `hi`).
    static func high(_ p: IPPrefix) -> [UInt8] {
        let a = p.address
        let bits = a.family.bitCount
        func hostBits(_ wordStart: Int) -> UInt64 {
            // Host bits of the 64-bit word covering address bits wordStart..<wordStart+64.
            let prefixInWord = min(max(p.length - wordStart, 0), 64)
            let usedInWord = min(max(bits - wordStart, 0), 64)
            guard usedInWord > prefixInWord else { return 0 }
            let ones: UInt64 = usedInWord - prefixInWord == 64 ? ~0 : ((1 << UInt64(usedInWord - prefixInWord)) - 1)
            return ones << UInt64(64 - usedInWord)
        }
        return IPAddress(family: a.family, hi: a.hi | hostBits(0), lo: a.lo | hostBits(64)).bytes
    }

    // MARK: chains and rules

    static func familyName(_ family: UInt16) -> String { family == netdevFamily ? "netdev" : "inet" }

    mutating func addChain(_ chain: NftChain, table: String, family: UInt16 = NftBatch.family) {
        let f = Self.familyName(family)
        let what = chain.base.map { b in
            "add chain \(f) \(table) \(chain.name) { type \(b.type) hook \(b.hook.rawValue)\(b.device.map { " device \"\($0)\"" } ?? "") priority \(b.priority); }"
        } ?? "add chain \(f) \(table) \(chain.name)"
        put(what) { b, s in
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TABLE.rawValue), table)
            nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_NAME.rawValue), chain.name)
            nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_FAMILY.rawValue), UInt32(family))
            if let base = chain.base {
                nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_TYPE.rawValue), base.type)
                nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), base.hook.number)
                nftnl_chain_set_s32(c, UInt16(NFTNL_CHAIN_PRIO.rawValue), base.priority)
                if let device = base.device { nftnl_chain_set_str(c, UInt16(NFTNL_CHAIN_DEV.rawValue), device) }
                nftnl_chain_set_u32(c, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
            }
            let nlh = Self.header(b, Int(NFT_MSG_NEWCHAIN.rawValue), Int32(NLM_F_CREATE), s, family: family)
            nftnl_chain_nlmsg_build_payload(nlh, c)
            return nlh
        }
    }

    mutating func addRule(_ rule: NftRule, chain: String, table: String, queue backend: NftQueueBackend,
                          family: UInt16 = NftBatch.family) {
        let exprs = rule.expressions(queue: backend)
        let ids = setIDs
        put("add rule \(Self.familyName(family)) \(table) \(chain) \(rule.text)") { b, s in
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_TABLE.rawValue), table)
            nftnl_rule_set_str(r, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
            nftnl_rule_set_u32(r, UInt16(NFTNL_RULE_FAMILY.rawValue), UInt32(family))
            for e in exprs { nftnl_rule_add_expr(r, NftBatch.make(e, setIDs: ids)) }
            let nlh = Self.header(b, Int(NFT_MSG_NEWRULE.rawValue), Int32(NLM_F_CREATE) | Int32(NLM_F_APPEND), s, family: family)
            nftnl_rule_nlmsg_build_payload(nlh, r)
            return nlh
        }
    }

    /// One libnftnl expression; the rule that receives it frees it.
    static func make(_ e: NftExpr, setIDs: [String: UInt32]) -> OpaquePointer {
        let x = nftnl_expr_alloc(e.name)!
        func u32(_ attr: Int, _ v: UInt32) { nftnl_expr_set_u32(x, UInt16(attr), v) }
        func data(_ attr: Int, _ d: [UInt8]) { d.withUnsafeBytes { _ = nftnl_expr_set(x, UInt16(attr), $0.baseAddress, UInt32(d.count)) } }
        switch e {
        case .meta(let key, let dreg):
            u32(NFTNL_EXPR_META_KEY, key); u32(NFTNL_EXPR_META_DREG, dreg.rawValue)
        case .metaSet(let key, let sreg):
            u32(NFTNL_EXPR_META_KEY, key); u32(NFTNL_EXPR_META_SREG, sreg.rawValue)
        case .ct(let key, let dreg):
            u32(NFTNL_EXPR_CT_KEY, key); u32(NFTNL_EXPR_CT_DREG, dreg.rawValue)
        case .payload(let base, let offset, let length, let dreg):
            u32(NFTNL_EXPR_PAYLOAD_DREG, dreg.rawValue); u32(NFTNL_EXPR_PAYLOAD_BASE, base)
            u32(NFTNL_EXPR_PAYLOAD_OFFSET, offset); u32(NFTNL_EXPR_PAYLOAD_LEN, length)
        case .byteorder(let sreg, let dreg, let op, let length, let size):
            u32(NFTNL_EXPR_BYTEORDER_SREG, sreg.rawValue); u32(NFTNL_EXPR_BYTEORDER_DREG, dreg.rawValue)
            u32(NFTNL_EXPR_BYTEORDER_OP, op); u32(NFTNL_EXPR_BYTEORDER_LEN, length); u32(NFTNL_EXPR_BYTEORDER_SIZE, size)
        case .payloadSet(let base, let offset, let length, let sreg):
            u32(NFTNL_EXPR_PAYLOAD_SREG, sreg.rawValue); u32(NFTNL_EXPR_PAYLOAD_BASE, base)
            u32(NFTNL_EXPR_PAYLOAD_OFFSET, offset); u32(NFTNL_EXPR_PAYLOAD_LEN, length)
        case .cmp(let sreg, let op, let d):
            u32(NFTNL_EXPR_CMP_SREG, sreg.rawValue); u32(NFTNL_EXPR_CMP_OP, op)
            data(NFTNL_EXPR_CMP_DATA, d)
        case .bitwise(let sreg, let dreg, let mask, let xor):
            u32(NFTNL_EXPR_BITWISE_SREG, sreg.rawValue); u32(NFTNL_EXPR_BITWISE_DREG, dreg.rawValue)
            u32(NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
            data(NFTNL_EXPR_BITWISE_MASK, mask); data(NFTNL_EXPR_BITWISE_XOR, xor)
        case .lookup(let set, let sreg, let dreg):
            u32(NFTNL_EXPR_LOOKUP_SREG, sreg.rawValue)
            if let dreg { u32(NFTNL_EXPR_LOOKUP_DREG, dreg.rawValue) }
            nftnl_expr_set_str(x, UInt16(NFTNL_EXPR_LOOKUP_SET), set)
            if let id = setIDs[set] { u32(NFTNL_EXPR_LOOKUP_SET_ID, id) }
        case .dynsetUpdate(let set, let key, let data):
            u32(NFTNL_EXPR_DYNSET_SREG_KEY, key.rawValue)
            u32(NFTNL_EXPR_DYNSET_SREG_DATA, data.rawValue)
            u32(NFTNL_EXPR_DYNSET_OP, UInt32(NFT_DYNSET_OP_UPDATE.rawValue))
            nftnl_expr_set_str(x, UInt16(NFTNL_EXPR_DYNSET_SET_NAME), set)
            if let id = setIDs[set] { u32(NFTNL_EXPR_DYNSET_SET_ID, id) }
        case .fib(let flags, let result, let dreg):
            u32(NFTNL_EXPR_FIB_FLAGS, flags); u32(NFTNL_EXPR_FIB_RESULT, result)
            u32(NFTNL_EXPR_FIB_DREG, dreg.rawValue)
        case .counter:
            break
        case .queue(let number, let total, let flags):
            nftnl_expr_set_u16(x, UInt16(NFTNL_EXPR_QUEUE_NUM), number)
            nftnl_expr_set_u16(x, UInt16(NFTNL_EXPR_QUEUE_TOTAL), total)
            nftnl_expr_set_u16(x, UInt16(NFTNL_EXPR_QUEUE_FLAGS), flags)
        case .xtTarget(let name, let revision, let info):
            nftnl_expr_set_str(x, UInt16(NFTNL_EXPR_TG_NAME), name)
            u32(NFTNL_EXPR_TG_REV, revision)
            // libnftnl keeps (and later frees) this pointer rather than copying it.
            let owned = malloc(info.count)!
            info.withUnsafeBytes { owned.copyMemory(from: $0.baseAddress!, byteCount: info.count) }
            _ = nftnl_expr_set(x, UInt16(NFTNL_EXPR_TG_INFO), owned, UInt32(info.count))
        case .immediate(let dreg, let d):
            u32(NFTNL_EXPR_IMM_DREG, dreg.rawValue); data(NFTNL_EXPR_IMM_DATA, d)
        case .tproxy(let portRegister):
            // NFPROTO_UNSPEC: IPv4 and IPv6 alike, with no address (the packet's own).
            u32(NFTNL_EXPR_TPROXY_FAMILY, 0); u32(NFTNL_EXPR_TPROXY_REG_PORT, portRegister.rawValue)
        case .verdict(let v):
            u32(NFTNL_EXPR_IMM_DREG, NftRegister.verdict.rawValue)
            switch v {
            case .accept: u32(NFTNL_EXPR_IMM_VERDICT, UInt32(NF_ACCEPT))
            case .drop: u32(NFTNL_EXPR_IMM_VERDICT, UInt32(NF_DROP))
            case .return: u32(NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: NFT_RETURN.rawValue))
            case .jump(let chain):
                u32(NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: NFT_JUMP.rawValue))
                nftnl_expr_set_str(x, UInt16(NFTNL_EXPR_IMM_CHAIN), chain)
            }
        }
        return x
    }
}
