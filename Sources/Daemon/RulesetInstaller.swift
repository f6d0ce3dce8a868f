// RulesetInstaller: keeps encd's nftables table in step with the running policy and
// the tunables the rules depend on (NAT-T port, ipsec.use_fail_open,
// ipsec.icmp_accept_clear). Control path, called under the ControlPlane's lock.
//
// At start, and whenever those settings change, the whole table goes in with its sets
// filled, in one transaction: a table left by a crashed encd, or the previous one, is
// replaced without a moment with no rules or with empty sets (an empty [X] candidate
// set would let protected traffic skip [X] and leave in cleartext). Otherwise every
// set is replaced (flush and add) in one transaction: never seen empty, and a refusal
// leaves all of them as they were, so a refused reload changes nothing in the kernel.

import Config
import EncCore
import IPsec
import Kernel

public final class RulesetInstaller {
    let nft: RulesetControl
    let log: Log
    /// What is installed (or, before the first install, what will be).
    public private(set) var config: EncdRulesetConfig
    /// How the installed table expresses queues; nil until the first install.
    public private(set) var backend: NftQueueBackend?

    public init(nft: RulesetControl, config: EncdRulesetConfig, log: Log) {
        self.nft = nft
        self.config = config
        self.log = log
    }

    /// `base` with the settings the tunables decide.
    public static func config(_ base: EncdRulesetConfig, _ t: Tunables) -> EncdRulesetConfig {
        var rc = base
        rc.natTraversalPort = t.udpEncapPort
        rc.useFailOpen = t.useFailOpen
        rc.icmpAcceptClear = t.icmpAcceptClear
        return rc
    }

    /// Makes the kernel's table and sets match `spd` and `tunables`; throwing leaves the
    /// installed table and every set as they were (one transaction).
    public func prepare(_ spd: SPD, tunables: Tunables) throws {
        let rc = Self.config(config, tunables)
        if backend == nil || rc != config {
            let first = backend == nil
            backend = try install(spd, rc)
            config = rc
            if !first {
                log.info("nftables: table inet \(rc.table) re-installed (NAT-T port \(rc.natTraversalPort), use_fail_open \(rc.useFailOpen ? 1 : 0), icmp_accept_clear \(rc.icmpAcceptClear ? 1 : 0))")
            }
            return
        }
        let contents = EncDaemon.setContents(spd, config)
        do {
            try nft.replaceElements(contents, flushing: cacheNames, table: config.table)
        } catch {
            // nftables refused the exact pairs: [X] queues all traffic instead, and no
            // use traffic fails open; still one transaction for every set.
            log.warning("nftables refused the sets (\(error)); [X] queues all traffic instead")
            try nft.replaceElements(EncDaemon.widened(contents), flushing: cacheNames, table: config.table)
        }
    }

    /// The installed connection caches ([X]'s answers kept per connection).
    public var cacheNames: [String] { EncdRuleset.caches(config).map(\.name) }

    /// Forgets every connection's cached [X] answer: the next packet of each goes to
    /// [X] again. After a policy change once the workers have finished the packets
    /// they decided with the old policy, and when encd stops.
    public func flushCaches() throws {
        guard backend != nil else { return }
        try nft.flush(caches: cacheNames, table: config.table)
    }

    /// Puts the table back when someone removed it (`nft flush ruleset`, a reload of
    /// the nftables service with a configuration that starts with one): while it is
    /// gone nothing queues the flows' traffic to encd, so it would leave in cleartext.
    /// Returns true when it had to.
    @discardableResult
    public func ensureInstalled(_ spd: SPD) throws -> Bool {
        guard backend != nil, try !nft.tableExists(named: config.table) else { return false }
        backend = try install(spd, config)
        log.error("nftables: table inet \(config.table) was removed by someone else (nft flush ruleset?): installed again")
        return true
    }

    /// Installs the table for `rc` with its sets already filled for `spd`, in one
    /// transaction. If nftables refuses the exact pairs, [X] queues all traffic
    /// instead and no use traffic fails open.
    private func install(_ spd: SPD, _ rc: EncdRulesetConfig) throws -> NftQueueBackend {
        let table = EncdRuleset.table(rc)
        let contents = EncDaemon.setContents(spd, rc)
        do {
            return try nft.install(table, contents: contents)
        } catch {
            log.warning("nftables refused the table with its set contents (\(error)); [X] queues all traffic instead")
            return try nft.install(table, contents: EncDaemon.widened(contents))
        }
    }
}
