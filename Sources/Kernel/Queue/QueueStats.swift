// QueueStats: the kernel's per-queue numbers from /proc/net/netfilter/nfnetlink_queue,
// for encstat. One line per bound queue:
//   queue_num peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
// queue_dropped: the queue was full (maxlen); user_dropped: netlink delivery to encd failed.

public struct QueueStats: Equatable, Sendable {
    public var queue: UInt16
    public var portID: UInt32
    /// Packets waiting in the kernel for a verdict right now.
    public var waiting: UInt32
    public var copyMode: UInt8
    public var copyRange: UInt32
    public var queueDropped: UInt64
    public var userDropped: UInt64
    public var idSequence: UInt32

    public static let procPath = "/proc/net/netfilter/nfnetlink_queue"

    /// Parses the whole file; lines that do not have the expected fields are reported
    /// as an error naming the line, so a changed kernel format is noticed.
    public static func parse(_ text: String) throws -> [QueueStats] {
        var out: [QueueStats] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 8,
                  let queue = UInt16(f[0]), let port = UInt32(f[1]), let waiting = UInt32(f[2]),
                  let mode = UInt8(f[3]), let range = UInt32(f[4]), let qd = UInt64(f[5]),
                  let ud = UInt64(f[6]), let seq = UInt32(f[7]) else {
                throw KernelConfigError("\(procPath):\(n + 1): unexpected format \"\(line)\"")
            }
            out.append(QueueStats(queue: queue, portID: port, waiting: waiting, copyMode: mode, copyRange: range,
                                  queueDropped: qd, userDropped: ud, idSequence: seq))
        }
        return out
    }

    /// Reads and parses the current network namespace's file (empty when no queue is bound).
    public static func read() throws -> [QueueStats] {
        try parse(ProcFile.read(procPath))
    }
}
