// Worker: one thread per packet source (an NFQUEUE queue, enc0, the raw ESP/AH
// sockets: each a PacketQueue). Stages of its loop:
//   1. receive a batch (up to the batch's capacity) into preallocated buffers; what
//      the source dropped itself as unreadable goes into malformed_packet
//   2. run the stage on each packet in arrival order, issuing its verdict
//   3. flush the verdicts, then go back to 1; verdicts the kernel did not take are
//      counted and sent again one by one (a packet without a verdict would stay
//      queued until encd exits)
// A receive waits at most the queue's receive timeout, so `stop()` takes effect within
// about a second, and `heartbeat` moves at least once a second while the loop is alive
// (the systemd watchdog reads it). Each worker owns its CounterBlock; nothing is
// shared per packet except the policy snapshot (read under a short lock).

import CEncShim
import EncCore
import Foundation
import IPsec
import Kernel
import Synchronization

public final class Worker: @unchecked Sendable {
    public let name: String
    public let stats = CounterBlock<Counter>()
    private let queue: PacketQueue
    private let batch: QueueBatch
    private let handle: (PacketBuffer, QueuedPacket, CounterBlock<Counter>) -> QueueVerdict
    private let running = Atomic<Bool>(false)
    /// Loop iterations so far; a value that stops moving means a hung worker.
    public let heartbeat = Atomic<UInt64>(0)
    /// Odd while a batch is being decided, even between batches (see `drain`).
    private let batches = Atomic<UInt64>(0)
    // @exclusivity(unchecked): used by one worker only (Docs/architecture.md, "No run-time
    // exclusivity checks on the packet path").
    /// The batch's verdicts, kept until the kernel took them (preallocated).
    @exclusivity(unchecked) private var verdicts: [QueueVerdict]
    private let finished = DispatchSemaphore(value: 0)
    /// Runs after the stage has seen every packet of a batch, before its verdicts go
    /// out (the input worker writes what it decrypted into enc0 here).
    private let afterBatch: ((CounterBlock<Counter>) -> Void)?
    public static let defaultBatchSize = 32
    private let log: Log
    /// The queue's `malformed` count already added to `stats` (see `foldQueueDrops`).
    @exclusivity(unchecked) private var malformedSeen: UInt64 = 0

    public init(name: String, queue: PacketQueue, batchSize: Int = Worker.defaultBatchSize, log: Log,
                afterBatch: ((CounterBlock<Counter>) -> Void)? = nil,
                handle: @escaping (PacketBuffer, QueuedPacket, CounterBlock<Counter>) -> QueueVerdict) {
        self.afterBatch = afterBatch
        self.name = name
        self.queue = queue
        self.batch = QueueBatch(capacity: batchSize)
        self.verdicts = [QueueVerdict](repeating: .drop, count: batchSize)
        self.handle = handle
        self.log = log
    }

    public var queueCounters: QueueCounters { queue.counters }

    public func start() {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            _ = encshim_set_thread_name("encd-\(name)")
            run()
            finished.signal()
        }
        t.name = "encd-\(name)"
        t.stackSize = 1 << 20
        t.start()
    }

    /// Asks the loop to end and waits for it.
    public func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        finished.wait()
    }

    private func run() {
        var lastError: Int32 = 0
        while running.load(ordering: .relaxed) {
            heartbeat.add(1, ordering: .relaxed)
            switch queue.receive(into: batch, wait: true) {
            case .failed(let e):
                if e != lastError { log.warning("queue \(queue.number) (\(name)): receive failed: \(String(cString: strerror(e)))") }
                lastError = e
                if e == ENOBUFS { continue }     // the kernel dropped packets; counted by the queue
                usleep(10_000)
                continue
            case .wouldBlock, .done:
                break
            }
            foldQueueDrops()
            guard batch.count > 0 else { continue }
            batches.add(1, ordering: .sequentiallyConsistent)
            defer { batches.add(1, ordering: .sequentiallyConsistent) }
            var sent = true
            for i in 0..<batch.count {
                let meta = batch[i]
                let buffer = batch.buffers[i]
                verdicts[i] = handle(buffer, meta, stats)
                if case .failed = queue.setVerdict(verdicts[i], id: meta.id) { sent = false }
            }
            afterBatch?(stats)
            if case .failed = queue.flushVerdicts() { sent = false }
            if !sent { resend() }
        }
    }

    /// What the queue dropped itself as unreadable (a netlink message that is not a
    /// packet, a raw read cut short) goes into `malformed_packet`, once per receive, so
    /// encstat shows every drop.
    @inline(__always) private func foldQueueDrops() {
        let malformed = queue.counters.malformed
        guard malformed != malformedSeen else { return }
        stats.add(.malformedPacket, malformed &- malformedSeen)
        malformedSeen = malformed
    }

    /// Returns once the batch in progress when it was called (if any) has had its
    /// verdicts sent, or after `timeout` seconds (a hung worker); false then. A packet
    /// decided after the caller swapped in a new policy snapshot used the new one.
    @discardableResult
    public func drain(timeout: Double = 2) -> Bool {
        let seen = batches.load(ordering: .sequentiallyConsistent)
        guard seen & 1 == 1 else { return true }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while batches.load(ordering: .sequentiallyConsistent) == seen {
            if DispatchTime.now().uptimeNanoseconds > deadline { return false }
            usleep(100)
        }
        return true
    }

    /// Sends this batch's verdicts again, one datagram each. A verdict the kernel
    /// already took is refused again as an unknown id (harmless, counted by the queue).
    private func resend() {
        stats.add(.verdictSendFailed, UInt64(batch.count))
        for i in 0..<batch.count {
            _ = queue.setVerdict(verdicts[i], id: batch[i].id)
            _ = queue.flushVerdicts()
        }
    }
}
