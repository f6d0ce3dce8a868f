// KeyDaemonState: what key daemons (encd-iked) installed through the control socket —
// their SAs and flows, the SPIs reserved with `getspi`, and the keys of their removed
// SAs — kept apart from the configuration's own flows and SAs, so that SIGHUP and
// `reload` replace the file's state and never a negotiated SA. Pure book-keeping: the
// ControlPlane applies the lists it returns, under its lock, in one policy change.

import Crypto
import EncCore
import IPsec

struct KeyDaemonState {
    /// How long a `getspi` reservation holds (iked's SADB_GETSPI larval SA).
    static let spiReservation: UInt64 = 60
    static let firstSPI: UInt32 = 0x100

    private(set) var flows: [FlowSpec] = []
    private(set) var sas: [SASpec] = []
    /// SPIs handed out by `getspi` and not yet used by `add`, with when they lapse.
    private(set) var reservedSPIs: [SAKey: UInt64] = [:]
    /// Digests of the keys of SAs a key daemon removed: their sequence spaces were
    /// dropped from the store, so the same keys must not come back while encd runs.
    private var retiredKeys: Set<[UInt8]> = []
    private let salt: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }

    mutating func replace(flows: [FlowSpec], sas: [SASpec]) {
        self.flows = flows
        self.sas = sas
    }

    // MARK: getspi

    /// A random SPI at or above 0x100 that no SA and no reservation uses for
    /// (destination, proto), reserved until `now` + 60 s.
    mutating func reserveSPI(proto: IPsecProtocol, destination: IPAddress, inUse: (SAKey) -> Bool, now: UInt64,
                             random: () -> UInt32 = { UInt32.random(in: KeyDaemonState.firstSPI...UInt32.max) }) throws -> UInt32 {
        reservedSPIs = reservedSPIs.filter { $0.value > now }
        for _ in 0..<64 {
            let spi = random()
            guard spi >= Self.firstSPI else { continue }
            let key = SAKey(destination: destination, spi: spi, proto: proto)
            guard !inUse(key), reservedSPIs[key] == nil else { continue }
            reservedSPIs[key] = now &+ Self.spiReservation
            return spi
        }
        throw ControlFailure("getspi: no free SPI found for \(proto) to \(destination) in 64 tries")
    }

    // MARK: add

    /// The owned lists with `owner`'s new SAs and flows added. Refused, naming the first
    /// conflict: an SA key that any SA (the configuration's or a key daemon's) has, keys
    /// of a removed SA, or a flow whose selector and direction belong to another owner
    /// or to the configuration. A flow `owner` already has with that selector and
    /// direction is replaced (its type or child changes).
    func adding(sas new: [SASpec], flows newFlows: [FlowSpec], owner: String,
                config: (flows: [FlowSpec], sas: [SASpec])) throws -> (flows: [FlowSpec], sas: [SASpec]) {
        var taken: [SAKey: String] = [:]
        for s in config.sas { taken[s.key] = "the configuration" }
        for s in sas { taken[s.key] = s.owner ?? "?" }
        var out = sas
        for (i, s) in new.enumerated() {
            if let who = taken[s.key] {
                throw ControlFailure("sas[\(i)]: SA \(s.key) exists (\(who)'s); add never replaces an SA: remove it first")
            }
            if retiredKeys.contains(digest(s)) {
                throw ControlFailure("sas[\(i)]: SA \(s.key) has the keys of a removed SA; its sequence numbers would start again: derive new keys")
            }
            taken[s.key] = owner
            out.append(s)
        }
        var flows = self.flows
        let configSelectors = Set(config.flows.map(FlowSelectorKey.init))
        for (i, f) in newFlows.enumerated() {
            let k = FlowSelectorKey(f)
            if configSelectors.contains(k) {
                throw ControlFailure("flows[\(i)]: the configuration has a flow with this selector and direction")
            }
            if let j = flows.firstIndex(where: { FlowSelectorKey($0) == k }) {
                guard flows[j].owner == owner else {
                    throw ControlFailure("flows[\(i)]: \(flows[j].owner ?? "?") has a flow with this selector and direction")
                }
                flows[j] = f
            } else {
                flows.append(f)
            }
        }
        return (flows, out)
    }

    /// Marks the SPIs `sas` use as no longer reserved (they are SAs now).
    mutating func consumeReservations(_ sas: [SASpec]) {
        for s in sas { reservedSPIs[s.key] = nil }
    }

    // MARK: remove

    /// The owned lists without the SAs of `keys`, the flows of `selectors` and every
    /// flow of `child`; all must be `owner`'s. An SA or flow that is not there is an
    /// error too: the key daemon's view and encd's differ, and it should know.
    func removing(keys: [SAKey], selectors: [FlowSelectorKey], child: UInt32?, owner: String) throws
        -> (flows: [FlowSpec], sas: [SASpec]) {
        var sas = self.sas
        for (i, k) in keys.enumerated() {
            guard let j = sas.firstIndex(where: { $0.key == k }) else { throw ControlFailure("sas[\(i)]: no SA \(k) of \(owner)'s") }
            guard sas[j].owner == owner else { throw ControlFailure("sas[\(i)]: SA \(k) is \(sas[j].owner ?? "?")'s") }
            sas.remove(at: j)
        }
        var flows = self.flows
        for (i, k) in selectors.enumerated() {
            guard let j = flows.firstIndex(where: { FlowSelectorKey($0) == k }) else {
                throw ControlFailure("flows[\(i)]: no such flow of \(owner)'s")
            }
            guard flows[j].owner == owner else { throw ControlFailure("flows[\(i)]: the flow is \(flows[j].owner ?? "?")'s") }
            flows.remove(at: j)
        }
        if let child {
            flows.removeAll { $0.child == child && $0.owner == owner }
        }
        return (flows, sas)
    }

    /// Remembers the keys of owned SAs that left the SAD, whatever removed them.
    mutating func retire(_ gone: [SASpec]) {
        for s in gone where s.owner != nil { retiredKeys.insert(digest(s)) }
    }

    private func digest(_ s: SASpec) -> [UInt8] {
        KeyFingerprint.digest(of: [s.encryptionKey, s.integrityKey], salt: salt)
    }
}
