// RulesetControl: installing and removing encd's nftables table and updating its sets.
// Control path: each call is one atomic nf_tables transaction and throws an error
// naming the message the kernel refused.

#if canImport(Glibc)
import Glibc
#endif
import CNetfilter
import EncCore

public protocol RulesetControl: AnyObject {
    /// Installs `table`, replacing a table of the same name in the same transaction.
    /// Returns how `queue` statements were expressed.
    func install(_ table: NftTable) throws -> NftQueueBackend
    /// Installs `table` and the elements of its sets (set name → pairs) in one
    /// transaction, so no packet sees the new rules with empty sets.
    func install(_ table: NftTable, elements: [String: [(IPPrefix, IPPrefix)]]) throws -> NftQueueBackend
    /// Deletes the table; a missing table is not an error.
    func removeTable(named name: String) throws
    /// Replaces the elements of an address-pair set in `table`.
    func replaceElements(of set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) throws
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

    public func install(_ table: NftTable) throws -> NftQueueBackend {
        try install(table, elements: [:])
    }

    public func install(_ table: NftTable, elements: [String: [(IPPrefix, IPPrefix)]]) throws -> NftQueueBackend {
        let order: [NftQueueBackend] = backend == .xtCompat ? [.xtCompat] : [.native, .xtCompat]
        var firstError: Error?
        for candidate in order {
            do {
                try send { b in
                    b.replaceTable(table, queue: candidate)
                    for set in table.sets { if let pairs = elements[set.name], !pairs.isEmpty {
                        b.replaceElements(of: set, table: table.name, pairs: pairs)
                    } }
                }
                backend = candidate
                if let refused = firstError {
                    log("nftables: table inet \(table.name) installed with \(candidate.rawValue); native queue refused: \(refused)")
                } else {
                    log("nftables: table inet \(table.name) installed with \(candidate.rawValue) queue")
                }
                return candidate
            } catch let e as SystemError where candidate == .native && (e.errno == ENOENT || e.errno == EOPNOTSUPP) {
                // No nft_queue in this kernel (or the expression is refused): xt NFQUEUE via nft_compat.
                firstError = e
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

    public func replaceElements(of set: NftAddressPairSet, table: String, pairs: [(IPPrefix, IPPrefix)]) throws {
        try send { $0.replaceElements(of: set, table: table, pairs: pairs) }
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

