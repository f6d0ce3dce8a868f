// Worker: one thread per NFQUEUE queue. Stages of its loop:
//   1. receive a batch (up to the batch's capacity) into preallocated buffers
//   2. run the stage on each packet in arrival order, issuing its verdict
//   3. flush the verdicts, then go back to 1
// A receive waits at most the queue's receive timeout, so `stop()` takes effect within
// about a second. Each worker owns its CounterBlock; nothing is shared per packet
// except the policy snapshot (read under a short lock).

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
    private let finished = DispatchSemaphore(value: 0)
    private let log: Log

    public init(name: String, queue: PacketQueue, batchSize: Int = 32, log: Log,
                handle: @escaping (PacketBuffer, QueuedPacket, CounterBlock<Counter>) -> QueueVerdict) {
        self.name = name
        self.queue = queue
        self.batch = QueueBatch(capacity: batchSize)
        self.handle = handle
        self.log = log
    }

    public var queueCounters: QueueCounters { queue.counters }

    public func start() {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
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
            for i in 0..<batch.count {
                let meta = batch[i]
                let buffer = batch.buffers[i]
                let verdict = handle(buffer, meta, stats)
                _ = queue.setVerdict(verdict, id: meta.id)
            }
            if batch.count > 0 { _ = queue.flushVerdicts() }
        }
    }
}
