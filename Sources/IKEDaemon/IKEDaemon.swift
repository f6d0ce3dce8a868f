// encd-iked's process: the engine between its UDP sockets, encd's control socket
// (getspi/add/remove, and a monitor stream of events) and ikectl's socket. One thread,
// one poll loop; the engine is pure and everything here is glue.
//
// Start: read iked.conf; remove what a previous encd-iked left in encd; install each
// policy's unbound `require` flows (its traffic is dropped until a CHILD SA exists:
// fail closed); initiate the active policies. Then: datagrams -> engine; every 250 ms
// engine.tick (retransmissions, give-ups, rekeys of the IKE SA); encd events:
// `acquire` starts a policy's IKE SA if it has none (or a CHILD SA if its IKE SA has
// none), an owned SA's soft expiry rekeys its CHILD SA (CREATE_CHILD_SA), an SA encd
// deleted by itself takes its CHILD SA with it. Every dpd_check_interval, IKE SAs whose
// CHILD SAs send but receive nothing are asked whether the peer is alive. SIGHUP reloads iked.conf (IKE SAs
// of policies that changed are deleted); SIGTERM deletes every IKE SA and removes what
// encd-iked added, then exits.

#if canImport(Glibc)
import Glibc
#endif
import Config
import Control
import EncCore
import Foundation
import IKE
import IKECrypto
import IKEConfig
import Crypto

public struct IKEDaemonOptions: Sendable {
    public var configPath = "/etc/encd/iked.conf"
    public var defines: [String: String] = [:]
    public var encdSocket = ControlProtocol.defaultSocket
    public var ikectlSocket = IkectlProtocol.defaultSocket
    public var verbose = false
    public var foreground = false
    public var checkOnly = false
    /// ca/, certs/, crls/ and private/local.key for certificate authentication.
    public var pkiDirectory = "/etc/encd/iked"
    public init() {}
}

public struct IKECredentialCheckError: Error, CustomStringConvertible {
    public var description: String
}

nonisolated(unsafe) var pendingSignal: Int32 = 0

public final class IKEDaemon {
    let options: IKEDaemonOptions
    var configuration: IkedConfiguration
    let backend: EncdControlBackend
    let engine: IKEEngine
    let sockets: UDPSockets
    var monitor: ControlClient?
    var listener: Int32 = -1
    var lastRetry: [String: Double] = [:]
    var lastLivenessCheck = 0.0
    /// encd's random instance name (status): another one means encd restarted.
    var encdInstance: String?
    let start = Date()

    public init(options: IKEDaemonOptions, configuration: IkedConfiguration) throws {
        self.options = options
        self.configuration = configuration
        let verbose = options.verbose
        func say(_ s: String) { Self.log(s) }
        backend = EncdControlBackend(socketPath: options.encdSocket, log: say)
        var settings = IKEEngineSettings()
        settings.fragmentation = configuration.settings.fragmentation
        engine = IKEEngine(policies: configuration.policies, backend: backend, settings: settings,
                           random: { KeyFingerprint.randomBytes($0) ?? [] },
                           log: { if verbose || !$0.contains("retransmit") { say($0) } })
        engine.credentials = try Self.credentials(for: configuration, directory: options.pkiDirectory)
        sockets = try UDPSockets()
        backend.policyFlows = { [unowned self] c in
            self.configuration.policies.first { $0.name == c.policy }.map(self.baseFlows(of:)) ?? []
        }
    }

    /// The credentials the configuration's certificate policies need, loaded from
    /// `directory` and checked: a private key, a certificate with it for each policy's
    /// srcid (of the key type an explicit method names), and at least one CA. nil when
    /// no policy uses certificates.
    public static func credentials(for configuration: IkedConfiguration, directory: String) throws -> IKECredentials? {
        let users = configuration.policies.filter { $0.authentication.isSignature }
        guard let first = users.first else { return nil }
        let c: IKECredentials
        do {
            c = try IKECredentials.load(directory: directory)
        } catch {
            throw IKECredentialCheckError(description: "\(error)")
        }
        guard c.key != nil else {
            throw IKECredentialCheckError(description: "\(directory)/private/local.key: missing; policy \"\(first.name)\" authenticates with a certificate")
        }
        guard !c.trust.authorities.isEmpty else {
            throw IKECredentialCheckError(description: "\(directory)/ca: no CA certificate, so no peer's certificate can be verified (policy \"\(first.name)\")")
        }
        for p in users {
            guard let cert = c.certificate(proving: p.localID.map { (type: $0.type, data: $0.data) }), let key = cert.publicKey else {
                throw IKECredentialCheckError(description: "\(directory)/certs: no certificate with the key of private/local.key"
                    + (p.localID.map { " names srcid \($0)" } ?? "") + " (policy \"\(p.name)\")")
            }
            if case .signature(let m?) = p.authentication, m != IKEAuthMethod.digitalSignature {
                let fits = m == IKEAuthMethod.rsaSignature ? { if case .rsa = key.kind { true } else { false } }() : key.kind.ecdsaMethod == m
                guard fits else {
                    throw IKECredentialCheckError(description: "policy \"\(p.name)\": its method (\([1: "rsa", 9: "ecdsa256", 10: "ecdsa384"][m] ?? "?")) cannot sign with the \(key.kind) key of \(cert.subject)")
                }
            }
        }
        return c
    }

    static func log(_ s: String) {
        FileHandle.standardError.write(("encd-iked: " + s + "\n").data(using: .utf8)!)
    }

    var now: Double { Date().timeIntervalSince(start) }

    /// The unbound require flows of every policy with a peer, and a bypass for IKE
    /// between the endpoints when the policy's selectors cover them (host-to-host).
    func baseFlows() -> [FlowEntry] { configuration.policies.flatMap(baseFlows(of:)) }

    func baseFlows(of p: IKEPolicy) -> [FlowEntry] {
        guard let peer = p.peer, let local = p.local ?? sourceAddress(to: peer) else { return [] }
        var out = EncdControlBackend.flows(local: local, peer: peer, localSelectors: p.localSelectors,
                                           remoteSelectors: p.remoteSelectors, type: "require", child: nil)
        let coversHosts = p.localSelectors.contains { $0.contains(IKETrafficSelector(prefix: IPPrefix(host: local))) }
            && p.remoteSelectors.contains { $0.contains(IKETrafficSelector(prefix: IPPrefix(host: peer))) }
        if coversHosts {
            for (dir, src, dst) in [("out", local, peer), ("in", peer, local)] {
                out.append(FlowEntry(direction: dir, upperProtocol: 17, source: src.description, sourcePort: 500,
                                     destination: dst.description, destinationPort: 500, type: "bypass"))
            }
        }
        return out
    }

    /// The address the kernel would send from to reach `peer` (a connected UDP socket).
    func sourceAddress(to peer: IPAddress) -> IPAddress? {
        let family = peer.family == .inet ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var ss = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok: Bool = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                if family == AF_INET {
                    var a = sockaddr_in()
                    a.sin_family = sa_family_t(AF_INET)
                    a.sin_port = UInt16(500).bigEndian
                    withUnsafeMutableBytes(of: &a.sin_addr) { peer.write(to: $0.baseAddress!) }
                    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else { return false }
                } else {
                    var a = sockaddr_in6()
                    a.sin6_family = sa_family_t(AF_INET6)
                    a.sin6_port = UInt16(500).bigEndian
                    withUnsafeMutableBytes(of: &a.sin6_addr) { peer.write(to: $0.baseAddress!) }
                    guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }) == 0 else { return false }
                }
                return getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { return nil }
        return withUnsafeBytes(of: &ss) { raw in
            family == AF_INET ? IPAddress(family: .inet, bytes: raw.baseAddress! + 4) : IPAddress(family: .inet6, bytes: raw.baseAddress! + 8)
        }
    }

    // MARK: running

    public func run() throws {
        try backend.start(flows: baseFlows())
        Self.log("\(configuration.policies.count) policies; require flows installed in encd")
        try openMonitor()
        try openListener()
        signal(SIGHUP) { pendingSignal = $0 }
        signal(SIGTERM) { pendingSignal = $0 }
        signal(SIGINT) { pendingSignal = $0 }
        signal(SIGPIPE, SIG_IGN)
        initiateActive(force: true)
        var lastTick = now
        while true {
            if pendingSignal != 0 {
                let sig = pendingSignal
                pendingSignal = 0
                if sig == SIGHUP { reload() } else { shutdown(); return }
            }
            var fds = sockets.sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if let m = monitor { fds.append(pollfd(fd: m.fd, events: Int16(POLLIN), revents: 0)) }
            if listener >= 0 { fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), 250)
            for p in fds where p.revents != 0 {
                if p.fd == listener {
                    serveIkectl()
                } else if let m = monitor, p.fd == m.fd {
                    readEvents()
                } else {
                    for d in sockets.drain(p.fd) { send(engine.receive(d, now: now)) }
                }
            }
            if now - lastTick >= 0.25 {
                lastTick = now
                send(engine.tick(now: now))
                initiateActive(force: false)
                checkLiveness()
                if monitor == nil { try? openMonitor() }
            }
        }
    }

    func send(_ out: [IKEDatagram]) {
        for d in out where !sockets.send(d) { Self.log("cannot send to \(d.remote): \(String(cString: strerror(errno)))") }
    }

    /// Active policies without a CHILD SA (re)initiate, at most every 10 s: a CHILD SA
    /// over an IKE SA with the same peer when there is one, else their own IKE SA.
    func initiateActive(force: Bool) {
        for p in configuration.policies where p.active {
            if !force, let last = lastRetry[p.name], now - last < 10 { continue }
            start(p, packet: nil, onlyIfIdle: true)
        }
    }

    /// Gets `p` a CHILD SA: in an established IKE SA that may carry it, else in a new
    /// IKE SA of its own (unless one is being set up). `onlyIfIdle`: nothing when an
    /// IKE SA of `p` exists at all (the active policies' loop; an acquire asks anyway).
    func start(_ p: IKEPolicy, packet: (IPAddress, IPAddress)?, onlyIfIdle: Bool) {
        let live = engine.sessions.values.filter { $0.replacedBy == nil && $0.state != .closed && $0.state != .deleting }
        if live.contains(where: { $0.children.contains { $0.policy == p.name } }) { return }
        if let s = live.first(where: { $0.state == .established && engine.childPolicies($0).contains { $0.name == p.name } }) {
            if onlyIfIdle && s.policy.name == p.name { return }
            lastRetry[p.name] = now
            send(engine.newChild(s.localSPI, policy: p.name, packet: packet.map { (source: $0.0, destination: $0.1) }, now: now))
        } else if !live.contains(where: { $0.policy.name == p.name }) {
            if let packet { Self.log("\(p.name): acquire for \(packet.0) -> \(packet.1)") }
            initiate(p)
        }
    }

    func initiate(_ p: IKEPolicy) {
        guard let peer = p.peer, let local = p.local ?? sourceAddress(to: peer) else {
            Self.log("\(p.name): no route to the peer")
            return
        }
        lastRetry[p.name] = now
        send(engine.initiate(p.name, from: IKEEndpoint(local, 500), now: now))
    }

    /// §2.4 as iked's ikev2_ike_sa_alive: every dpd_check_interval, an IKE SA whose
    /// CHILD SAs sent but received nothing in that time must answer an empty
    /// INFORMATIONAL, or it and its CHILD SAs go after the retransmissions.
    func checkLiveness() {
        let interval = Double(configuration.settings.dpdCheckInterval)
        guard interval > 0, now - lastLivenessCheck >= interval else { return }
        lastLivenessCheck = now
        let candidates = engine.sessions.values.filter { $0.state == .established && !$0.children.isEmpty && now - $0.lastHeard >= interval }
        guard !candidates.isEmpty, let shown = try? backend.call(Request(.show, what: "sa")) else { return }
        var idle: [UInt32: UInt64] = [:]
        for sa in shown.sas ?? [] where sa.owner == EncdControlBackend.owner { idle[sa.spi] = sa.idle }
        for s in candidates {
            let quietIn = s.children.allSatisfy { (idle[$0.inboundSPI] ?? .max) >= UInt64(interval) }
            let sending = s.children.contains { (idle[$0.outboundSPI] ?? .max) < UInt64(interval) }
            if quietIn && sending {
                Self.log("\(s.policy.name): traffic out but none in for \(Int(interval)) s: checking that \(s.remote) is alive")
                send(engine.checkLiveness(s.localSPI, now: now))
            }
        }
    }

    // MARK: encd's events

    func openMonitor() throws {
        let instance = try backend.call(Request(.status)).status?["instance"]
        let m = try ControlClient(path: options.encdSocket)
        try Framing.send(Request(.monitor), to: m.fd)
        monitor = m
        defer { encdInstance = instance }
        guard let before = encdInstance, before != instance else { return }
        // encd restarted: its SAs (and our flows) are gone. The flows first (fail
        // closed again), then every IKE SA's CHILD SAs: back as they were where encd's
        // state continues their sequence numbers, negotiated anew where it cannot.
        Self.log("encd restarted: installing the require flows again, then the CHILD SAs")
        do {
            try backend.start(flows: baseFlows())
        } catch {
            Self.log("encd refused the require flows: \(error)")
        }
        send(engine.encdLostSAs(now: now))
    }

    /// After encd dropped events (a slow reader): what encd no longer has, we forget.
    func resynchronise() {
        guard let shown = try? backend.call(Request(.show, what: "sa")) else { return }
        let present = Set((shown.sas ?? []).filter { $0.owner == EncdControlBackend.owner }.map(\.spi))
        for s in engine.sessions.values {
            for c in s.children where !present.contains(c.inboundSPI) || !present.contains(c.outboundSPI) {
                if !s.deferredOutboundSPIs.contains(c.outboundSPI) || !present.contains(c.inboundSPI) { engine.childGone(spi: c.inboundSPI) }
            }
        }
    }

    func readEvents() {
        guard let m = monitor else { return }
        guard let r = try? m.next() else {
            Self.log("encd closed the event stream; reconnecting")
            monitor = nil
            return
        }
        guard let e = r.event else { return }
        switch e.kind {
        case "acquire":
            guard let packet = e.packet, let src = IPAddress(packet.source), let dst = IPAddress(packet.destination) else { return }
            let s = IKETrafficSelector(prefix: IPPrefix(host: src)), d = IKETrafficSelector(prefix: IPPrefix(host: dst))
            guard let p = configuration.policies.first(where: { p in
                p.peer != nil && p.localSelectors.contains { $0.contains(s) } && p.remoteSelectors.contains { $0.contains(d) }
            }) else { return }
            start(p, packet: (src, dst), onlyIfIdle: false)
        case "sa-soft-expired":
            guard let sa = e.sa, sa.owner == EncdControlBackend.owner else { return }
            send(engine.rekeyChild(spi: sa.spi, now: now))
        case "sa-deleted", "sa-hard-expired":
            guard let sa = e.sa, sa.owner == EncdControlBackend.owner, e.reason != "remove" else { return }
            engine.childGone(spi: sa.spi)
        case "events-dropped":
            Self.log("encd dropped events: resynchronising from show")
            resynchronise()
        default: break
        }
    }

    // MARK: reload and shutdown

    func reload() {
        let fresh: IkedConfiguration
        do {
            fresh = try IkedConfParser.load(path: options.configPath, defines: options.defines)
        } catch {
            Self.log("reload of \(options.configPath) failed, the running policies stay:\n\(error)")
            return
        }
        let credentials: IKECredentials?
        do {
            credentials = try Self.credentials(for: fresh, directory: options.pkiDirectory)
        } catch {
            Self.log("reload of \(options.configPath) failed, the running policies stay:\n\(error)")
            return
        }
        engine.credentials = credentials
        // IKE SAs of policies that are gone or changed go (DELETE); the rest stay.
        let keep = Set(fresh.policies.filter { p in configuration.policies.contains { $0 == p } }.map(\.name))
        for s in Array(engine.sessions.values) where !keep.contains(s.policy.name) { send(engine.delete(s.localSPI, now: now)) }
        let survivors = engine.sessions.values.filter { keep.contains($0.policy.name) }
        configuration = fresh
        engine.replacePolicies(fresh.policies)
        do {
            try backend.sync(flows: baseFlows())
        } catch {
            Self.log("reload: encd refused the new flows: \(error)")
        }
        Self.log("reloaded \(options.configPath): \(fresh.policies.count) policies, \(survivors.count) IKE SAs kept")
    }

    func shutdown() {
        Self.log("shutting down: deleting \(engine.sessions.count) IKE SAs")
        for s in Array(engine.sessions.values) { send(engine.delete(s.localSPI, now: now)) }
        // The flows stay as unbound require flows: traffic stays dropped, never clear.
        if listener >= 0 { close(listener); unlink(options.ikectlSocket) }
    }

    // MARK: ikectl

    func openListener() throws {
        let dir = Files.directory(of: options.ikectlSocket)
        if dir != "." && dir != "/" { mkdir(dir, 0o700) }  // /run/encd-iked when not made by systemd
        unlink(options.ikectlSocket)
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(options.ikectlSocket.utf8)
        guard s >= 0, bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw IKESocketError(description: "ikectl socket \(options.ikectlSocket)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let old = umask(0o077)
        defer { umask(old) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0, listen(s, 8) == 0 else {
            close(s)
            throw IKESocketError(description: "ikectl socket \(options.ikectlSocket): \(String(cString: strerror(errno)))")
        }
        listener = s
    }

    func serveIkectl() {
        let c = accept(listener, nil, nil)
        guard c >= 0 else { return }
        defer { close(c) }
        guard let request = try? Framing.receive(IkectlRequest.self, from: c, within: 2) else { return }
        var response = IkectlResponse(ok: true)
        switch request.command {
        case "show":
            response.sas = engine.sessions.values.sorted { $0.createdAt < $1.createdAt }.map { IkectlSA($0, now: now) }
            response.dropped = engine.dropped
        case "reload":
            pendingSignal = SIGHUP
        default:
            response = IkectlResponse(ok: false, error: "unknown command \"\(request.command)\": expected show or reload")
        }
        try? Framing.send(response, to: c)
    }
}
