// `flow [esp|ah] [in|out] [proto P] from SRC [port P] to DST [port P]
//       [local ADDR] [peer ADDR|any] [srcid ID] [dstid ID] [type TYPE]`
// with ipsecctl's semantics: no direction = an `out` flow plus its mirror; address lists
// expand to every source/destination pair of one family; the peer defaults to the
// remote host; deny and bypass flows carry no peer, local or ids.

import EncCore
import IPsec

/// The two ends of a rule (`from ... to ...` or `to ... from ...`).
struct RuleHosts {
    var sources: [PlacedPrefix]
    var sourcePort: (UInt16, Token)?
    var destinations: [PlacedPrefix]
    var destinationPort: (UInt16, Token)?
    var firstToken: Token
}

extension FileParser {
    mutating func parseFlow() throws {
        let flowToken = take()
        var proto = IPsecProtocol.esp
        if accept("esp") != nil { proto = .esp } else if accept("ah") != nil { proto = .ah }
        else if peek().isKeyword("ipcomp") || peek().isKeyword("ipip") {
            throw fail(peek(), "\(peek().word!) flows are not supported: encd does esp and ah only")
        }
        var direction: FlowDirection? = nil
        if accept("in") != nil { direction = .inbound } else if accept("out") != nil { direction = .outbound }

        var upper: UInt8? = nil
        if accept("proto") != nil { upper = try parseProtocol() }

        let hosts = try parseRuleHosts("flow", endpointsContext: "in flow rule")

        // Optional clauses, each at most once, in any order.
        var local: IPAddress? = nil
        var peer: IPAddress?? = nil  // .some(nil) = `peer any`
        var srcid: String? = nil, dstid: String? = nil
        var type: FlowType? = nil
        var seen = Set<String>()
        while !peek().isEndOfLine {
            let t = peek()
            guard case .word(let w, quoted: false) = t.kind,
                  ["local", "peer", "srcid", "dstid", "type"].contains(w) else {
                throw unexpected(t, expected: "\"local\", \"peer\", \"srcid\", \"dstid\", \"type\" or end of line",
                                 "in flow rule")
            }
            if !seen.insert(w).inserted { throw fail(t, "\(w) already given") }
            take()
            switch w {
            case "local":
                local = try parseSingleAddress("local", "after \"local\"").value
            case "peer":
                if accept("any") != nil { peer = .some(nil) }
                else { peer = .some(try parseSingleAddress("peer", "after \"peer\"").value) }
            case "srcid": srcid = try expectWord("an identity", "after \"srcid\"").0
            case "dstid": dstid = try expectWord("an identity", "after \"dstid\"").0
            default:
                let (name, nameToken) = try expectWord("a flow type", "after \"type\"")
                guard let ft = FlowType(rawValue: name) else {
                    throw unexpected(nameToken, expected: "a flow type (use, acquire, require, dontacq, deny, bypass)",
                                     "after \"type\"")
                }
                type = ft
            }
        }

        if let p = hosts.sourcePort ?? hosts.destinationPort, upper != 6 && upper != 17 {
            throw fail(p.1, "no protocol supplied with source/destination ports")
        }
        try checkFamilies(hosts)

        let flowType = type ?? .require
        let carriesPeer = flowType != .deny && flowType != .bypass
        var made = [FlowSpec]()
        for src in hosts.sources {
            for dst in hosts.destinations where src.prefix.family == dst.prefix.family {
                var f = FlowSpec(proto: proto, direction: direction ?? .outbound, upperProtocol: upper,
                                 source: src.prefix, sourcePort: hosts.sourcePort?.0,
                                 destination: dst.prefix, destinationPort: hosts.destinationPort?.0,
                                 type: flowType)
                if carriesPeer {
                    f.local = local
                    f.sourceID = srcid
                    f.destinationID = dstid
                    if let explicit = peer {
                        f.peer = explicit
                    } else {
                        let remote = f.direction == .inbound ? src : dst
                        guard remote.prefix.isHost else {
                            throw fail(remote.location, "no peer specified for destination \(dst.prefix)")
                        }
                        f.peer = remote.prefix.address
                    }
                }
                made.append(f)
                if direction == nil { made.append(f.mirrored) }
            }
        }
        if made.isEmpty { throw fail(flowToken, "rule expands to no valid combination") }
        session.flows += made
    }

    /// `proto NAME|NUMBER`
    mutating func parseProtocol() throws -> UInt8 {
        let (text, t) = try expectWord("a protocol name or number", "after \"proto\"")
        if let n = decimal(text) {
            guard (0...255).contains(n) else { throw fail(t, "protocol outside range") }
            return UInt8(n)
        }
        guard let n = ProtocolNames.number(text) else { throw fail(t, "unknown protocol: \(text)") }
        return n
    }

    /// `port NAME|NUMBER`; port 0 means any port, as in ipsecctl.
    mutating func parsePort() throws -> UInt16 {
        let (text, t) = try expectWord("a port name or number", "after \"port\"")
        if let n = decimal(text) {
            guard (0...65535).contains(n) else { throw fail(t, "port outside range") }
            return UInt16(n)
        }
        guard let p = ServiceNames.port(text) else { throw fail(t, "unknown port: \(text)") }
        return p
    }

    /// `from H [port P] to H [port P]` or `to H [port P] from H [port P]`.
    mutating func parseRuleHosts(_ rule: String, endpointsContext: String) throws -> RuleHosts {
        let first = peek()
        let sourceFirst: Bool
        if first.isKeyword("from") { sourceFirst = true }
        else if first.isKeyword("to") { sourceFirst = false }
        else { throw unexpected(first, expected: "\"from\" or \"to\"", endpointsContext) }
        take()
        let firstHosts = try parseHosts(sourceFirst ? "after \"from\"" : "after \"to\"")
        var firstPort: (UInt16, Token)? = nil
        if let pt = accept("port") { let p = try parsePort(); if p != 0 { firstPort = (p, pt) } }
        let second = sourceFirst ? "to" : "from"
        _ = try expectKeyword(second, sourceFirst ? "after source address" : "after destination address")
        let secondHosts = try parseHosts("after \"\(second)\"")
        var secondPort: (UInt16, Token)? = nil
        if let pt = accept("port") { let p = try parsePort(); if p != 0 { secondPort = (p, pt) } }
        if sourceFirst {
            return RuleHosts(sources: firstHosts, sourcePort: firstPort, destinations: secondHosts,
                             destinationPort: secondPort, firstToken: first)
        }
        return RuleHosts(sources: secondHosts, sourcePort: secondPort, destinations: firstHosts,
                         destinationPort: firstPort, firstToken: first)
    }

    /// ipsecctl's validate_af: some source family must have a destination of that family.
    func checkFamilies(_ hosts: RuleHosts) throws {
        let s = Set(hosts.sources.map(\.prefix.family)), d = Set(hosts.destinations.map(\.prefix.family))
        if s.isDisjoint(with: d) {
            throw fail(hosts.destinations[0].location, "source/destination address families do not match")
        }
    }
}
