// WorkerShare: which part of a stage's SAs one worker owns when a stage has several
// workers (issue #9). An SA belongs to exactly one worker, so its sequence counter and
// replay window have one writer and its packets leave in sequence order:
//   outbound   the SA's number % count (the kernel's steering program on enc0 picks
//              the queue from the number [X] put in the mark: TUNDevice.steerByMark)
//   inbound    a hash of the SPI % count (each worker's raw sockets filter for their
//              share: SocketInputQueue); a packet too short to hold an SPI is worker 0's.
//              Hashed because manual keys come in pairs (spi 0x1000:0x1001,
//              0x1002:0x1003, ...), whose inbound SPIs modulo 2 would all be alike;
//              Fibonacci hashing spreads any such pattern.
// The stages check it again before they touch an SA, so a packet the kernel ever
// handed to the wrong worker is dropped, never processed by two threads at once.

public struct WorkerShare: Sendable, Equatable, CustomStringConvertible {
    public let index: UInt32
    public let count: UInt32

    /// The one worker of a stage that has one.
    public static let whole = WorkerShare(uncheckedIndex: 0, count: 1)

    /// nil unless 0 <= index < count.
    public init?(index: Int, count: Int) {
        guard count >= 1, count <= Int(UInt32.max), index >= 0, index < count else { return nil }
        self.init(uncheckedIndex: UInt32(index), count: UInt32(count))
    }

    private init(uncheckedIndex index: UInt32, count: UInt32) {
        self.index = index
        self.count = count
    }

    /// Whether the outbound SA numbered `number` is this worker's.
    @inline(__always) public func owns(_ number: UInt32) -> Bool { count == 1 || number % count == index }

    /// Whether the inbound SA with this SPI is this worker's.
    @inline(__always) public func owns(spi: UInt32) -> Bool { count == 1 || Self.spreadSPI(spi) % count == index }

    /// The multiplier of the SPI hash (2^32 / golden ratio), which the sockets' classic
    /// BPF filter uses too: (spi * multiplier mod 2^32) >> 16.
    public static let spiMultiplier: UInt32 = 0x9E37_79B1

    @inline(__always) public static func spreadSPI(_ spi: UInt32) -> UInt32 { (spi &* spiMultiplier) >> 16 }

    /// All shares of a stage with `count` workers.
    public static func all(_ count: Int) -> [WorkerShare] {
        (0..<max(1, count)).compactMap { WorkerShare(index: $0, count: max(1, count)) }
    }

    public var description: String { "\(index + 1)/\(count)" }
}
