// FakeSender: an in-memory PacketSender for tests; records every packet sent.
// Not thread-safe; allocates (tests only).

#if canImport(Glibc)
import Glibc
#endif
import EncCore

public final class FakeSender: PacketSender {
    public private(set) var sent: [[UInt8]] = []
    /// When set, sends fail with this errno and are not recorded.
    public var failSends: Int32?
    /// What the next `flush` reports (as UDPEncapSender would for a run it sent).
    public var nextTally = SendTally()

    public init() {}

    public func send(_ buffer: PacketBuffer) -> IOResult {
        if let e = failSends { return .failed(e) }
        guard buffer.count >= 1, let v = buffer.bytes.first.map({ $0 >> 4 }), v == 4 || v == 6 else {
            return .failed(EAFNOSUPPORT)
        }
        sent.append(buffer.array)
        return .done(buffer.count)
    }

    public func flush() -> SendTally {
        defer { nextTally = SendTally() }
        return nextTally
    }
}
