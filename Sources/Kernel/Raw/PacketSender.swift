// PacketSender: how encd puts a finished packet (ESP/AH, or a bypassed original) on
// the host's normal output path. Packet path: returns an IOResult, allocates nothing.

import EncCore

public protocol PacketSender: AnyObject {
    /// Sends the complete IPv4 or IPv6 packet in `buffer` (family from its version
    /// nibble). `.failed(EAFNOSUPPORT)` when the first byte is neither 4 nor 6.
    func send(_ buffer: PacketBuffer) -> IOResult
}
