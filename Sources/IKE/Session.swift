// One IKE SA as the exchanges see it (iked's struct iked_sa): its SPIs, endpoints,
// nonces, keys, message-ID windows and the request waiting for its answer.

import Crypto
import EncCore
import IKECrypto

/// A UDP endpoint.
public struct IKEEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }
    public var description: String { address.family == .inet ? "\(address):\(port)" : "[\(address)]:\(port)" }
}

/// One UDP payload to or from the network. On port 4500 it begins with the 4-byte
/// non-ESP marker (RFC 3948 §2.2); the engine adds and removes it.
public struct IKEDatagram: Equatable, Sendable {
    public var local: IKEEndpoint
    public var remote: IKEEndpoint
    public var bytes: [UInt8]
    public init(local: IKEEndpoint, remote: IKEEndpoint, bytes: [UInt8]) {
        self.local = local
        self.remote = remote
        self.bytes = bytes
    }
}

public enum IKESessionState: String, Sendable {
    /// Initiator: IKE_SA_INIT sent. Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    case initSent = "SA_INIT", initAnswered = "SA_INIT answered"
    case authSent = "AUTH"
    case established = "ESTABLISHED"
    case deleting = "DELETING"
    case closed = "CLOSED"
}

/// What a request of ours asks, so its answer can be understood.
enum IKERequestKind {
    case ikeSAInit, ikeAuth
    case deleteIKE
    /// DELETE of a CHILD SA pair: after a rekey (only its SAs go; the binding's flows
    /// carry the new pair) or for good (its flows go back to the policy's).
    case deleteChild(IKEChildSA, rekeyed: Bool)
    case rekeyChild(old: IKEChildSA, offer: IKEChildOffer)
    case newChild(IKEChildOffer)
    case rekeyIKE(spi: UInt64, nonce: [UInt8], keyPair: IKEKeyPair, proposals: [IKEProposal])
    case liveness
}

/// A CREATE_CHILD_SA offer as sent: what the answer must match.
struct IKEChildOffer {
    var policy: IKEPolicy
    var inboundSPI: UInt32
    var nonce: [UInt8]
    var keyPair: IKEKeyPair?
    var proposals: [IKEProposal]
    var localSelectors: [IKETrafficSelector]
    var remoteSelectors: [IKETrafficSelector]
}

/// A request we sent and whose answer we wait for (window size 1, §2.3).
struct IKEPendingRequest {
    var messageID: UInt32
    var datagrams: [IKEDatagram]
    var sentAt: Double
    var nextAt: Double
    var retransmits: Int
    var kind: IKERequestKind
}

/// What a responder accepts of a CHILD SA request, and under which policy.
struct IKEChildChoice {
    var policy: IKEPolicy
    var proposal: IKEProposal
    var suite: IKEChildSuite
    var localTS: [IKETrafficSelector]
    var remoteTS: [IKETrafficSelector]
}

struct IKEChildRefusal: Error {
    var notify: UInt16
}

/// Fragments of one message (RFC 7383 §2.6), each verified, by number.
struct IKEFragmentKey: Hashable {
    var messageID: UInt32
    var response: Bool
}

struct IKEReassembly {
    var total: UInt16
    var first: UInt8?
    var parts: [UInt16: [UInt8]] = [:]
    init(total: UInt16) { self.total = total }
}

/// A request waiting for the window (built, not yet numbered and sealed).
struct IKEQueuedRequest {
    var exchange: UInt8
    var payloads: [IKEPayload]
    var kind: IKERequestKind
}

public final class IKESession {
    public let policy: IKEPolicy
    /// The original initiator (the I flag of every message this side sends).
    public let isInitiator: Bool
    public internal(set) var initiatorSPI: UInt64
    public internal(set) var responderSPI: UInt64
    public internal(set) var state: IKESessionState
    public internal(set) var local: IKEEndpoint
    public internal(set) var remote: IKEEndpoint
    /// The identity the peer proved (after IKE_AUTH).
    public internal(set) var peerID: IKEIdentity?
    /// NAT seen by NAT-D: in front of us, in front of the peer.
    public internal(set) var natLocal = false
    public internal(set) var natRemote = false
    public internal(set) var suite: IKESuite?
    public internal(set) var children: [IKEChildSA] = []
    public internal(set) var createdAt: Double
    public internal(set) var establishedAt: Double?

    var nonceI: [UInt8] = []
    var nonceR: [UInt8] = []
    var keyPair: IKEKeyPair?
    var cookie: [UInt8]?
    var protection: IKEProtection?
    /// The IKE_SA_INIT request and response as sent, for AUTH (§2.15).
    var initRequest: [UInt8] = []
    var initResponse: [UInt8] = []
    /// Initiator: the inbound SPI and proposals of the CHILD SA in IKE_AUTH.
    var childInboundSPI: UInt32?
    var childProposals: [IKEProposal] = []
    /// Our next request's message ID, and the peer's next request's.
    var nextRequestID: UInt32 = 0
    var expectedRequestID: UInt32 = 0
    var pending: IKEPendingRequest?
    var queued: [IKEQueuedRequest] = []
    /// Rekey responder: new pairs whose outbound SA waits for the old pair's DELETE.
    var deferredOutbound: [(old: IKEChildSA, new: IKEChildSA, since: Double)] = []
    /// CHILD rekeys to try again (after TEMPORARY_FAILURE): our inbound SPI, when.
    var rekeyRetries: [(spi: UInt32, at: Double)] = []
    /// When this side rekeys the IKE SA (a random 85-95 % of its lifetime).
    var rekeyAt: Double?
    /// The IKE SA that replaced this one (rekeyed): it only waits for its DELETE.
    public internal(set) var replacedBy: UInt64?
    /// The last authenticated message from the peer (liveness).
    public internal(set) var lastHeard: Double = 0
    /// The last NAT keepalive sent (RFC 3948 §2.3, when a NAT is in front of us).
    var lastKeepalive: Double = 0
    /// The last response sent, for a retransmitted request (§2.1).
    var lastResponse: (messageID: UInt32, datagrams: [IKEDatagram])?
    /// RFC 7383: the peer announced fragmentation; fragments being collected.
    var peerFragmentation = false
    /// The hashes the peer's SIGNATURE_HASH_ALGORITHMS announced (RFC 7427 §4).
    var peerHashes: [IKEHash] = []
    /// The subject of the certificate the peer authenticated with (ikectl).
    public internal(set) var peerCertificate: String?
    var reassembly: [IKEFragmentKey: IKEReassembly] = [:]

    init(policy: IKEPolicy, isInitiator: Bool, initiatorSPI: UInt64, responderSPI: UInt64, local: IKEEndpoint,
         remote: IKEEndpoint, now: Double) {
        self.policy = policy
        self.isInitiator = isInitiator
        self.initiatorSPI = initiatorSPI
        self.responderSPI = responderSPI
        self.local = local
        self.remote = remote
        self.createdAt = now
        state = isInitiator ? .initSent : .initAnswered
    }

    /// Outbound SPIs of rekeyed pairs not yet in encd (the old pair's DELETE is awaited).
    public var deferredOutboundSPIs: Set<UInt32> { Set(deferredOutbound.map(\.new.outboundSPI)) }

    /// Our SPI: the one the engine finds this session by.
    public var localSPI: UInt64 { isInitiator ? initiatorSPI : responderSPI }
    public var isNATed: Bool { natLocal || natRemote }

    func header(exchange: UInt8, response: Bool, messageID: UInt32) -> IKEHeader {
        var flags: UInt8 = isInitiator ? IKEHeader.initiatorFlag : 0
        if response { flags |= IKEHeader.responseFlag }
        return IKEHeader(initiatorSPI: initiatorSPI, responderSPI: responderSPI, exchange: exchange, flags: flags, messageID: messageID)
    }
}
