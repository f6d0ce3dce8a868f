// ControlPlane: the running policy (flows, SAs, tunables) and the only place it
// changes — start, SIGHUP, encctl load/delete/flush/tunable, a key daemon's
// getspi/add/remove, and hard lifetimes. The configuration's flows and SAs and the key
// daemons' (KeyDaemonState) are kept apart and built into one snapshot.
//
// A change builds a complete new snapshot first (SA objects that did not change are
// carried over with their sequence numbers, replay windows and counters), asks the
// kernel to follow it (the nft sets, or the whole table in one transaction when a
// tunable the rules depend on changes), and only then swaps it in and retires what it replaced. Any error
// before the swap leaves the running state exactly as it was. Changes are serialized
// by one lock; readers (show, counters, the packet path) take the snapshot without it.

import Config
import Control
import EncCore
import Foundation
import IPsec

/// Kernel side effects of a policy change (EncDaemon on the real kernel; tests pass a
/// fake or nothing).
public protocol PolicyKernel: AnyObject {
    /// Makes the kernel match `snapshot` before it is swapped in; throwing leaves
    /// everything as it was. `tunables` carry what the ruleset depends on (the NAT-T
    /// port, ipsec.use_fail_open, ipsec.icmp_accept_clear): when that differs from what
    /// is installed, the table is re-installed, sets included, in one transaction.
    func prepare(_ snapshot: PolicySnapshot, tunables: Tunables) throws
    /// After the swap, and every `refreshInterval` seconds of `tick` (enc0's MTU follows
    /// the SAs and the paths to their peers); the implementation logs its own errors.
    func applied(_ snapshot: PolicySnapshot)
    /// Right after the swap, before anything else: what the kernel cached from the old
    /// policy goes (the connection caches of [X]'s answers).
    func swapped(_ snapshot: PolicySnapshot)
    /// Every second of `tick`: puts back what someone else removed (the table); logs
    /// its own errors.
    func verify(_ snapshot: PolicySnapshot)
}

extension PolicyKernel {
    public func verify(_ snapshot: PolicySnapshot) {}
    public func swapped(_ snapshot: PolicySnapshot) {}
}

/// A refused control request: one line, and the configuration errors behind it.
public struct ControlFailure: Error, CustomStringConvertible {
    public let message: String
    public let errors: [String]
    public init(_ message: String, errors: [String] = []) {
        self.message = message
        self.errors = errors
    }
    public var description: String { ([message] + errors).joined(separator: "\n") }
}

public final class ControlPlane: @unchecked Sendable {
    public let log: Log
    public let clock: CoarseClock
    public let box: SnapshotBox
    public let bus: EventBus
    public let switches = RuntimeSwitches()
    /// The packet path's event sink (rate-limited log lines and monitor events).
    public let events: RateLimitedEvents
    public weak var kernel: PolicyKernel?
    /// This host's addresses (an SA to one of them is inbound).
    public var localAddresses: () -> Set<IPAddress>
    /// The workers' counter blocks, summed by `counters`.
    public var counterBlocks: () -> [CounterBlock<Counter>] = { [] }
    /// encd's queues, for `status`.
    public var queueStatus: () -> [QueueStatus] = { [] }
    /// What the kernel's reverse-path filter dropped in encd's namespace (IPReversePathFilter).
    public var reversePathDrops: () -> UInt64 = { 0 }
    /// Facts for `status` that only the daemon knows (interface, backend, socket).
    public var facts: () -> [String: String] = { [:] }
    /// The file SIGHUP and `reload` read, and its -D macros.
    public let configFile: String
    public let defines: [String: String]
    /// When the plane was made (clock seconds).
    public let startedAt: UInt64
    /// Random per start (`status`): a key daemon that sees it change knows encd
    /// restarted and that its SAs are gone (a pid can be reused).
    public let instance: String = (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()

    private let builder: PolicyBuilder
    private let store: SequenceStore
    private let lock = NSLock()
    private var running = Configuration()
    /// Lifetime crossings the tick finds (written under `lock` only: one writer).
    private let controlStats = CounterBlock<Counter>()
    /// The host's addresses the running snapshot classified its SAs by.
    private var builtFor: Set<IPAddress> = []
    /// Per SA, the lifetime bits already reported (soft 1, hard 2), for the object seen.
    private var lifetimeSeen: [SAKey: (ObjectIdentifier, UInt8)] = [:]
    /// What key daemons installed (`add`), apart from the configuration's `running`.
    private var keyDaemons = KeyDaemonState()
    /// Per SA object, its packet count at the last tick and when that count last
    /// changed: `show` reports `idle` from it (a key daemon's liveness and
    /// ipsec_sa_last_used).
    private var activity: [ObjectIdentifier: (packets: UInt64, at: UInt64)] = [:]

    public init(log: Log, clock: CoarseClock, store: SequenceStore,
                reserver: SequenceReserver = SynchronousReserver.shared, maxPolicy: UInt32,
                configFile: String, defines: [String: String] = [:],
                localAddresses: @escaping () -> Set<IPAddress>, eventQueueLimit: Int = 256) {
        self.log = log
        self.clock = clock
        self.box = SnapshotBox()
        self.bus = EventBus(queueLimit: eventQueueLimit)
        self.events = RateLimitedEvents(log: log, clock: clock, interval: UInt64(Tunables().policyLogInterval), bus: bus)
        self.builder = PolicyBuilder(store: store, reserver: reserver, maxPolicy: maxPolicy)
        self.store = store
        self.configFile = configFile
        self.defines = defines
        self.localAddresses = localAddresses
        self.startedAt = clock.now
    }

    /// The running flows, SAs and tunables.
    public var configuration: Configuration { lock.withLock { running } }
    public var tunables: Tunables { lock.withLock { running.tunables } }

    // MARK: Changes

    /// Builds, installs and swaps in a snapshot for exactly this policy; on error
    /// nothing changes. Call with `lock` held. Returns (SAs added, SAs removed).
    /// `flows` and `sas` are the configuration's; `owned` what key daemons installed
    /// (nil: as it is). The two may not share an SA key or a flow selector: the file
    /// never replaces a negotiated SA, nor a key daemon a configured one.
    @discardableResult
    private func change(flows: [FlowSpec], sas: [SASpec], owned: (flows: [FlowSpec], sas: [SASpec])? = nil,
                        tunables: Tunables, why: String, reason: String,
                        check: ((PolicySnapshot) throws -> Void)? = nil) throws -> (Int, Int) {
        let previous = box.value
        let snap: PolicySnapshot
        let addresses = localAddresses()
        let owned = owned ?? (keyDaemons.flows, keyDaemons.sas)
        do {
            try Self.checkNoOverlap(config: (flows, sas), owned: owned)
            snap = try builder.prepare(flows: flows + owned.flows, sas: sas + owned.sas, localAddresses: addresses,
                                       previous: previous, now: clock.now)
            try check?(snap)
            try kernel?.prepare(snap, tunables: tunables)
        } catch let f as ControlFailure {
            throw ControlFailure("\(why): \(f.message); nothing changed", errors: f.errors)
        } catch {
            throw ControlFailure("\(why): \(error); nothing changed")
        }
        builder.commit(snap, replacing: previous)
        box.replace(snap)
        kernel?.swapped(snap)
        builtFor = addresses
        running = Configuration(flows: flows, sas: sas, tunables: tunables)
        keyDaemons.replace(flows: owned.flows, sas: owned.sas)
        retireRemovedOwnedSAs(from: previous, to: snap)
        switches.apply(tunables)
        events.setInterval(UInt64(max(0, tunables.policyLogInterval)))
        kernel?.applied(snap)
        return publishChanges(from: previous, to: snap, defaultReplay: tunables.replayWindow, reason: reason)
    }

    /// A key daemon's SAs that left the SAD give their sequence spaces back to the
    /// store (hourly rekeys must not grow the state file), and their keys are refused
    /// from then on. The configuration's SAs keep theirs: the same manual keys loaded
    /// again continue above every number they used.
    private func retireRemovedOwnedSAs(from old: PolicySnapshot, to new: PolicySnapshot) {
        let gone = old.sad.all.filter { $0.spec.owner != nil && new.sad.byKey[$0.key] == nil }
        for sa in gone { sa.reservation?.retire() }
        keyDaemons.retire(gone.map(\.spec))
    }

    static func checkNoOverlap(config: (flows: [FlowSpec], sas: [SASpec]), owned: (flows: [FlowSpec], sas: [SASpec])) throws {
        let ownedSAs = Dictionary(owned.sas.map { ($0.key, $0.owner ?? "?") }, uniquingKeysWith: { a, _ in a })
        for s in config.sas {
            if let who = ownedSAs[s.key] { throw ControlFailure("SA \(s.key) is \(who)'s; the configuration cannot replace it") }
        }
        let ownedFlows = Dictionary(owned.flows.map { (FlowSelectorKey($0), $0.owner ?? "?") }, uniquingKeysWith: { a, _ in a })
        for f in config.flows {
            if let who = ownedFlows[FlowSelectorKey(f)] {
                throw ControlFailure("flow \(f.direction) from \(f.source) to \(f.destination) is \(who)'s; the configuration cannot replace it")
            }
        }
    }

    /// sa-deleted for every SA object that went (or was replaced), sa-added for every new one.
    /// `reason` goes with every sa-deleted event ("replaced" where a new object took
    /// the key).
    private func publishChanges(from old: PolicySnapshot, to new: PolicySnapshot, defaultReplay: Int,
                                reason: String) -> (Int, Int) {
        var added = 0, removed = 0
        for sa in old.sad.all where new.sad.byKey[sa.key] !== sa {
            removed += 1
            bus.publish("sa-deleted", "SA deleted: " + Printer.sa(sa.spec, defaultReplayWindow: defaultReplay)) {
                $0.sa = ControlStatus.eventSA(sa)
                $0.reason = new.sad.byKey[sa.key] == nil ? reason : "replaced"
            }
        }
        for sa in new.sad.all where old.sad.byKey[sa.key] !== sa {
            added += 1
            bus.publish("sa-added", "SA added: " + Printer.sa(sa.spec, defaultReplayWindow: defaultReplay)) {
                $0.sa = ControlStatus.eventSA(sa)
            }
        }
        return (added, removed)
    }

    /// Start-up: the configuration file's policy and tunables.
    public func start(_ c: Configuration) throws {
        _ = try lock.withLock {
            try change(flows: c.flows, sas: c.sas, tunables: c.tunables, why: configFile, reason: "reload")
        }
    }

    /// SIGHUP and `encctl` reload: re-reads the file; a broken file leaves everything as
    /// it was, and is logged and published either way.
    @discardableResult
    public func reload() -> Result<String, ControlFailure> {
        let c: Configuration
        do {
            c = try ConfigParser.load(path: configFile, defines: defines)
        } catch let e as ConfigErrors {
            return reloadFailed(ControlFailure("\(configFile): \(e.errors.count) error\(e.errors.count == 1 ? "" : "s")",
                                               errors: e.errors.map(\.description)))
        } catch {
            return reloadFailed(ControlFailure("\(configFile): \(error)"))
        }
        for w in c.warnings { log.warning("\(w)") }
        do {
            let (added, removed) = try lock.withLock {
                try change(flows: c.flows, sas: c.sas, tunables: c.tunables, why: configFile, reason: "reload")
            }
            let text = "reloaded \(configFile): \(c.flows.count) flows, \(c.sas.count) SAs (\(added) SAs added, \(removed) deleted)"
            log.info(text)
            bus.publish("reload", text)
            return .success(text)
        } catch let f as ControlFailure {
            return reloadFailed(f)
        } catch {
            return reloadFailed(ControlFailure("\(error)"))
        }
    }

    private func reloadFailed(_ f: ControlFailure) -> Result<String, ControlFailure> {
        for e in f.errors { log.error(e) }
        log.error("reload refused, running configuration unchanged: \(f.message)")
        bus.publish("reload-failed", "reload refused, running configuration unchanged: "
                    + ([f.message] + f.errors).joined(separator: "; "))
        return .failure(f)
    }

    /// Parses text a client sent. Includes and key files were resolved by the client;
    /// encd reads no file a request names.
    private func parse(_ text: String, name: String, tunables: Tunables) throws -> Configuration {
        do {
            let c = try ConfigParser.parse(text: text, fileName: name, baseDirectory: "/", readFile: { path in
                throw FileReadError(path: path, message: "encd reads no file named in a request; the client resolves includes and key files")
            }, tunables: tunables)
            for w in c.warnings { log.warning("\(w)") }
            return c
        } catch let e as ConfigErrors {
            throw ControlFailure("\(name): \(e.errors.count) error\(e.errors.count == 1 ? "" : "s"); nothing changed",
                                 errors: e.errors.map(\.description))
        }
    }

    /// encctl -f: adds the text's flows and SAs to the running ones. A flow equal to a
    /// running one is kept; an SA with the key of a running one replaces it unless it
    /// is the same SA (then the running object, counters and all, stays). The text's
    /// `set` lines only give defaults to its own SAs. Returns a summary line.
    public func load(text: String, name: String) throws -> String {
        try lock.withLock {
            let c = try parse(text, name: name, tunables: running.tunables)
            var flows = running.flows
            var newFlows = 0
            for f in c.flows where !flows.contains(f) {
                flows.append(f)
                newFlows += 1
            }
            var sas = running.sas
            for s in c.sas {
                if let i = sas.firstIndex(where: { $0.key == s.key }) { sas[i] = s } else { sas.append(s) }
            }
            let (added, removed) = try change(flows: flows, sas: sas, tunables: running.tunables, why: name, reason: "load")
            let text = "loaded \(name): \(newFlows) flows added, \(added) SAs added, \(removed) replaced"
            log.info(text)
            return text
        }
    }

    /// encctl -d: removes the flows (matched by selector and direction, whatever their
    /// type) and SAs (matched by destination, SPI and protocol) the text names.
    public func delete(text: String, name: String) throws -> String {
        try lock.withLock {
            let c = try parse(text, name: name, tunables: running.tunables)
            let gone = Set(c.flows.map(FlowSelectorKey.init))
            let flows = running.flows.filter { !gone.contains(FlowSelectorKey($0)) }
            let keys = Set(c.sas.map(\.key))
            let sas = running.sas.filter { !keys.contains($0.key) }
            let flowsRemoved = running.flows.count - flows.count
            let (_, removed) = try change(flows: flows, sas: sas, tunables: running.tunables, why: name, reason: "delete")
            let text = "deleted from \(name): \(flowsRemoved) flows, \(removed) SAs"
            log.info(text)
            return text
        }
    }

    /// encctl -F: removes all flows ("flow"), all SAs ("sa") or both ("all"), the key
    /// daemons' as well as the configuration's (as ipsecctl -F empties the kernel's),
    /// and says so in a `flush` event.
    public func flush(_ what: String) throws -> String {
        let w = try Self.what(what)
        return try lock.withLock {
            let flows = w == "sa" ? running.flows : []
            let sas = w == "flow" ? running.sas : []
            let owned = (flows: w == "sa" ? keyDaemons.flows : [], sas: w == "flow" ? keyDaemons.sas : [])
            let before = running.flows.count + keyDaemons.flows.count
            let (_, removed) = try change(flows: flows, sas: sas, owned: owned, tunables: running.tunables, why: "flush", reason: "flush")
            let text = "flushed: \(before - flows.count - owned.flows.count) flows, \(removed) SAs"
            log.info(text)
            bus.publish("flush", text)
            return text
        }
    }

    // MARK: Key daemons

    /// `getspi`: a random unused SPI (0x100 and up) for SAs of `proto` to `destination`,
    /// reserved for 60 seconds.
    public func getSPI(proto: IPsecProtocol, destination: IPAddress) throws -> UInt32 {
        try lock.withLock {
            let sad = box.value.sad
            return try keyDaemons.reserveSPI(proto: proto, destination: destination,
                                             inUse: { sad.byKey[$0] != nil }, now: clock.now)
        }
    }

    /// `add`: `owner`'s SAs and flows, all or nothing, replacing no SA. With
    /// `continueOnly`, only if the sequence store recorded every SA's keys in the
    /// direction the SA takes here: its numbers then provably continue above what an
    /// earlier encd used (after an encd restart, a key daemon re-adds what it holds).
    /// Keys the store never saw are refused: a lost state file must not let them start
    /// again at 1 (AES-GCM would repeat nonces).
    public func add(owner: String, sas: [SASpec], flows: [FlowSpec], continueOnly: Bool = false) throws -> String {
        try lock.withLock {
            let owned = try keyDaemons.adding(sas: sas, flows: flows, owner: owner, config: (running.flows, running.sas))
            let check: ((PolicySnapshot) throws -> Void)? = !continueOnly ? nil : { [store] snap in
                for (i, spec) in sas.enumerated() {
                    let direction = snap.sad.byKey[spec.key]?.direction
                    let space: SequenceSpace = direction == .outbound ? .outbound : .inbound
                    guard direction != nil, store.recorded(spec, space) != nil else {
                        throw ControlFailure("sas[\(i)]: SA \(spec.key): the sequence state has no record of these keys (continueOnly): their numbers cannot be shown to continue; negotiate new keys")
                    }
                }
            }
            let (added, _) = try change(flows: running.flows, sas: running.sas, owned: owned,
                                        tunables: running.tunables, why: "add", reason: "add", check: check)
            keyDaemons.consumeReservations(sas)
            let text = "added for \(owner): \(added) SAs, \(flows.count) flows"
            log.info(text)
            return text
        }
    }

    /// `remove`: `owner`'s SAs by key, flows by selector, and every flow of `child`.
    func remove(owner: String, sas: [SAKey], flows: [FlowSelectorKey], child: UInt32?) throws -> String {
        try lock.withLock {
            let owned = try keyDaemons.removing(keys: sas, selectors: flows, child: child, owner: owner)
            let flowsRemoved = keyDaemons.flows.count - owned.flows.count
            let (_, removed) = try change(flows: running.flows, sas: running.sas, owned: owned,
                                          tunables: running.tunables, why: "remove", reason: "remove")
            let text = "removed for \(owner): \(removed) SAs, \(flowsRemoved) flows"
            log.info(text)
            return text
        }
    }

    /// `update`: `owner`'s UDP-encapsulated SAs follow the peer to a new address
    /// and/or port (iked's pfkey_sa_update_addresses after a NAT rebound), the SA
    /// objects kept with their sequence numbers, replay windows and counters. An
    /// outbound SA sends to the new endpoint at once (the same endpoint its inbound
    /// partner's authenticated packets would teach it, RFC 3948 §3.5); an inbound SA
    /// is found by destination and SPI whatever the peer's address, so naming one
    /// checks it and changes nothing. IPv4 addresses only (IPv6 peers: the port).
    func update(owner: String, sas keys: [SAKey], peer: IPAddress?, peerPort: UInt16?) throws -> String {
        try lock.withLock {
            let sad = box.value.sad
            var outbound: [SecurityAssociation] = []
            for (i, k) in keys.enumerated() {
                guard let sa = sad.byKey[k], sa.spec.owner != nil else { throw ControlFailure("sas[\(i)]: no SA \(k) of \(owner)'s") }
                guard sa.spec.owner == owner else { throw ControlFailure("sas[\(i)]: SA \(k) is \(sa.spec.owner ?? "?")'s") }
                guard sa.spec.encapsulation != nil else {
                    throw ControlFailure("sas[\(i)]: SA \(k) is not UDP-encapsulated: only a NAT-T SA's peer can move")
                }
                guard sa.direction == .outbound else { continue }
                if let peer {
                    guard peer.family == sa.spec.destination.family else {
                        throw ControlFailure("update.peer: \(peer) is not of SA \(k)'s address family")
                    }
                    guard peer.family == .inet || peer == sa.spec.destination else {
                        throw ControlFailure("update.peer: an IPv6 peer's address cannot move (its port can)")
                    }
                }
                outbound.append(sa)
            }
            for sa in outbound {
                let (learned, learnedPort) = sa.natEndpoint()
                let port = peerPort ?? learnedPort ?? sa.spec.encapsulation?.peerPort ?? sa.spec.encapsulation?.port ?? 4500
                sa.learnNATEndpoint(address: peer ?? learned ?? sa.spec.destination, port: port)
            }
            let text = "updated for \(owner): \(outbound.count) outbound SAs now send to "
                + "\(peer.map { "\($0)" } ?? "the same address") port \(peerPort.map { "\($0)" } ?? "unchanged")"
            log.info(text)
            return text
        }
    }

    /// When each running SA object that carried packets last did, as the tick saw it.
    func lastActiveTimes() -> [ObjectIdentifier: UInt64] {
        lock.withLock { activity.compactMapValues { $0.packets > 0 ? $0.at : nil } }
    }

    /// "flow", "sa" or "all" from any non-empty prefix (nil: all).
    static func what(_ s: String?) throws -> String {
        guard let s, !s.isEmpty else { return "all" }
        for w in ["flow", "sa", "all"] where w.hasPrefix(s.lowercased()) { return w }
        throw ControlFailure("invalid \"what\" \"\(s)\": expected flow, sa or all")
    }

    /// Sets a tunable at run time. The switches, the log interval and the default
    /// replay window (for SAs added later) take effect at once; a new NAT-T port,
    /// ipsec.use_fail_open or ipsec.icmp_accept_clear re-installs the nft table, sets
    /// included, in one transaction.
    public func setTunable(_ name: String, _ value: String) throws -> String {
        try lock.withLock {
            var t = running.tunables
            do {
                try t.set(name, to: value)
            } catch {
                throw ControlFailure("\(error)")
            }
            let old = running.tunables.value(name) ?? 0
            try change(flows: running.flows, sas: running.sas, tunables: t, why: "set \(name)", reason: "tunable")
            let text = "\(name) set to \(t.value(name) ?? 0) (was \(old))"
            log.info(text)
            return text
        }
    }

    // MARK: Time

    /// Once a second: advances the clock, reports soft and hard lifetime crossings
    /// (found here by time, or by the packet path on use), and removes SAs past their
    /// hard lifetime from the SAD; their flows then fall back per their type.
    /// How often `tick` lets the kernel side follow what changes without a policy
    /// change (a path MTU to a peer).
    public static let refreshInterval: UInt64 = 10
    private var nextRefresh: UInt64 = 0

    public func tick(now: UInt64 = CoarseClock.monotonicSeconds()) {
        clock.set(max(now, clock.now))
        lock.withLock {
            let snap = box.value
            let defaultReplay = running.tunables.replayWindow
            var hard: Set<SAKey> = []
            var seen: [SAKey: (ObjectIdentifier, UInt8)] = [:]
            for sa in snap.sad.all {
                switch sa.checkLifetime(now: clock.now) {
                case .soft: controlStats.add(.saSoftExpired)
                case .hard: controlStats.add(.saHardExpired)
                case .none: break
                }
                let id = ObjectIdentifier(sa)
                let before = lifetimeSeen[sa.key].flatMap { $0.0 == id ? $0.1 : nil } ?? 0
                let now: UInt8 = (sa.softExpired ? 1 : 0) | (sa.hardExpired ? 2 : 0)
                seen[sa.key] = (id, now)
                let line = Printer.sa(sa.spec, defaultReplayWindow: defaultReplay)
                if now & 2 != 0 {
                    hard.insert(sa.key)
                    if before & 2 == 0 {
                        log.warning("SA \(sa.key) reached its hard lifetime: removed")
                        bus.publish("sa-hard-expired", "SA hard lifetime expired, removed: " + line) { $0.sa = ControlStatus.eventSA(sa) }
                    }
                } else if now & 1 != 0 && before & 1 == 0 {
                    log.info("SA \(sa.key) reached its soft lifetime")
                    bus.publish("sa-soft-expired", "SA soft lifetime expired: " + line) { $0.sa = ControlStatus.eventSA(sa) }
                }
            }
            lifetimeSeen = seen
            var seenActive: [ObjectIdentifier: (packets: UInt64, at: UInt64)] = [:]
            for sa in snap.sad.all {
                let id = ObjectIdentifier(sa), packets = sa.counters[.packets]
                let last = activity[id]
                seenActive[id] = (packets, last.map { $0.packets == packets ? $0.at : clock.now } ?? clock.now)
            }
            activity = seenActive
            kernel?.verify(snap)
            reclassifyIfAddressesChanged(snap)
            if clock.now >= nextRefresh {
                nextRefresh = clock.now + Self.refreshInterval
                kernel?.applied(snap)
            }
            guard !hard.isEmpty else { return }
            do {
                try change(flows: running.flows, sas: running.sas.filter { !hard.contains($0.key) },
                           owned: (keyDaemons.flows, keyDaemons.sas.filter { !hard.contains($0.key) }),
                           tunables: running.tunables, why: "hard lifetime", reason: "hard-lifetime")
            } catch {
                log.error("could not remove SAs past their hard lifetime (they stay unusable): \(error)")
            }
        }
    }

    /// An SA is inbound when its destination is one of this host's addresses. encd may
    /// start before the interfaces have them (or an address may move): when the
    /// addresses change so that some SA would now be classified the other way, the
    /// policy is rebuilt (those SAs as new objects, in their new direction). Call with
    /// `lock` held.
    private func reclassifyIfAddressesChanged(_ snap: PolicySnapshot) {
        let now = localAddresses()
        guard now != builtFor else { return }
        let flipped = snap.sad.all.filter { ($0.direction == .inbound) != now.contains($0.spec.destination) }
        guard !flipped.isEmpty else {
            builtFor = now
            return
        }
        do {
            try change(flows: running.flows, sas: running.sas, tunables: running.tunables, why: "local addresses changed",
                       reason: "addresses")
            log.info("local addresses changed: \(flipped.count) SA\(flipped.count == 1 ? "" : "s") now \(flipped.map { "\($0.key) \($0.direction == .inbound ? "outbound" : "inbound")" }.joined(separator: ", "))")
        } catch {
            log.error("local addresses changed, but the policy could not follow: \(error)")
        }
    }

    // MARK: Reading

    /// Every counter by name: the workers' blocks, the tick's lifetime crossings and
    /// the monitor drops.
    public func counters() -> [String: UInt64] {
        var snap = CounterSnapshot(summing: counterBlocks() + [controlStats])
        var extra = [UInt64](repeating: 0, count: Counter.allCases.count)
        extra[Counter.monitorEventsDropped.rawValue] = bus.dropped
        // The kernel counts what never reached encd: packets its queues dropped when full
        // (queue_dropped) or when encd's socket buffer was (user_dropped).
        extra[Counter.queueOverflow.rawValue] = queueStatus().reduce(0) { $0 &+ $1.queueDropped &+ $1.userDropped }
        extra[Counter.rpFilterDropped.rawValue] = reversePathDrops()
        snap.merge(extra)
        var out: [String: UInt64] = [:]
        for c in Counter.allCases { out[c.name] = snap[c] }
        return out
    }
}

/// What identifies a flow for `encctl -d`: its selector and direction (not its type or peer).
struct FlowSelectorKey: Hashable {
    let proto: IPsecProtocol
    let direction: FlowDirection
    let upper: UInt8?
    let source: IPPrefix
    let sourcePort: UInt16?
    let destination: IPPrefix
    let destinationPort: UInt16?
    init(_ f: FlowSpec) {
        proto = f.proto
        direction = f.direction
        upper = f.upperProtocol
        source = f.source
        sourcePort = f.sourcePort
        destination = f.destination
        destinationPort = f.destinationPort
    }
}
