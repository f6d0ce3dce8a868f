// Workers and the control thread at the same time, as in the daemon: one thread
// protects packets ([X] + IPsec out), one unprotects them (IPsec in + the inbound
// check), while the control thread reloads, changes SAs, ticks and reads status. Run
// under ThreadSanitizer (scripts/sanitizers.sh), this is where a race between worker
// state and the control side shows; without it, it checks that nothing is lost.

import Config
import Control
import EncCore
import Foundation
import IPsec
import Kernel
import Synchronization
import Testing
@testable import Daemon

/// The link between the two workers. An NSLock (pthread) rather than a Mutex:
/// ThreadSanitizer does not see Synchronization.Mutex's futex as a lock, and reports the
/// accesses it guards as races.
final class WireQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var packets: [[UInt8]] = []
    func withLock<R>(_ body: (inout [[UInt8]]) -> R) -> R { lock.withLock { body(&packets) } }
}

@Suite struct ConcurrencyTests {
    @Test func workersAndControlThreadRunTogether() throws {
        let log = Log(level: .error)
        let clock = CoarseClock(start: 10)
        let reserver = BackgroundReserver(log: log, store: nil)     // the reserver thread too
        reserver.start()
        defer { reserver.stop() }
        func plane(_ conf: String, _ local: String) throws -> ControlPlane {
            let p = ControlPlane(log: log, clock: clock, store: MemorySequenceStore(), reserver: reserver,
                                 maxPolicy: 1000, configFile: "/dev/null", localAddresses: { [IPAddress(local)!] })
            try p.start(ConfigParser.parse(text: conf, fileName: "t"))
            return p
        }
        let p1 = try plane(siteConf(), "192.0.2.1"), p2 = try plane(siteConf2(), "192.0.2.2")
        let c1 = StageContext(marks: .default, snapshot: p1.box, events: p1.events, clock: clock, encInterfaceIndex: 42)
        let c2 = StageContext(marks: .default, snapshot: p2.box, events: p2.events, clock: clock, encInterfaceIndex: 42)
        let wire = WireQueue()
        let done = Atomic<Bool>(false)
        let delivered = Atomic<Int>(0)
        let packet = PacketBuilder.udp(source: IPAddress("198.18.1.10")!, destination: IPAddress("198.18.2.20")!,
                                       sourcePort: 7, destinationPort: 9, payload: [UInt8](repeating: 1, count: 200))

        let sender = Thread {
            let stats = CounterBlock<Counter>(), out = FakeSender(), scratch = PacketBuffer()
            while !done.load(ordering: .relaxed) {
                var meta = QueuedPacket()
                guard case .acceptWithMark(let mark) = SPDStage.handle(PacketBuffer(packet: packet), meta: meta,
                                                                      context: c1, stats: stats) else { continue }
                let before = out.sent.count
                _ = OutputStage.handleFrame(PacketBuffer(packet: EncFrame.make(packet, mark: mark)), sender: out, scratch: scratch, context: c1, stats: stats)
                if out.sent.count > before, let w = out.sent.last { wire.withLock { $0.append(w) } }
            }
        }
        let receiver = Thread {
            let stats = CounterBlock<Counter>(), tun = FakeTUN()
            while !done.load(ordering: .relaxed) {
                guard let w = wire.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
                let before = tun.written.count
                _ = InputStage.handle(PacketBuffer(packet: w), meta: QueuedPacket(), device: tun, context: c2, stats: stats)
                if tun.written.count > before, let f = tun.written.last, f.count > 14 {
                    var meta = QueuedPacket()
                    meta.inInterface = 42
                    meta.hardwareSource = f[6..<12].reduce(0) { $0 << 8 | UInt64($1) }
                    if case .acceptWithMark = SPDStage.handle(PacketBuffer(packet: Array(f[14...])), meta: meta, context: c2, stats: stats) {
                        delivered.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        sender.start(); receiver.start()
        // The control side meanwhile: status and counters, SAs replaced (a lifetime
        // changed), ticks.
        let extra = "esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x3000 enc aes-128-gcm enckey 0x" + String(repeating: "77", count: 20) + "\n"
        for i in 0..<60 {
            _ = p1.respond(to: Request(.show, verbose: true))
            _ = p2.respond(to: Request(.counters))
            if i % 10 == 0 { _ = try? p1.load(text: extra, name: "extra") }
            if i % 10 == 5 { _ = try? p1.delete(text: extra, name: "extra") }
            p1.tick(now: 10 + UInt64(i)); p2.tick(now: 10 + UInt64(i))
            usleep(5_000)
        }
        done.store(true, ordering: .relaxed)
        while !sender.isFinished || !receiver.isFinished { usleep(1_000) }
        #expect(delivered.load(ordering: .relaxed) > 0)
    }
}

/// After a policy swap encd waits for the [X] worker to finish the batch it was
/// deciding (with the old policy, perhaps) before it flushes the connection caches
/// once more: `drain` returns only once that batch's verdicts are sent.
@Suite struct WorkerDrainTests {
    @Test func drainWaitsForTheBatchInProgressOnly() throws {
        let queue = FakeQueue()
        queue.enqueue([0x45] + [UInt8](repeating: 0, count: 19))
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let worker = Worker(name: "spd", queue: queue, batchSize: 4, log: Log(level: .error)) { _, _, _ in
            entered.signal()
            release.wait()
            return .drop
        }
        #expect(worker.drain(timeout: 0.1))      // idle: nothing to wait for
        worker.start()
        defer { worker.stop() }
        entered.wait()
        let drained = DrainFlag()
        let waiter = Thread { drained.set(worker.drain(timeout: 5)) }
        waiter.start()
        usleep(200_000)
        let early = drained.value
        #expect(!early, "drain returned while the batch was being decided")
        #expect(!worker.drain(timeout: 0.05))    // a hung batch: drain gives up after its timeout
        release.signal()
        let deadline = Date().addingTimeInterval(5)
        while !drained.value && Date() < deadline { usleep(1000) }
        let done = drained.value
        #expect(done)
    }
}

/// What a reader drops before any stage sees it (a queue message that is not a packet,
/// a raw ESP read longer than its buffer) must show in encstat: the worker adds it to
/// malformed_packet.
@Suite struct WorkerQueueDropTests {
    @Test func readerDropsAreCountedAsMalformed() throws {
        let queue = FakeQueue()
        queue.dropUnreadable(3)
        queue.enqueue([0x45] + [UInt8](repeating: 0, count: 19))
        let handled = DispatchSemaphore(value: 0)
        let worker = Worker(name: "ipsec-in", queue: queue, batchSize: 4, log: Log(level: .error)) { _, _, _ in
            handled.signal()
            return .drop
        }
        worker.start()
        defer { worker.stop() }
        #expect(handled.wait(timeout: .now() + 5) == .success)
        #expect(worker.stats[.malformedPacket] == 3)
    }
}

final class DrainFlag: @unchecked Sendable {
    private let flag = Atomic<Bool>(false)
    var value: Bool { flag.load(ordering: .sequentiallyConsistent) }
    func set(_ v: Bool) { flag.store(v, ordering: .sequentiallyConsistent) }
}
