// Fuzzes encd-iked's exchanges (issue #10): two engines complete IKE_SA_INIT and
// IKE_AUTH with a PSK, then the input reaches the responder as
//   byte 0 % 3 == 0: a raw UDP payload on port 500 (IKE_SA_INIT requests, unknown
//                    SPIs, malformed headers),
//   byte 0 % 3 == 1: the same on port 4500, behind the non-ESP marker,
//   byte 0 % 3 == 2: a request of the established IKE SA (exchange 34 + byte 1 % 4)
//                    whose SK payload holds the rest of the input as its payload
//                    chain (first payload type byte 2), sealed with the real keys, so
//                    IKE_AUTH, CREATE_CHILD_SA and INFORMATIONAL see any payloads;
// every answer goes back to the initiator, then both tick for two minutes.
// Contract: no trap, and what the responder's encd holds is what its sessions hold.

import EncCore
import FuzzDriver
import IKE
import IKECrypto
import Crypto

var counter: UInt64 = 0
/// Fast, deterministic randomness (the fuzzer must be reproducible).
func random(_ n: Int) -> [UInt8] {
    var out: [UInt8] = []
    while out.count < n {
        counter &+= 0x9E37_79B9_7F4A_7C15
        var x = counter
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        for i in 0..<8 where out.count < n { out.append(UInt8(truncatingIfNeeded: x >> UInt64(8 * i))) }
    }
    return out
}

let a1 = IPAddress("203.0.113.1")!, a2 = IPAddress("203.0.113.2")!
let pairs: [IKEGroup: IKEKeyPair] = Dictionary(uniqueKeysWithValues: IKEGroup.allCases.map { ($0, try! IKEKeyPair(group: $0)) })
let psk = SecretKey(Array("fuzz".utf8))
func ts(_ s: String) -> IKETrafficSelector { IKETrafficSelector(prefix: IPPrefix(s)!) }
let ike = IKEProposal(number: 1, protocolID: 1, spi: [], transforms: [
    IKETransform(type: 1, id: 20, attributes: [.keyLength(256)]), IKETransform(type: 2, id: 5), IKETransform(type: 4, id: 31), IKETransform(type: 4, id: 19)])
let esp = IKEProposal(number: 1, protocolID: 3, spi: [], transforms: [
    IKETransform(type: 1, id: 20, attributes: [.keyLength(128)]), IKETransform(type: 4, id: 19), IKETransform(type: 5, id: 0)])
let p1 = IKEPolicy(name: "a", active: true, local: a1, peer: a2, ikeProposals: [ike], childProposals: [esp],
                   localSelectors: [ts("198.18.1.0/24")], remoteSelectors: [ts("198.18.2.0/24")], psk: psk)
let p2 = IKEPolicy(name: "b", active: false, local: a2, peer: nil, ikeProposals: [ike], childProposals: [esp],
                   localSelectors: [ts("198.18.2.0/24")], remoteSelectors: [ts("198.18.1.0/0")], psk: psk)

func deliver(_ first: [IKEDatagram], _ e1: IKEEngine, _ e2: IKEEngine, now: Double) {
    var queue = first
    var steps = 0
    while !queue.isEmpty && steps < 64 {
        steps += 1
        let d = queue.removeFirst()
        let arrived = IKEDatagram(local: d.remote, remote: d.local, bytes: d.bytes)
        queue += d.remote.address == a2 ? e2.receive(arrived, now: now) : e1.receive(arrived, now: now)
    }
}

func fuzzEngine(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let input, size >= 3 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: input, count: size))
    counter = 0
    let be1 = InMemoryBackend(firstSPI: 0xc100_0000), be2 = InMemoryBackend(firstSPI: 0xc200_0000)
    let keyPair: (IKEGroup) throws(IKECryptoError) -> IKEKeyPair = { g throws(IKECryptoError) in pairs[g]! }
    let e1 = IKEEngine(policies: [p1], backend: be1, random: random, makeKeyPair: keyPair)
    let e2 = IKEEngine(policies: [p2], backend: be2, random: random, makeKeyPair: keyPair)
    deliver(e1.initiate("a", from: IKEEndpoint(a1, 500), now: 0), e1, e2, now: 0)
    guard let spi = e1.sessions.first(where: { $0.value.state == .established })?.key else { fatalError("no handshake") }
    let from = IKEEndpoint(a1, 500)
    switch bytes[0] % 3 {
    case 0:
        deliver(e2.receive(IKEDatagram(local: IKEEndpoint(a2, 500), remote: from, bytes: Array(bytes.dropFirst())), now: 1).map {
            IKEDatagram(local: $0.local, remote: $0.remote, bytes: $0.bytes) }, e1, e2, now: 1)
    case 1:
        let d = IKEDatagram(local: IKEEndpoint(a2, 4500), remote: IKEEndpoint(a1, 4500), bytes: [0, 0, 0, 0] + bytes.dropFirst())
        deliver(e2.receive(d, now: 1), e1, e2, now: 1)
    default:
        let exchange = 34 + bytes[1] % 4
        deliver(e1.rawRequest(spi, exchange: exchange, first: bytes[2], inner: Array(bytes.dropFirst(3)), now: 1), e1, e2, now: 1)
    }
    var now = 1.0
    for _ in 0..<130 {
        now += 1
        deliver(e1.tick(now: now) + e2.tick(now: now), e1, e2, now: now)
    }
    // encd (in memory) holds exactly the CHILD SAs the responder's sessions hold.
    let held = Set(e2.sessions.values.flatMap { $0.children.map(\.inboundSPI) })
    precondition(Set(be2.installed.map(\.inboundSPI)) == held, "encd and the sessions disagree about the CHILD SAs")
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzEngine) }
}
