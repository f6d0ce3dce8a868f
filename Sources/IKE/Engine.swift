// IKEEngine: the exchanges of RFC 7296 in both roles, iked's ikev2.c made pure. It is
// given datagrams and the time, and answers with datagrams to send; it installs and
// removes CHILD SAs through an EncdBackend. Randomness (SPIs, nonces, IVs, cookie
// secret) and key pairs are injected, so tests run two engines against each other.
//
// Stages of one received datagram:
//   1. strip the non-ESP marker on port 4500; decode the header and payloads
//   2. find the IKE SA by our SPI (a new IKE_SA_INIT request makes one, after the
//      cookie check and proposal choice); unknown SPI: INVALID_IKE_SPI (§1.5)
//   3. message ID: a request is the expected one (process), the previous one (resend
//      the cached response) or dropped; a response must answer our pending request
//   4. open the SK payload (every exchange after IKE_SA_INIT)
//   5. the exchange's step: IKE_SA_INIT, IKE_AUTH (with the first CHILD SA),
//      INFORMATIONAL (DELETE, liveness)
// `tick` retransmits unanswered requests with back-off (§2.1) and gives up on dead
// peers and half-open SAs.
//
// CREATE_CHILD_SA is in CreateChild.swift.

import Crypto
import EncCore
import IKECrypto

/// Notify message types (§3.10.1).
public enum IKENotify {
    public static let unsupportedCriticalPayload: UInt16 = 1, invalidIKESPI: UInt16 = 4, invalidSyntax: UInt16 = 7
    public static let noProposalChosen: UInt16 = 14, invalidKEPayload: UInt16 = 17, authenticationFailed: UInt16 = 24
    public static let tsUnacceptable: UInt16 = 38, temporaryFailure: UInt16 = 43, childSANotFound: UInt16 = 44
    public static let initialContact: UInt16 = 16384, natDetectionSource: UInt16 = 16388, natDetectionDestination: UInt16 = 16389
    public static let cookie: UInt16 = 16390, useTransportMode: UInt16 = 16391, noAdditionalSAs: UInt16 = 35, rekeySA: UInt16 = 16393
    public static let fragmentationSupported: UInt16 = 16430, signatureHashAlgorithms: UInt16 = 16431
}

public struct IKEEngineSettings: Sendable {
    /// Half-open IKE SAs above which IKE_SA_INIT must carry a cookie (§2.6).
    public var cookieThreshold = 64
    /// First retransmission after this many seconds, doubling (§2.1).
    public var retransmitTimeout = 2.0
    public var retransmitTries = 5
    /// A responder's half-open SA is forgotten after this long.
    public var halfOpenTimeout = 60.0
    /// Seconds between NAT keepalives when a NAT is in front of us (RFC 3948 §4: 20).
    public var natKeepalive = 20.0
    /// RFC 7383: announce fragmentation, and fragment protected messages larger than
    /// `fragmentSize` bytes (the UDP payload) when the peer announced it too. Received
    /// fragments are reassembled whatever this says.
    public var fragmentation = true
    public var fragmentSize = 1280
    public init() {}
}

public final class IKEEngine {
    public private(set) var policies: [IKEPolicy]
    public let settings: IKEEngineSettings
    let backend: EncdBackend
    let random: (Int) -> [UInt8]
    let makeKeyPair: (IKEGroup) throws(IKECryptoError) -> IKEKeyPair
    let log: (String) -> Void
    /// IKE SAs by our SPI.
    public internal(set) var sessions: [UInt64: IKESession] = [:]
    let cookieSecret: [UInt8]
    var nextChild: UInt32 = 1
    /// Datagrams dropped before any IKE SA took them, by reason (ikectl shows them).
    public private(set) var dropped: [String: UInt64] = [:]
    var unprotectedWindow: (start: Double, count: Int) = (-1, 0)
    /// The time of the datagram or tick being handled (a new CHILD SA's `installedAt`).
    var clock = 0.0
    /// Our certificates, key and trusted CAs (policies with certificate authentication).
    public var credentials: IKECredentials?

    public init(policies: [IKEPolicy], backend: EncdBackend, settings: IKEEngineSettings = IKEEngineSettings(),
                random: @escaping (Int) -> [UInt8],
                makeKeyPair: @escaping (IKEGroup) throws(IKECryptoError) -> IKEKeyPair = { g throws(IKECryptoError) in try IKEKeyPair(group: g) },
                log: @escaping (String) -> Void = { _ in }) {
        self.policies = policies
        self.backend = backend
        self.settings = settings
        self.random = random
        self.makeKeyPair = makeKeyPair
        self.log = log
        cookieSecret = random(32)
    }

    /// New policies (a reload): existing IKE SAs keep the policy they were made with;
    /// new ones use these.
    public func replacePolicies(_ p: [IKEPolicy]) { policies = p }

    // MARK: initiating

    /// Starts an IKE SA for the policy named `name` from `local` (port 500) to its peer.
    public func initiate(_ name: String, from local: IKEEndpoint, now: Double) -> [IKEDatagram] {
        guard let policy = policies.first(where: { $0.name == name }), let peer = policy.peer,
              let first = policy.ikeProposals.first, let suite = IKESuite(first) else {
            log("\(name): cannot initiate: no such active policy with a peer and a usable proposal")
            return []
        }
        let session = IKESession(policy: policy, isInitiator: true, initiatorSPI: freshSPI(), responderSPI: 0,
                                 local: local, remote: IKEEndpoint(peer, 500), now: now)
        session.nonceI = random(32)
        do {
            session.keyPair = try makeKeyPair(suite.group)
        } catch {
            log("\(name): key pair for group \(suite.group.rawValue): \(error)")
            return []
        }
        sessions[session.localSPI] = session
        log("\(name): initiating IKE SA \(hex64(session.initiatorSPI)) to \(session.remote)")
        return [sendInitRequest(session, now: now)]
    }

    func sendInitRequest(_ s: IKESession, now: Double) -> IKEDatagram {
        var payloads: [IKEPayload] = []
        if let cookie = s.cookie { payloads.append(notify(IKENotify.cookie, data: cookie)) }
        let proposals = s.policy.ikeProposals.enumerated().map { i, p in
            IKEProposal(number: UInt8(truncatingIfNeeded: i + 1), protocolID: 1, spi: [], transforms: p.transforms)
        }
        payloads.append(IKEPayload(type: IKEPayloadType.sa, body: .sa(proposals)))
        payloads.append(IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: s.keyPair!.group.rawValue, data: s.keyPair!.publicValue)))
        payloads.append(IKEPayload(type: IKEPayloadType.nonce, body: .nonce(s.nonceI)))
        payloads += natDetection(s)
        if settings.fragmentation { payloads.append(notify(IKENotify.fragmentationSupported)) }
        if s.policy.authentication.isSignature { payloads.append(signatureHashes) }
        let bytes = IKEMessage(header: s.header(exchange: IKEExchangeType.ikeSAInit, response: false, messageID: 0), payloads: payloads).encode()
        s.initRequest = bytes
        s.nextRequestID = 1
        return request(s, messageID: 0, bytes: bytes, kind: .ikeSAInit, now: now)
    }

    /// Records `bytes` as the pending request and returns its datagram.
    func request(_ s: IKESession, messageID: UInt32, bytes: [UInt8], kind: IKERequestKind, now: Double) -> IKEDatagram {
        request(s, messageID: messageID, messages: [bytes], kind: kind, now: now)[0]
    }

    /// The same for a request sent as several messages (RFC 7383 fragments).
    func request(_ s: IKESession, messageID: UInt32, messages: [[UInt8]], kind: IKERequestKind, now: Double) -> [IKEDatagram] {
        let d = messages.map { datagram(s, $0) }
        s.pending = IKEPendingRequest(messageID: messageID, datagrams: d, sentAt: now, nextAt: now + settings.retransmitTimeout,
                                      retransmits: 0, kind: kind)
        return d
    }

    /// A protected message as it goes out: whole, or in RFC 7383 fragments when both
    /// sides announced fragmentation and it is larger than `fragmentSize`.
    func seal(_ s: IKESession, _ header: IKEHeader, _ payloads: [IKEPayload]) -> [[UInt8]]? {
        guard let protection = s.protection else { return nil }
        if settings.fragmentation && s.peerFragmentation,
           let fragments = protection.sealFragments(header, payloads, size: settings.fragmentSize - (s.local.port == 4500 ? 4 : 0),
                                                    iv: { self.random(protection.ivLength) }) {
            return fragments
        }
        return protection.seal(header, payloads, iv: random(protection.ivLength)).map { [$0] }
    }

    func datagram(_ s: IKESession, _ bytes: [UInt8]) -> IKEDatagram {
        IKEDatagram(local: s.local, remote: s.remote, bytes: s.local.port == 4500 ? [0, 0, 0, 0] + bytes : bytes)
    }

    // MARK: receiving

    public func receive(_ d: IKEDatagram, now: Double) -> [IKEDatagram] {
        clock = now
        var bytes = d.bytes
        if d.local.port == 4500 {
            // Without the non-ESP marker it is ESP, which is encd's.
            guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0, bytes[2] == 0, bytes[3] == 0 else { return [] }
            bytes.removeFirst(4)
        }
        let message: IKEMessage
        switch IKEMessage.decode(bytes) {
        case .success(let m): message = m
        case .failure(.unsupportedCriticalPayload(let type)) where bytes.count >= IKEHeader.size && bytes[18] == IKEExchangeType.ikeSAInit
                && bytes[19] & IKEHeader.responseFlag == 0 && bytes[8..<16].allSatisfy({ $0 == 0 }):
            // §2.5: an IKE_SA_INIT request with a critical payload we do not know.
            drop("IKE_SA_INIT with an unsupported critical payload", from: d.remote)
            var h = IKEHeader(initiatorSPI: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, responderSPI: 0,
                              exchange: IKEExchangeType.ikeSAInit, flags: IKEHeader.responseFlag, messageID: 0)
            h.version = 0x20
            return answerOutsideSA(d, IKEMessage(header: h, payloads: [notify(IKENotify.unsupportedCriticalPayload, data: [type])]), now: now)
        case .failure:
            drop("undecodable message", from: d.remote)
            return []
        }
        let h = message.header
        if h.exchange == IKEExchangeType.ikeSAInit && !h.isResponse && h.responderSPI == 0 {
            return receiveInitRequest(message, bytes, d, now: now)
        }
        let ours = h.isInitiator ? h.responderSPI : h.initiatorSPI
        guard let s = sessions[ours], s.isInitiator != h.isInitiator else {
            if !h.isResponse && h.exchange != IKEExchangeType.ikeSAInit {
                // §1.5: outside any SA, unprotected; only ever in answer to a request.
                var header = h
                header.flags = IKEHeader.responseFlag | (h.isInitiator ? 0 : IKEHeader.initiatorFlag)
                header.exchange = IKEExchangeType.informational
                drop("request for an unknown IKE SA", from: d.remote)
                return answerOutsideSA(d, IKEMessage(header: header, payloads: [notify(IKENotify.invalidIKESPI)]), now: now)
            }
            drop("response for an unknown IKE SA", from: d.remote)
            return []
        }
        if h.isResponse {
            guard let pending = s.pending, pending.messageID == h.messageID else { return [] }
            guard let opened = reassemble(s, message, bytes, d) else { return [] }
            return receiveResponse(s, message, bytes, opened, d, now: now)
        }
        if h.messageID &+ 1 == s.expectedRequestID, let last = s.lastResponse, last.messageID == h.messageID {
            // The peer did not get our answer. A fragmented request is retransmitted
            // whole: answer its first fragment only (RFC 7383 §2.6.1).
            if case .encryptedFragment(_, let number, _, _) = message.payloads.first?.body, number != 1 { return [] }
            return last.datagrams
        }
        guard h.messageID == s.expectedRequestID else { return [] }
        guard let opened = reassemble(s, message, bytes, d) else { return [] }
        return receiveRequest(s, message, opened, d, now: now)
    }

    /// The payloads inside a protected message: its SK payload opened, or, for an SKF
    /// fragment, nil until every fragment of its message has arrived and verified
    /// (RFC 7383 §2.6), then all of them joined. IKE_SA_INIT has no SK: nothing to open.
    func reassemble(_ s: IKESession, _ m: IKEMessage, _ bytes: [UInt8], _ d: IKEDatagram) -> Result<[IKEPayload], IKEDecodeError>? {
        if m.header.exchange == IKEExchangeType.ikeSAInit { return .success(m.payloads) }
        guard let protection = s.protection else { return nil }
        guard case .encryptedFragment = m.payloads.first?.body else { return protection.open(bytes, m) }
        guard let f = protection.openFragment(bytes, m) else {
            drop("fragment that does not verify", from: d.remote)
            return nil
        }
        let key = IKEFragmentKey(messageID: m.header.messageID, response: m.header.isResponse)
        var r = s.reassembly[key] ?? IKEReassembly(total: f.total)
        guard r.total == f.total else {
            drop("fragment whose total differs from its message's", from: d.remote)
            return nil
        }
        if f.number == 1 { r.first = f.first }
        r.parts[f.number] = f.plain
        // Only the message in flight each way is kept (a newer one replaces it).
        s.reassembly = s.reassembly.filter { $0.key.response != key.response }
        guard r.parts.count == Int(r.total), let first = r.first else {
            s.reassembly[key] = r
            return nil
        }
        let inner = (1...r.total).flatMap { r.parts[$0] ?? [] }
        return IKEPayloads.decode(inner, first: first)
    }

    func receiveResponse(_ s: IKESession, _ m: IKEMessage, _ bytes: [UInt8], _ opened: Result<[IKEPayload], IKEDecodeError>,
                         _ d: IKEDatagram, now: Double) -> [IKEDatagram] {
        guard let pending = s.pending else { return [] }
        if case .ikeSAInit = pending.kind {
            return m.header.exchange == IKEExchangeType.ikeSAInit ? receiveInitResponse(s, m, bytes, d, now: now) : []
        }
        guard case .success(let payloads) = opened else {
            drop("response that does not verify", from: d.remote)
            return []
        }
        s.pending = nil
        s.lastHeard = now
        var out: [IKEDatagram]
        switch pending.kind {
        case .ikeSAInit: out = []
        case .ikeAuth: out = receiveAuthResponse(s, payloads, now: now)
        case .deleteIKE:
            close(s, why: "deleted")
            return []
        case .deleteChild(let old, let rekeyed):
            removeChild(s, old, rekeyed: rekeyed)
            out = []
        case .rekeyChild(let old, let offer): out = receiveRekeyChildResponse(s, old: old, offer: offer, payloads, now: now)
        case .newChild(let offer): out = receiveNewChildResponse(s, offer: offer, payloads, now: now)
        case .rekeyIKE(let spi, let nonce, let pair, let proposals):
            out = receiveRekeyIKEResponse(s, spi: spi, nonce: nonce, keyPair: pair, proposals: proposals, payloads, now: now)
        case .liveness: out = []
        }
        return out + sendQueued(s, now: now)
    }

    func receiveRequest(_ s: IKESession, _ m: IKEMessage, _ opened: Result<[IKEPayload], IKEDecodeError>, _ d: IKEDatagram, now: Double) -> [IKEDatagram] {
        guard s.protection != nil else { return [] }
        let payloads: [IKEPayload]
        switch opened {
        case .success(let p): payloads = p
        case .failure(.unsupportedCriticalPayload(let type)):
            s.expectedRequestID &+= 1
            return respond(s, m.header, [notify(IKENotify.unsupportedCriticalPayload, data: [type])])
        case .failure:
            drop("request that does not verify", from: d.remote)
            return []
        }
        // Authenticated: follow a peer that floated to 4500 or whose NAT moved it (§2.23).
        if d.remote != s.remote || d.local != s.local {
            if d.local.port == 4500 && s.local.port == 500 || s.natRemote {
                log("\(s.policy.name): peer moved from \(s.remote) to \(d.remote)")
                s.remote = d.remote
                s.local = d.local
            }
        }
        s.expectedRequestID &+= 1
        s.lastHeard = now
        switch (m.header.exchange, s.state) {
        case (IKEExchangeType.ikeAuth, .initAnswered):
            return receiveAuthRequest(s, m.header, payloads, now: now)
        case (IKEExchangeType.informational, .established), (IKEExchangeType.informational, .deleting):
            return receiveInformational(s, m.header, payloads, now: now)
        case (IKEExchangeType.createChildSA, .established):
            return receiveCreateChild(s, m.header, payloads, now: now)
        case (IKEExchangeType.createChildSA, .deleting):
            return respond(s, m.header, [notify(IKENotify.temporaryFailure)])
        default:
            return respond(s, m.header, [notify(IKENotify.invalidSyntax)])
        }
    }

    /// Sends a protected response to the request with `header`, and caches it.
    func respond(_ s: IKESession, _ header: IKEHeader, _ payloads: [IKEPayload]) -> [IKEDatagram] {
        guard let messages = seal(s, s.header(exchange: header.exchange, response: true, messageID: header.messageID), payloads) else { return [] }
        let d = messages.map { datagram(s, $0) }
        s.lastResponse = (header.messageID, d)
        return d
    }

    /// Sends a protected request of `exchange`, or queues it behind the one in flight
    /// (window size 1, §2.3).
    func sendRequest(_ s: IKESession, exchange: UInt8, _ payloads: [IKEPayload], kind: IKERequestKind, now: Double) -> [IKEDatagram] {
        guard s.pending == nil else {
            s.queued.append(IKEQueuedRequest(exchange: exchange, payloads: payloads, kind: kind))
            return []
        }
        guard let messages = seal(s, s.header(exchange: exchange, response: false, messageID: s.nextRequestID), payloads) else { return [] }
        let id = s.nextRequestID
        s.nextRequestID &+= 1
        return request(s, messageID: id, messages: messages, kind: kind, now: now)
    }

    /// The next queued request, now that the window is free.
    func sendQueued(_ s: IKESession, now: Double) -> [IKEDatagram] {
        guard s.pending == nil, !s.queued.isEmpty, s.state == .established || s.state == .deleting else { return [] }
        let next = s.queued.removeFirst()
        return sendRequest(s, exchange: next.exchange, next.payloads, kind: next.kind, now: now)
    }

    // MARK: IKE_SA_INIT

    func receiveInitRequest(_ m: IKEMessage, _ bytes: [UInt8], _ d: IKEDatagram, now: Double) -> [IKEDatagram] {
        let h = m.header
        guard h.isInitiator, h.messageID == 0 else { return [] }
        // A retransmission of a request we answered: the same answer.
        if let s = sessions.values.first(where: { !$0.isInitiator && $0.initiatorSPI == h.initiatorSPI && $0.remote == d.remote }) {
            return s.state == .initAnswered && !s.initResponse.isEmpty ? [datagram(s, s.initResponse)] : []
        }
        func answer(_ payloads: [IKEPayload]) -> [IKEDatagram] {
            var header = h
            header.flags = IKEHeader.responseFlag
            return [IKEDatagram(local: d.local, remote: d.remote, bytes: IKEMessage(header: header, payloads: payloads).encode())]
        }
        guard let nonce = m.payloads.lazy.compactMap({ if case .nonce(let n) = $0.body { n } else { nil } }).first,
              (16...256).contains(nonce.count),
              let offered = m.payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              let ke = m.payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first else {
            return answer([notify(IKENotify.invalidSyntax)])
        }
        // §2.6: above the threshold of half-open SAs, only a request with our cookie.
        let halfOpen = sessions.values.filter { !$0.isInitiator && $0.state == .initAnswered }.count
        if halfOpen >= settings.cookieThreshold {
            let expected = cookie(nonce: nonce, address: d.remote.address, spi: h.initiatorSPI)
            let given = notifyData(m.payloads, IKENotify.cookie)
            guard given == expected else {
                drop("IKE_SA_INIT without our cookie (\(settings.cookieThreshold)+ half-open IKE SAs): answered COOKIE", from: d.remote)
                return answer([notify(IKENotify.cookie, data: expected)])
            }
        }
        guard let policy = policies.first(where: { p in
            (p.peer == nil || p.peer == d.remote.address) && (p.local == nil || p.local == d.local.address)
        }) else {
            drop("IKE_SA_INIT from a peer no policy names: answered NO_PROPOSAL_CHOSEN", from: d.remote)
            return answer([notify(IKENotify.noProposalChosen)])
        }
        guard let chosen = IKEProposalSelection.select(offered: offered, acceptable: policy.ikeProposals), let suite = IKESuite(chosen) else {
            log("\(policy.name): \(d.remote): no acceptable IKE proposal")
            return answer([notify(IKENotify.noProposalChosen)])
        }
        guard ke.0 == suite.group.rawValue else {
            let g = suite.group.rawValue
            return answer([notify(IKENotify.invalidKEPayload, data: [UInt8(g >> 8), UInt8(g & 0xff)])])
        }
        let s = IKESession(policy: policy, isInitiator: false, initiatorSPI: h.initiatorSPI, responderSPI: freshSPI(),
                           local: d.local, remote: d.remote, now: now)
        s.nonceI = nonce
        s.nonceR = random(32)
        s.suite = suite
        s.initRequest = bytes
        let publicValue: [UInt8]
        do {
            let pair = try makeKeyPair(suite.group)
            publicValue = pair.publicValue
            s.keyPair = pair
            guard deriveKeys(s, peerPublic: ke.1) else { return answer([notify(IKENotify.invalidSyntax)]) }
        } catch {
            return []
        }
        checkNAT(s, m.payloads)
        var payloads = [IKEPayload(type: IKEPayloadType.sa, body: .sa([chosen])),
                        IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: suite.group.rawValue, data: publicValue)),
                        IKEPayload(type: IKEPayloadType.nonce, body: .nonce(s.nonceR))]
        payloads += natDetection(s)
        // RFC 7383 §2.3: announced only in answer to an initiator that announced it.
        s.peerFragmentation = settings.fragmentation && m.payloads.contains { isNotify($0, IKENotify.fragmentationSupported) }
        if s.peerFragmentation { payloads.append(notify(IKENotify.fragmentationSupported)) }
        s.peerHashes = announcedHashes(m.payloads)
        if policy.authentication.isSignature {
            payloads.append(signatureHashes)
            payloads += certificateRequest
        }
        s.initResponse = IKEMessage(header: s.header(exchange: IKEExchangeType.ikeSAInit, response: true, messageID: 0), payloads: payloads).encode()
        s.expectedRequestID = 1
        sessions[s.localSPI] = s
        log("\(policy.name): IKE_SA_INIT from \(d.remote) answered, IKE SA \(hex64(s.initiatorSPI)):\(hex64(s.responderSPI))")
        return [datagram(s, s.initResponse)]
    }

    func receiveInitResponse(_ s: IKESession, _ m: IKEMessage, _ bytes: [UInt8], _ d: IKEDatagram, now: Double) -> [IKEDatagram] {
        let name = s.policy.name
        if let cookie = notifyData(m.payloads, IKENotify.cookie), (1...64).contains(cookie.count), s.cookie == nil {
            s.cookie = cookie
            log("\(name): responder asks for a cookie: IKE_SA_INIT again")
            return [sendInitRequest(s, now: now)]
        }
        if let g = notifyData(m.payloads, IKENotify.invalidKEPayload), g.count == 2 {
            let wanted = UInt16(g[0]) << 8 | UInt16(g[1])
            let offered = s.policy.ikeProposals.flatMap(\.transforms).filter { $0.type == IKETransformID.dh }.map(\.id)
            guard let group = IKEGroup(rawValue: wanted), offered.contains(wanted), wanted != s.keyPair?.group.rawValue,
                  let pair = try? makeKeyPair(group) else {
                close(s, why: "responder wants group \(wanted), which this policy does not offer")
                return []
            }
            log("\(name): responder wants group \(wanted): IKE_SA_INIT again")
            s.keyPair = pair
            return [sendInitRequest(s, now: now)]
        }
        if let error = errorNotify(m.payloads) {
            close(s, why: "IKE_SA_INIT refused: \(notifyName(error))")
            return []
        }
        guard m.header.responderSPI != 0,
              let nonce = m.payloads.lazy.compactMap({ if case .nonce(let n) = $0.body { n } else { nil } }).first,
              (16...256).contains(nonce.count),
              let proposals = m.payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              proposals.count == 1, let suite = IKESuite(proposals[0]),
              IKEProposalSelection.select(offered: proposals, acceptable: s.policy.ikeProposals)?.transforms == proposals[0].transforms,
              let ke = m.payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first,
              ke.0 == suite.group.rawValue, ke.0 == s.keyPair?.group.rawValue else {
            close(s, why: "IKE_SA_INIT response is not one this policy offered")
            return []
        }
        s.pending = nil
        s.responderSPI = m.header.responderSPI
        s.nonceR = nonce
        s.suite = suite
        s.initResponse = bytes
        guard deriveKeys(s, peerPublic: ke.1) else {
            close(s, why: "key exchange failed")
            return []
        }
        checkNAT(s, m.payloads)
        s.peerFragmentation = settings.fragmentation && m.payloads.contains { isNotify($0, IKENotify.fragmentationSupported) }
        s.peerHashes = announcedHashes(m.payloads)
        if s.isNATed || s.policy.forceNATT {
            // §2.23: a NAT is in the way: IKE_AUTH and ESP go over 4500.
            s.local.port = 4500
            s.remote.port = 4500
        }
        return sendAuthRequest(s, now: now)
    }

    /// SKEYSEED and the SK_* keys (§2.14) from the key exchange.
    func deriveKeys(_ s: IKESession, peerPublic: [UInt8]) -> Bool {
        guard let suite = s.suite, let pair = s.keyPair, let secret = try? pair.sharedSecret(peer: peerPublic),
              let keys = IKESAKeys(prf: suite.prf, sharedSecret: secret, ni: s.nonceI, nr: s.nonceR,
                                   spii: s.initiatorSPI, spir: s.responderSPI,
                                   encryptionLength: suite.encryption.encryptionKeyLength,
                                   integrityLength: suite.encryption.integrityKeyLength) else { return false }
        s.protection = IKEProtection(encryption: suite.encryption, keys: keys, prf: suite.prf)
        s.keyPair = nil  // §2.12: never reused
        return true
    }

    // MARK: IKE_AUTH

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): the hashes we verify RFC 7427 signatures with.
    var signatureHashes: IKEPayload {
        notify(IKENotify.signatureHashAlgorithms, data: [IKEHash.sha256, .sha384, .sha512].flatMap { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xff)] })
    }

    func announcedHashes(_ payloads: [IKEPayload]) -> [IKEHash] {
        guard let data = notifyData(payloads, IKENotify.signatureHashAlgorithms) else { return [] }
        return stride(from: 0, to: data.count - 1, by: 2).compactMap { IKEHash(rawValue: UInt16(data[$0]) << 8 | UInt16(data[$0 + 1])) }
    }

    /// CERTREQ (§3.7) naming every CA we trust, or nothing when we trust none.
    var certificateRequest: [IKEPayload] {
        guard let request = credentials?.trust.certificateRequest, !request.isEmpty else { return [] }
        return [IKEPayload(type: IKEPayloadType.certreq, body: .certificate(encoding: 4, data: request))]
    }

    /// What we prove ourselves with: the ID, the CERT payloads (our certificate and its
    /// issuers from certs/), and AUTH (§2.15). nil when we cannot (logged).
    func proof(_ s: IKESession) -> (id: IKEIdentity, certificates: [IKEPayload], auth: IKEPayload)? {
        guard let p = s.protection else { return nil }
        let first = s.isInitiator ? s.initRequest : s.initResponse
        let peerNonce = s.isInitiator ? s.nonceR : s.nonceI
        func octets(_ id: IKEIdentity) -> [UInt8] {
            IKEPSKAuth.octets(firstMessage: first, peerNonce: peerNonce, prf: p.prf, skP: s.isInitiator ? p.keys.pi : p.keys.pr, idBody: id.body)
        }
        switch s.policy.authentication {
        case .psk(let secret):
            let id = s.policy.localID ?? IKEIdentity(address: s.local.address)
            return (id, [], IKEPayload(type: IKEPayloadType.auth, body: .authentication(method: IKEAuthMethod.sharedKey,
                                                                                         data: IKEPSKAuth.auth(prf: p.prf, secret: secret, octets: octets(id)))))
        case .signature(let method):
            let wanted = s.policy.localID.map { (type: $0.type, data: $0.data) }
            guard let credentials, let key = credentials.key, let certificate = credentials.certificate(proving: wanted) else {
                log("\(s.policy.name): no certificate with our private key proves \(s.policy.localID.map { "\($0)" } ?? "an identity") (\(credentials?.directory ?? "no credentials"))")
                return nil
            }
            // Without srcid the certificate's subject is the ID (as strongSwan's default).
            let id = s.policy.localID ?? IKEIdentity(type: IKEIDType.derDN, data: certificate.subjectDER)
            let auth: (method: UInt8, data: [UInt8])
            do {
                auth = try IKESignatureAuth.sign(octets(id), key: key, method: method, peerHashes: s.peerHashes)
            } catch {
                log("\(s.policy.name): cannot sign AUTH: \(error)")
                return nil
            }
            let certs = ([certificate] + credentials.chain(for: certificate)).map {
                IKEPayload(type: IKEPayloadType.cert, body: .certificate(encoding: 4, data: $0.der))
            }
            return (id, certs, IKEPayload(type: IKEPayloadType.auth, body: .authentication(method: auth.method, data: auth.data)))
        }
    }

    /// nil when the peer's AUTH payload proves `id` as the policy requires, else why not.
    func verifyAuth(_ s: IKESession, id: IKEIdentity, _ payloads: [IKEPayload]) -> String? {
        guard let p = s.protection else { return "no keys" }
        guard let auth = payloads.lazy.compactMap({ if case .authentication(let m, let data) = $0.body { (m, data) } else { nil } }).first else {
            return "no AUTH payload"
        }
        let first = s.isInitiator ? s.initResponse : s.initRequest
        let ourNonce = s.isInitiator ? s.nonceI : s.nonceR
        let octets = IKEPSKAuth.octets(firstMessage: first, peerNonce: ourNonce, prf: p.prf,
                                       skP: s.isInitiator ? p.keys.pr : p.keys.pi, idBody: id.body)
        switch s.policy.authentication {
        case .psk(let secret):
            guard auth.0 == IKEAuthMethod.sharedKey else { return "AUTH method \(auth.0), the policy wants a pre-shared key (2)" }
            let expected = IKEPSKAuth.auth(prf: p.prf, secret: secret, octets: octets)
            return expected.count == auth.1.count && zip(expected, auth.1).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 ? nil : "wrong pre-shared key"
        case .signature:
            // The policy's method is what we send; a peer may sign with any method its
            // key allows (the chain and the ID are what it proves).
            guard IKEAuthMethod.signatures.contains(auth.0) else { return "AUTH method \(auth.0), the policy wants a signature" }
            let certs = payloads.compactMap { payload -> [UInt8]? in
                if case .certificate(4, let der) = payload.body, payload.type == IKEPayloadType.cert { der } else { nil }
            }
            guard let trust = credentials?.trust else { return "no trusted CAs configured" }
            guard let der = certs.first, let certificate = IKECertificate(der: der) else {
                return certs.isEmpty ? "no certificate (CERT, X.509 signature) from the peer" : "the peer's certificate is not DER X.509"
            }
            if let why = trust.verify(certificate, intermediates: certs.dropFirst().compactMap(IKECertificate.init(der:))) {
                return "certificate \(certificate.subject): \(why)"
            }
            guard certificate.proves(type: id.type, data: id.data) else { return "certificate \(certificate.subject) does not name \(id)" }
            guard let key = certificate.publicKey else { return "certificate \(certificate.subject): no usable public key" }
            if let why = IKESignatureAuth.verify(octets, key: key, method: auth.0, data: auth.1) { return why }
            s.peerCertificate = certificate.subject
            return nil
        }
    }

    func sendAuthRequest(_ s: IKESession, now: Double) -> [IKEDatagram] {
        guard let (id, certificates, auth) = proof(s) else {
            close(s, why: "cannot authenticate ourselves")
            return []
        }
        var payloads = [IKEPayload(type: IKEPayloadType.idi, body: .identification(type: id.type, data: id.data))] + certificates
        if s.policy.authentication.isSignature { payloads += certificateRequest }
        if let peerID = s.policy.peerID {
            payloads.append(IKEPayload(type: IKEPayloadType.idr, body: .identification(type: peerID.type, data: peerID.data)))
        }
        payloads.append(auth)
        // §2.4: only when this is our only IKE SA with the peer (a make-before-break
        // reauthentication must not make the peer drop the old one first).
        if !sessions.values.contains(where: { $0 !== s && $0.remote.address == s.remote.address && $0.policy.name == s.policy.name }) {
            payloads.append(notify(IKENotify.initialContact))
        }
        do {
            let spi = try backend.allocateSPI(local: s.local.address, peer: s.remote.address)
            s.childInboundSPI = spi
            // No key exchange in IKE_AUTH (§1.2): a childsa group is for rekeys.
            s.childProposals = s.policy.childProposals.enumerated().map { i, p in
                IKEProposal(number: UInt8(truncatingIfNeeded: i + 1), protocolID: 3, spi: be32(spi), transforms: p.transforms.filter { $0.type != IKETransformID.dh })
            }
            if s.policy.mode == .transport { payloads.append(notify(IKENotify.useTransportMode)) }
            payloads.append(IKEPayload(type: IKEPayloadType.sa, body: .sa(s.childProposals)))
            payloads.append(IKEPayload(type: IKEPayloadType.tsi, body: .trafficSelectors(s.policy.localSelectors)))
            payloads.append(IKEPayload(type: IKEPayloadType.tsr, body: .trafficSelectors(s.policy.remoteSelectors)))
        } catch {
            log("\(s.policy.name): no SPI from encd (\(error)): IKE SA without a CHILD SA")
            return []
        }
        s.state = .authSent
        return sendRequest(s, exchange: IKEExchangeType.ikeAuth, payloads, kind: .ikeAuth, now: now)
    }

    func receiveAuthRequest(_ s: IKESession, _ header: IKEHeader, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        let name = s.policy.name
        guard let idi = payloads.lazy.compactMap({ if case .identification(let t, let data) = $0.body { IKEIdentity(type: t, data: data) } else { nil } }).first else {
            return respond(s, header, [notify(IKENotify.invalidSyntax)]) + closing(s, why: "IKE_AUTH without IDi")
        }
        let refusal = s.policy.peerID == nil || s.policy.peerID == idi ? verifyAuth(s, id: idi, payloads) : "the policy's dstid is \(s.policy.peerID!)"
        if let refusal {
            log("\(name): \(s.remote) failed to authenticate as \(idi): \(refusal)")
            return respond(s, header, [notify(IKENotify.authenticationFailed)]) + closing(s, why: "authentication failed")
        }
        s.peerID = idi
        if payloads.contains(where: { isNotify($0, IKENotify.initialContact) }) { forgetOtherSessions(of: s) }
        guard let (id, certificates, auth) = proof(s) else {
            return respond(s, header, [notify(IKENotify.authenticationFailed)]) + closing(s, why: "cannot authenticate ourselves")
        }
        established(s, now: now)
        log("\(name): IKE SA \(hex64(s.initiatorSPI)):\(hex64(s.responderSPI)) established with \(idi) at \(s.remote)"
            + (s.peerCertificate.map { " (certificate \($0))" } ?? ""))
        var answer = [IKEPayload(type: IKEPayloadType.idr, body: .identification(type: id.type, data: id.data))] + certificates + [auth]
        answer += childAsResponder(s, payloads)
        return respond(s, header, answer)
    }

    /// The CHILD SA part of a responder's IKE_AUTH answer: chosen, narrowed, installed.
    func childAsResponder(_ s: IKESession, _ payloads: [IKEPayload]) -> [IKEPayload] {
        guard let offered = payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first else { return [] }  // childless
        let transport = payloads.contains { isNotify($0, IKENotify.useTransportMode) }
        let choice: IKEChildChoice
        switch chooseChild(s, offered: offered, tsi: selectors(payloads, IKEPayloadType.tsi), tsr: selectors(payloads, IKEPayloadType.tsr),
                           transport: transport, keyExchange: false) {
        case .success(let c): choice = c
        case .failure(let refusal): return [notify(refusal.notify)]
        }
        let spi: UInt32
        do {
            spi = try backend.allocateSPI(local: s.local.address, peer: s.remote.address)
        } catch {
            log("\(choice.policy.name): no SPI from encd: \(error)")
            return [notify(IKENotify.temporaryFailure)]
        }
        guard let child = makeChild(s, suite: choice.suite, inboundSPI: spi, outboundSPI: u32(choice.proposal.spi),
                                    localTS: choice.localTS, remoteTS: choice.remoteTS, ni: s.nonceI, nr: s.nonceR, policy: choice.policy) else {
            return [notify(IKENotify.noProposalChosen)]
        }
        guard adopt(child, in: s, name: choice.policy.name) else { return [notify(IKENotify.temporaryFailure)] }
        var answer: [IKEPayload] = transport ? [notify(IKENotify.useTransportMode)] : []
        var mine = choice.proposal
        mine.spi = be32(spi)
        answer += [IKEPayload(type: IKEPayloadType.sa, body: .sa([mine])),
                   IKEPayload(type: IKEPayloadType.tsi, body: .trafficSelectors(choice.remoteTS)),
                   IKEPayload(type: IKEPayloadType.tsr, body: .trafficSelectors(choice.localTS))]
        return answer
    }

    /// The policies whose CHILD SAs this IKE SA may carry: its own, then every other
    /// one with the same peer, the same identity to prove and the same key (vendors
    /// negotiate one CHILD SA per subnet pair over one IKE SA).
    public func childPolicies(_ s: IKESession) -> [IKEPolicy] {
        [s.policy] + policies.filter { p in
            p.name != s.policy.name && p.authentication == s.policy.authentication
                && (p.peer == nil || p.peer == s.remote.address || p.peer == s.policy.peer)
                && (p.peerID == nil || p.peerID == s.peerID) && (p.local == nil || p.local == s.local.address)
        }
    }

    /// A responder's choice for a CHILD SA request: the first of `childPolicies` whose
    /// proposals, selectors (narrowed, §2.9) and mode accept it. `keyExchange`: whether
    /// the request may carry a KE (CREATE_CHILD_SA; never IKE_AUTH).
    func chooseChild(_ s: IKESession, offered: [IKEProposal], tsi: [IKETrafficSelector], tsr: [IKETrafficSelector],
                     transport: Bool, keyExchange: Bool) -> Result<IKEChildChoice, IKEChildRefusal> {
        var refusal = IKEChildRefusal(notify: IKENotify.noProposalChosen)
        for p in childPolicies(s) {
            let acceptable = keyExchange ? p.childProposals : p.childProposals.map { q in
                IKEProposal(number: q.number, protocolID: 3, spi: [], transforms: q.transforms.filter { $0.type != IKETransformID.dh })
            }
            guard let chosen = IKEProposalSelection.select(offered: offered, acceptable: acceptable), chosen.spi.count == 4,
                  let suite = IKEChildSuite(chosen), keyExchange || suite.group == nil, transport == (p.mode == .transport) else { continue }
            let remoteTS = IKETrafficSelectorNarrowing.narrow(proposed: tsi, configured: p.remoteSelectors)
            let localTS = IKETrafficSelectorNarrowing.narrow(proposed: tsr, configured: p.localSelectors)
            guard !remoteTS.isEmpty, !localTS.isEmpty else {
                refusal = IKEChildRefusal(notify: IKENotify.tsUnacceptable)
                continue
            }
            return .success(IKEChildChoice(policy: p, proposal: chosen, suite: suite, localTS: localTS, remoteTS: remoteTS))
        }
        log("\(s.policy.name): CHILD SA request refused: \(notifyName(refusal.notify)) (no policy with this peer accepts its proposals, mode and traffic)")
        return .failure(refusal)
    }

    func receiveAuthResponse(_ s: IKESession, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        let name = s.policy.name
        if let error = errorNotify(payloads), error == IKENotify.authenticationFailed || !payloads.contains(where: { $0.type == IKEPayloadType.auth }) {
            close(s, why: "IKE_AUTH refused: \(notifyName(error))")
            return []
        }
        guard let idr = payloads.lazy.compactMap({ if case .identification(let t, let data) = $0.body { IKEIdentity(type: t, data: data) } else { nil } }).first else {
            close(s, why: "responder sent no IDr")
            return []
        }
        if let refusal = s.policy.peerID == nil || s.policy.peerID == idr ? verifyAuth(s, id: idr, payloads) : "the policy's dstid is \(s.policy.peerID!)" {
            close(s, why: "responder failed to authenticate as \(idr): \(refusal)")
            return []
        }
        s.peerID = idr
        established(s, now: now)
        log("\(name): IKE SA \(hex64(s.initiatorSPI)):\(hex64(s.responderSPI)) established with \(idr) at \(s.remote)"
            + (s.peerCertificate.map { " (certificate \($0))" } ?? ""))
        if let error = errorNotify(payloads) {
            log("\(name): CHILD SA refused: \(notifyName(error)); the IKE SA stays")
            return []
        }
        guard let inbound = s.childInboundSPI,
              let proposals = payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              proposals.count == 1, proposals[0].spi.count == 4, let suite = IKEChildSuite(proposals[0]), suite.group == nil,
              IKEProposalSelection.select(offered: proposals, acceptable: s.childProposals)?.transforms == proposals[0].transforms else {
            log("\(name): CHILD SA answer is not one we offered")
            return []
        }
        let localTS = selectors(payloads, IKEPayloadType.tsi), remoteTS = selectors(payloads, IKEPayloadType.tsr)
        // The responder may only narrow (§2.9).
        guard !localTS.isEmpty, !remoteTS.isEmpty,
              localTS.allSatisfy({ t in s.policy.localSelectors.contains { $0.contains(t) } }),
              remoteTS.allSatisfy({ t in s.policy.remoteSelectors.contains { $0.contains(t) } }),
              payloads.contains(where: { isNotify($0, IKENotify.useTransportMode) }) == (s.policy.mode == .transport) else {
            log("\(name): CHILD SA answer widens the traffic or changes the mode")
            return []
        }
        guard let child = makeChild(s, suite: suite, inboundSPI: inbound, outboundSPI: u32(proposals[0].spi), localTS: localTS, remoteTS: remoteTS,
                                    ni: s.nonceI, nr: s.nonceR) else { return [] }
        _ = adopt(child, in: s, name: name)
        return []
    }

    /// A CHILD SA's keys (§2.17: KEYMAT = prf+(SK_d, [g^ir new |] Ni | Nr), the
    /// exchange initiator-to-responder keys first). `initiator`: whether this side
    /// started the exchange that made it (IKE_AUTH: the original initiator). A rekey
    /// keeps the old pair's `binding`.
    func makeChild(_ s: IKESession, suite: IKEChildSuite, inboundSPI: UInt32, outboundSPI: UInt32,
                   localTS: [IKETrafficSelector], remoteTS: [IKETrafficSelector], ni: [UInt8], nr: [UInt8],
                   pfs: [UInt8]? = nil, initiator: Bool? = nil, binding: UInt32? = nil, policy: IKEPolicy? = nil) -> IKEChildSA? {
        let policy = policy ?? s.policy
        guard let p = s.protection,
              let keys = IKEChildKeys(prf: p.prf, skD: p.keys.d, ni: ni, nr: nr, pfsSecret: pfs,
                                      encryptionLength: suite.encryptionKeyLength, integrityLength: suite.integrityKeyLength) else { return nil }
        let (outE, outI, inE, inI) = initiator ?? s.isInitiator
            ? (keys.encryptionIR, keys.integrityIR, keys.encryptionRI, keys.integrityRI)
            : (keys.encryptionRI, keys.integrityRI, keys.encryptionIR, keys.integrityIR)
        let hard = policy.childLifetimeSeconds, hardBytes = policy.childLifetimeBytes
        let percent = UInt64(85 + (random(1).first ?? 0) % 11)
        let id: UInt32
        if let binding {
            id = binding
        } else {
            id = nextChild
            nextChild &+= 1
        }
        var child = IKEChildSA(child: id, policy: policy.name, mode: policy.mode, local: s.local.address, peer: s.remote.address,
                          inboundSPI: inboundSPI, outboundSPI: outboundSPI, suite: suite,
                          inboundEncryptionKey: inE, inboundIntegrityKey: suite.integrity == nil ? nil : inI,
                          outboundEncryptionKey: outE, outboundIntegrityKey: suite.integrity == nil ? nil : outI,
                          udpEncapsulation: s.isNATed || s.policy.forceNATT || policy.forceNATT ? (4500, s.remote.port == 500 ? 4500 : s.remote.port) : nil,
                          localSelectors: localTS, remoteSelectors: remoteTS,
                          hardSeconds: hard, softSeconds: max(1, hard * percent / 100), hardBytes: hardBytes, softBytes: max(1, hardBytes * percent / 100))
        child.installedAt = clock
        return child
    }

    // MARK: INFORMATIONAL

    func receiveInformational(_ s: IKESession, _ header: IKEHeader, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        var answer: [IKEPayload] = []
        for p in payloads {
            guard case .delete(let proto, let size, let spis) = p.body else { continue }
            if proto == 1 {
                log("\(s.policy.name): peer deleted the IKE SA")
                let out = respond(s, header, [])
                close(s, why: s.replacedBy == nil ? "deleted by the peer" : "rekeyed")
                return out
            }
            guard proto == 3, size == 4 else { continue }
            var ours: [[UInt8]] = []
            for spi in spis {
                guard let child = s.children.first(where: { $0.outboundSPI == u32(spi) }) else { continue }
                // A pair the peer replaced by a rekey we answered: the new outbound SA
                // first, then the old SAs (the binding's flows stay with the new pair).
                let rekeyed = s.children.contains { $0.child == child.child && $0.inboundSPI != child.inboundSPI }
                log("\(s.policy.name): peer deleted CHILD SA \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI))")
                removeChild(s, child, rekeyed: rekeyed)
                ours.append(be32(child.inboundSPI))
            }
            if !ours.isEmpty { answer.append(IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 3, spiSize: 4, spis: ours))) }
        }
        return respond(s, header, answer)
    }

    /// Takes a CHILD SA out of the session and encd: only its SAs when a rekeyed pair
    /// of its binding carries on, its flows too (back to the policy's) when not.
    func removeChild(_ s: IKESession, _ child: IKEChildSA, rekeyed: Bool) {
        s.children.removeAll { $0.inboundSPI == child.inboundSPI }
        // A pair that replaced this one and waited for it to go sends from now on.
        for d in s.deferredOutbound where d.old.inboundSPI == child.inboundSPI { installDeferred(s, d.new) }
        s.deferredOutbound.removeAll { $0.old.inboundSPI == child.inboundSPI || $0.new.inboundSPI == child.inboundSPI }
        let parts: IKEChildParts
        if rekeyed || s.children.contains(where: { $0.child == child.child }) {
            parts = .sas
        } else {
            parts = .all
        }
        do {
            try backend.remove(child, parts: parts)
        } catch {
            log("\(s.policy.name): removing CHILD SA \(hex32(child.inboundSPI)): \(error)")
        }
    }

    func installDeferred(_ s: IKESession, _ new: IKEChildSA) {
        do {
            try backend.install(new, parts: .outbound)
            log("\(s.policy.name): CHILD SA \(hex32(new.inboundSPI))/\(hex32(new.outboundSPI)) now carries outbound traffic")
        } catch {
            log("\(s.policy.name): encd refused the new outbound SA \(hex32(new.outboundSPI)): \(error)")
        }
    }

    /// Deletes the IKE SA with our SPI `spi` (INFORMATIONAL with DELETE, §1.4.1): its
    /// CHILD SAs leave encd at once, the IKE SA when the peer answers or gives up.
    public func delete(_ spi: UInt64, now: Double) -> [IKEDatagram] {
        guard let s = sessions[spi] else { return [] }
        guard s.state == .established else {
            close(s, why: "deleted before it was established")
            return []
        }
        removeChildren(s)
        s.state = .deleting
        s.pending = nil
        s.queued = []
        return sendRequest(s, exchange: IKEExchangeType.informational,
                           [IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 1, spiSize: 0, spis: []))], kind: .deleteIKE, now: now)
    }

    /// encd deleted an SA of a CHILD SA by itself (hard lifetime, flush): the CHILD SA is
    /// gone; the other SA of the pair is removed too. Returns the session it belonged to.
    @discardableResult
    public func childGone(spi: UInt32) -> IKESession? {
        for s in sessions.values {
            guard let i = s.children.firstIndex(where: { $0.inboundSPI == spi || $0.outboundSPI == spi }) else { continue }
            let child = s.children[i]
            removeChild(s, child, rekeyed: false)
            log("\(s.policy.name): CHILD SA \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)) gone from encd")
            return s
        }
        return nil
    }

    /// encd restarted and lost every SA (they live in its memory). An IKE SA's CHILD
    /// SAs go back in as they were when encd's state recorded their keys, so their
    /// sequence numbers continue (`reinstall`); otherwise (a lost state file, keys
    /// never used) each is deleted at the peer and negotiated anew: re-adding them to
    /// start again at 1 would repeat sequence numbers, and with AES-GCM nonces.
    public func encdLostSAs(now: Double) -> [IKEDatagram] {
        var out: [IKEDatagram] = []
        for s in sessions.values where s.state == .established && s.replacedBy == nil {
            let old = s.children
            guard !old.isEmpty else { continue }
            if s.deferredOutbound.isEmpty, reinstall(old.map { $0.remaining(at: now) }) {
                log("\(s.policy.name): encd lost its SAs: re-installed \(old.count) CHILD SAs, their sequence numbers continue")
                continue
            }
            s.children = []
            s.deferredOutbound = []
            s.queued.removeAll { if case .rekeyChild = $0.kind { true } else { false } }
            log("\(s.policy.name): encd lost its SAs: deleting \(old.count) CHILD SAs at the peer and negotiating new ones")
            out += sendRequest(s, exchange: IKEExchangeType.informational,
                               [IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 3, spiSize: 4, spis: old.map { be32($0.inboundSPI) }))],
                               kind: .liveness, now: now)
            out += newChild(s.localSPI, now: now)
        }
        return out
    }

    /// Installs a new CHILD SA whole (both SAs and its flows) and keeps it in `s`;
    /// false, logged, when encd refused it.
    func adopt(_ child: IKEChildSA, in s: IKESession, name: String) -> Bool {
        do {
            try backend.install(child, parts: .all)
        } catch {
            log("\(name): encd refused the CHILD SA: \(error)")
            return false
        }
        s.children.append(child)
        log("\(name): CHILD SA \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)) installed (\(child.suite.encryption))")
        return true
    }

    /// Re-installs `children` (each binding's flows with its first pair), all or none.
    private func reinstall(_ children: [IKEChildSA]) -> Bool {
        var done: [(IKEChildSA, IKEChildParts)] = []
        var bound: Set<UInt32> = []
        for c in children {
            let parts: IKEChildParts = bound.insert(c.child).inserted ? .all : .sas
            do {
                try backend.reinstall(c, parts: parts)
                done.append((c, parts))
            } catch {
                log("\(c.policy): CHILD SA \(hex32(c.inboundSPI))/\(hex32(c.outboundSPI)) not re-installed: \(error)")
                for (d, p) in done.reversed() { try? backend.remove(d, parts: p) }
                return false
            }
        }
        return true
    }

    /// The session holding the CHILD SA with SPI `spi` (either direction).
    public func session(ofChildSPI spi: UInt32) -> IKESession? {
        sessions.values.first { $0.children.contains { $0.inboundSPI == spi || $0.outboundSPI == spi } }
    }

    // MARK: time

    /// Retransmits what is due and gives up on what has waited too long.
    public func tick(now: Double) -> [IKEDatagram] {
        var out: [IKEDatagram] = []
        for s in Array(sessions.values) {
            if !s.isInitiator && s.state == .initAnswered && now - s.createdAt > settings.halfOpenTimeout {
                close(s, why: "half-open for \(Int(settings.halfOpenTimeout)) s")
                continue
            }
            out += timers(s, now: now)
            guard var p = s.pending, now >= p.nextAt else { continue }
            if p.retransmits >= settings.retransmitTries {
                close(s, why: "no answer from \(s.remote) after \(p.retransmits) retransmissions")
                continue
            }
            p.retransmits += 1
            p.nextAt = now + settings.retransmitTimeout * Double(1 << p.retransmits)
            s.pending = p
            out += p.datagrams
        }
        return out
    }

    /// An established IKE SA's own clocks: a rekey responder's outbound SA that waited
    /// 10 s for a DELETE that did not come, CHILD rekeys to try again, the IKE SA's rekey.
    func timers(_ s: IKESession, now: Double) -> [IKEDatagram] {
        guard s.state == .established, s.replacedBy == nil else { return [] }
        var out: [IKEDatagram] = []
        if s.natLocal && now - s.lastKeepalive >= settings.natKeepalive {
            // RFC 3948 §2.3: one 0xFF byte keeps the NAT's mapping of our port 4500.
            s.lastKeepalive = now
            out.append(IKEDatagram(local: s.local, remote: s.remote, bytes: [0xFF]))
        }
        for (i, d) in s.deferredOutbound.enumerated().reversed() where now - d.since >= 10 {
            s.deferredOutbound.remove(at: i)
            installDeferred(s, d.new)
        }
        for (i, r) in s.rekeyRetries.enumerated().reversed() where now >= r.at {
            s.rekeyRetries.remove(at: i)
            out += rekeyChild(spi: r.spi, now: now)
        }
        if let at = s.rekeyAt, now >= at {
            s.rekeyAt = nil
            out += rekeyIKE(s.localSPI, now: now)
        }
        return out
    }

    /// IKE_AUTH done: the IKE SA is up; it rekeys at a random 85-95 % of its lifetime.
    func established(_ s: IKESession, now: Double) {
        s.state = .established
        s.establishedAt = now
        s.lastHeard = now
        let percent = Double(85 + Int(random(1).first ?? 0) % 11) / 100
        s.rekeyAt = now + Double(s.policy.ikeLifetimeSeconds) * percent
    }

    // MARK: closing

    func removeChildren(_ s: IKESession) {
        let deferred = Set(s.deferredOutbound.map(\.new.inboundSPI))
        var done = Set<UInt32>()
        for child in s.children {
            // The binding's flows go with its last pair; a deferred pair has no outbound SA yet.
            let last = !s.children.contains { $0.child == child.child && $0.inboundSPI != child.inboundSPI && !done.contains($0.inboundSPI) }
            var parts: IKEChildParts = deferred.contains(child.inboundSPI) ? .inbound : .sas
            if last { parts.insert(.flows) }
            done.insert(child.inboundSPI)
            do {
                try backend.remove(child, parts: parts)
            } catch {
                log("\(s.policy.name): removing CHILD SA \(hex32(child.inboundSPI)): \(error)")
            }
        }
        s.children = []
        s.deferredOutbound = []
    }

    func close(_ s: IKESession, why: String) {
        removeChildren(s)
        s.state = .closed
        s.pending = nil
        sessions[s.localSPI] = nil
        log("\(s.policy.name): IKE SA \(hex64(s.initiatorSPI)):\(hex64(s.responderSPI)) closed: \(why)")
    }

    func closing(_ s: IKESession, why: String) -> [IKEDatagram] {
        close(s, why: why)
        return []
    }

    /// INITIAL_CONTACT (§2.4): the peer has no other SAs with us; forget ours with it.
    func forgetOtherSessions(of s: IKESession) {
        for other in sessions.values where other !== s && other.policy.name == s.policy.name && other.peerID == s.peerID
            && other.remote.address == s.remote.address && other.state == .established {
            close(other, why: "the peer made initial contact again")
        }
    }

    // MARK: helpers

    /// Counts a dropped datagram by reason; logs the first of each reason and then one
    /// in every 1,000 (a flood must not flood the log).
    func drop(_ reason: String, from remote: IKEEndpoint) {
        let n = (dropped[reason] ?? 0) &+ 1
        dropped[reason] = n
        if n == 1 || n % 1000 == 0 { log("\(remote): \(reason): dropped (\(n) so far)") }
    }

    /// An unprotected answer outside any IKE SA (INVALID_IKE_SPI, an unsupported
    /// critical payload): at most 10 a second, so encd-iked cannot be made to reflect a
    /// flood (§2.21.4 says such answers should be rate-limited).
    func answerOutsideSA(_ d: IKEDatagram, _ m: IKEMessage, now: Double) -> [IKEDatagram] {
        if now - unprotectedWindow.start >= 1 { unprotectedWindow = (now, 0) }
        guard unprotectedWindow.count < 10 else { return [] }
        unprotectedWindow.count += 1
        return [IKEDatagram(local: d.local, remote: d.remote, bytes: (d.local.port == 4500 ? [0, 0, 0, 0] : []) + m.encode())]
    }

    func freshSPI() -> UInt64 {
        while true {
            let b = random(8)
            let v = b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if v != 0 && sessions[v] == nil { return v }
        }
    }

    func natDetection(_ s: IKESession) -> [IKEPayload] {
        [notify(IKENotify.natDetectionSource, data: IKENATDetection.hash(spii: s.initiatorSPI, spir: s.responderSPI,
                                                                         address: s.local.address.bytes, port: s.local.port)),
         notify(IKENotify.natDetectionDestination, data: IKENATDetection.hash(spii: s.initiatorSPI, spir: s.responderSPI,
                                                                              address: s.remote.address.bytes, port: s.remote.port))]
    }

    /// NAT-D (§2.23) of the peer's IKE_SA_INIT message (whose SPIs are in its header,
    /// the responder's 0 in a request).
    func checkNAT(_ s: IKESession, _ payloads: [IKEPayload]) {
        let spir: UInt64 = s.isInitiator ? s.responderSPI : 0
        let sources = payloads.compactMap { p -> [UInt8]? in
            if case .notify(_, IKENotify.natDetectionSource, _, let data) = p.body { return data }
            return nil
        }
        guard !sources.isEmpty, let destination = notifyData(payloads, IKENotify.natDetectionDestination) else { return }
        let remote = IKENATDetection.hash(spii: s.initiatorSPI, spir: spir, address: s.remote.address.bytes, port: s.remote.port)
        let local = IKENATDetection.hash(spii: s.initiatorSPI, spir: spir, address: s.local.address.bytes, port: s.local.port)
        s.natRemote = !sources.contains(remote)
        s.natLocal = destination != local
        if s.isNATed { log("\(s.policy.name): NAT detected (\(s.natLocal ? "in front of us" : "in front of the peer"))") }
    }

    func cookie(nonce: [UInt8], address: IPAddress, spi: UInt64) -> [UInt8] {
        let prf = IKEPRF.hmacSHA256
        return [0, 0, 0, 1] + prf(cookieSecret, nonce + address.bytes + be64(spi))
    }

    func selectors(_ payloads: [IKEPayload], _ type: UInt8) -> [IKETrafficSelector] {
        payloads.first { $0.type == type }.flatMap { if case .trafficSelectors(let t) = $0.body { t } else { nil } } ?? []
    }
}

// MARK: payload helpers

func notify(_ type: UInt16, data: [UInt8] = []) -> IKEPayload {
    IKEPayload(type: IKEPayloadType.notify, body: .notify(protocolID: 0, type: type, spi: [], data: data))
}

func isNotify(_ p: IKEPayload, _ type: UInt16) -> Bool {
    if case .notify(_, let t, _, _) = p.body { return t == type }
    return false
}

func notifyData(_ payloads: [IKEPayload], _ type: UInt16) -> [UInt8]? {
    for p in payloads { if case .notify(_, let t, _, let data) = p.body, t == type { return data } }
    return nil
}

/// The first error notify (types below 16384, §3.10.1).
func errorNotify(_ payloads: [IKEPayload]) -> UInt16? {
    for p in payloads { if case .notify(_, let t, _, _) = p.body, t < 16384 { return t } }
    return nil
}

func notifyName(_ t: UInt16) -> String {
    switch t {
    case IKENotify.unsupportedCriticalPayload: return "UNSUPPORTED_CRITICAL_PAYLOAD"
    case IKENotify.invalidIKESPI: return "INVALID_IKE_SPI"
    case IKENotify.invalidSyntax: return "INVALID_SYNTAX"
    case IKENotify.noProposalChosen: return "NO_PROPOSAL_CHOSEN"
    case IKENotify.invalidKEPayload: return "INVALID_KE_PAYLOAD"
    case IKENotify.authenticationFailed: return "AUTHENTICATION_FAILED"
    case IKENotify.tsUnacceptable: return "TS_UNACCEPTABLE"
    case IKENotify.temporaryFailure: return "TEMPORARY_FAILURE"
    case IKENotify.noAdditionalSAs: return "NO_ADDITIONAL_SAS"
    case IKENotify.childSANotFound: return "CHILD_SA_NOT_FOUND"
    default: return "notify \(t)"
    }
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
func be64(_ v: UInt64) -> [UInt8] { be32(UInt32(v >> 32)) + be32(UInt32(truncatingIfNeeded: v)) }
func u32(_ b: [UInt8]) -> UInt32 { b.prefix(4).reduce(0) { $0 << 8 | UInt32($1) } }
/// SPIs as logs and ikectl print them: fixed-width lowercase hex.
public func hex64(_ v: UInt64) -> String { Hex.encode(be64(v)) }
public func hex32(_ v: UInt32) -> String { Hex.encode(be32(v)) }
