// EncDaemon: start-up, the running state, reload and clean stop.
//
// Start-up, in this order so that no step opens the host: read and check the
// configuration; refuse without CAP_NET_ADMIN or when another encd holds the lock;
// create enc0; bind the queues (before any rule feeds them); install the nftables
// table in one transaction (replacing whatever a crashed encd left); add the policy
// routes; start one worker per queue. Stop undoes it in reverse. A crash leaves the
// table in place: its queues have no reader and no fail-open flag, so protected
// traffic is dropped until encd starts again and replaces it.

import Config
import Foundation
import IPsec
import EncCore
import Kernel
import Synchronization

public final class EncDaemon: @unchecked Sendable {
    public let options: Options
    public let log: Log
    public let clock = CoarseClock(start: CoarseClock.monotonicSeconds())
    public private(set) var configuration: Configuration?
    private var builder: PolicyBuilder!
    private let box = SnapshotBox()
    private var context: StageContext!
    private var events: RateLimitedEvents!
    private var tun: TUNDevice?
    private var routing: Rtnetlink?
    private var nft: Nftables?
    private var workers: [Worker] = []
    private var lockFD: Int32 = -1
    private var installedRules: [MarkRule] = []
    private var rulesetConfig = EncdRulesetConfig()
    public static let routeTable: UInt32 = 0xe4c   // "enc"
    public static let rulePriority: UInt32 = 100

    public init(options: Options) {
        self.options = options
        self.log = Log(level: options.verbose >= 1 ? .debug : .info)
    }

    // MARK: Configuration

    /// Reads the configuration file; each error is logged with file:line:column.
    public func loadConfiguration() throws -> Configuration {
        do {
            let c = try ConfigParser.load(path: options.file, defines: options.defines)
            for w in c.warnings { log.warning("\(w)") }
            return c
        } catch let e as ConfigErrors {
            for err in e.errors { log.error("\(err)") }
            throw DaemonError("\(options.file): \(e.errors.count) error\(e.errors.count == 1 ? "" : "s"); nothing applied")
        }
    }

    /// The local addresses of this host (SA direction: an SA to one of these is inbound).
    static func localAddresses() -> Set<IPAddress> {
        var out = Set<IPAddress>()
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return out }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            if let sa = ifa.pointee.ifa_addr {
                if sa.pointee.sa_family == UInt16(AF_INET) {
                    sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                        var a = sin.pointee.sin_addr
                        out.insert(withUnsafeBytes(of: &a) { IPAddress(family: .inet, bytes: $0.baseAddress!) })
                    }
                } else if sa.pointee.sa_family == UInt16(AF_INET6) {
                    sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                        var a = sin6.pointee.sin6_addr
                        out.insert(withUnsafeBytes(of: &a) { IPAddress(family: .inet6, bytes: $0.baseAddress!) })
                    }
                }
            }
            p = ifa.pointee.ifa_next
        }
        return out
    }

    /// Builds a snapshot from `c` and swaps it in; on error nothing changes.
    func apply(_ c: Configuration) throws {
        let snap = try builder.build(flows: c.flows, sas: c.sas, localAddresses: Self.localAddresses(),
                                     previous: box.value, now: clock.now)
        if let nft {
            try installCandidates(nft, snap.spd.flows.filter { $0.direction == .outbound })
            let drops = snap.spd.inboundCleartextDrops
            try nft.replaceElements(of: NftAddressPairSet(EncdRuleset.requireSet4, family: .inet), table: rulesetConfig.table,
                                    pairs: drops.filter { $0.0.family == .inet })
            try nft.replaceElements(of: NftAddressPairSet(EncdRuleset.requireSet6, family: .inet6), table: rulesetConfig.table,
                                    pairs: drops.filter { $0.0.family == .inet6 })
        }
        box.replace(snap)
        configuration = c
        events?.setInterval(UInt64(max(0, c.tunables.policyLogInterval)))
        try updateMTU(snap)
    }

    /// The (source, destination) pairs [X] queues: every outbound flow's, less the
    /// pairs another pair covers (nft refuses overlapping intervals in one set). If
    /// the kernel still refuses the set, [X] falls back to queueing all traffic.
    private func installCandidates(_ nft: Nftables, _ flows: [FlowSpec]) throws {
        for (family, name) in [(AddressFamily.inet, EncdRuleset.flowSet4), (.inet6, EncdRuleset.flowSet6)] {
            let pairs = Self.candidatePairs(flows.filter { $0.source.family == family })
            let set = NftAddressPairSet(name, family: family)
            do {
                try nft.replaceElements(of: set, table: rulesetConfig.table, pairs: pairs)
            } catch {
                log.warning("nftables refused the \(name) set (\(error)); [X] queues all \(family) traffic instead")
                try nft.replaceElements(of: set, table: rulesetConfig.table, pairs: [(.any(family), .any(family))])
            }
        }
    }

    static func candidatePairs(_ flows: [FlowSpec]) -> [(IPPrefix, IPPrefix)] {
        func covers(_ a: (IPPrefix, IPPrefix), _ b: (IPPrefix, IPPrefix)) -> Bool {
            a.0.length <= b.0.length && a.0.contains(b.0.address) && a.1.length <= b.1.length && a.1.contains(b.1.address)
        }
        var out: [(IPPrefix, IPPrefix)] = []
        for f in flows {
            let p = (f.source, f.destination)
            if out.contains(where: { covers($0, p) }) { continue }
            out.removeAll { covers(p, $0) }
            out.append(p)
        }
        return out
    }

    /// enc0's address: RFC 7600's IPv4 dummy address. The kernel's reverse-path filter
    /// drops everything written into an interface that has no IPv4 address.
    public static let interfaceAddress = IPAddress("192.0.0.8")!

    // MARK: Start

    public func start() throws {
        try checkPrivileges()
        try takeLock()
        let c = try loadConfiguration()
        let store = try FileSequenceStore(path: try stateFile("sequences"))
        builder = PolicyBuilder(store: store, maxPolicy: rulesetConfig.marks.maxPolicy)
        events = RateLimitedEvents(log: log, clock: clock, interval: UInt64(max(0, c.tunables.policyLogInterval)))
        context = StageContext(marks: rulesetConfig.marks, snapshot: box, events: events, clock: clock)
        rulesetConfig.natTraversalPort = c.tunables.udpEncapPort

        let routing = try Rtnetlink()
        self.routing = routing
        let tun = try TUNDevice(name: rulesetConfig.interface, tap: true, multiQueue: false, nonBlocking: true)
        self.tun = tun
        try tun.configureEthernet(address: StageContext.interfaceMAC)
        try tun.setTransmitQueueLength(0)
        try routing.setLink(name: tun.name, up: true, mtu: 1400)
        try prepareInterface(routing, tun.name)
        try routing.addAddress(Self.interfaceAddress, prefixLength: 32, device: tun.name)
        context.encInterfaceIndex = try routing.interfaceIndex(of: tun.name)

        let sender = try RawSocketSender(mark: rulesetConfig.marks.bypass)
        let ctx = context!
        let spdQueue = try NFQueue(queueConfig(rulesetConfig.spdQueue))
        let outQueue = try NFQueue(queueConfig(rulesetConfig.outputQueue))
        let inQueue = try NFQueue(queueConfig(rulesetConfig.inputQueue))
        workers = [
            Worker(name: "spd", queue: spdQueue, log: log) { b, m, s in
                SPDStage.handle(b, meta: m, context: ctx, stats: s)
            },
            Worker(name: "ipsec-out", queue: outQueue, log: log) { b, m, s in
                OutputStage.handle(b, meta: m, sender: sender, context: ctx, stats: s)
            },
            Worker(name: "ipsec-in", queue: inQueue, log: log) { b, m, s in
                InputStage.handle(b, meta: m, device: tun, context: ctx, stats: s)
            },
        ]
        let nft = try Nftables(log: { [log] in log.debug($0) })
        self.nft = nft
        let backend = try nft.install(EncdRuleset.table(rulesetConfig))
        log.info("nftables: table inet \(rulesetConfig.table) installed, queues \(backend == .native ? "with nft's queue expression" : "with xt NFQUEUE through nft_compat (this kernel refuses nft's queue expression)")")
        try apply(c)
        for family in [AddressFamily.inet, .inet6] {
            let rule = MarkRule(family: family, value: rulesetConfig.marks.protect, mask: rulesetConfig.marks.protect,
                                table: Self.routeTable, priority: Self.rulePriority)
            try? routing.deleteRule(rule)
            try routing.addRule(rule)
            installedRules.append(rule)
            try routing.addDefaultRoute(family: family, table: Self.routeTable, device: tun.name)
        }
        for w in workers { w.start() }
        let snap = box.value
        log.info("started: \(snap.spd.flows.count) flows, \(snap.sad.count) SAs, interface \(tun.name), queues [X] \(rulesetConfig.spdQueue), ipsec-out \(rulesetConfig.outputQueue), ipsec-in \(rulesetConfig.inputQueue), NAT-T port \(rulesetConfig.natTraversalPort), mark mask 0x\(String(rulesetConfig.marks.mask, radix: 16)), route table \(Self.routeTable)")
    }

    private func queueConfig(_ n: UInt16) -> QueueConfig {
        var q = QueueConfig(number: n)
        q.failOpen = false
        return q
    }

    /// enc0 gets what the kernel needs to accept encd's writes: loose reverse-path
    /// filtering, no IPv6 autoconfiguration noise, and forwarding.
    private func prepareInterface(_ routing: Rtnetlink, _ name: String) throws {
        try routing.setLooseReversePathFilter(device: name)
        try? routing.setSysctl("net/ipv6/conf/\(name)/accept_ra", "0")
        try? routing.setSysctl("net/ipv6/conf/\(name)/addr_gen_mode", "1")
    }

    /// enc0's MTU: the smallest path MTU (1500 assumed) minus the largest overhead of
    /// the outbound SAs, so senders learn the size through ICMP instead of losing packets.
    private func updateMTU(_ snap: PolicySnapshot) throws {
        guard let routing, let tun else { return }
        let overhead = snap.sad.all.filter { $0.direction == .outbound }.map(\.maximumOverhead).max() ?? 80
        let mtu = max(1280, 1500 - overhead)
        try routing.setLink(name: tun.name, up: true, mtu: UInt32(mtu))
        context.interfaceMTU = mtu
    }

    private func checkPrivileges() throws {
        // CAP_NET_ADMIN is bit 12 of CapEff in /proc/self/status.
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let caps = UInt64(line.split(separator: "\t").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "", radix: 16) else {
            throw DaemonError("cannot read the capabilities of this process from /proc/self/status")
        }
        guard caps & (1 << 12) != 0 else {
            throw DaemonError("encd needs CAP_NET_ADMIN (run it as root or grant the capability)")
        }
    }

    private func stateFile(_ name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        return options.stateDirectory + "/" + name
    }

    private func takeLock() throws {
        try FileManager.default.createDirectory(atPath: options.runDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        let path = options.runDirectory + "/encd.pid"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DaemonError("cannot open \(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buf = [CChar](repeating: 0, count: 32)
            let n = read(fd, &buf, 31)
            close(fd)
            let pid = n > 0 ? String(cString: buf).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw DaemonError("another encd is running (pid \(pid), lock \(path))")
        }
        ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        lockFD = fd
    }

    // MARK: Running

    /// SIGHUP: re-reads the file; a broken file leaves everything as it was.
    public func reload() {
        do {
            let c = try loadConfiguration()
            try apply(c)
            let snap = box.value
            log.info("reloaded \(options.file): \(snap.spd.flows.count) flows, \(snap.sad.count) SAs")
        } catch {
            log.error("reload refused, running configuration unchanged: \(error)")
        }
    }

    /// Once a second: advance the clock and expire SAs by time.
    public func tick() {
        clock.set(CoarseClock.monotonicSeconds())
        let snap = box.value
        for sa in snap.sad.all {
            switch sa.checkLifetime(now: clock.now) {
            case .soft: log.info("SA \(sa.key) reached its soft lifetime")
            case .hard: log.warning("SA \(sa.key) reached its hard lifetime: no longer used")
            case .none: break
            }
        }
    }

    /// All workers' counters.
    public var counters: CounterSnapshot { CounterSnapshot(summing: workers.map(\.stats)) }

    // MARK: Stop

    public func stop() {
        for w in workers { w.stop() }
        workers = []
        if let routing {
            for r in installedRules { try? routing.deleteRule(r) }
            if let tun {
                for f in [AddressFamily.inet, .inet6] {
                    try? routing.deleteDefaultRoute(family: f, table: Self.routeTable, device: tun.name)
                }
            }
        }
        installedRules = []
        if let nft { try? nft.removeTable(named: rulesetConfig.table) }
        nft = nil
        tun = nil
        if lockFD >= 0 {
            unlink(options.runDirectory + "/encd.pid")
            close(lockFD)
            lockFD = -1
        }
        log.info("stopped: table, rules, routes and \(rulesetConfig.interface) removed")
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads.
    public func runUntilSignalled() {
        for s in [SIGTERM, SIGINT, SIGHUP] { signal(s, SIG_IGN) }
        let q = DispatchQueue(label: "encd.signals")
        let done = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for s in [SIGTERM, SIGINT] {
            let src = DispatchSource.makeSignalSource(signal: s, queue: q)
            src.setEventHandler { done.signal() }
            src.resume()
            sources.append(src)
        }
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: q)
        hup.setEventHandler { [self] in reload() }
        hup.resume()
        sources.append(hup)
        let timer = DispatchSource.makeTimerSource(queue: q)
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [self] in tick() }
        timer.resume()
        done.wait()
        timer.cancel()
        q.sync {}
        _ = sources
    }
}
