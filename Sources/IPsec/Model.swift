// The policy model: flows (SPD entries) and SA specifications as ipsec.conf(5) states
// them. The parser produces these values; the SPD and SAD are built from them; encctl
// prints them back in ipsecctl(8)'s format.

import Crypto
import EncCore

/// The IPsec protocol of a flow or SA.
public enum IPsecProtocol: UInt8, Sendable, Hashable, CustomStringConvertible {
    case esp = 50
    case ah = 51
    public var description: String { self == .esp ? "esp" : "ah" }
}

public enum FlowDirection: Sendable, Hashable, CustomStringConvertible {
    case inbound, outbound
    public var description: String { self == .inbound ? "in" : "out" }
}

/// ipsec.conf(5) `type`: what happens to traffic that matches the flow.
public enum FlowType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// IPsec if an SA exists, cleartext otherwise.
    case use
    /// Ask for an SA, send cleartext meanwhile.
    case acquire
    /// IPsec only; without an SA the packet is dropped and an SA requested.
    case require
    /// IPsec if an SA exists, else drop; never ask the key daemon.
    case dontacq
    /// Drop.
    case deny
    /// Cleartext, no IPsec.
    case bypass
    public var description: String { rawValue }
}

public enum IPsecMode: String, Sendable, Hashable, CustomStringConvertible {
    case tunnel, transport
    public var description: String { rawValue }
}

/// One SPD entry, one direction (a rule without direction yields two of these).
public struct FlowSpec: Sendable, Hashable {
    public var proto: IPsecProtocol
    public var direction: FlowDirection
    /// Upper-layer protocol number; nil matches any.
    public var upperProtocol: UInt8?
    public var source: IPPrefix
    public var sourcePort: UInt16?
    public var destination: IPPrefix
    public var destinationPort: UInt16?
    /// The local end of the SA (ipsec.conf `local`); nil = any.
    public var local: IPAddress?
    /// The remote end of the SA; nil = `peer any` (or none for deny/bypass).
    public var peer: IPAddress?
    public var type: FlowType
    public var sourceID: String?
    public var destinationID: String?
    /// Who installed the flow: nil for the configuration (the file, encctl -f), else
    /// the key daemon's name given to `add` (encd-iked).
    public var owner: String?
    /// The CHILD SA binding: the flow uses the newest usable outbound SA of this child
    /// and accepts only packets its inbound SAs carried. nil: bound by peer as before.
    public var child: UInt32?

    public init(proto: IPsecProtocol = .esp, direction: FlowDirection, upperProtocol: UInt8? = nil,
                source: IPPrefix, sourcePort: UInt16? = nil,
                destination: IPPrefix, destinationPort: UInt16? = nil,
                local: IPAddress? = nil, peer: IPAddress? = nil, type: FlowType = .require,
                sourceID: String? = nil, destinationID: String? = nil,
                owner: String? = nil, child: UInt32? = nil) {
        self.proto = proto
        self.direction = direction
        self.upperProtocol = upperProtocol
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.local = local
        self.peer = peer
        self.type = type
        self.sourceID = sourceID
        self.destinationID = destinationID
        self.owner = owner
        self.child = child
    }

    /// The same flow for the other direction: addresses and ports swapped, as
    /// ipsec.conf(5) does for a rule without `in`/`out`.
    public var mirrored: FlowSpec {
        var m = self
        m.direction = direction == .inbound ? .outbound : .inbound
        m.source = destination
        m.sourcePort = destinationPort
        m.destination = source
        m.destinationPort = sourcePort
        return m
    }
}

/// Sequence-number and lifetime limits of an SA. nil = no limit.
public struct Lifetime: Sendable, Hashable {
    public var bytes: UInt64?
    public var packets: UInt64?
    /// Seconds since the SA was added.
    public var seconds: UInt64?
    /// Seconds since the SA was first used.
    public var secondsSinceUse: UInt64?

    public init(bytes: UInt64? = nil, packets: UInt64? = nil, seconds: UInt64? = nil, secondsSinceUse: UInt64? = nil) {
        self.bytes = bytes
        self.packets = packets
        self.seconds = seconds
        self.secondsSinceUse = secondsSinceUse
    }

    public var isUnlimited: Bool { bytes == nil && packets == nil && seconds == nil && secondsSinceUse == nil }
}

/// RFC 3948 UDP encapsulation of an SA.
public struct UDPEncapsulation: Sendable, Hashable {
    /// The local (and, unless `peerPort` says otherwise, the remote) port; 4500 by default.
    public var port: UInt16
    /// The peer's port when it differs (a NAT in front of it); learned from traffic if nil.
    public var peerPort: UInt16?
    public init(port: UInt16 = 4500, peerPort: UInt16? = nil) {
        self.port = port
        self.peerPort = peerPort
    }
}

/// One SA, one direction, fully specified (an `esp ... spi X:Y` rule yields two).
public struct SASpec: Sendable {
    public var proto: IPsecProtocol
    public var mode: IPsecMode
    /// The SA's source and destination (the outer addresses in tunnel mode).
    public var source: IPAddress
    public var destination: IPAddress
    public var spi: UInt32
    public var encapsulation: UDPEncapsulation?
    /// nil for AH.
    public var encryption: EncryptionAlgorithm?
    public var encryptionKey: SecretKey?
    /// nil with a combined-mode cipher.
    public var integrity: IntegrityAlgorithm?
    public var integrityKey: SecretKey?
    /// Anti-replay window in packets; 0 = off (OpenBSD's manual SAs).
    public var replayWindow: Int
    /// RFC 4303 extended (64-bit) sequence numbers.
    public var extendedSequence: Bool
    public var softLifetime: Lifetime
    public var hardLifetime: Lifetime
    /// Who installed the SA: nil for the configuration, else the key daemon's name.
    public var owner: String?
    /// The CHILD SA binding (see FlowSpec.child); nil for an SA any flow to its peer uses.
    public var child: UInt32?

    public init(proto: IPsecProtocol, mode: IPsecMode = .tunnel, source: IPAddress, destination: IPAddress,
                spi: UInt32, encapsulation: UDPEncapsulation? = nil,
                encryption: EncryptionAlgorithm? = nil, encryptionKey: SecretKey? = nil,
                integrity: IntegrityAlgorithm? = nil, integrityKey: SecretKey? = nil,
                replayWindow: Int = 0, extendedSequence: Bool = false,
                softLifetime: Lifetime = Lifetime(), hardLifetime: Lifetime = Lifetime(),
                owner: String? = nil, child: UInt32? = nil) {
        self.proto = proto
        self.mode = mode
        self.source = source
        self.destination = destination
        self.spi = spi
        self.encapsulation = encapsulation
        self.encryption = encryption
        self.encryptionKey = encryptionKey
        self.integrity = integrity
        self.integrityKey = integrityKey
        self.replayWindow = replayWindow
        self.extendedSequence = extendedSequence
        self.softLifetime = softLifetime
        self.hardLifetime = hardLifetime
        self.owner = owner
        self.child = child
    }

    /// The SAD key.
    public var key: SAKey { SAKey(destination: destination, spi: spi, proto: proto) }
}

/// SAs are found by (destination, SPI, protocol) (RFC 4301 4.1).
public struct SAKey: Hashable, Sendable, CustomStringConvertible {
    public var destination: IPAddress
    public var spi: UInt32
    public var proto: IPsecProtocol
    public init(destination: IPAddress, spi: UInt32, proto: IPsecProtocol) {
        self.destination = destination
        self.spi = spi
        self.proto = proto
    }
    public var description: String { "\(proto) spi 0x\(String(spi, radix: 16)) to \(destination)" }
}
