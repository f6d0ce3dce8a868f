// CREATE_CHILD_SA (RFC 7296 §1.3): new CHILD SAs, CHILD SA rekeys (REKEY_SA, optional
// PFS) and IKE SA rekeys (§1.3.2, §2.18), in both roles.
//
// CHILD rekey, initiator: the new pair is installed when the answer comes (its outbound
// SA takes over the binding at once: the responder already has the new inbound SA),
// then the old pair is deleted. Responder: the new inbound SA at once, the new outbound
// SA only when the initiator deletes the old pair (it may not have the new inbound SA
// before it reads our answer), or after 10 s. Both sides rekeying one pair at once
// (§2.8.1): of the two requests, the one with the higher nonce goes on and the other is
// answered TEMPORARY_FAILURE; both sides compare the same nonces, so one pair results
// in one round (the RFC's variant completes both and deletes the redundant pair).
//
// IKE rekey: the new IKE SA takes every CHILD SA over, and the side that started the
// rekey deletes the old one; message IDs start again at 0 (§2.18).

import Crypto
import EncCore
import IKECrypto

extension IKEEngine {
    // MARK: starting

    /// Rekeys the CHILD SA one of whose SAs has SPI `spi` (encd's soft lifetime).
    public func rekeyChild(spi: UInt32, now: Double) -> [IKEDatagram] {
        guard let s = session(ofChildSPI: spi), s.state == .established, s.replacedBy == nil,
              let old = s.children.first(where: { $0.inboundSPI == spi || $0.outboundSPI == spi }),
              !isRekeying(s, old) else { return [] }
        let policy = childPolicies(s).first { $0.name == old.policy } ?? s.policy
        guard let offer = childOffer(s, policy: policy, local: old.localSelectors, remote: old.remoteSelectors) else { return [] }
        var payloads = [IKEPayload(type: IKEPayloadType.notify, body: .notify(protocolID: 3, type: IKENotify.rekeySA, spi: be32(old.inboundSPI), data: []))]
        payloads += childPayloads(s, offer)
        log("\(s.policy.name): rekeying CHILD SA \(hex32(old.inboundSPI))/\(hex32(old.outboundSPI))")
        return sendRequest(s, exchange: IKEExchangeType.createChildSA, payloads, kind: .rekeyChild(old: old, offer: offer), now: now)
    }

    /// A new CHILD SA in an established IKE SA, for `policy` (default: the IKE SA's
    /// own; another one with the same peer, identity and key may share it): an acquire
    /// after its CHILD SA went, or for another subnet pair of the same peer.
    /// `packet`: the addresses that triggered it, offered first (§2.9).
    public func newChild(_ spi: UInt64, policy name: String? = nil, packet: (source: IPAddress, destination: IPAddress)? = nil,
                         now: Double) -> [IKEDatagram] {
        guard let s = sessions[spi], s.state == .established, s.replacedBy == nil,
              let policy = childPolicies(s).first(where: { $0.name == (name ?? s.policy.name) }) else { return [] }
        let asking = (s.pending.map { [$0.kind] } ?? []) + s.queued.map(\.kind)
        if asking.contains(where: { if case .newChild(let o) = $0 { o.policy.name == policy.name } else { false } }) { return [] }
        var local = policy.localSelectors, remote = policy.remoteSelectors
        if let packet {
            local.insert(IKETrafficSelector(prefix: IPPrefix(host: packet.source)), at: 0)
            remote.insert(IKETrafficSelector(prefix: IPPrefix(host: packet.destination)), at: 0)
        }
        guard let offer = childOffer(s, policy: policy, local: local, remote: remote) else { return [] }
        log("\(policy.name): asking for a new CHILD SA\(policy.name == s.policy.name ? "" : " over the IKE SA of \(s.policy.name)")")
        return sendRequest(s, exchange: IKEExchangeType.createChildSA, childPayloads(s, offer), kind: .newChild(offer), now: now)
    }

    /// Rekeys the IKE SA with our SPI `spi`.
    public func rekeyIKE(_ spi: UInt64, now: Double) -> [IKEDatagram] {
        guard let s = sessions[spi], s.state == .established, s.replacedBy == nil, !isRekeyingIKE(s),
              let first = s.policy.ikeProposals.first, let suite = IKESuite(first), let pair = try? makeKeyPair(suite.group) else { return [] }
        let newSPI = freshSPI()
        let proposals = s.policy.ikeProposals.enumerated().map { i, p in
            IKEProposal(number: UInt8(truncatingIfNeeded: i + 1), protocolID: 1, spi: be64(newSPI), transforms: p.transforms)
        }
        let nonce = random(32)
        let payloads = [IKEPayload(type: IKEPayloadType.sa, body: .sa(proposals)), IKEPayload(type: IKEPayloadType.nonce, body: .nonce(nonce)),
                        IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: pair.group.rawValue, data: pair.publicValue))]
        log("\(s.policy.name): rekeying IKE SA \(hex64(s.initiatorSPI)):\(hex64(s.responderSPI))")
        return sendRequest(s, exchange: IKEExchangeType.createChildSA, payloads,
                           kind: .rekeyIKE(spi: newSPI, nonce: nonce, keyPair: pair, proposals: proposals), now: now)
    }

    /// An empty INFORMATIONAL request (§2.4): the peer must answer or, after the
    /// retransmissions, the IKE SA and its CHILD SAs go.
    public func checkLiveness(_ spi: UInt64, now: Double) -> [IKEDatagram] {
        guard let s = sessions[spi], s.state == .established, s.pending == nil, s.queued.isEmpty else { return [] }
        return sendRequest(s, exchange: IKEExchangeType.informational, [], kind: .liveness, now: now)
    }

    /// A request of `exchange` whose SK payload holds `inner` as it is (any bytes, the
    /// first payload typed `first`), sealed with this IKE SA's keys: how FuzzIKEEngine
    /// reaches the exchanges behind the SK payload. Its answer is read and dropped.
    public func rawRequest(_ spi: UInt64, exchange: UInt8, first: UInt8, inner: [UInt8], now: Double) -> [IKEDatagram] {
        guard let s = sessions[spi], s.state == .established, s.pending == nil, let p = s.protection,
              let bytes = p.seal(s.header(exchange: exchange, response: false, messageID: s.nextRequestID), first: first,
                                 inner: inner, iv: random(p.ivLength)) else { return [] }
        let id = s.nextRequestID
        s.nextRequestID &+= 1
        return [request(s, messageID: id, bytes: bytes, kind: .liveness, now: now)]
    }

    /// Deletes one CHILD SA (INFORMATIONAL DELETE, §1.4.1); it leaves encd when the
    /// peer answers. `spi`: either of its SAs.
    public func deleteChild(spi: UInt32, now: Double) -> [IKEDatagram] {
        guard let s = session(ofChildSPI: spi), s.state == .established,
              let c = s.children.first(where: { $0.inboundSPI == spi || $0.outboundSPI == spi }) else { return [] }
        log("\(s.policy.name): deleting CHILD SA \(hex32(c.inboundSPI))/\(hex32(c.outboundSPI))")
        return sendRequest(s, exchange: IKEExchangeType.informational,
                           [IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 3, spiSize: 4, spis: [be32(c.inboundSPI)]))],
                           kind: .deleteChild(c, rekeyed: false), now: now)
    }

    func isRekeying(_ s: IKESession, _ c: IKEChildSA) -> Bool {
        let kinds = (s.pending.map { [$0.kind] } ?? []) + s.queued.map(\.kind)
        return kinds.contains { if case .rekeyChild(let old, _) = $0 { old.inboundSPI == c.inboundSPI } else { false } }
    }

    /// The nonce of our CHILD rekey of `child` that the peer has seen (sent, unanswered).
    func rekeyInFlight(_ s: IKESession, child: IKEChildSA) -> [UInt8]? {
        guard let p = s.pending, case .rekeyChild(let old, let offer) = p.kind, old.inboundSPI == child.inboundSPI else { return nil }
        return offer.nonce
    }

    func isRekeyingIKE(_ s: IKESession) -> Bool {
        let kinds = (s.pending.map { [$0.kind] } ?? []) + s.queued.map(\.kind)
        return kinds.contains { if case .rekeyIKE = $0 { true } else { false } }
    }

    /// Our SPI, nonce, proposals (with the policy's DH group for PFS) and selectors.
    func childOffer(_ s: IKESession, policy: IKEPolicy, local: [IKETrafficSelector], remote: [IKETrafficSelector]) -> IKEChildOffer? {
        let spi: UInt32
        do {
            spi = try backend.allocateSPI(local: s.local.address, peer: s.remote.address)
        } catch {
            log("\(s.policy.name): no SPI from encd: \(error)")
            return nil
        }
        let proposals = policy.childProposals.enumerated().map { i, p in
            IKEProposal(number: UInt8(truncatingIfNeeded: i + 1), protocolID: 3, spi: be32(spi), transforms: p.transforms)
        }
        var pair: IKEKeyPair?
        if let dh = proposals.first?.transforms.first(where: { $0.type == IKETransformID.dh }), let g = IKEGroup(rawValue: dh.id) {
            pair = try? makeKeyPair(g)
            if pair == nil { return nil }
        }
        return IKEChildOffer(policy: policy, inboundSPI: spi, nonce: random(32), keyPair: pair, proposals: proposals, localSelectors: local, remoteSelectors: remote)
    }

    func childPayloads(_ s: IKESession, _ o: IKEChildOffer) -> [IKEPayload] {
        var p: [IKEPayload] = []
        if o.policy.mode == .transport { p.append(notify(IKENotify.useTransportMode)) }
        p.append(IKEPayload(type: IKEPayloadType.sa, body: .sa(o.proposals)))
        p.append(IKEPayload(type: IKEPayloadType.nonce, body: .nonce(o.nonce)))
        if let pair = o.keyPair { p.append(IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: pair.group.rawValue, data: pair.publicValue))) }
        // TSi is the exchange initiator's side: ours.
        p.append(IKEPayload(type: IKEPayloadType.tsi, body: .trafficSelectors(o.localSelectors)))
        p.append(IKEPayload(type: IKEPayloadType.tsr, body: .trafficSelectors(o.remoteSelectors)))
        return p
    }

    // MARK: responding

    func receiveCreateChild(_ s: IKESession, _ header: IKEHeader, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        guard let offered = payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              let nonce = payloads.lazy.compactMap({ if case .nonce(let n) = $0.body { n } else { nil } }).first,
              (16...256).contains(nonce.count) else {
            return respond(s, header, [notify(IKENotify.invalidSyntax)])
        }
        if offered.first?.protocolID == 1 { return receiveRekeyIKE(s, header, offered, nonce, payloads, now: now) }
        let ke = payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first
        var old: IKEChildSA?
        for p in payloads {
            guard case .notify(3, IKENotify.rekeySA, let spi, _) = p.body, spi.count == 4 else { continue }
            guard let c = s.children.first(where: { $0.outboundSPI == u32(spi) }) else {
                return respond(s, header, [IKEPayload(type: IKEPayloadType.notify, body: .notify(protocolID: 3, type: IKENotify.childSANotFound, spi: spi, data: []))])
            }
            old = c
        }
        if let old, let ours = rekeyInFlight(s, child: old) {
            // Both sides rekey this pair (§2.8.1): the request with the higher nonce goes
            // on. Both compare the same two nonces, so exactly one side refuses.
            if nonce.lexicographicallyPrecedes(ours) {
                log("\(s.policy.name): both sides rekey CHILD SA \(hex32(old.inboundSPI)): ours (higher nonce) goes on")
                return respond(s, header, [notify(IKENotify.temporaryFailure)])
            }
            log("\(s.policy.name): both sides rekey CHILD SA \(hex32(old.inboundSPI)): theirs (higher nonce) goes on")
        }
        if let old { s.queued.removeAll { if case .rekeyChild(let c, _) = $0.kind { c.inboundSPI == old.inboundSPI } else { false } } }
        let transport = payloads.contains { isNotify($0, IKENotify.useTransportMode) }
        let choice: IKEChildChoice
        switch chooseChild(s, offered: offered, tsi: selectors(payloads, IKEPayloadType.tsi), tsr: selectors(payloads, IKEPayloadType.tsr),
                           transport: transport, keyExchange: true) {
        case .success(let c): choice = c
        case .failure(let refusal): return respond(s, header, [notify(refusal.notify)])
        }
        if let old, old.policy != choice.policy.name {
            return respond(s, header, [notify(IKENotify.tsUnacceptable)])  // a rekey keeps its policy's traffic
        }
        let chosen = choice.proposal, suite = choice.suite, localTS = choice.localTS, remoteTS = choice.remoteTS
        var pfs: [UInt8]?
        var ourKE: IKEPayload?
        if let group = suite.group {
            guard let ke, ke.0 == group.rawValue else {
                return respond(s, header, [notify(IKENotify.invalidKEPayload, data: [UInt8(group.rawValue >> 8), UInt8(group.rawValue & 0xff)])])
            }
            guard let pair = try? makeKeyPair(group), let secret = try? pair.sharedSecret(peer: ke.1) else {
                return respond(s, header, [notify(IKENotify.invalidSyntax)])
            }
            pfs = secret
            ourKE = IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: group.rawValue, data: pair.publicValue))
        }
        let spi: UInt32
        do {
            spi = try backend.allocateSPI(local: s.local.address, peer: s.remote.address)
        } catch {
            return respond(s, header, [notify(IKENotify.temporaryFailure)])
        }
        let nr = random(32)
        guard let child = makeChild(s, suite: suite, inboundSPI: spi, outboundSPI: u32(chosen.spi), localTS: localTS, remoteTS: remoteTS,
                                    ni: nonce, nr: nr, pfs: pfs, initiator: false, binding: old?.child, policy: choice.policy) else {
            return respond(s, header, [notify(IKENotify.noProposalChosen)])
        }
        do {
            try backend.install(child, parts: old == nil ? .all : .inbound)
        } catch {
            log("\(s.policy.name): encd refused the CHILD SA: \(error)")
            return respond(s, header, [notify(IKENotify.temporaryFailure)])
        }
        s.children.append(child)
        if let old {
            s.deferredOutbound.append((old, child, now))
            log("\(s.policy.name): CHILD SA \(hex32(old.inboundSPI)) rekeyed by the peer: \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)) inbound now, outbound when the old pair is deleted")
        } else {
            log("\(s.policy.name): CHILD SA \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)) installed (\(suite.encryption))")
        }
        var mine = chosen
        mine.spi = be32(spi)
        var answer: [IKEPayload] = transport ? [notify(IKENotify.useTransportMode)] : []
        answer += [IKEPayload(type: IKEPayloadType.sa, body: .sa([mine])), IKEPayload(type: IKEPayloadType.nonce, body: .nonce(nr))]
        if let ourKE { answer.append(ourKE) }
        answer += [IKEPayload(type: IKEPayloadType.tsi, body: .trafficSelectors(remoteTS)),
                   IKEPayload(type: IKEPayloadType.tsr, body: .trafficSelectors(localTS))]
        return respond(s, header, answer)
    }

    func receiveRekeyIKE(_ s: IKESession, _ header: IKEHeader, _ offered: [IKEProposal], _ ni: [UInt8], _ payloads: [IKEPayload],
                         now: Double) -> [IKEDatagram] {
        if s.replacedBy != nil { return respond(s, header, [notify(IKENotify.temporaryFailure)]) }
        if let p = s.pending, case .rekeyIKE(_, let ours, _, _) = p.kind {
            if ni.lexicographicallyPrecedes(ours) {
                log("\(s.policy.name): both sides rekey the IKE SA: ours (higher nonce) goes on")
                return respond(s, header, [notify(IKENotify.temporaryFailure)])
            }
            log("\(s.policy.name): both sides rekey the IKE SA: theirs (higher nonce) goes on")
        }
        s.queued.removeAll { if case .rekeyIKE = $0.kind { true } else { false } }
        guard let chosen = IKEProposalSelection.select(offered: offered, acceptable: s.policy.ikeProposals), chosen.spi.count == 8,
              let suite = IKESuite(chosen), let old = s.protection else {
            return respond(s, header, [notify(IKENotify.noProposalChosen)])
        }
        guard let ke = payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first,
              ke.0 == suite.group.rawValue else {
            let g = suite.group.rawValue
            return respond(s, header, [notify(IKENotify.invalidKEPayload, data: [UInt8(g >> 8), UInt8(g & 0xff)])])
        }
        guard let pair = try? makeKeyPair(suite.group), let secret = try? pair.sharedSecret(peer: ke.1) else {
            return respond(s, header, [notify(IKENotify.invalidSyntax)])
        }
        let nr = random(32)
        let spii = chosen.spi.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }, spir = freshSPI()
        guard let keys = IKESAKeys(rekeying: old.prf, skD: old.keys.d, prf: suite.prf, sharedSecret: secret, ni: ni, nr: nr,
                                   spii: spii, spir: spir, encryptionLength: suite.encryption.encryptionKeyLength,
                                   integrityLength: suite.encryption.integrityKeyLength) else {
            return respond(s, header, [notify(IKENotify.invalidSyntax)])
        }
        let new = successor(of: s, isInitiator: false, spii: spii, spir: spir, suite: suite, keys: keys, ni: ni, nr: nr, now: now)
        var mine = chosen
        mine.spi = be64(spir)
        log("\(s.policy.name): IKE SA rekeyed by the peer: now \(hex64(new.initiatorSPI)):\(hex64(new.responderSPI))")
        return respond(s, header, [IKEPayload(type: IKEPayloadType.sa, body: .sa([mine])), IKEPayload(type: IKEPayloadType.nonce, body: .nonce(nr)),
                                   IKEPayload(type: IKEPayloadType.ke, body: .keyExchange(group: suite.group.rawValue, data: pair.publicValue))])
    }

    /// The IKE SA that replaces `s` after a rekey: same peer, policy and identity; the
    /// CHILD SAs move over; `s` only waits for its DELETE.
    func successor(of s: IKESession, isInitiator: Bool, spii: UInt64, spir: UInt64, suite: IKESuite, keys: IKESAKeys,
                   ni: [UInt8], nr: [UInt8], now: Double) -> IKESession {
        let new = IKESession(policy: s.policy, isInitiator: isInitiator, initiatorSPI: spii, responderSPI: spir,
                             local: s.local, remote: s.remote, now: now)
        new.suite = suite
        new.protection = IKEProtection(encryption: suite.encryption, keys: keys, prf: suite.prf)
        new.nonceI = ni
        new.nonceR = nr
        new.peerID = s.peerID
        new.peerCertificate = s.peerCertificate
        new.natLocal = s.natLocal
        new.natRemote = s.natRemote
        new.children = s.children
        new.deferredOutbound = s.deferredOutbound
        established(new, now: now)
        s.children = []
        s.deferredOutbound = []
        s.replacedBy = new.localSPI
        s.rekeyAt = nil
        sessions[new.localSPI] = new
        return new
    }

    // MARK: answers to our requests

    func receiveRekeyChildResponse(_ s: IKESession, old: IKEChildSA, offer: IKEChildOffer, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        if let error = errorNotify(payloads) {
            log("\(s.policy.name): rekey of CHILD SA \(hex32(old.inboundSPI)) refused: \(notifyName(error))")
            // §2.25: try again a little later, unless the peer's own rekey of this pair won
            // a collision (§2.8.1): a newer pair of the binding exists then.
            let superseded = s.children.contains { $0.child == old.child && $0.inboundSPI != old.inboundSPI }
            if error == IKENotify.temporaryFailure && !superseded {
                s.rekeyRetries.append((old.inboundSPI, now + 2 + Double((random(1).first ?? 0) % 8)))
            }
            return []
        }
        guard let child = childFromAnswer(s, offer: offer, payloads, binding: old.child) else { return [] }
        // The peer may have deleted the old pair while our rekey was in flight (§2.25):
        // its flows went back to the policy's, so the new pair brings them again.
        let oldGone = !s.children.contains { $0.inboundSPI == old.inboundSPI }
        let bound = s.children.contains { $0.child == old.child }
        do {
            try backend.install(child, parts: bound ? .sas : .all)
        } catch {
            log("\(s.policy.name): encd refused the rekeyed CHILD SA: \(error)")
            return []
        }
        s.children.append(child)
        if oldGone {
            log("\(s.policy.name): CHILD SA \(hex32(old.inboundSPI)) was deleted by the peer meanwhile; its rekey \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)) carries the traffic")
            return []
        }
        log("\(s.policy.name): CHILD SA \(hex32(old.inboundSPI)) rekeyed: now \(hex32(child.inboundSPI))/\(hex32(child.outboundSPI)); deleting the old pair")
        return sendRequest(s, exchange: IKEExchangeType.informational,
                           [IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 3, spiSize: 4, spis: [be32(old.inboundSPI)]))],
                           kind: .deleteChild(old, rekeyed: true), now: now)
    }

    func receiveNewChildResponse(_ s: IKESession, offer: IKEChildOffer, _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        if let error = errorNotify(payloads) {
            log("\(s.policy.name): new CHILD SA refused: \(notifyName(error))")
            return []
        }
        guard let child = childFromAnswer(s, offer: offer, payloads, binding: nil) else { return [] }
        _ = adopt(child, in: s, name: s.policy.name)
        return []
    }

    /// The CHILD SA a CREATE_CHILD_SA answer gives, checked against what we offered.
    func childFromAnswer(_ s: IKESession, offer: IKEChildOffer, _ payloads: [IKEPayload], binding: UInt32?) -> IKEChildSA? {
        let name = s.policy.name
        guard let proposals = payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              proposals.count == 1, proposals[0].spi.count == 4, let suite = IKEChildSuite(proposals[0]),
              IKEProposalSelection.select(offered: proposals, acceptable: offer.proposals)?.transforms == proposals[0].transforms,
              let nr = payloads.lazy.compactMap({ if case .nonce(let n) = $0.body { n } else { nil } }).first, (16...256).contains(nr.count) else {
            log("\(name): CREATE_CHILD_SA answer is not one we offered")
            return nil
        }
        var pfs: [UInt8]?
        if let group = suite.group {
            guard let pair = offer.keyPair, pair.group == group,
                  let ke = payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first,
                  ke.0 == group.rawValue, let secret = try? pair.sharedSecret(peer: ke.1) else {
                log("\(name): CREATE_CHILD_SA answer without the key exchange its proposal needs")
                return nil
            }
            pfs = secret
        }
        let localTS = selectors(payloads, IKEPayloadType.tsi), remoteTS = selectors(payloads, IKEPayloadType.tsr)
        guard !localTS.isEmpty, !remoteTS.isEmpty,
              localTS.allSatisfy({ t in offer.localSelectors.contains { $0.contains(t) } }),
              remoteTS.allSatisfy({ t in offer.remoteSelectors.contains { $0.contains(t) } }),
              payloads.contains(where: { isNotify($0, IKENotify.useTransportMode) }) == (offer.policy.mode == .transport) else {
            log("\(name): CREATE_CHILD_SA answer widens the traffic or changes the mode")
            return nil
        }
        return makeChild(s, suite: suite, inboundSPI: offer.inboundSPI, outboundSPI: u32(proposals[0].spi), localTS: localTS,
                         remoteTS: remoteTS, ni: offer.nonce, nr: nr, pfs: pfs, initiator: true, binding: binding, policy: offer.policy)
    }

    func receiveRekeyIKEResponse(_ s: IKESession, spi: UInt64, nonce: [UInt8], keyPair: IKEKeyPair, proposals: [IKEProposal],
                                 _ payloads: [IKEPayload], now: Double) -> [IKEDatagram] {
        if let error = errorNotify(payloads) {
            log("\(s.policy.name): IKE SA rekey refused: \(notifyName(error)); trying again later")
            s.rekeyAt = now + 2 + Double((random(1).first ?? 0) % 8)
            return []
        }
        guard let chosen = payloads.lazy.compactMap({ if case .sa(let p) = $0.body { p } else { nil } }).first,
              chosen.count == 1, chosen[0].spi.count == 8, let suite = IKESuite(chosen[0]),
              IKEProposalSelection.select(offered: chosen, acceptable: proposals)?.transforms == chosen[0].transforms,
              suite.group == keyPair.group, let old = s.protection,
              let nr = payloads.lazy.compactMap({ if case .nonce(let n) = $0.body { n } else { nil } }).first, (16...256).contains(nr.count),
              let ke = payloads.lazy.compactMap({ if case .keyExchange(let g, let data) = $0.body { (g, data) } else { nil } }).first,
              ke.0 == suite.group.rawValue, let secret = try? keyPair.sharedSecret(peer: ke.1) else {
            log("\(s.policy.name): IKE SA rekey answer is not one we offered")
            return []
        }
        let spir = chosen[0].spi.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard let keys = IKESAKeys(rekeying: old.prf, skD: old.keys.d, prf: suite.prf, sharedSecret: secret, ni: nonce, nr: nr,
                                   spii: spi, spir: spir, encryptionLength: suite.encryption.encryptionKeyLength,
                                   integrityLength: suite.encryption.integrityKeyLength) else { return [] }
        let new = successor(of: s, isInitiator: true, spii: spi, spir: spir, suite: suite, keys: keys, ni: nonce, nr: nr, now: now)
        log("\(s.policy.name): IKE SA rekeyed: now \(hex64(new.initiatorSPI)):\(hex64(new.responderSPI)); deleting the old one")
        s.state = .deleting
        s.queued = []
        return sendRequest(s, exchange: IKEExchangeType.informational,
                           [IKEPayload(type: IKEPayloadType.delete, body: .delete(protocolID: 1, spiSize: 0, spis: []))], kind: .deleteIKE, now: now)
    }
}
