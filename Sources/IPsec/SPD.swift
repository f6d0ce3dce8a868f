// SPD: the security policy database, an immutable snapshot consulted at [X] for
// output and after decryption for the inbound check. Flows are ordered most specific
// first and the first match wins, which is OpenBSD's radix-tree result for the
// (source, destination, protocol, ports) key: a longer source prefix first, then a
// longer destination prefix, then a named protocol, then ports; equal keys keep the
// configuration order. Lookup is a linear scan (a trie can replace it behind this API).

import EncCore

/// What the packet path knows of a packet when it asks the SPD.
public struct Selector: Sendable, Hashable {
    public var source: IPAddress
    public var destination: IPAddress
    public var proto: UInt8
    /// 0 when the protocol has no ports or the packet is a later fragment.
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(source: IPAddress, destination: IPAddress, proto: UInt8, sourcePort: UInt16 = 0, destinationPort: UInt16 = 0) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

extension Selector {
    /// The selector of a parsed packet (ports 0 where it has none).
    @inline(__always) public init(_ info: PacketInfo) {
        self.init(source: info.source, destination: info.destination, proto: info.protocol,
                  sourcePort: info.hasPorts ? info.sourcePort : 0,
                  destinationPort: info.hasPorts ? info.destinationPort : 0)
    }
}

/// The [X] outcome for an outbound packet.
public enum OutboundDecision: Sendable {
    /// No flow matches: not IPsec traffic.
    case notIPsec
    /// A bypass flow: cleartext on purpose.
    case bypass(flow: Int)
    /// A deny flow: drop.
    case deny(flow: Int)
    /// Protect with this SA.
    case protect(flow: Int, sa: SecurityAssociation)
    /// No SA for the flow. `sendClear`: the flow lets cleartext through (use, acquire);
    /// `acquire`: ask for an SA (acquire, require).
    case noSA(flow: Int, sendClear: Bool, acquire: Bool)
}

public struct SPD: Sendable {
    /// The flows as configured (for encctl -s flow), both directions.
    public let flows: [FlowSpec]
    /// Indices into `flows`, most specific first, per direction.
    let outboundOrder: [Int]
    let inboundOrder: [Int]
    /// For each flow, its outbound SA when the peer is fixed (resolved once per snapshot).
    private let boundSA: [SecurityAssociation?]
    public let sad: SAD

    public init(flows: [FlowSpec] = [], sad: SAD = SAD()) {
        self.flows = flows
        self.sad = sad
        let order = flows.indices.sorted { SPD.moreSpecific(flows[$0], flows[$1], $0, $1) }
        outboundOrder = order.filter { flows[$0].direction == .outbound }
        inboundOrder = order.filter { flows[$0].direction == .inbound }
        boundSA = flows.map { f in
            guard f.direction == .outbound, f.type != .bypass && f.type != .deny else { return nil }
            if let child = f.child { return sad.outbound(child: child, proto: f.proto) }
            guard let peer = f.peer else { return nil }
            return sad.outbound(peer: peer, proto: f.proto, local: f.local)
        }
    }

    static func moreSpecific(_ a: FlowSpec, _ b: FlowSpec, _ ia: Int, _ ib: Int) -> Bool {
        func key(_ f: FlowSpec) -> (Int, Int, Int, Int, Int) {
            (f.source.length, f.destination.length, f.upperProtocol == nil ? 0 : 1,
             f.sourcePort == nil ? 0 : 1, f.destinationPort == nil ? 0 : 1)
        }
        let ka = key(a), kb = key(b)
        if ka != kb { return ka > kb }
        return ia < ib
    }

    @inline(__always) static func matches(_ f: FlowSpec, _ s: Selector) -> Bool {
        guard f.source.contains(s.source), f.destination.contains(s.destination) else { return false }
        if let p = f.upperProtocol, p != s.proto { return false }
        if let p = f.sourcePort, p != s.sourcePort { return false }
        if let p = f.destinationPort, p != s.destinationPort { return false }
        return true
    }

    /// The most specific flow of `direction` that matches, as an index into `flows`.
    /// (An index loop: `for ... in` over the array allocates an iterator per call in an
    /// unoptimized build, which the worker-loop allocation test would count.)
    @inline(__always) public func match(_ s: Selector, direction: FlowDirection) -> Int? {
        let order = direction == .outbound ? outboundOrder : inboundOrder
        var k = 0
        while k < order.count {
            let i = order[k]
            if SPD.matches(flows[i], s) { return i }
            k += 1
        }
        return nil
    }

    /// The [X] decision for an outbound packet.
    public func decideOutbound(_ s: Selector) -> OutboundDecision {
        guard let i = match(s, direction: .outbound) else { return .notIPsec }
        let f = flows[i]
        switch f.type {
        case .bypass: return .bypass(flow: i)
        case .deny: return .deny(flow: i)
        default: break
        }
        let sa = boundSA[i] ?? (f.peer == nil && f.child == nil
                                ? sad.outbound(peer: s.destination, proto: f.proto, local: f.local) : nil)
        if let sa, !sa.hardExpired, !sa.exhausted { return .protect(flow: i, sa: sa) }
        switch f.type {
        case .use: return .noSA(flow: i, sendClear: true, acquire: false)
        case .acquire: return .noSA(flow: i, sendClear: true, acquire: true)
        case .require: return .noSA(flow: i, sendClear: false, acquire: true)
        default: return .noSA(flow: i, sendClear: false, acquire: false)   // dontacq
        }
    }

    /// RFC 4301 §5.2 inbound check: the decrypted packet must match an inbound flow
    /// that is bound to the SA which carried it (same protocol; the SA's source is
    /// the flow's peer unless the flow says `peer any`; `local`, when set, is the SA's
    /// destination). A packet matching no flow, or a bypass/deny flow, fails.
    /// An SA bound to a CHILD SA carries only what matches one of that child's flows
    /// (its traffic selectors), and a child's flow takes only its own SAs' packets.
    public func inboundAllowed(_ s: Selector, carriedBy sa: SecurityAssociation) -> Bool {
        if let child = sa.spec.child { return inboundAllowed(s, child: child, carriedBy: sa) }
        guard let i = match(s, direction: .inbound) else { return false }
        let f = flows[i]
        guard f.type != .bypass && f.type != .deny, f.proto == sa.spec.proto, f.child == nil else { return false }
        if let peer = f.peer, peer != sa.spec.source { return false }
        if let local = f.local, local != sa.spec.destination { return false }
        return true
    }

    private func inboundAllowed(_ s: Selector, child: UInt32, carriedBy sa: SecurityAssociation) -> Bool {
        var k = 0
        while k < inboundOrder.count {
            let f = flows[inboundOrder[k]]
            k += 1
            guard f.child == child, SPD.matches(f, s) else { continue }
            guard f.type != .bypass && f.type != .deny, f.proto == sa.spec.proto else { return false }
            if let peer = f.peer, peer != sa.spec.source { return false }
            if let local = f.local, local != sa.spec.destination { return false }
            return true
        }
        return false
    }

    /// Whether cleartext matching `s` must be dropped on input: its most specific
    /// inbound flow is require, dontacq or deny. The per-packet statement of the rule
    /// `inboundCleartextPlan` turns into address pairs for the kernel's sets; encd asks
    /// it per packet where the outcome depends on the protocol or ports.
    public func inboundRequiresIPsec(_ s: Selector) -> Bool {
        guard let i = match(s, direction: .inbound) else { return false }
        switch flows[i].type {
        case .require, .dontacq, .deny: return true
        case .use, .acquire, .bypass: return false
        }
    }
}
