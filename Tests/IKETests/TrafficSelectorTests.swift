// Traffic selector narrowing (§2.9): against the recorded exchange with the CHILD SA
// (charon answered the selectors it was offered unchanged, its policy being the same
// /24s), and with wider and partial proposals.

import Crypto
import Testing
@testable import IKE
@testable import IKECrypto

@Suite struct TrafficSelectorTests {
    static func v4(_ a: [UInt8], _ b: [UInt8], proto: UInt8 = 0, ports: ClosedRange<UInt16> = 0...65535) -> IKETrafficSelector {
        IKETrafficSelector(type: 7, ipProtocol: proto, startPort: ports.lowerBound, endPort: ports.upperBound, startAddress: a, endAddress: b)
    }
    let site1 = v4([198, 18, 1, 0], [198, 18, 1, 255]), site2 = v4([198, 18, 2, 0], [198, 18, 2, 255])

    /// The recording where the CHILD SA came up (the first one's was refused, TS_UNACCEPTABLE,
    /// as the responder could not install its routes).
    @Test func charonsAnswerIsTheNarrowingOfItsOffer() throws {
        let x = try KeyDerivationTests.Exchange(Fixture.child)
        let k = try x.keys()
        func selectors(_ name: String, _ key: SecretKey) throws -> (IKETrafficSelector?, IKETrafficSelector?) {
            let inner = try x.opened(name, key)
            func ts(_ type: UInt8) -> IKETrafficSelector? {
                inner.lazy.compactMap { p -> IKETrafficSelector? in if p.type == type, case .trafficSelectors(let t) = p.body { return t.first }; return nil }.first
            }
            return (ts(IKEPayloadType.tsi), ts(IKEPayloadType.tsr))
        }
        let (offeredI, offeredR) = try selectors("ike_auth_request", k.ei)
        let (answeredI, answeredR) = try selectors("ike_auth_response", k.er)
        #expect(offeredI == site1 && offeredR == site2)
        // With charon's responder policy (its configured /24s), narrowing gives what it answered.
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [try #require(offeredI)], configured: [site1]) == [try #require(answeredI)])
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [try #require(offeredR)], configured: [site2]) == [try #require(answeredR)])
    }

    @Test func widerAndPartialProposalsNarrow() {
        let all = Self.v4([0, 0, 0, 0], [255, 255, 255, 255])
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [all], configured: [site1]) == [site1])
        // The triggering packet first (§2.9), then the range: both inside the policy.
        let host = Self.v4([198, 18, 1, 10], [198, 18, 1, 10], proto: 6, ports: 443...443)
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [host, all], configured: [site1]) == [host, site1])
        // A partial overlap of addresses and ports; protocol any against TCP.
        let half = Self.v4([198, 18, 1, 128], [198, 18, 3, 0], proto: 0, ports: 1000...2000)
        let policy = Self.v4([198, 18, 0, 0], [198, 18, 1, 200], proto: 6, ports: 1500...65535)
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [half], configured: [policy])
                == [Self.v4([198, 18, 1, 128], [198, 18, 1, 200], proto: 6, ports: 1500...2000)])
        // Nothing in common: TS_UNACCEPTABLE.
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [site2], configured: [site1]).isEmpty)
        #expect(IKETrafficSelectorNarrowing.narrow(proposed: [Self.v4([198, 18, 1, 0], [198, 18, 1, 255], proto: 17)],
                                                   configured: [Self.v4([198, 18, 1, 0], [198, 18, 1, 255], proto: 6)]).isEmpty)
    }
}
