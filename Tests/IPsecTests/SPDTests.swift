import Crypto
import EncCore
import Testing
@testable import IPsec

@Suite struct SPDTests {
    let site1 = IPPrefix("198.18.1.0/24")!, site2 = IPPrefix("198.18.2.0/24")!

    func flow(_ src: IPPrefix, _ dst: IPPrefix, _ type: FlowType = .require, dir: FlowDirection = .outbound,
              peer: IPAddress? = hostB4, proto: UInt8? = nil, dport: UInt16? = nil) -> FlowSpec {
        FlowSpec(direction: dir, upperProtocol: proto, source: src, destination: dst, destinationPort: dport,
                 peer: type == .bypass || type == .deny ? nil : peer, type: type)
    }

    func sel(_ s: String, _ d: String, proto: UInt8 = IPProtocol.udp, dport: UInt16 = 53) -> Selector {
        Selector(source: IPAddress(s)!, destination: IPAddress(d)!, proto: proto, sourcePort: 1000, destinationPort: dport)
    }

    func outboundSA(spi: UInt32 = 0x1000, to peer: IPAddress = hostB4) throws -> SecurityAssociation {
        try SecurityAssociation(try SAPair.esp("aes-128-gcm", from: hostA4, to: peer, spi: spi).spec,
                                direction: .outbound, store: nil, now: 0)
    }

    @Test func noFlowMeansNotIPsec() {
        let spd = SPD(flows: [flow(site1, site2)])
        guard case .notIPsec = spd.decideOutbound(sel("198.18.9.1", "198.18.2.1")) else { Issue.record("expected notIPsec"); return }
    }

    @Test func requireWithSAProtects() throws {
        let sa = try outboundSA()
        let spd = SPD(flows: [flow(site1, site2)], sad: SAD([sa]))
        guard case .protect(_, let got) = spd.decideOutbound(sel("198.18.1.5", "198.18.2.9")) else {
            Issue.record("expected protect"); return
        }
        #expect(got === sa)
    }

    @Test(arguments: [(FlowType.require, false, true), (.use, true, false), (.acquire, true, true), (.dontacq, false, false)])
    func outcomeWithoutSAFollowsTheType(type: FlowType, clear: Bool, acquire: Bool) {
        let spd = SPD(flows: [flow(site1, site2, type)])
        guard case .noSA(_, let c, let a) = spd.decideOutbound(sel("198.18.1.5", "198.18.2.9")) else {
            Issue.record("expected noSA"); return
        }
        #expect(c == clear && a == acquire)
    }

    @Test func mostSpecificFlowWins() throws {
        let sa = try outboundSA()
        let flows = [flow(site1, site2),
                     flow(IPPrefix("198.18.1.7")!, site2, .bypass),
                     flow(site1, IPPrefix("198.18.2.0/25")!, .deny),
                     flow(site1, site2, .bypass, proto: IPProtocol.udp, dport: 500)]
        let spd = SPD(flows: flows, sad: SAD([sa]))
        if case .bypass(let i) = spd.decideOutbound(sel("198.18.1.7", "198.18.2.200")) { #expect(i == 1) } else { Issue.record("host source") }
        if case .deny(let i) = spd.decideOutbound(sel("198.18.1.8", "198.18.2.3")) { #expect(i == 2) } else { Issue.record("longer destination") }
        if case .bypass(let i) = spd.decideOutbound(sel("198.18.1.8", "198.18.2.200", dport: 500)) { #expect(i == 3) } else { Issue.record("port") }
        if case .protect = spd.decideOutbound(sel("198.18.1.8", "198.18.2.200")) {} else { Issue.record("general flow") }
    }

    @Test func hardExpiredSAIsNotUsed() throws {
        let sa = try outboundSA()
        let spd = SPD(flows: [flow(site1, site2)], sad: SAD([sa]))
        sa.invalidate()
        guard case .noSA(_, false, true) = spd.decideOutbound(sel("198.18.1.5", "198.18.2.9")) else {
            Issue.record("expected drop with acquire"); return
        }
    }

    @Test func peerAnyUsesThePacketDestination() throws {
        let sa = try outboundSA(to: hostB4)
        let f = FlowSpec(direction: .outbound, source: IPPrefix(host: hostA4), destination: .any(.inet), peer: nil, type: .require)
        let spd = SPD(flows: [f], sad: SAD([sa]))
        guard case .protect = spd.decideOutbound(Selector(source: hostA4, destination: hostB4, proto: 1)) else {
            Issue.record("expected protect"); return
        }
        guard case .noSA = spd.decideOutbound(Selector(source: hostA4, destination: IPAddress("192.0.2.77")!, proto: 1)) else {
            Issue.record("expected noSA"); return
        }
    }

    @Test func inboundCheckBindsPacketToItsSA() throws {
        // gw1 has flows for site2 (peer gw2) and site3 (peer gw3). A packet that gw2's
        // SA carries must come from site2; claiming site3's addresses is refused.
        let gw3 = IPAddress("192.0.2.3")!
        let site3 = IPPrefix("198.18.3.0/24")!
        let fromGW2 = try SecurityAssociation(try SAPair.esp("aes-128-gcm", from: hostB4, to: hostA4, spi: 0x2001).spec,
                                              direction: .inbound, store: nil, now: 0)
        let flows = [flow(site2, site1, dir: .inbound, peer: hostB4), flow(site3, site1, dir: .inbound, peer: gw3)]
        let spd = SPD(flows: flows, sad: SAD([fromGW2]))
        #expect(spd.inboundAllowed(sel("198.18.2.9", "198.18.1.5"), carriedBy: fromGW2))
        #expect(!spd.inboundAllowed(sel("198.18.3.9", "198.18.1.5"), carriedBy: fromGW2))
        #expect(!spd.inboundAllowed(sel("198.18.9.9", "198.18.1.5"), carriedBy: fromGW2))
    }

    @Test func inboundCheckRequiresTheFlowsProtocol() throws {
        let ahSA = try SecurityAssociation(try SAPair.ah(from: hostB4, to: hostA4).spec, direction: .inbound, store: nil, now: 0)
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound, peer: hostB4)])   // an esp flow
        #expect(!spd.inboundAllowed(sel("198.18.2.9", "198.18.1.5"), carriedBy: ahSA))
    }

    @Test func inboundCleartextOfRequireFlowMustBeDropped() {
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound), flow(IPPrefix("198.18.2.53")!, site1, .bypass, dir: .inbound)])
        #expect(spd.inboundRequiresIPsec(sel("198.18.2.9", "198.18.1.5")))
        #expect(!spd.inboundRequiresIPsec(sel("198.18.2.53", "198.18.1.5")))
        #expect(!spd.inboundRequiresIPsec(sel("198.18.7.1", "198.18.1.5")))
        // The kernel's set: the site pair less the bypass host, as disjoint pieces.
        let pairs = spd.inboundCleartextPlan.drops
        #expect(dropped(pairs, "198.18.2.9", "198.18.1.5") && !dropped(pairs, "198.18.2.53", "198.18.1.5"))
    }

    @Test func mirroredFlowSwapsAddressesAndPorts() {
        let f = FlowSpec(direction: .outbound, upperProtocol: 6, source: site1, sourcePort: 80, destination: site2, peer: hostB4)
        let m = f.mirrored
        #expect(m.direction == .inbound && m.source == site2 && m.destination == site1)
        #expect(m.destinationPort == 80 && m.sourcePort == nil)
    }
}

@Suite struct CounterTextTests {
    @Test func espReportMatchesOpenBSDWording() {
        let s = CounterSnapshot()
        let lines = s.report(.esp).split(separator: "\n").map(String.init)
        #expect(lines.first == "esp:")
        #expect(lines.count == 25)
        #expect(lines[1] == "\t0 input ESP packets")
        #expect(lines[9] == "\t0 packets that failed verification received")
        #expect(lines[13] == "\t0 possibly replayed packets received")
        #expect(lines[24] == "\t0 output bytes")
    }

    @Test func pluralFollowsTheValue() {
        #expect(OpenBSDField.badauth.line(1, in: .esp) == "\t1 packet that failed verification received")
        #expect(OpenBSDField.badauth.line(2, in: .esp) == "\t2 packets that failed verification received")
        #expect(OpenBSDField.input.line(1, in: .ah) == "\t1 input AH packets")
        #expect(OpenBSDField.input.line(1, in: .esp) == "\t1 input ESP packet")
    }

    @Test func ahReportHasNoEncryptionLines() {
        let text = CounterSnapshot().report(.ah)
        #expect(!text.contains("encryption") && !text.contains("padding") && !text.contains("UDP"))
        #expect(text.contains("\t0 packets with bad authenticator length received\n"))
        #expect(text.split(separator: "\n").count == 19)
    }

    @Test func ipsecGroupAggregatesBothProtocols() {
        var s = CounterSnapshot()
        var v = [UInt64](repeating: 0, count: Counter.allCases.count)
        v[Counter.espInput.rawValue] = 3
        v[Counter.ahInput.rawValue] = 2
        v[Counter.espAuthFailed.rawValue] = 1
        v[Counter.ahReplay.rawValue] = 1
        v[Counter.espTooBig.rawValue] = 4
        s.merge(v)
        #expect(s.value(.input, in: .ipsec) == 5)
        #expect(s.value(.idrops, in: .ipsec) == 2)
        #expect(s.value(.odrops, in: .ipsec) == 4)
        #expect(s.report(.ipsec, hideZeros: true) ==
                "ipsec:\n\t5 input IPsec packets\n\t2 packets dropped on input\n\t4 packets dropped on output\n")
    }

    @Test func everyDropReasonHasAPlaceToShow() {
        for c in Counter.allCases {
            #expect(c.openBSDField != nil || c.group == .enc || c.group == .ipsec, "\(c)")
            #expect(!c.encText.isEmpty)
            #expect(c.name.allSatisfy { $0.isLowercase || $0 == "_" || $0.isNumber }, "\(c.name)")
        }
    }
}

extension SPDTests {
    // MARK: Inbound cleartext drops (nft's require_in sets)

    /// Whether the disjoint pairs cover (s, d), and that at most one does.
    func dropped(_ pairs: [(IPPrefix, IPPrefix)], _ s: String, _ d: String) -> Bool {
        let hits = pairs.filter { $0.0.contains(IPAddress(s)!) && $0.1.contains(IPAddress(d)!) }.count
        #expect(hits <= 1, "overlapping pairs cover \(s) -> \(d)")
        return hits == 1
    }

    @Test func bypassHostPairInsideRequireSitesIsCutOutOfTheDrops() {
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound),
                              flow(IPPrefix("198.18.2.21")!, IPPrefix("198.18.1.11")!, .bypass, dir: .inbound)])
        let pairs = spd.inboundCleartextPlan.drops
        #expect(!dropped(pairs, "198.18.2.21", "198.18.1.11"))
        for (s, d) in [("198.18.2.20", "198.18.1.11"), ("198.18.2.21", "198.18.1.10"), ("198.18.2.0", "198.18.1.255"),
                       ("198.18.2.255", "198.18.1.0"), ("198.18.2.22", "198.18.1.11"), ("198.18.2.21", "198.18.1.12")] {
            #expect(dropped(pairs, s, d), "\(s) -> \(d)")
        }
        #expect(!dropped(pairs, "198.18.3.21", "198.18.1.11"))
        #expect(pairs.count == 16)   // 8 source bits + 8 destination bits between /24 and /32
    }

    @Test func nestedFlowsDropWhereTheMostSpecificOneRequires() {
        // require /16 ⊃ bypass /24 ⊃ require /32 (sources), same destination.
        let spd = SPD(flows: [flow(IPPrefix("198.18.0.0/16")!, site1, dir: .inbound),
                              flow(site2, site1, .bypass, dir: .inbound),
                              flow(IPPrefix("198.18.2.7")!, site1, dir: .inbound),
                              flow(IPPrefix("2001:db8:2::/64")!, IPPrefix("2001:db8:1::/64")!, .use, dir: .inbound),
                              flow(IPPrefix("2001:db8::/32")!, IPPrefix("2001:db8:1::/64")!, dir: .inbound)])
        let pairs = spd.inboundCleartextPlan.drops
        for (s, d, want) in [("198.18.2.7", "198.18.1.1", true), ("198.18.2.8", "198.18.1.1", false),
                             ("198.18.3.1", "198.18.1.1", true), ("198.19.0.1", "198.18.1.1", false),
                             ("2001:db8:2::5", "2001:db8:1::1", false), ("2001:db8:3::5", "2001:db8:1::1", true)] {
            #expect(dropped(pairs, s, d) == want, "\(s) -> \(d)")
            let sel = Selector(source: IPAddress(s)!, destination: IPAddress(d)!, proto: IPProtocol.icmp)
            #expect(spd.inboundRequiresIPsec(sel) == want)   // the SPD agrees
        }
    }

    @Test func aFlowNamingPortsMakesItsPairEncdsToJudge() {
        // require site2 -> site1; bypass UDP 500 for one host pair inside; deny a /24.
        let ike = flow(IPPrefix("198.18.2.21")!, IPPrefix("198.18.1.11")!, .bypass, dir: .inbound, proto: IPProtocol.udp, dport: 500)
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound), ike,
                              flow(IPPrefix("198.18.9.0/24")!, site1, .deny, dir: .inbound)])
        let plan = spd.inboundCleartextPlan
        #expect(!dropped(plan.drops, "198.18.2.21", "198.18.1.11") && dropped(plan.checks, "198.18.2.21", "198.18.1.11"))
        #expect(dropped(plan.drops, "198.18.2.22", "198.18.1.11") && !dropped(plan.checks, "198.18.2.22", "198.18.1.11"))
        #expect(dropped(plan.drops, "198.18.9.1", "198.18.1.11"))
        #expect(plan.checks.count == 1 && plan.drops.count == 17)   // the /24 pair less one /32 pair, and the deny
        // encd's answer for the checked pair: UDP 500 passes, the rest is dropped.
        #expect(!spd.inboundRequiresIPsec(sel("198.18.2.21", "198.18.1.11", dport: 500)))
        #expect(spd.inboundRequiresIPsec(sel("198.18.2.21", "198.18.1.11", dport: 501)))
        #expect(spd.inboundRequiresIPsec(sel("198.18.2.21", "198.18.1.11", proto: IPProtocol.tcp, dport: 500)))
    }

    @Test func aRequireFlowNamingPortsDropsNothingByAddressAlone() {
        // Only TCP 80 between the sites must come through IPsec: the kernel cannot say
        // so with addresses, so the whole pair is encd's to judge (dropped without encd).
        let spd = SPD(flows: [flow(site2, site1, dir: .inbound, proto: IPProtocol.tcp, dport: 80)])
        let plan = spd.inboundCleartextPlan
        #expect(plan.drops.isEmpty && plan.checks.count == 1 && dropped(plan.checks, "198.18.2.1", "198.18.1.1"))
        #expect(spd.inboundRequiresIPsec(sel("198.18.2.1", "198.18.1.1", proto: IPProtocol.tcp, dport: 80)))
        #expect(!spd.inboundRequiresIPsec(sel("198.18.2.1", "198.18.1.1")))
        // Narrowed require inside an unnarrowed require changes nothing: still dropped.
        let both = SPD(flows: [flow(site2, site1, dir: .inbound), flow(site2, site1, dir: .inbound, proto: IPProtocol.tcp, dport: 80)])
        #expect(both.inboundCleartextPlan.checks.isEmpty && both.inboundCleartextPlan.drops.count == 1)
        // A more specific flow without ports decides its pair again.
        let cut = SPD(flows: [flow(site2, site1, .bypass, dir: .inbound, proto: IPProtocol.udp, dport: 500),
                              flow(site2, site1, dir: .inbound),
                              flow(IPPrefix("198.18.2.7")!, IPPrefix("198.18.1.7")!, .use, dir: .inbound)])
        #expect(!dropped(cut.inboundCleartextPlan.checks, "198.18.2.7", "198.18.1.7"))
        #expect(!dropped(cut.inboundCleartextPlan.drops, "198.18.2.7", "198.18.1.7"))
        #expect(dropped(cut.inboundCleartextPlan.checks, "198.18.2.8", "198.18.1.7"))
    }

    @Test func thePlanAgreesWithTheSPDOnRandomPolicies() {
        // Random nested flows over a small address space; for every packet, a drop pair
        // means the SPD drops it, no pair means it passes; drops and checks never overlap.
        var rng = SystemRandomNumberGenerator()
        let types: [FlowType] = [.require, .bypass, .use, .deny, .dontacq, .acquire]
        func prefix() -> IPPrefix {
            let len = [24, 26, 28, 30, 32].randomElement(using: &rng)!
            return IPPrefix(IPAddress("198.18.0.\(Int.random(in: 0...255, using: &rng))")!, length: len)
        }
        for _ in 0..<200 {
            let flows = (0..<Int.random(in: 1...6, using: &rng)).map { _ -> FlowSpec in
                let narrowed = Bool.random(using: &rng)
                return flow(prefix(), prefix(), types.randomElement(using: &rng)!, dir: .inbound,
                            proto: narrowed ? IPProtocol.udp : nil, dport: narrowed && Bool.random(using: &rng) ? 500 : nil)
            }
            let spd = SPD(flows: flows)
            let plan = spd.inboundCleartextPlan
            for _ in 0..<50 {
                let s = "198.18.0.\(Int.random(in: 0...255, using: &rng))", d = "198.18.0.\(Int.random(in: 0...255, using: &rng))"
                let inDrops = dropped(plan.drops, s, d), inChecks = dropped(plan.checks, s, d)
                #expect(!(inDrops && inChecks), "\(flows) \(s) -> \(d)")
                for (proto, port) in [(IPProtocol.udp, UInt16(500)), (IPProtocol.udp, 501), (IPProtocol.tcp, 500)] {
                    let requires = spd.inboundRequiresIPsec(sel(s, d, proto: proto, dport: port))
                    if inDrops { #expect(requires, "\(flows) \(s) -> \(d)") }
                    if !inDrops && !inChecks { #expect(!requires, "\(flows) \(s) -> \(d)") }
                }
            }
        }
    }
}
