// RulesetControl: installing and removing encd's nftables table and updating its sets.
// Control path: each call is one atomic nf_tables transaction and throws an error
// naming the message the kernel refused.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import EncCore

public protocol RulesetControl: AnyObject {
    /// Installs `table` with `contents` in its sets, replacing a table of the same
    /// name, all in one transaction. Returns how `queue` statements were expressed.
    func install(_ table: NftTable, contents: [NftSetContents]) throws -> NftQueueBackend
    /// Deletes the table; a missing table is not an error.
    func removeTable(named name: String) throws
    /// Replaces the elements of every set in `contents`, all in one transaction: the
    /// kernel takes all of it or, refusing any part, none.
    func replaceElements(_ contents: [NftSetContents], table: String) throws
    /// Replaces the elements of every set in `contents` and empties the connection
    /// caches named in `caches`, all in one transaction.
    func replaceElements(_ contents: [NftSetContents], flushing caches: [String], table: String) throws
    /// Empties the connection caches named (one transaction).
    func flush(caches: [String], table: String) throws
    /// Whether the table exists (someone may have removed it: `nft flush ruleset`).
    func tableExists(named name: String) throws -> Bool
    /// Installs enc0's egress table (replacing one of that name), owned by this socket
    /// without persisting: it goes when encd exits, as enc0 does.
    func installEgress(_ table: NftEgressTable) throws
}

extension RulesetControl {
    /// Replaces the elements of one address-pair set in `table`.
    public func replaceElements(of set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) throws {
        try replaceElements([NftSetContents(set, pairs)], table: table)
    }
}

/// RulesetControl on the real kernel (libnftnl batches over a libmnl socket).
public final class Nftables: RulesetControl {
    private let socket: NetlinkSocket
    private let log: (String) -> Void
    /// The backend that worked last; tried first next time.
    public private(set) var backend: NftQueueBackend?

    /// `log` receives one line per install saying which queue backend was used.
    public init(log: @escaping (String) -> Void = { _ in }) throws {
        socket = try NetlinkSocket(bus: NETLINK_NETFILTER, busName: "nftables")
        self.log = log
    }

    /// Table flags encd asks for; PERSIST is dropped when the kernel refuses it
    /// (before Linux 6.9), OWNER too if that is refused.
    private var tableFlags = NftTableFlags.owner | NftTableFlags.persist

    /// Installs `table` with its sets filled, without a moment in which the traffic its
    /// sets select would pass unseen:
    ///   1. when a table of that name exists, a guard table (`NftTable.guardTable`) with
    ///      the set-reading chains and filled sets goes in first, beside it;
    ///   2. the table is replaced (old deleted, new added, sets filled) in one
    ///      transaction; while the new sets become visible, the guard holds;
    ///   3. the guard is deleted.
    /// The table is owned by this socket and persists when encd exits (flags).
    public func install(_ table: NftTable, contents: [NftSetContents] = []) throws -> NftQueueBackend {
        let covering = try tableExists(named: table.name)
        let guardTable = table.guardTable
        let guardContents = contents.filter { c in guardTable.sets.contains { $0.name == c.set.name } }
        if covering {
            _ = try installOnce(guardTable, contents: guardContents, flags: 0)
        } else if try tableExists(named: guardTable.name) {
            try removeTable(named: guardTable.name)     // left by an encd that died mid-install
        }
        let backend = try installOnce(table, contents: contents, flags: tableFlags)
        if covering { try removeTable(named: guardTable.name) }
        return backend
    }

    /// One transaction: `table` replaced, with the first queue backend and flags the
    /// kernel takes.
    private func installOnce(_ table: NftTable, contents: [NftSetContents], flags: UInt32) throws -> NftQueueBackend {
        let order: [NftQueueBackend] = backend == .xtCompat ? [.xtCompat] : [.native, .xtCompat]
        var firstError: Error?
        var flags = flags
        for candidate in order {
            while true {
                do {
                    try send { $0.replaceTable(table, queue: candidate, contents: contents, flags: flags) }
                    backend = candidate
                    if let refused = firstError {
                        log("nftables: table inet \(table.name) installed with \(candidate.rawValue); native queue refused: \(refused)")
                    } else {
                        log("nftables: table inet \(table.name) installed with \(candidate.rawValue) queue")
                    }
                    return candidate
                } catch let e as SystemError where flags != 0 && e.call.hasPrefix("add table") && (e.errno == EOPNOTSUPP || e.errno == EINVAL) {
                    // An older kernel: no PERSIST (then no OWNER either, which without
                    // PERSIST would delete the table when encd exits).
                    log("nftables: table flags 0x\(String(flags, radix: 16)) refused (\(e)); the table is not protected from other processes")
                    flags = 0
                    tableFlags = 0
                    continue
                } catch let e as SystemError where candidate == .native && (e.errno == ENOENT || e.errno == EOPNOTSUPP) {
                    // No nft_queue in this kernel (or the expression is refused): xt NFQUEUE via nft_compat.
                    firstError = e
                    break
                }
            }
        }
        throw firstError ?? KernelConfigError("nftables: no queue backend left to try")
    }
    public func removeTable(named name: String) throws {
        do {
            try send { $0.deleteTable(name) }
        } catch let e as SystemError where e.errno == ENOENT {
            return
        }
    }

    public func replaceElements(_ contents: [NftSetContents], table: String) throws {
        try replaceElements(contents, flushing: [], table: table)
    }

    public func replaceElements(_ contents: [NftSetContents], flushing caches: [String], table: String) throws {
        try send { batch in
            for c in contents { batch.replaceElements(of: c.set, table: table, pairs: c.pairs) }
            for name in caches { batch.flushSet(named: name, table: table) }
        }
    }

    public func flush(caches: [String], table: String) throws {
        guard !caches.isEmpty else { return }
        try send { batch in
            for name in caches { batch.flushSet(named: name, table: table) }
        }
    }

    public func installEgress(_ table: NftEgressTable) throws {
        do {
            try send { $0.replaceEgressTable(table, flags: tableFlags & NftTableFlags.owner) }
        } catch let e as SystemError where e.call.hasPrefix("add table") && (e.errno == EOPNOTSUPP || e.errno == EINVAL) {
            try send { $0.replaceEgressTable(table) }
        }
    }

    public func tableExists(named name: String) throws -> Bool {
        let seq = socket.sequence()
        do {
            _ = try socket.query(NftBatch.getTable(name, seq: seq), seq: seq, what: "get table inet \(name)")
            return true
        } catch let e as SystemError where e.errno == ENOENT {
            return false
        }
    }

    private func send(_ fill: (inout NftBatch) -> Void) throws {
        var batch = NftBatch(firstSeq: socket.sequence())
        fill(&batch)
        batch.finish()
        // Keep our sequence numbers ahead of the ones the batch used.
        for _ in 0..<(batch.acked.count + batch.unacked.count) { _ = socket.sequence() }
        try socket.transact(batch.bytes, acked: batch.acked, unacked: batch.unacked)
    }
}

