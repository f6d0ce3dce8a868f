// EncDaemon: start-up, the running state, reload and stop.
//
// Start-up, in this order so that no step opens the host: read and check the
// configuration; refuse without CAP_NET_ADMIN or when another encd holds the lock;
// read the sequence state (refusing a damaged file); create enc0; bind the queues
// (before any rule feeds them); install the nftables table with its sets already
// filled, in one transaction (replacing whatever an earlier encd left: an empty [X]
// set, even for a moment, would let protected traffic skip [X] and leave in
// cleartext); add the policy rules and routes; start one worker per queue; open the
// control socket; tell systemd READY=1.
//
// Stopping — cleanly, by a crash, or by a start that fails half-way — never removes
// the table: its queues then have no reader and no fail-open flag, so traffic of the
// flows is dropped until encd starts again and replaces the table, as OpenBSD keeps
// its flows in the kernel when no key daemon runs. The one exception is
// ipsec.use_fail_open: the pairs of `use` flows (flows_use4/6) are queued with bypass
// and pass in cleartext, as their policy allows without an SA. Releasing the traffic
// is an explicit act: `encctl -F` before the stop (the sets empty), or `encd -U`
// after it (the table, rules and routes removed).

import CEncShim
import Config
import Control
import Foundation
import IPsec
import EncCore
import Kernel
import Synchronization

public final class EncDaemon: PolicyKernel, @unchecked Sendable {
    public let options: Options
    public let log: Log
    public let clock = CoarseClock(start: CoarseClock.monotonicSeconds())
    public var configuration: Configuration? { plane?.configuration }
    public private(set) var plane: ControlPlane?
    private var server: ControlServer?
    private var context: StageContext!
    private var tun: TUNDevice?
    private var routing: Rtnetlink?
    private var nft: Nftables?
    private var ruleset: RulesetInstaller?
    private var workers: [Worker] = []
    /// Workers for IPsec out and for IPsec in (raw ESP/AH) each.
    public private(set) var workerCount = 1
    private var reserver: BackgroundReserver?
    public let notify = SystemdNotify()
    private var lockFD: Int32 = -1
    private var rulesetConfig = EncdRulesetConfig()
    public static let routeTable: UInt32 = 0xe4c   // "enc"
    /// Frames enc0 holds for the ipsec-out worker (its transmit queue length).
    static let enc0TransmitQueue: Int32 = 1000
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

    /// Warns about outbound flows whose peer is this host (the other end's flows).
    private func checkPeers(_ c: Configuration) {
        let local = Self.localAddresses()
        for f in c.flows where f.direction == .outbound {
            if let peer = f.peer, local.contains(peer) {
                log.warning("flow \(f.proto) out from \(f.source) to \(f.destination) names this host (\(peer)) as its peer: it is the other end's flow, and its traffic will find no SA here")
            }
        }
    }

    // MARK: PolicyKernel

    /// The kernel follows a new snapshot before it is swapped in: the sets, or, when a
    /// tunable the rules depend on changed, the whole table with its sets in one
    /// transaction (RulesetInstaller).
    public func prepare(_ snap: PolicySnapshot, tunables: Tunables) throws {
        guard let ruleset else { return }
        try ruleset.prepare(snap.spd, tunables: tunables)
        rulesetConfig = ruleset.config
    }

    /// After a policy change is swapped in: once the [X] worker has finished the
    /// packets it was deciding with the old policy, the connection caches are flushed
    /// again (the change's own transaction flushed them too, but a packet decided with
    /// the old policy may have been saved after it). Until that succeeds, `verify`
    /// retries every second.
    public func swapped(_ snap: PolicySnapshot) {
        guard let ruleset, !ruleset.cacheNames.isEmpty else { return }
        for w in workers where w.name == "spd" && !w.drain() {
            log.warning("the [X] worker did not finish its batch within 2 s; flushing the connection caches anyway")
        }
        flushCaches(ruleset)
    }

    private var cacheFlushPending = false

    private func flushCaches(_ ruleset: RulesetInstaller) {
        do {
            try ruleset.flushCaches()
            cacheFlushPending = false
        } catch {
            if !cacheFlushPending { log.error("nftables: could not flush the connection caches (retrying every second): \(error)") }
            cacheFlushPending = true
        }
    }

    public func verify(_ snap: PolicySnapshot) {
        do {
            try ruleset?.ensureInstalled(snap.spd)
        } catch {
            log.error("nftables: table inet \(rulesetConfig.table) is gone and could not be installed again: \(error)")
        }
        if cacheFlushPending, let ruleset { flushCaches(ruleset) }
        // enc0 deleted by hand (ip link del): nothing can be decrypted into it or routed
        // out of it any more. The table keeps failing closed; encd exits with an error
        // so that its supervisor (systemd's Restart=on-failure) starts it afresh.
        if let routing, context.encInterfaceIndex != 0,
           (try? routing.interfaceIndex(of: rulesetConfig.interface)) != context.encInterfaceIndex {
            log.error("\(rulesetConfig.interface) was removed by someone else: exiting so that encd starts again with a new one (the table keeps failing closed meanwhile)")
            exitStatus = 1
            terminated.signal()
        }
    }

    /// What encd's main exits with once `runUntilSignalled` returns.
    public private(set) var exitStatus: Int32 = 0

    public func applied(_ snap: PolicySnapshot) {
        do {
            try updateMTU(snap)
        } catch {
            log.warning("could not set \(rulesetConfig.interface)'s MTU: \(error)")
        }
    }

    /// enc0's address: RFC 7600's IPv4 dummy address. The kernel's reverse-path filter
    /// drops everything written into an interface that has no IPv4 address.
    public static let interfaceAddress = IPAddress("192.0.0.8")!

    // MARK: Start

    public func start() throws {
        for w in options.warnings { log.warning(w) }
        // Keys live in this process: no core dumps of it, no reading its memory
        // through /proc by other users.
        _ = encshim_set_dumpable(0)
        try checkPrivileges()
        try takeLock()
        let c = try loadConfiguration()
        let store = try FileSequenceStore(path: try stateFile("sequences"))
        let reserver = BackgroundReserver(log: log, store: store)
        reserver.start()
        self.reserver = reserver
        let plane = ControlPlane(log: log, clock: clock, store: store, reserver: reserver,
                                 maxPolicy: rulesetConfig.marks.maxPolicy,
                                 configFile: options.file, defines: options.defines,
                                 localAddresses: { Self.localAddresses() })
        self.plane = plane
        plane.kernel = self
        plane.counterBlocks = { [weak self] in self?.workers.map(\.stats) ?? [] }
        // rulesetConfig changes under the plane's lock; the readers get copies.
        let queues = [(rulesetConfig.spdQueue, "spd"), (rulesetConfig.outputQueue, "ipsec-out"),
                      (rulesetConfig.inputQueue, "ipsec-in"), (rulesetConfig.cleartextQueue, "cleartext")]
        plane.queueStatus = { [weak self] in self?.queueStatus(queues) ?? [] }
        plane.reversePathDrops = { ((try? KernelStats.netstat("TcpExt", "IPReversePathFilter")) ?? nil) ?? 0 }
        context = StageContext(marks: rulesetConfig.marks, snapshot: plane.box, events: plane.events, clock: clock,
                               switches: plane.switches)
        rulesetConfig = RulesetInstaller.config(rulesetConfig, c.tunables)

        let routing = try Rtnetlink()
        self.routing = routing
        // One enc0 queue per ipsec-out worker, the kernel steering each frame to the
        // queue of its SA's worker; the ipsec-in worker of the same index writes its
        // decrypted packets through that queue's descriptor.
        var workerCount = options.workers ?? Self.defaultWorkers()
        let tun = try TUNDevice(name: rulesetConfig.interface, tap: true, multiQueue: true, nonBlocking: true, vnetHeader: true)
        self.tun = tun
        var tunQueues = [tun]
        if workerCount > 1 {
            do {
                for _ in 1..<workerCount {
                    tunQueues.append(try TUNDevice(name: tun.name, tap: true, multiQueue: true, nonBlocking: true, vnetHeader: true))
                }
                try tun.steerByMark(mask: rulesetConfig.marks.policyMask, shift: rulesetConfig.marks.policyShift, queues: workerCount)
            } catch {
                // Without steering the kernel would spread one SA over several workers.
                log.warning("\(workerCount) workers per stage not possible (\(error)); running one")
                tunQueues = [tun]
                workerCount = 1
            }
        }
        self.workerCount = workerCount
        try tun.configureEthernet(address: StageContext.interfaceMAC)
        // encd reads the outbound side from enc0: whole GSO frames (TCP and, where the
        // kernel has it, UDP segmentation offload) with their checksums left to do, up
        // to 1000 frames waiting while a batch is protected.
        try tun.enableReadOffloads()
        try tun.setTransmitQueueLength(Self.enc0TransmitQueue)
        try prepareInterface(routing, tun.name)      // before the link is up: no IPv6 link-local, no MLD
        try routing.setLink(name: tun.name, up: true, mtu: 1400)
        try routing.addAddress(Self.interfaceAddress, prefixLength: 32, device: tun.name)
        context.encInterfaceIndex = try routing.interfaceIndex(of: tun.name)

        let ctx = context!
        // [X] reads only headers, and its answer holds for every segment of a GSO packet.
        // Segmenting there would also lose the frame's source MAC (the kernel resets the
        // MAC header before it segments), which names the SA for the inbound check: a
        // decrypted run that encd wrote as one GSO frame must reach the check whole.
        let spdQueue = try NFQueue(queueConfig(rulesetConfig.spdQueue, gso: true))
        // ESP in UDP comes to a UDP socket of encd's on a port the kernel chooses, which
        // the ruleset's tproxy rule names (the NAT-T port is the IKE daemon's).
        let udpInput = try SocketInputQueue(udpEncapsulationFor: rulesetConfig.inputQueue)
        rulesetConfig.natTraversalSocketPort = udpInput.socketPort
        let cleartextQueue = try NFQueue(queueConfig(rulesetConfig.cleartextQueue))
        // The input workers' writes into enc0 wait for the end of their batch, where runs
        // of one TCP or UDP flow go in as one GSO frame (FrameInjector).
        let udpInjector = FrameInjector(device: tun, capacity: Worker.defaultBatchSize, vnetHeader: tun.vnetHeader)
        workers = [
            Worker(name: "spd", queue: spdQueue, log: log) { b, m, s in
                SPDStage.handle(b, meta: m, context: ctx, stats: s)
            },
            // ESP and AH arrive on raw sockets, ESP in UDP on UDP sockets, after every
            // input hook, with no verdict. ESP in UDP has one worker of its own: an SA's
            // encapsulation says which kind of worker owns it (ESPInput refuses the other
            // kind before touching it).
            Worker(name: "ipsec-in-udp", queue: udpInput, log: log, afterBatch: { udpInjector.flush(stats: $0) }) { b, m, s in
                InputStage.handle(b, meta: m, device: udpInjector, context: ctx, stats: s)
            },
            Worker(name: "cleartext", queue: cleartextQueue, log: log) { b, m, s in
                CleartextStage.handle(b, meta: m, context: ctx, stats: s)
            },
        ]
        // IPsec out and IPsec in (raw) have `workerCount` workers each; an SA belongs to
        // one (WorkerShare: outbound by its number, which enc0's steering program reads
        // from the mark; inbound by SPI, which each worker's socket filters keep).
        for (share, queue) in zip(WorkerShare.all(workerCount), tunQueues) {
            // ESP in UDP leaves in runs, one UDP GSO send each, sent at the end of the
            // worker's batch of frames (UDPEncapSender); the rest through raw sockets.
            let sender = UDPEncapSender(raw: try RawSocketSender(mark: rulesetConfig.marks.bypass))
            let segmentScratch = PacketBuffer()       // for the segments of GSO frames
            workers.append(Worker(name: "ipsec-out", queue: DeviceQueue(device: queue, number: rulesetConfig.outputQueue), log: log,
                                  afterBatch: { OutputStage.flush(sender, stats: $0) }) { b, _, s in
                OutputStage.handleFrame(b, sender: sender, scratch: segmentScratch, context: ctx, share: share, stats: s)
            })
            let rawInput = try SocketInputQueue(number: rulesetConfig.inputQueue, share: share)
            let injector = FrameInjector(device: queue, capacity: Worker.defaultBatchSize, vnetHeader: queue.vnetHeader)
            workers.append(Worker(name: "ipsec-in", queue: rawInput, log: log, afterBatch: { injector.flush(stats: $0) }) { b, m, s in
                InputStage.handle(b, meta: m, device: injector, context: ctx, share: share, stats: s)
            })
        }
        let nft = try Nftables(log: { [log] in log.debug($0) })
        self.nft = nft
        // Before anything is routed into enc0: the egress chain that tells the ipsec-out
        // worker which policy [X] chose (goes with encd: owned, not persistent).
        let egress = EncdRuleset.egressTable(rulesetConfig)
        do {
            try nft.installEgress(egress)
        } catch {
            throw KernelConfigError("nftables: could not install table netdev \(egress.name) at \(tun.name)'s egress hook (Linux >= 5.16 with CONFIG_NETFILTER_EGRESS): \(error)")
        }
        ruleset = RulesetInstaller(nft: nft, config: rulesetConfig, log: log)
        checkPeers(c)
        try plane.start(c)          // builds the policy; prepare() installs the table with it
        let backend = ruleset?.backend ?? .native
        let facts = facts(backend)
        plane.facts = { [weak plane] in
            facts.merging(["udpencap_port": "\(plane?.tunables.udpEncapPort ?? 0)"]) { $1 }
        }
        log.info("nftables: table inet \(rulesetConfig.table) installed, queues \(backend == .native ? "with nft's queue expression" : "with xt NFQUEUE through nft_compat (this kernel refuses nft's queue expression)")")
        for rule in Self.policyRules(rulesetConfig) {
            try? routing.deleteRule(rule)
            try routing.addRule(rule)
        }
        for family in [AddressFamily.inet, .inet6] {
            try routing.addDefaultRoute(family: family, table: Self.routeTable, device: tun.name)
        }
        for w in workers { w.start() }
        let server = ControlServer(path: options.socketPath, plane: plane, log: log)
        try server.start()
        self.server = server
        let snap = plane.box.value
        log.info("control socket \(options.socketPath)")
        let summary = "\(snap.spd.flows.count) flows, \(snap.sad.count) SAs, interface \(tun.name)"
        log.info("started: \(summary), queues [X] \(rulesetConfig.spdQueue), ipsec-out reads \(tun.name), ipsec-in raw ESP/AH sockets (\(workerCount) worker\(workerCount == 1 ? "" : "s") each) and UDP port \(udpInput.socketPort) (ESP in UDP), cleartext check \(rulesetConfig.cleartextQueue), NAT-T port \(rulesetConfig.natTraversalPort), mark mask 0x\(String(rulesetConfig.marks.mask, radix: 16)), route table \(Self.routeTable)")
        notify.ready("running: \(summary)")
    }

    /// The policy rules encd adds (and `encd -U` removes):
    ///   pref 100  fwmark PROTECT/PROTECT lookup T        protected traffic into enc0
    /// and, for IPv4's reverse-path filter (MarkLayout.inbound):
    ///   pref 99   fwmark INBOUND/MASK iif enc0 goto 101  the decrypted packet's own route: as usual
    ///   pref 100  fwmark INBOUND/MASK lookup T           the check of its source: behind enc0
    ///   pref 101  fwmark INBOUND/MASK nop                (goto's target)
    static func policyRules(_ rc: EncdRulesetConfig) -> [MarkRule] {
        let m = rc.marks
        var rules = [AddressFamily.inet, .inet6].map {
            MarkRule(family: $0, value: m.protect, mask: m.protect, table: routeTable, priority: rulePriority)
        }
        rules += [
            MarkRule(family: .inet, value: m.inbound, mask: m.mask, action: .goto(rulePriority + 1),
                     priority: rulePriority - 1, inputInterface: rc.interface),
            MarkRule(family: .inet, value: m.inbound, mask: m.mask, action: .lookup(routeTable), priority: rulePriority),
            MarkRule(family: .inet, value: m.inbound, mask: m.mask, action: .nop, priority: rulePriority + 1),
        ]
        return rules
    }

    private func queueConfig(_ n: UInt16, gso: Bool = false) -> QueueConfig {
        var q = QueueConfig(number: n)
        q.failOpen = false
        q.gso = gso
        return q
    }

    /// enc0 gets what the kernel needs to accept encd's writes: loose reverse-path
    /// filtering, no IPv6 autoconfiguration noise, and forwarding.
    private func prepareInterface(_ routing: Rtnetlink, _ name: String) throws {
        try routing.setLooseReversePathFilter(device: name)
        // The reverse-path check of a decrypted packet uses its mark (INBOUND), which
        // policyRules send to encd's table: no route back to the remote site is needed.
        try routing.setSysctl("net/ipv4/conf/\(name)/src_valid_mark", "1")
        try? routing.setSysctl("net/ipv6/conf/\(name)/accept_ra", "0")
        try? routing.setSysctl("net/ipv6/conf/\(name)/addr_gen_mode", "1")
    }

    /// Sets enc0's MTU to `interfaceMTU` when it changed: senders learn the size through
    /// ICMP instead of losing packets.
    private func updateMTU(_ snap: PolicySnapshot) throws {
        guard let routing, let tun else { return }
        let mark = rulesetConfig.marks.bypass
        var failed: [String] = []
        var known: [IPAddress: Int?] = [:]      // one route lookup per peer, not per SA
        let mtu = Self.interfaceMTU(snap.sad.all) { sa in
            if let mtu = known[sa.spec.destination] { return mtu }
            var mtu: Int?
            do {
                mtu = Int(try routing.pathMTU(to: sa.spec.destination, from: sa.spec.source, mark: mark))
            } catch {
                failed.append("\(sa.spec.destination) (\(error))")
            }
            known[sa.spec.destination] = mtu
            return mtu
        }
        guard mtu != context.interfaceMTU || !mtuSet else { return }
        try routing.setLink(name: tun.name, up: true, mtu: UInt32(mtu))
        log.info("\(tun.name) MTU \(mtu)" + (failed.isEmpty ? "" : "; no path MTU to \(failed.joined(separator: ", ")): 1500 assumed"))
        context.interfaceMTU = mtu
        mtuSet = true
    }
    private var mtuSet = false

    /// enc0's MTU: for each outbound SA, the MTU of the path to its peer (1500 when
    /// unknown) less the most the SA adds; the smallest of these, and never below
    /// 1280 (IPv6's minimum link MTU). Without outbound SAs, 1500 less 80.
    static func interfaceMTU(_ sas: [SecurityAssociation], pathMTU: (SecurityAssociation) -> Int?) -> Int {
        let fits = sas.filter { $0.direction == .outbound }.map { (pathMTU($0) ?? 1500) - $0.maximumOverhead }
        return max(1280, fits.min() ?? 1420)
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
        if let c = try? ConfigParser.load(path: options.file, defines: options.defines) { checkPeers(c) }
        plane?.reload()
    }

    /// Once a second: advance the clock, expire SAs by their lifetimes.
    public func tick() {
        if let plane { plane.tick() } else { clock.set(CoarseClock.monotonicSeconds()) }
    }

    /// One worker per CPU this process may run on, at most Options.maxWorkers.
    static func defaultWorkers() -> Int {
        min(Int(encshim_allowed_cpus()), Options.maxWorkers)
    }

    /// All workers' counters.
    public var counters: CounterSnapshot { CounterSnapshot(summing: workers.map(\.stats)) }

    private func queueStatus(_ queues: [(UInt16, String)]) -> [QueueStatus] {
        let kernel = (try? QueueStats.read()) ?? []
        let workers = self.workers
        let interface = rulesetConfig.interface
        // A stage's figures are its workers' sums.
        func sum(_ role: String) -> QueueCounters {
            workers.filter { $0.name == role }.reduce(into: QueueCounters()) { total, w in
                let c = w.queueCounters
                total.received &+= c.received
                total.overruns &+= c.overruns
            }
        }
        return queues.map { number, role in
            if role == "ipsec-out" {
                // No NFQUEUE: the workers read enc0, whose transmit queues drop what they cannot hold.
                let dropped = ((try? KernelStats.transmitDrops(interface)) ?? nil) ?? 0
                return QueueStatus(number: number, role: role, waiting: 0, queueDropped: dropped, userDropped: 0,
                                   received: sum(role).received)
            }
            let k = kernel.first { $0.queue == number }
            if role == "ipsec-in" {
                // Sockets (raw ESP/AH, UDP for ESP in UDP), no queue: what they could not
                // hold counts as the socket being full.
                let raw = sum(role)
                let udp = sum("ipsec-in-udp")
                return QueueStatus(number: number, role: role, waiting: 0, queueDropped: 0,
                                   userDropped: raw.overruns &+ udp.overruns, received: raw.received &+ udp.received)
            }
            return QueueStatus(number: number, role: role, waiting: k?.waiting ?? 0, queueDropped: k?.queueDropped ?? 0,
                               userDropped: k?.userDropped ?? 0, received: sum(role).received)
        }
    }

    private func facts(_ backend: NftQueueBackend) -> [String: String] {
        [
            "interface": rulesetConfig.interface,
            "table": "inet \(rulesetConfig.table)",
            "socket": options.socketPath,
            "route_table": "\(Self.routeTable)",
            "backend": backend == .native ? "nft queue" : "xt NFQUEUE (nft_compat)",
        ]
    }

    // MARK: Stop

    /// Stops the workers, the control socket and the reserver; enc0 goes with the
    /// process. The table, its sets and the policy rules stay: the flows keep failing
    /// closed until encd runs again (or `encd -U` removes them).
    public func stop() {
        let started = server != nil
        if started { notify.stopping() }
        server?.stop()
        server = nil
        for w in workers { w.stop() }
        workers = []
        // No cached [X] answer outlives the process: with encd gone every connection's
        // next packet meets [X]'s queue again and fails closed.
        do { try ruleset?.flushCaches() } catch { log.warning("nftables: could not flush the connection caches: \(error)") }
        reserver?.stop()
        reserver = nil
        // Nothing uses a sequence number any more: record how far each SA got.
        for sa in plane?.box.value.sad.all ?? [] { sa.settle() }
        tun = nil
        ruleset = nil
        nft = nil
        if lockFD >= 0 {
            unlink(options.runDirectory + "/encd.pid")
            close(lockFD)
            lockFD = -1
        }
        if started {
            log.info("stopped: table inet \(rulesetConfig.table) left in place, failing closed (encctl -F before a stop, or encd -U after it, releases the traffic)")
        }
    }

    /// `encd -U`: removes what a stopped encd left in the kernel — the table, the
    /// policy rules, the routes of its table — and exits. Refused while an encd runs on
    /// the same run directory. Afterwards traffic of the flows that were configured
    /// goes out in cleartext.
    public func unload() throws -> String {
        try checkPrivileges()
        try takeLock()
        defer {
            unlink(options.runDirectory + "/encd.pid")
            close(lockFD)
            lockFD = -1
        }
        let nft = try Nftables(log: { [log] in log.debug($0) })
        try nft.removeTable(named: rulesetConfig.table)
        let routing = try Rtnetlink()
        for rule in Self.policyRules(rulesetConfig) { try routing.deleteRule(rule) }
        for family in [AddressFamily.inet, .inet6] {
            try? routing.deleteDefaultRoute(family: family, table: Self.routeTable, device: rulesetConfig.interface)
        }
        return "removed table inet \(rulesetConfig.table), its policy rules and routes: traffic of its flows is no longer protected"
    }

    // MARK: Signals

    private let signalQueue = DispatchQueue(label: "encd.signals")
    private let terminated = DispatchSemaphore(value: 0)
    private var signalSources: [DispatchSourceSignal] = []
    private var reloadWanted = false
    private var running = false

    /// Installs the signal handlers before start-up, so that a SIGHUP or SIGTERM during
    /// it neither kills encd (SIGHUP's default) nor is lost: a reload asked for while
    /// starting runs once start-up is done, a stop stops it right after.
    public func handleSignals() {
        for s in [SIGTERM, SIGINT, SIGHUP] { signal(s, SIG_IGN) }
        for s in [SIGTERM, SIGINT] {
            let src = DispatchSource.makeSignalSource(signal: s, queue: signalQueue)
            src.setEventHandler { [terminated] in terminated.signal() }
            src.resume()
            signalSources.append(src)
        }
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signalQueue)
        hup.setEventHandler { [self] in
            if running { reloadNow() } else { reloadWanted = true }
        }
        hup.resume()
        signalSources.append(hup)
    }

    private func reloadNow() {
        notify.reloading()
        reload()
        notify.ready("running")
    }

    /// Runs until SIGTERM or SIGINT; SIGHUP reloads; ticks once a second (lifetimes,
    /// MTU, the watchdog).
    public func runUntilSignalled() {
        signalQueue.sync {
            running = true
            if reloadWanted {
                reloadWanted = false
                reloadNow()
            }
        }
        let timer = DispatchSource.makeTimerSource(queue: signalQueue)
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [self] in
            tick()
            feedWatchdog()
        }
        timer.resume()
        terminated.wait()
        timer.cancel()
        signalQueue.sync { running = false }
    }

    // MARK: Watchdog

    private var lastBeats: [UInt64] = []
    private var lastMoved: [UInt64] = []

    /// WATCHDOG=1 while every worker's loop has moved within the watchdog interval (a
    /// receive waits at most a second, so a live worker moves every second). A hung
    /// worker stops the pings and systemd restarts encd; the table keeps failing
    /// closed meanwhile.
    private func feedWatchdog() {
        guard let interval = notify.watchdogInterval else { return }
        let now = CoarseClock.monotonicSeconds()
        let beats = workers.map { $0.heartbeat.load(ordering: .relaxed) }
        if lastMoved.count != beats.count { lastMoved = [UInt64](repeating: now, count: beats.count) }
        for (i, b) in beats.enumerated() where i >= lastBeats.count || lastBeats[i] != b { lastMoved[i] = now }
        lastBeats = beats
        let allowed = UInt64(max(3, interval / 2))
        guard !lastMoved.contains(where: { now &- $0 > allowed }) else { return }
        notify.watchdog()
    }
}
