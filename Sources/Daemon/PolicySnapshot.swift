// PolicySnapshot: everything the packet path reads about policy — the SPD, the SAD
// and the policy numbers that [X] writes into the mark — as one immutable value. A
// change (start, SIGHUP, encctl) builds a new snapshot and swaps it in whole, so a
// packet sees either the old policy or the new one, never a mix. SA objects that did
// not change are carried over, keeping sequence numbers, replay windows and counters.

import Config
import Crypto
import EncCore
import IPsec
import Kernel

public struct PolicySnapshot: Sendable {
    public let spd: SPD
    public var sad: SAD { spd.sad }
    /// Every SA's number: an outbound SA's rides in the protect mark from [X] to the
    /// IPsec queue; an inbound SA's rides in the source MAC of the frames encd writes
    /// into enc0, from the input queue to the inbound check.
    public let byNumber: [UInt32: SecurityAssociation]
    public let numberOf: [SAKey: UInt32]
    public let generation: UInt64

    public static let empty = PolicySnapshot(spd: SPD(), byNumber: [:], numberOf: [:], generation: 0)

    /// The outbound SA for a protect mark's policy number.
    @inline(__always) public func outbound(policy: UInt32) -> SecurityAssociation? {
        guard let sa = byNumber[policy], sa.direction == .outbound else { return nil }
        return sa
    }

    /// The inbound SA whose number an injected frame carries.
    @inline(__always) public func inbound(number: UInt32) -> SecurityAssociation? {
        guard let sa = byNumber[number], sa.direction == .inbound else { return nil }
        return sa
    }
}

/// Builds snapshots from a configuration, reusing SA objects whose specification did
/// not change and numbering outbound SAs stably across rebuilds.
public final class PolicyBuilder {
    private let store: SequenceStore
    private let reserver: SequenceReserver
    private let maxPolicy: UInt32
    private var numbers: [SAKey: UInt32] = [:]
    private var nextNumber: UInt32 = 1
    private var generation: UInt64 = 0

    public init(store: SequenceStore, reserver: SequenceReserver = SynchronousReserver.shared, maxPolicy: UInt32) {
        self.store = store
        self.reserver = reserver
        self.maxPolicy = maxPolicy
    }

    /// A snapshot for `flows` and `sas`, committed at once (see `prepare`).
    public func build(flows: [FlowSpec], sas specs: [SASpec], localAddresses: Set<IPAddress>,
                      previous: PolicySnapshot, now: UInt64) throws -> PolicySnapshot {
        let snap = try prepare(flows: flows, sas: specs, localAddresses: localAddresses, previous: previous, now: now)
        commit(snap, replacing: previous)
        return snap
    }

    /// A snapshot for `flows` and `sas`, changing nothing yet: the SAs of `previous`
    /// stay valid and the SA numbers are not recorded until `commit`, so a caller whose
    /// next step fails (the kernel refuses the sets) can drop the result. An SA whose
    /// destination is one of `localAddresses` carries traffic to this host (inbound);
    /// any other carries traffic from it (outbound). Throws when an SA cannot be set up
    /// (its key or algorithm is refused by the crypto layer), or when two SAs share the
    /// key of a cipher whose IV is the sequence number.
    public func prepare(flows: [FlowSpec], sas specs: [SASpec], localAddresses: Set<IPAddress>,
                        previous: PolicySnapshot, now: UInt64) throws -> PolicySnapshot {
        if let (later, first) = SASpec.sharedSequenceKeys(specs).first {
            throw DaemonError("SA \(specs[later].key) has the same \(specs[later].encryption?.name ?? "") key as SA \(specs[first].key): one key on two SAs would reuse nonces; give each SA its own key")
        }
        var sas: [SecurityAssociation] = []
        for spec in specs {
            let direction: FlowDirection = localAddresses.contains(spec.destination) ? .inbound : .outbound
            if let old = previous.sad.byKey[spec.key], old.direction == direction, Self.sameSA(old.spec, spec),
               !old.hardExpired {
                sas.append(old)
            } else {
                // Not active yet: its sequence space is claimed at commit, once the SA it
                // replaces can reserve no more.
                sas.append(try SecurityAssociation(spec, direction: direction, store: store, reserver: reserver, now: now))
            }
        }
        let sad = SAD(sas)
        // Stable SA numbers; freed numbers are not reused at once, so a packet
        // numbered just before a change cannot reach a different SA. Outbound SAs are
        // numbered first: with several ipsec-out workers an SA's worker is its number
        // modulo their count, and consecutive numbers spread them evenly.
        var byNumber: [UInt32: SecurityAssociation] = [:]
        var numberOf: [SAKey: UInt32] = [:]
        let live = Set(sas.map(\.key))
        let kept = numbers.filter { live.contains($0.key) }
        var used = Set(kept.values)
        let inboundLast = { (sa: SecurityAssociation) in sa.direction == .inbound ? 1 : 0 }
        for sa in sas.sorted(by: { (inboundLast($0), $0.key.spi, $0.key.destination) < (inboundLast($1), $1.key.spi, $1.key.destination) }) {
            let n: UInt32
            if let k = kept[sa.key] { n = k } else {
                n = try allocateNumber(avoiding: used)
                used.insert(n)
            }
            byNumber[n] = sa
            numberOf[sa.key] = n
        }
        generation += 1
        return PolicySnapshot(spd: SPD(flows: flows, sad: sad), byNumber: byNumber,
                              numberOf: numberOf, generation: generation)
    }

    /// Records `snap`'s SA numbers, activates its new SAs and retires the SAs of
    /// `previous` it does not keep (their keys are wiped when the last packet lets go).
    /// A new SA claims its sequence space in the store here: from then on an SA it
    /// replaces (same key, changed lifetime, say) can reserve nothing more, so the new
    /// one starts above every number the old one can still use. Reservations stay in
    /// the store, so the same SA loaded again continues above them. Call just before
    /// `snap` is swapped in.
    public func commit(_ snap: PolicySnapshot, replacing previous: PolicySnapshot) {
        numbers = snap.numberOf
        for sa in snap.sad.all where previous.sad.byKey[sa.key] !== sa {
            sa.activate()
        }
        for old in previous.sad.all where snap.sad.byKey[old.key] !== old {
            old.invalidate()
        }
    }

    private func allocateNumber(avoiding used: Set<UInt32>) throws -> UInt32 {
        for _ in 0..<maxPolicy {
            let n = nextNumber
            nextNumber = nextNumber >= maxPolicy ? 1 : nextNumber + 1
            if !used.contains(n) { return n }
        }
        throw DaemonError("more SAs than numbers in the mark's policy bits (\(maxPolicy)): widen the mark mask")
    }

    /// Whether two specifications describe the same SA (keys compared in constant time).
    static func sameSA(_ a: SASpec, _ b: SASpec) -> Bool {
        a.proto == b.proto && a.mode == b.mode && a.source == b.source && a.destination == b.destination
            && a.spi == b.spi && a.encapsulation == b.encapsulation && a.encryption == b.encryption
            && a.integrity == b.integrity && a.replayWindow == b.replayWindow
            && a.extendedSequence == b.extendedSequence && a.softLifetime == b.softLifetime
            && a.hardLifetime == b.hardLifetime && a.owner == b.owner && a.child == b.child
            && keysEqual(a.encryptionKey, b.encryptionKey) && keysEqual(a.integrityKey, b.integrityKey)
    }

    private static func keysEqual(_ a: SecretKey?, _ b: SecretKey?) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case (let x?, let y?): return x == y
        default: return false
        }
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
