// The EncdBackend that talks to encd over its control socket (iked's pfkey.c): getspi,
// add and remove as owner "encd-iked". A CHILD SA is two SAs (inbound: peer -> us,
// outbound: us -> peer) and a pair of flows per selector pair, bound to the CHILD so
// encd takes the newest pair of the binding. Each policy also has unbound `require`
// flows, installed at start: its traffic is dropped (and acquires an SA) until a CHILD
// SA exists, and again after it is deleted: never cleartext.

import Control
import Crypto
import EncCore
import IKE

public final class EncdControlBackend: EncdBackend {
    public static let owner = "encd-iked"
    let socketPath: String
    let log: (String) -> Void

    public init(socketPath: String, log: @escaping (String) -> Void) {
        self.socketPath = socketPath
        self.log = log
    }

    func call(_ request: Request) throws(IKEBackendError) -> Response {
        let response: Response
        do {
            response = try ControlClient(path: socketPath).call(request)
        } catch {
            throw IKEBackendError("\(error)")
        }
        guard response.ok else { throw IKEBackendError(response.error ?? "encd refused \(request.command.rawValue)") }
        return response
    }

    public func allocateSPI(local: IPAddress, peer: IPAddress) throws(IKEBackendError) -> UInt32 {
        let r = try call(Request(.getspi, proto: "esp", destination: local.description, source: peer.description))
        guard let spi = r.spi else { throw IKEBackendError("getspi answered without an SPI") }
        return spi
    }

    public func install(_ c: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        try add(c, parts: parts, continueOnly: false)
    }

    /// `add` with continueOnly: encd refuses (adding nothing) unless its state file
    /// recorded both SAs' keys.
    public func reinstall(_ c: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        try add(c, parts: parts, continueOnly: true)
    }

    private func add(_ c: IKEChildSA, parts: IKEChildParts, continueOnly: Bool) throws(IKEBackendError) {
        let sas = Self.entries(c).enumerated().filter { i, _ in parts.contains(i == 0 ? .inbound : .outbound) }.map(\.1)
        let flows = parts.contains(.flows) ? Self.flows(c, child: c.child) : []
        guard !sas.isEmpty || !flows.isEmpty else { return }
        _ = try call(Request(.add, owner: Self.owner, sas: sas.isEmpty ? nil : sas, flows: flows.isEmpty ? nil : flows,
                             continueOnly: continueOnly ? true : nil))
    }

    /// The CHILD's flows (with `.flows`) become the policy's unbound `require` flows
    /// again (or go, when narrower than the policy's) before its SAs leave: no moment
    /// without a flow.
    public func remove(_ c: IKEChildSA, parts: IKEChildParts) throws(IKEBackendError) {
        if parts.contains(.flows) {
            let bound = Self.flows(c, child: c.child)
            let base = Set(policyFlows(c).map(FlowKey.init))
            let keep = bound.filter { base.contains(FlowKey($0)) }.map { f -> FlowEntry in
                var u = f
                u.child = nil
                return u
            }
            let drop = bound.filter { !base.contains(FlowKey($0)) }
            if !keep.isEmpty { _ = try call(Request(.add, owner: Self.owner, flows: keep)) }
            if !drop.isEmpty { _ = try? call(Request(.remove, owner: Self.owner, flows: drop)) }
        }
        // One at a time: encd may have deleted one already (hard lifetime).
        var failure: IKEBackendError?
        for (i, e) in Self.entries(c).enumerated() where parts.contains(i == 0 ? .inbound : .outbound) {
            do {
                _ = try call(Request(.remove, owner: Self.owner, sas: [SAEntry(proto: "esp", destination: e.destination, spi: e.spi)]))
            } catch {
                if !error.description.contains(": no SA ") { failure = error }
            }
        }
        if let failure { throw failure }
    }

    /// Set by the daemon: the unbound flows of the policy a CHILD SA belongs to.
    public var policyFlows: (IKEChildSA) -> [FlowEntry] = { _ in [] }

    /// Installs the policies' unbound `require` flows (and the bypass for IKE between
    /// hosts whose own addresses are protected), after removing everything encd-iked
    /// owned before (a previous run's SAs: their IKE SAs are gone).
    public func start(flows: [FlowEntry]) throws(IKEBackendError) {
        let shown = try call(Request(.show))
        let sas = (shown.sas ?? []).filter { $0.owner == Self.owner }
        let oldFlows = (shown.flows ?? []).filter { $0.owner == Self.owner }
        if !sas.isEmpty || !oldFlows.isEmpty {
            log("removing \(sas.count) SAs and \(oldFlows.count) flows left by a previous encd-iked")
            let keys = sas.map { SAEntry(proto: $0.proto, destination: $0.destination, spi: $0.spi) }
            let children = Set(oldFlows.compactMap(\.child))
            let unbound = oldFlows.filter { $0.child == nil }.map(Self.entry)
            _ = try call(Request(.remove, owner: Self.owner, sas: keys.isEmpty ? nil : keys, flows: unbound.isEmpty ? nil : unbound))
            for child in children.sorted() { _ = try call(Request(.remove, owner: Self.owner, child: child)) }
        }
        if !flows.isEmpty { _ = try call(Request(.add, owner: Self.owner, flows: flows)) }
    }

    /// After a reload: the policies' unbound flows become `flows` without touching the
    /// CHILD SAs: a selector that a flow already has (a CHILD SA's bound flow, or the
    /// same unbound one) stays as it is, new ones are added, and unbound flows no
    /// policy has any more are removed.
    public func sync(flows: [FlowEntry]) throws(IKEBackendError) {
        let shown = try call(Request(.show, what: "flow"))
        let mine = (shown.flows ?? []).filter { $0.owner == Self.owner }.map(Self.entry)
        let have = Set(mine.map(FlowKey.init)), want = Set(flows.map(FlowKey.init))
        let add = flows.filter { !have.contains(FlowKey($0)) }
        let drop = mine.filter { $0.child == nil && !want.contains(FlowKey($0)) }
        if !add.isEmpty { _ = try call(Request(.add, owner: Self.owner, flows: add)) }
        if !drop.isEmpty { _ = try call(Request(.remove, owner: Self.owner, flows: drop)) }
    }

    // MARK: mapping

    static func hex(_ k: SecretKey?) -> String? {
        k?.withUnsafeBytes { Hex.encode($0) }
    }

    static func entries(_ c: IKEChildSA) -> [SAEntry] {
        func sa(inbound: Bool) -> SAEntry {
            let (src, dst) = inbound ? (c.peer, c.local) : (c.local, c.peer)
            var e = SAEntry(proto: "esp", mode: c.mode.rawValue, source: src.description, destination: dst.description,
                            spi: inbound ? c.inboundSPI : c.outboundSPI, enc: c.suite.encryption,
                            encKey: hex(inbound ? c.inboundEncryptionKey : c.outboundEncryptionKey),
                            auth: c.suite.integrity, authKey: hex(inbound ? c.inboundIntegrityKey : c.outboundIntegrityKey),
                            esn: c.suite.extendedSequence, replay: 64,
                            soft: LifetimeEntry(bytes: c.softBytes, seconds: c.softSeconds),
                            hard: LifetimeEntry(bytes: c.hardBytes, seconds: c.hardSeconds), child: c.child)
            if let u = c.udpEncapsulation { e.udpencap = UDPEncapEntry(port: u.local, peerPort: u.peer) }
            return e
        }
        return [sa(inbound: true), sa(inbound: false)]
    }

    /// Out and in flows for every (local, remote) prefix pair of the selectors.
    public static func flows(local: IPAddress, peer: IPAddress, localSelectors: [IKETrafficSelector],
                             remoteSelectors: [IKETrafficSelector], type: String, child: UInt32?) -> [FlowEntry] {
        var out: [FlowEntry] = []
        for l in localSelectors {
            for r in remoteSelectors where l.type == r.type {
                let proto = l.ipProtocol != 0 ? l.ipProtocol : r.ipProtocol
                let lPort = l.startPort == l.endPort ? l.startPort : nil, rPort = r.startPort == r.endPort ? r.startPort : nil
                for lp in l.prefixes {
                    for rp in r.prefixes {
                        out.append(FlowEntry(direction: "out", upperProtocol: proto == 0 ? nil : proto, source: lp.description,
                                             sourcePort: lPort, destination: rp.description, destinationPort: rPort,
                                             local: local.description, peer: peer.description, type: type, child: child))
                        out.append(FlowEntry(direction: "in", upperProtocol: proto == 0 ? nil : proto, source: rp.description,
                                             sourcePort: rPort, destination: lp.description, destinationPort: lPort,
                                             local: local.description, peer: peer.description, type: type, child: child))
                    }
                }
            }
        }
        return out
    }

    static func flows(_ c: IKEChildSA, child: UInt32?) -> [FlowEntry] {
        flows(local: c.local, peer: c.peer, localSelectors: c.localSelectors, remoteSelectors: c.remoteSelectors,
              type: "require", child: child)
    }

    static func entry(_ f: FlowStatus) -> FlowEntry {
        FlowEntry(proto: f.proto, direction: f.direction, upperProtocol: f.upperProtocol, source: f.source,
                  sourcePort: f.sourcePort, destination: f.destination, destinationPort: f.destinationPort,
                  peer: f.peer, type: f.type, child: f.child)
    }
}

/// A flow's selector and direction (what `add` replaces by and `remove` finds by).
struct FlowKey: Hashable {
    var direction: String, proto: UInt8?, source: String, sourcePort: UInt16?, destination: String, destinationPort: UInt16?
    init(_ f: FlowEntry) {
        direction = f.direction; proto = f.upperProtocol; source = f.source; sourcePort = f.sourcePort
        destination = f.destination; destinationPort = f.destinationPort
    }
}
