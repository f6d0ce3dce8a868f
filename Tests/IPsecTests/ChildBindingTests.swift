import Crypto
import EncCore
import Testing
@testable import IPsec

/// Flows and SAs bound to a CHILD SA (a key daemon's `child`): the flow uses the newest
/// usable outbound SA of its child, and a child's SA carries only its child's traffic
/// (RFC 4301 §5.2). Unbound flows and SAs behave as before.
@Suite struct ChildBindingTests {
    let site1 = IPPrefix("198.18.1.0/24")!, site2 = IPPrefix("198.18.2.0/24")!, site3 = IPPrefix("198.18.3.0/24")!

    func flow(_ src: IPPrefix, _ dst: IPPrefix, dir: FlowDirection = .outbound, child: UInt32?) -> FlowSpec {
        FlowSpec(direction: dir, source: src, destination: dst, peer: hostB4, type: .require, owner: "iked", child: child)
    }

    func sa(spi: UInt32, dir: FlowDirection, child: UInt32?, seed: UInt8 = 1) throws -> SecurityAssociation {
        var spec = try SAPair.esp("aes-128-gcm", from: dir == .outbound ? hostA4 : hostB4,
                                  to: dir == .outbound ? hostB4 : hostA4, spi: spi).spec
        spec.encryptionKey = testKey(bits: 160, seed: seed)
        spec.child = child
        spec.owner = "iked"
        return try SecurityAssociation(spec, direction: dir, store: nil, now: 0)
    }

    func protected(_ spd: SPD, _ s: String, _ d: String) -> UInt32? {
        if case .protect(_, let sa) = spd.decideOutbound(Selector(source: IPAddress(s)!, destination: IPAddress(d)!, proto: 17)) {
            return sa.key.spi
        }
        return nil
    }

    @Test func aChildsFlowUsesTheNewestSAOfItsChildNotTheLowestSPI() throws {
        let old = try sa(spi: 0x5000, dir: .outbound, child: 7, seed: 1)
        let rekeyed = try sa(spi: 0x4000, dir: .outbound, child: 7, seed: 2)
        let other = try sa(spi: 0x100, dir: .outbound, child: 8, seed: 3)
        let spd = SPD(flows: [flow(site1, site2, child: 7), flow(site1, site3, child: 8)],
                      sad: SAD([old, rekeyed, other]))
        #expect(protected(spd, "198.18.1.5", "198.18.2.9") == 0x4000)
        #expect(protected(spd, "198.18.1.5", "198.18.3.9") == 0x100)
        // Before the rekey, the old one.
        let before = SPD(flows: [flow(site1, site2, child: 7)], sad: SAD([old, other]))
        #expect(protected(before, "198.18.1.5", "198.18.2.9") == 0x5000)
    }

    @Test func aChildWithoutAnSAFallsBackToItsTypeEvenWhenThePeerHasOthers() throws {
        let unbound = try sa(spi: 0x1000, dir: .outbound, child: nil)
        let spd = SPD(flows: [flow(site1, site2, child: 7)], sad: SAD([unbound]))
        guard case .noSA(_, let clear, let acquire) = spd.decideOutbound(
            Selector(source: IPAddress("198.18.1.5")!, destination: IPAddress("198.18.2.9")!, proto: 17)) else {
            Issue.record("expected noSA"); return
        }
        #expect(!clear && acquire)
    }

    @Test func unboundFlowsNeverUseAChildsSA() throws {
        let child = try sa(spi: 0x100, dir: .outbound, child: 7)
        var f = flow(site1, site2, child: nil)
        f.owner = nil
        let spd = SPD(flows: [f], sad: SAD([child]))
        #expect(protected(spd, "198.18.1.5", "198.18.2.9") == nil)
        #expect(spd.sad.outbound(peer: hostB4, proto: .esp, local: nil) == nil)
    }

    @Test func aChildsSACarriesOnlyItsChildsTraffic() throws {
        let in7 = try sa(spi: 0x4001, dir: .inbound, child: 7)
        let unbound = try sa(spi: 0x2001, dir: .inbound, child: nil, seed: 4)
        // site2 -> site1 is child 7's; site3 -> site1 is child 8's; both from the same peer.
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound, child: 7), flow(site3, site1, dir: .inbound, child: 8)],
                      sad: SAD([in7, unbound]))
        func sel(_ s: String) -> Selector { Selector(source: IPAddress(s)!, destination: IPAddress("198.18.1.5")!, proto: 17) }
        #expect(spd.inboundAllowed(sel("198.18.2.9"), carriedBy: in7))
        #expect(!spd.inboundAllowed(sel("198.18.3.9"), carriedBy: in7))
        // A child's flow takes no packet an unbound SA of the same peer carried.
        #expect(!spd.inboundAllowed(sel("198.18.2.9"), carriedBy: unbound))
    }

    @Test func aChildsSAMatchesItsOwnFlowEvenUnderAMoreSpecificFlowOfAnother() throws {
        // Child 7 has 198.18.0.0/16; child 8 has the narrower 198.18.2.0/24. A packet from
        // 198.18.2.9 under child 7's SA matches child 7's selectors, so RFC 4301 §5.2
        // accepts it, though SPD order would pick child 8's flow.
        let in7 = try sa(spi: 0x4001, dir: .inbound, child: 7)
        let spd = SPD(flows: [flow(IPPrefix("198.18.0.0/16")!, site1, dir: .inbound, child: 7),
                              flow(site2, site1, dir: .inbound, child: 8)], sad: SAD([in7]))
        #expect(spd.inboundAllowed(Selector(source: IPAddress("198.18.2.9")!, destination: IPAddress("198.18.1.5")!, proto: 17),
                                   carriedBy: in7))
    }

    @Test func aNATTInboundSAOfAChildFollowsItsChildsOutboundSA() throws {
        func udp(_ s: SecurityAssociation) throws -> SecurityAssociation {
            var spec = s.spec
            spec.encapsulation = UDPEncapsulation()
            return try SecurityAssociation(spec, direction: s.direction, store: nil, now: 0)
        }
        let out7 = try udp(try sa(spi: 0x4000, dir: .outbound, child: 7, seed: 1))
        let outUnbound = try udp(try sa(spi: 0x200, dir: .outbound, child: nil, seed: 2))
        let in7 = try udp(try sa(spi: 0x4001, dir: .inbound, child: 7, seed: 3))
        let sad = SAD([out7, outUnbound, in7])
        #expect(sad.natPartner(of: in7) === out7)
    }
}
