// PacketSender: how encd puts a finished packet (ESP/AH, or a bypassed original) on
// the host's normal output path. Packet path: returns an IOResult, allocates nothing.
// `send` may keep a packet back to send it with the next ones (a run of UDP datagrams);
// `flush` sends it and reports the outcome.

import EncCore

public protocol PacketSender: AnyObject {
    /// Sends the complete IPv4 or IPv6 packet in `buffer` (family from its version
    /// nibble). `.failed(EAFNOSUPPORT)` when the first byte is neither 4 nor 6.
    func send(_ buffer: PacketBuffer) -> IOResult
    /// Sends what `send` kept back to go out with later packets (UDPEncapSender's runs)
    /// and tells what happened to those packets since the last call.
    func flush() -> SendTally
}

extension PacketSender {
    /// A sender that sends at once keeps nothing back.
    public func flush() -> SendTally { SendTally() }
}
