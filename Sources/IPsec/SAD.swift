// SAD: the security association database, an immutable snapshot. SAs are found by
// (destination, SPI, protocol) on input and by (peer, protocol[, local]) on output.
// A change builds a new snapshot that reuses the SA objects it keeps, so their
// sequence numbers, replay windows and counters carry on.

import EncCore

public struct SAD: Sendable {
    public private(set) var byKey: [SAKey: SecurityAssociation] = [:]
    /// NAT-T: for each UDP-encapsulated inbound SA, the outbound SA towards the same
    /// peer, whose endpoint the inbound SA's authenticated packets move. Part of the
    /// snapshot, so a refused change never touches the running pairing.
    private var natPartners: [SAKey: SecurityAssociation] = [:]

    public init() {}

    public init(_ sas: [SecurityAssociation]) {
        for sa in sas { byKey[sa.key] = sa }
        pairNATPartners()
    }

    private mutating func pairNATPartners() {
        natPartners = [:]
        for sa in byKey.values where sa.direction == .inbound && sa.spec.encapsulation != nil {
            if let child = sa.spec.child {
                natPartners[sa.key] = outbound(child: child, proto: sa.spec.proto)
            } else {
                natPartners[sa.key] = outbound(peer: sa.spec.source, proto: sa.spec.proto, local: sa.spec.destination)
            }
        }
    }

    /// The outbound SA whose NAT-T endpoint the inbound SA `sa` follows.
    @inline(__always) public func natPartner(of sa: SecurityAssociation) -> SecurityAssociation? {
        natPartners[sa.key]
    }

    public var all: [SecurityAssociation] { byKey.values.sorted { ($0.key.spi, $0.key.destination) < ($1.key.spi, $1.key.destination) } }
    public var count: Int { byKey.count }

    /// The inbound lookup of RFC 4301 §4.1.
    @inline(__always) public func lookup(destination: IPAddress, spi: UInt32, proto: IPsecProtocol) -> SecurityAssociation? {
        byKey[SAKey(destination: destination, spi: spi, proto: proto)]
    }

    /// The outbound SA towards `peer` for `proto`, optionally from `local`: the usable
    /// one with the lowest SPI, so the choice is stable. SAs bound to a CHILD SA serve
    /// only the flows of that child, never this lookup.
    public func outbound(peer: IPAddress, proto: IPsecProtocol, local: IPAddress?) -> SecurityAssociation? {
        var best: SecurityAssociation?
        for sa in byKey.values where sa.direction == .outbound && sa.spec.proto == proto && sa.spec.child == nil
            && sa.spec.destination == peer && (local == nil || sa.spec.source == local) && !sa.hardExpired {
            if best == nil || sa.key.spi < best!.key.spi { best = sa }
        }
        return best
    }

    /// The outbound SA of CHILD binding `child` for `proto`: the newest usable one, so a
    /// rekeyed pair takes over when its outbound SA is added and the old one only
    /// drains until its owner removes it.
    public func outbound(child: UInt32, proto: IPsecProtocol) -> SecurityAssociation? {
        var best: SecurityAssociation?
        for sa in byKey.values where sa.direction == .outbound && sa.spec.proto == proto && sa.spec.child == child
            && !sa.hardExpired {
            if best == nil || sa.serial > best!.serial { best = sa }
        }
        return best
    }

    public func adding(_ sa: SecurityAssociation) -> SAD {
        var n = self
        n.byKey[sa.key] = sa
        n.pairNATPartners()
        return n
    }

    public func removing(_ key: SAKey) -> SAD {
        var n = self
        n.byKey[key] = nil
        n.pairNATPartners()
        return n
    }
}
