// ControlHandlers: one Request in, one Response out, for every command but `monitor`
// (ControlServer streams that one). Errors become `ok: false` replies with one line
// and, for configuration text, every "file:line:column: message"; nothing here throws
// past `respond` or leaves a change half made.

import Config
import Control
import Foundation
import IPsec

extension ControlPlane {
    public func respond(to r: Request) -> Response {
        do {
            switch r.command {
            case .status: return status()
            case .show: return try show(r)
            case .counters:
                var resp = Response()
                resp.counters = counters()
                return resp
            case .load, .delete:
                guard let text = r.config else { throw ControlFailure("\(r.command.rawValue) needs \"config\" (ipsec.conf text)") }
                let name = r.configName ?? "stdin"
                return done(r.command == .load ? try load(text: text, name: name) : try delete(text: text, name: name))
            case .flush:
                return done(try flush(r.what ?? "all"))
            case .tunable:
                if let name = r.name {
                    guard let value = r.value else { throw ControlFailure("tunable \(name): \"value\" missing") }
                    var resp = done(try setTunable(name, value))
                    resp.tunables = tunableValues()
                    return resp
                }
                var resp = Response()
                resp.tunables = tunableValues()
                return resp
            case .reload:
                switch reload() {
                case .success(let text): return done(text)
                case .failure(let f): throw f
                }
            case .monitor:
                throw ControlFailure("monitor is streamed by the server, not answered once")
            case .getspi:
                let proto = try KeyDaemonEntries.proto(r.proto, "getspi")
                let destination = try KeyDaemonEntries.address(r.destination, "getspi.destination")
                if let s = r.source { _ = try KeyDaemonEntries.address(s, "getspi.source") }
                var resp = Response()
                resp.spi = try getSPI(proto: proto, destination: destination)
                return resp
            case .add:
                let owner = try KeyDaemonEntries.owner(r.owner)
                let sas = try (r.sas ?? []).enumerated().map { try KeyDaemonEntries.sa($1, "sas[\($0)]", owner: owner) }
                let flows = try (r.flows ?? []).enumerated().map { try KeyDaemonEntries.flow($1, "flows[\($0)]", owner: owner) }
                guard !sas.isEmpty || !flows.isEmpty else { throw ControlFailure("add needs \"sas\" and/or \"flows\"") }
                var resp = done(try add(owner: owner, sas: sas, flows: flows, continueOnly: r.continueOnly == true))
                // The SAs as they start: an outbound `sequence` above 1 (an inbound one
                // above 0) says the state file continued numbers these keys used before
                // an encd restart; 1 (0) that they start afresh.
                let snap = box.value, now = clock.now, replay = tunables.replayWindow
                resp.sas = sas.compactMap { snap.sad.byKey[$0.key] }.map {
                    ControlStatus.sa($0, now: now, showKeys: false, defaultReplayWindow: replay)
                }
                return resp
            case .remove:
                let owner = try KeyDaemonEntries.owner(r.owner)
                let keys = try (r.sas ?? []).enumerated().map { try KeyDaemonEntries.key($1, "sas[\($0)]") }
                let flows = try (r.flows ?? []).enumerated().map {
                    FlowSelectorKey(try KeyDaemonEntries.flow($1, "flows[\($0)]", owner: owner))
                }
                guard !keys.isEmpty || !flows.isEmpty || r.child != nil else {
                    throw ControlFailure("remove needs \"sas\", \"flows\" and/or \"child\"")
                }
                return done(try remove(owner: owner, sas: keys, flows: flows, child: r.child))
            case .update:
                let owner = try KeyDaemonEntries.owner(r.owner)
                let keys = try (r.sas ?? []).enumerated().map { try KeyDaemonEntries.key($1, "sas[\($0)]") }
                guard !keys.isEmpty else { throw ControlFailure("update needs \"sas\"") }
                let peer = try r.peer.map { try KeyDaemonEntries.address($0, "update.peer") }
                guard peer != nil || r.peerPort != nil else { throw ControlFailure("update needs \"peer\" and/or \"peerPort\"") }
                if r.peerPort == 0 { throw ControlFailure("update.peerPort: port 0") }
                return done(try update(owner: owner, sas: keys, peer: peer, peerPort: r.peerPort))
            }
        } catch let f as ControlFailure {
            return .failure(f.message, errors: f.errors.isEmpty ? nil : f.errors)
        } catch {
            return .failure("\(error)")
        }
    }

    private func done(_ text: String) -> Response {
        var resp = Response()
        resp.status = ["result": text]
        return resp
    }

    func tunableValues() -> [String: Int] {
        let t = tunables
        var out: [String: Int] = [:]
        for info in Tunables.table { out[info.name] = t.value(info.name) }
        return out
    }

    private func show(_ r: Request) throws -> Response {
        let what = try Self.what(r.what)
        let snap = box.value
        let defaultReplay = tunables.replayWindow
        var resp = Response()
        if what != "sa" { resp.flows = snap.spd.flows.map(ControlStatus.flow) }
        if what != "flow" {
            let now = clock.now
            let active = lastActiveTimes()
            resp.sas = snap.sad.all.map {
                ControlStatus.sa($0, now: now, showKeys: r.showKeys == true, defaultReplayWindow: defaultReplay,
                                 lastActive: active[ObjectIdentifier($0)])
            }
        }
        return resp
    }

    private func status() -> Response {
        let snap = box.value
        var facts = facts()
        facts["pid"] = "\(getpid())"
        facts["uptime"] = "\(clock.now >= startedAt ? clock.now - startedAt : 0)"
        facts["flows"] = "\(snap.spd.flows.count)"
        facts["sas"] = "\(snap.sad.count)"
        facts["generation"] = "\(snap.generation)"
        facts["instance"] = instance
        facts["config"] = configFile
        facts["monitors"] = bus.hasSubscribers ? "yes" : "no"
        var resp = Response()
        resp.status = facts
        resp.queues = queueStatus()
        resp.tunables = tunableValues()
        return resp
    }
}
