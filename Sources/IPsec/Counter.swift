import Foundation

// Counters: one case per event or drop reason. The packet path bumps exactly one case
// per packet outcome; nothing else is incremented for it.
//
// OpenBSD's netstat groups (esp:, ah:, ipsec:) are views over these cases: each case
// names the OpenBSD field it adds to (`openBSDField`), so a drop that encd tells apart
// more finely than OpenBSD (illumos ipdrop-style reasons) still shows under OpenBSD's
// text, and `encstat -p enc` shows encd's finer reasons.

/// The netstat group a line belongs to.
public enum CounterGroup: String, Sendable, CaseIterable {
    case esp, ah, ipsec, enc
}

/// A line of OpenBSD's `netstat -s -p esp|ah|ipsec` output (usr.bin/netstat/inet.c),
/// in print order. `text` carries "%s" where the plural "s" goes.
public enum OpenBSDField: Sendable, Hashable, CaseIterable {
    case input, output, nopf, hdrops, pdrops, notdb, badkcr, badenc, badauth, noxform, qfull,
         wrap, replay, badilen, badauthl, invalid, toobig, crypto, outfail, udpencin, udpencout,
         udpinval, udpneeded, ibytes, obytes
    // ipsec: group only
    case idrops, odrops, exctdb

    /// The lines each group prints, in OpenBSD's order.
    public static func lines(_ group: CounterGroup) -> [OpenBSDField] {
        switch group {
        case .esp:
            return [.input, .output, .nopf, .hdrops, .pdrops, .notdb, .badkcr, .badenc, .badauth, .noxform,
                    .qfull, .wrap, .replay, .badilen, .invalid, .toobig, .crypto, .outfail, .udpencin,
                    .udpencout, .udpinval, .udpneeded, .ibytes, .obytes]
        case .ah:
            return [.input, .output, .nopf, .hdrops, .pdrops, .notdb, .badkcr, .badauth, .noxform, .qfull,
                    .wrap, .replay, .badauthl, .invalid, .toobig, .crypto, .ibytes, .obytes]
        case .ipsec:
            return [.input, .output, .ibytes, .obytes, .idrops, .odrops, .crypto, .noxform, .notdb, .exctdb]
        case .enc:
            return []
        }
    }

    /// The printf text with "%s" for the plural; AH's first two lines have none.
    public func text(in group: CounterGroup) -> String {
        switch (self, group) {
        case (.input, .esp): return "input ESP packet%s"
        case (.output, .esp): return "output ESP packet%s"
        case (.input, .ah): return "input AH packets"
        case (.output, .ah): return "output AH packets"
        case (.input, _): return "input IPsec packet%s"
        case (.output, _): return "output IPsec packet%s"
        case (.nopf, _): return "packet%s from unsupported protocol families"
        case (.hdrops, _): return "packet%s shorter than header shows"
        case (.pdrops, _): return "packet%s dropped due to policy"
        case (.notdb, _): return "packet%s for which no TDB was found"
        case (.badkcr, _): return "input packet%s that failed to be processed"
        case (.badenc, _): return "packet%s with bad encryption received"
        case (.badauth, _): return "packet%s that failed verification received"
        case (.noxform, _): return "packet%s for which no XFORM was set in TDB received"
        case (.qfull, _): return "packet%s were dropped due to full output queue"
        case (.wrap, _): return "packet%s where counter wrapping was detected"
        case (.replay, _): return "possibly replayed packet%s received"
        case (.badilen, _): return "packet%s with bad payload size or padding received"
        case (.badauthl, _): return "packet%s with bad authenticator length received"
        case (.invalid, _): return "packet%s attempted to use an invalid TDB"
        case (.toobig, _): return "packet%s got larger than max IP packet size"
        case (.crypto, _): return "packet%s that failed crypto processing"
        case (.outfail, _): return "output packet%s could not be sent"
        case (.udpencin, _): return "input UDP encapsulated ESP packet%s"
        case (.udpencout, _): return "output UDP encapsulated ESP packet%s"
        case (.udpinval, _): return "UDP packet%s for non-encapsulating TDB received"
        case (.udpneeded, _): return "raw ESP packet%s for encapsulating TDB received"
        case (.ibytes, _): return "input byte%s"
        case (.obytes, _): return "output byte%s"
        case (.idrops, _): return "packet%s dropped on input"
        case (.odrops, _): return "packet%s dropped on output"
        case (.exctdb, _): return "TDB%s with hardlimit excess"
        }
    }

    /// One formatted line: "\t12 input ESP packets" (no trailing newline).
    public func line(_ value: UInt64, in group: CounterGroup) -> String {
        let t = text(in: group)
        let plural = value == 1 ? "" : "s"
        return "\t\(value) " + t.replacingOccurrences(of: "%s", with: plural)
    }
}

/// Every event and drop reason encd counts. The raw value indexes a `CounterBlock`.
public enum Counter: Int, Sendable, CaseIterable {
    // ESP, input side
    case espInput, espInputBytes, espUDPEncapInput
    case espShort, espUnsupportedFamily, espNoSA, espInvalidSA, espNoTransform
    case espReplay, espReplayZero, espAuthFailed, espBadPadding, espBadNextHeader
    case espPolicyMismatch, espUDPForPlainSA, espRawForUDPSA, espInputCryptoFailed, espInputProcessing
    // ESP, output side
    case espOutput, espOutputBytes, espUDPEncapOutput
    case espSequenceWrap, espTooBig, espOutputCryptoFailed, espSendFailed, espQueueFull, espSequenceReserveFailed
    // AH, input side
    case ahInput, ahInputBytes
    case ahShort, ahUnsupportedFamily, ahNoSA, ahInvalidSA, ahNoTransform
    case ahReplay, ahReplayZero, ahAuthFailed, ahBadAuthLength, ahPolicyMismatch, ahInputProcessing
    // AH, output side
    case ahOutput, ahOutputBytes
    case ahSequenceWrap, ahTooBig, ahOutputCryptoFailed, ahSendFailed, ahQueueFull, ahSequenceReserveFailed
    // SA lifetimes
    case saSoftExpired, saHardExpired
    // encd's own reasons at [X], enc0 and the queues (no OpenBSD line)
    case denyFlowDropped, requireWithoutSA, dontacqWithoutSA, acquireRequested
    case inboundCleartextDropped
    case malformedPacket, queueOverflow, failClosed, keepaliveDropped
    case encInputPackets, encInputBytes, encOutputPackets, encOutputBytes
    // Turned off at run time (net.inet.esp.enable, net.inet.ah.enable, net.inet.esp.udpencap)
    case espDisabledInput, espDisabledOutput, ahDisabledInput, ahDisabledOutput
    case udpEncapDisabledInput, udpEncapDisabledOutput
    // The control socket: events a slow `encctl -m` client did not take in time
    case monitorEventsDropped
    // Durable state: an authenticated packet beyond what the state directory records
    // as accepted (the reserver behind, or the disk failing)
    case espReplayStatePending, ahReplayStatePending
    // The kernel side of the queues: verdicts that could not be sent, decrypted
    // packets enc0 would not take, and what the kernel's reverse-path filter dropped
    case verdictSendFailed, encWriteFull, rpFilterDropped
    // Decrypted TCP segments or UDP datagrams written into enc0 as part of one GSO frame (FrameCoalescing)
    case encInjectCoalesced

    /// The group encstat shows this case under.
    public var group: CounterGroup {
        switch self {
        case .espInput, .espInputBytes, .espUDPEncapInput, .espShort, .espUnsupportedFamily, .espNoSA,
             .espInvalidSA, .espNoTransform, .espReplay, .espReplayZero, .espAuthFailed,
             .espBadPadding, .espBadNextHeader, .espPolicyMismatch, .espUDPForPlainSA, .espRawForUDPSA,
             .espInputCryptoFailed, .espInputProcessing, .espOutput, .espOutputBytes, .espUDPEncapOutput,
             .espSequenceWrap, .espTooBig, .espOutputCryptoFailed, .espSendFailed, .espQueueFull,
             .espSequenceReserveFailed, .espDisabledInput, .espDisabledOutput, .udpEncapDisabledInput,
             .udpEncapDisabledOutput:
            return .esp
        case .ahInput, .ahInputBytes, .ahShort, .ahUnsupportedFamily, .ahNoSA, .ahInvalidSA, .ahNoTransform,
             .ahReplay, .ahReplayZero, .ahAuthFailed, .ahBadAuthLength, .ahPolicyMismatch, .ahInputProcessing,
             .ahOutput, .ahOutputBytes, .ahSequenceWrap, .ahTooBig, .ahOutputCryptoFailed, .ahSendFailed,
             .ahQueueFull, .ahSequenceReserveFailed, .ahDisabledInput, .ahDisabledOutput:
            return .ah
        case .saSoftExpired, .saHardExpired:
            return .ipsec
        default:
            return .enc
        }
    }

    /// The OpenBSD line this case adds to, nil for encd-only reasons.
    public var openBSDField: OpenBSDField? {
        switch self {
        case .espInput, .ahInput: return .input
        case .espOutput, .ahOutput: return .output
        case .espInputBytes, .ahInputBytes: return .ibytes
        case .espOutputBytes, .ahOutputBytes: return .obytes
        case .espUDPEncapInput: return .udpencin
        case .espUDPEncapOutput: return .udpencout
        case .espShort, .ahShort: return .hdrops
        case .espUnsupportedFamily, .ahUnsupportedFamily: return .nopf
        case .espNoSA, .ahNoSA: return .notdb
        case .espInvalidSA, .ahInvalidSA: return .invalid
        case .espNoTransform, .ahNoTransform: return .noxform
        case .espReplay, .espReplayZero, .ahReplay, .ahReplayZero: return .replay
        case .espAuthFailed, .ahAuthFailed: return .badauth
        case .ahBadAuthLength: return .badauthl
        case .espBadPadding, .espBadNextHeader: return .badilen
        case .espPolicyMismatch, .ahPolicyMismatch: return .pdrops
        // OpenBSD counts packets refused because the protocol is disabled as policy drops.
        case .espDisabledInput, .espDisabledOutput, .ahDisabledInput, .ahDisabledOutput,
             .udpEncapDisabledInput, .udpEncapDisabledOutput: return .pdrops
        case .espUDPForPlainSA: return .udpinval
        case .espRawForUDPSA: return .udpneeded
        case .espInputCryptoFailed, .espOutputCryptoFailed, .ahOutputCryptoFailed: return .crypto
        case .espInputProcessing, .ahInputProcessing: return .badkcr
        case .espSequenceWrap, .ahSequenceWrap, .espSequenceReserveFailed, .ahSequenceReserveFailed: return .wrap
        case .espTooBig, .ahTooBig: return .toobig
        case .espSendFailed, .ahSendFailed: return .outfail
        case .espQueueFull, .ahQueueFull: return .qfull
        case .saHardExpired: return .exctdb
        default: return nil
        }
    }

    /// Whether this case counts a dropped packet, and on which side (for ipsec: idrops/odrops).
    public var dropSide: FlowDirection? {
        switch self {
        case .espShort, .espUnsupportedFamily, .espNoSA, .espInvalidSA, .espNoTransform, .espReplay,
             .espReplayZero, .espAuthFailed, .espBadPadding, .espBadNextHeader,
             .espPolicyMismatch, .espUDPForPlainSA, .espRawForUDPSA, .espInputCryptoFailed, .espInputProcessing,
             .ahShort, .ahUnsupportedFamily, .ahNoSA, .ahInvalidSA, .ahNoTransform, .ahReplay, .ahReplayZero,
             .ahAuthFailed, .ahBadAuthLength, .ahPolicyMismatch, .ahInputProcessing,
             .keepaliveDropped, .espDisabledInput, .ahDisabledInput,
             .udpEncapDisabledInput, .inboundCleartextDropped, .espReplayStatePending, .ahReplayStatePending,
             .encWriteFull, .rpFilterDropped:
            return .inbound
        case .espSequenceWrap, .espTooBig, .espOutputCryptoFailed, .espSendFailed, .espQueueFull,
             .espSequenceReserveFailed, .ahSequenceWrap, .ahTooBig, .ahOutputCryptoFailed, .ahSendFailed,
             .ahQueueFull, .ahSequenceReserveFailed, .denyFlowDropped, .requireWithoutSA, .dontacqWithoutSA,
             .failClosed, .espDisabledOutput, .ahDisabledOutput, .udpEncapDisabledOutput:
            return .outbound
        case .malformedPacket, .queueOverflow, .verdictSendFailed:
            return .inbound
        default:
            return nil
        }
    }

    /// Stable name for JSON and Prometheus (snake_case of the case name).
    public var name: String {
        var out = ""
        for ch in String(describing: self) {
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
        return out.replacingOccurrences(of: "u_d_p", with: "udp")
                  .replacingOccurrences(of: "_s_a", with: "_sa")
                  .replacingOccurrences(of: "s_a_", with: "sa_")
    }

    /// What encstat -p enc prints for encd's own reasons, and the help text of the metric.
    public var encText: String {
        switch self {
        case .denyFlowDropped: return "packet%s dropped by a deny flow"
        case .requireWithoutSA: return "packet%s of a require flow dropped for want of an SA"
        case .dontacqWithoutSA: return "packet%s of a dontacq flow dropped for want of an SA"
        case .acquireRequested: return "SA acquire request%s"
        case .inboundCleartextDropped: return "cleartext packet%s dropped on input: a require flow covers them (judged by encd)"
        case .malformedPacket: return "malformed packet%s dropped"
        case .queueOverflow: return "packet%s lost to a full queue (counted by the kernel)"
        case .failClosed: return "packet%s dropped closed (no SA, or SA unusable)"
        case .keepaliveDropped: return "NAT-T keepalive%s dropped"
        case .encInputPackets: return "packet%s in on enc0"
        case .encInputBytes: return "byte%s in on enc0"
        case .encOutputPackets: return "packet%s out on enc0"
        case .encOutputBytes: return "byte%s out on enc0"
        case .saSoftExpired: return "SA%s past their soft lifetime"
        case .saHardExpired: return "SA%s past their hard lifetime"
        case .espDisabledInput: return "ESP packet%s dropped on input: ESP disabled (net.inet.esp.enable=0)"
        case .espDisabledOutput: return "packet%s not protected with ESP: ESP disabled (net.inet.esp.enable=0)"
        case .ahDisabledInput: return "AH packet%s dropped on input: AH disabled (net.inet.ah.enable=0)"
        case .ahDisabledOutput: return "packet%s not protected with AH: AH disabled (net.inet.ah.enable=0)"
        case .udpEncapDisabledInput: return "UDP encapsulated ESP packet%s dropped: NAT-T disabled (net.inet.esp.udpencap=0)"
        case .udpEncapDisabledOutput: return "packet%s of a udpencap SA not sent: NAT-T disabled (net.inet.esp.udpencap=0)"
        case .monitorEventsDropped: return "monitor event%s dropped for a slow client"
        case .espReplayStatePending: return "ESP packet%s dropped: not yet recorded as accepted in the state directory"
        case .ahReplayStatePending: return "AH packet%s dropped: not yet recorded as accepted in the state directory"
        case .verdictSendFailed: return "verdict%s the kernel did not take (sent again one by one)"
        case .encWriteFull: return "decrypted packet%s dropped: enc0 would not take them"
        case .encInjectCoalesced: return "decrypted packet%s written into enc0 merged with others of their flow"
        case .rpFilterDropped: return "packet%s dropped by the kernel's reverse-path filter (host-wide, IPReversePathFilter)"
        default:
            let f = openBSDField!
            return f.text(in: group)
        }
    }
}
