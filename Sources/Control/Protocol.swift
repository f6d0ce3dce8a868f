// The control protocol between encd and its tools (encctl, encstat), version 1.
//
// Transport: a Unix stream socket (default /run/encd/encd.sock, mode 0600, peers
// checked with SO_PEERCRED). Framing: each message is a 4-byte big-endian length and
// that many bytes of JSON (at most `maximumMessage`). A client sends one Request and
// reads one Response, except for `monitor`, after which the server sends a Response
// per event until the client closes. Requests that change state apply wholly or not
// at all. Docs/control-protocol.md describes every field.

public enum ControlProtocol {
    public static let version = 1
    public static let maximumMessage = 1 << 20
    public static let defaultSocket = "/run/encd/encd.sock"
}

public enum Command: String, Codable, Sendable, CaseIterable {
    /// Daemon state in brief: counts, queues, interface, backend.
    case status
    /// Flows and/or SAs as ipsecctl(8) prints them (`what`: flow, sa, all).
    case show
    /// Every counter, by its stable name.
    case counters
    /// Adds the flows and SAs of `config` (ipsec.conf text, includes and key files
    /// already resolved by the client) to the running set.
    case load
    /// Deletes the flows and SAs `config` names.
    case delete
    /// Removes flows and/or SAs (`what`: flow, sa, all).
    case flush
    /// Reads (no `name`) or sets (`name`, `value`) tunables.
    case tunable
    /// Streams events until the client closes.
    case monitor
    /// Re-reads the configuration file, as SIGHUP does. Replaces only what the file
    /// owns: SAs and flows a key daemon added stay.
    case reload
    /// Reserves a random unused SPI (0x100 and up) for `proto` and `destination` for
    /// 60 seconds: the key daemon's SADB_GETSPI. Answers `spi`.
    case getspi
    /// Adds the structured `sas` and `flows` for `owner`, all or nothing, replacing
    /// nothing: an SA whose (destination, SPI, protocol) exists is an error.
    case add
    /// Removes SAs (`sas`: proto, destination, spi), flows (`flows`: selector and
    /// direction) and/or every flow of `child`, all of `owner`'s. Keys are not needed.
    case remove
    /// Moves `owner`'s UDP-encapsulated SAs (`sas`: proto, destination, spi) to the
    /// peer's new `peer` address and/or `peerPort` (a NAT rebound), keeping their
    /// sequence numbers, replay windows and counters.
    case update
}

public struct Request: Codable, Sendable, Equatable {
    public var version: Int
    public var command: Command
    /// show/flush: "flow", "sa" or "all".
    public var what: String?
    /// show: per-SA details (state, replay, lifetimes, counters).
    public var verbose: Bool?
    /// show: include keys (encctl -k). Never implied.
    public var showKeys: Bool?
    /// load/delete: ipsec.conf text.
    public var config: String?
    /// load/delete: the name errors should quote (the file the client read).
    public var configName: String?
    /// tunable: name and value to set.
    public var name: String?
    public var value: String?
    /// add/remove: who owns what the request adds or removes ("encd-iked").
    public var owner: String?
    /// add: the SAs to add; remove: the SAs to remove (proto, destination, spi only).
    public var sas: [SAEntry]?
    /// add: the flows to add; remove: the flows to remove (selector and direction).
    public var flows: [FlowEntry]?
    /// remove: every flow bound to this CHILD SA.
    public var child: UInt32?
    /// add: only if encd's sequence state recorded every SA's keys (their numbers then
    /// continue above it); otherwise refused and nothing added. A key daemon re-adding
    /// the SAs it still holds after an encd restart.
    public var continueOnly: Bool?
    /// getspi: "esp" or "ah", and the SA's destination (this host's address) and source.
    public var proto: String?
    public var destination: String?
    public var source: String?
    /// update: the peer's new address and/or port.
    public var peer: String?
    public var peerPort: UInt16?

    public init(_ command: Command, what: String? = nil, verbose: Bool? = nil, showKeys: Bool? = nil,
                config: String? = nil, configName: String? = nil, name: String? = nil, value: String? = nil,
                owner: String? = nil, sas: [SAEntry]? = nil, flows: [FlowEntry]? = nil, child: UInt32? = nil,
                proto: String? = nil, destination: String? = nil, source: String? = nil,
                peer: String? = nil, peerPort: UInt16? = nil, continueOnly: Bool? = nil) {
        self.version = ControlProtocol.version
        self.command = command
        self.what = what
        self.verbose = verbose
        self.showKeys = showKeys
        self.config = config
        self.configName = configName
        self.name = name
        self.value = value
        self.owner = owner
        self.sas = sas
        self.flows = flows
        self.child = child
        self.proto = proto
        self.destination = destination
        self.source = source
        self.peer = peer
        self.peerPort = peerPort
        self.continueOnly = continueOnly
    }
}

/// An SA as a key daemon hands it to `add` (and, reduced to proto, destination and
/// spi, to `remove`). Keys are hex; names are ipsec.conf(5)'s.
public struct SAEntry: Codable, Sendable, Equatable {
    /// "esp" or "ah".
    public var proto: String
    /// "tunnel" (default) or "transport".
    public var mode: String?
    public var source: String?
    public var destination: String
    public var spi: UInt32
    /// ESP: the cipher ("aes-128-gcm", "aes-256", "chacha20-poly1305" …) and its key
    /// material (salt included) in hex.
    public var enc: String?
    public var encKey: String?
    /// The integrity algorithm ("hmac-sha2-256" …) and its key, unless the cipher is combined.
    public var auth: String?
    public var authKey: String?
    /// Extended sequence numbers.
    public var esn: Bool?
    /// Anti-replay window in packets (default 64, as iked).
    public var replay: Int?
    /// RFC 3948 UDP encapsulation: the local port and the peer's port.
    public var udpencap: UDPEncapEntry?
    public var soft: LifetimeEntry?
    public var hard: LifetimeEntry?
    /// The CHILD SA binding the SA serves.
    public var child: UInt32?

    public init(proto: String, mode: String? = nil, source: String? = nil, destination: String, spi: UInt32,
                enc: String? = nil, encKey: String? = nil, auth: String? = nil, authKey: String? = nil,
                esn: Bool? = nil, replay: Int? = nil, udpencap: UDPEncapEntry? = nil,
                soft: LifetimeEntry? = nil, hard: LifetimeEntry? = nil, child: UInt32? = nil) {
        self.proto = proto
        self.mode = mode
        self.source = source
        self.destination = destination
        self.spi = spi
        self.enc = enc
        self.encKey = encKey
        self.auth = auth
        self.authKey = authKey
        self.esn = esn
        self.replay = replay
        self.udpencap = udpencap
        self.soft = soft
        self.hard = hard
        self.child = child
    }
}

public struct UDPEncapEntry: Codable, Sendable, Equatable {
    public var port: UInt16?
    public var peerPort: UInt16?
    public init(port: UInt16? = nil, peerPort: UInt16? = nil) {
        self.port = port
        self.peerPort = peerPort
    }
}

public struct LifetimeEntry: Codable, Sendable, Equatable {
    public var bytes: UInt64?
    public var packets: UInt64?
    public var seconds: UInt64?
    public init(bytes: UInt64? = nil, packets: UInt64? = nil, seconds: UInt64? = nil) {
        self.bytes = bytes
        self.packets = packets
        self.seconds = seconds
    }
}

/// A flow as a key daemon hands it to `add` or names it to `remove`.
public struct FlowEntry: Codable, Sendable, Equatable {
    /// "esp" (default) or "ah".
    public var proto: String?
    /// "in" or "out".
    public var direction: String
    /// Upper-layer protocol number; nil: any.
    public var upperProtocol: UInt8?
    /// Prefixes: "198.18.1.0/24", "2001:db8::/32", an address for a host.
    public var source: String
    public var sourcePort: UInt16?
    public var destination: String
    public var destinationPort: UInt16?
    public var local: String?
    public var peer: String?
    /// "require" (default), "use", "acquire", "dontacq", "bypass", "deny".
    public var type: String?
    public var child: UInt32?

    public init(proto: String? = nil, direction: String, upperProtocol: UInt8? = nil, source: String,
                sourcePort: UInt16? = nil, destination: String, destinationPort: UInt16? = nil,
                local: String? = nil, peer: String? = nil, type: String? = nil, child: UInt32? = nil) {
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
        self.child = child
    }
}

/// One SA as the daemon reports it.
public struct SAStatus: Codable, Sendable, Equatable {
    /// ipsecctl(8) line(s): `esp tunnel from A to B spi 0x… auth … enc …` (keys only when asked).
    public var text: String
    public var proto: String
    public var spi: UInt32
    public var source: String
    public var destination: String
    /// "in" or "out" from this host's point of view.
    public var direction: String
    /// "mature", "soft-expired", "hard-expired", "exhausted".
    public var state: String
    public var replayWindow: Int
    /// Inbound: highest sequence number accepted. Outbound: next sequence number to send.
    public var sequence: UInt64
    public var packets: UInt64
    public var bytes: UInt64
    public var drops: UInt64
    public var replayDrops: UInt64
    public var authFailures: UInt64
    /// Seconds since the SA was added / first used (nil = not yet used).
    public var age: UInt64
    public var sinceFirstUse: UInt64?
    /// Hard lifetime left, per limit that is set (bytes, packets, seconds).
    public var hardBytesLeft: UInt64?
    public var hardPacketsLeft: UInt64?
    public var hardSecondsLeft: UInt64?
    public var softBytesLeft: UInt64?
    public var softPacketsLeft: UInt64?
    public var softSecondsLeft: UInt64?
    /// "esn", "udpencap", "replay" … as set.
    public var flags: [String]
    /// NAT-T: the peer's address:port as learned from its traffic.
    public var natPeer: String?
    /// Who installed the SA (nil: the configuration) and the CHILD SA it serves.
    public var owner: String?
    public var child: UInt32?
    /// Seconds since the SA last carried a packet (nil: never), to a second.
    public var idle: UInt64?

    public init(text: String, proto: String, spi: UInt32, source: String, destination: String, direction: String,
                state: String, replayWindow: Int, sequence: UInt64, packets: UInt64, bytes: UInt64, drops: UInt64,
                replayDrops: UInt64, authFailures: UInt64, age: UInt64, sinceFirstUse: UInt64?, flags: [String]) {
        self.text = text
        self.proto = proto
        self.spi = spi
        self.source = source
        self.destination = destination
        self.direction = direction
        self.state = state
        self.replayWindow = replayWindow
        self.sequence = sequence
        self.packets = packets
        self.bytes = bytes
        self.drops = drops
        self.replayDrops = replayDrops
        self.authFailures = authFailures
        self.age = age
        self.sinceFirstUse = sinceFirstUse
        self.flags = flags
    }
}

/// One flow as the daemon reports it.
public struct FlowStatus: Codable, Sendable, Equatable {
    /// ipsecctl(8) line: `flow esp out from … to … peer … type require`.
    public var text: String
    public var proto: String
    public var direction: String
    public var upperProtocol: UInt8?
    public var source: String
    public var sourcePort: UInt16?
    public var destination: String
    public var destinationPort: UInt16?
    /// The peer address, or nil for `any` / none (bypass, deny).
    public var peer: String?
    public var type: String
    /// Who installed the flow (nil: the configuration) and the CHILD SA it is bound to.
    public var owner: String?
    public var child: UInt32?

    public init(text: String, proto: String, direction: String, upperProtocol: UInt8?, source: String,
                sourcePort: UInt16?, destination: String, destinationPort: UInt16?, peer: String?, type: String) {
        self.text = text
        self.proto = proto
        self.direction = direction
        self.upperProtocol = upperProtocol
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
        self.peer = peer
        self.type = type
    }
}

/// An NFQUEUE queue of encd's, from /proc/net/netfilter/nfnetlink_queue and encd's own reader.
public struct QueueStatus: Codable, Sendable, Equatable {
    public var number: UInt16
    public var role: String
    public var waiting: UInt32
    /// Dropped by the kernel because the queue was full.
    public var queueDropped: UInt64
    /// Dropped by the kernel because encd's socket buffer was full.
    public var userDropped: UInt64
    public var received: UInt64

    public init(number: UInt16, role: String, waiting: UInt32, queueDropped: UInt64, userDropped: UInt64, received: UInt64) {
        self.number = number
        self.role = role
        self.waiting = waiting
        self.queueDropped = queueDropped
        self.userDropped = userDropped
        self.received = received
    }
}

/// Something that happened, for `monitor`.
public struct Event: Codable, Sendable, Equatable {
    /// "sa-added", "sa-deleted", "sa-soft-expired", "sa-hard-expired", "acquire",
    /// "replay", "auth-failure", "policy-failure", "reload", "reload-failed".
    public var kind: String
    /// Seconds since the epoch.
    public var time: Double
    /// One line for people, as encctl -m prints it.
    public var text: String
    /// The SA an sa-* event is about (no keys).
    public var sa: EventSA?
    /// The flow an acquire or flow event is about.
    public var flow: FlowStatus?
    /// The packet that triggered an acquire or a policy failure.
    public var packet: EventPacket?
    /// sa-deleted: why ("delete", "remove", "flush", "reload", "replaced",
    /// "hard-lifetime", "load", "tunable", "addresses").
    public var reason: String?

    public init(kind: String, time: Double, text: String) {
        self.kind = kind
        self.time = time
        self.text = text
    }
}

/// An SA as events name it: enough for a key daemon to find its CHILD SA.
public struct EventSA: Codable, Sendable, Equatable {
    public var proto: String
    public var spi: UInt32
    public var source: String
    public var destination: String
    /// "in" or "out".
    public var direction: String
    public var owner: String?
    public var child: UInt32?

    public init(proto: String, spi: UInt32, source: String, destination: String, direction: String,
                owner: String? = nil, child: UInt32? = nil) {
        self.proto = proto
        self.spi = spi
        self.source = source
        self.destination = destination
        self.direction = direction
        self.owner = owner
        self.child = child
    }
}

/// A packet's selector as events report it (RFC 7296 §2.9: an acquire's traffic
/// selectors start with the packet's own addresses and ports).
public struct EventPacket: Codable, Sendable, Equatable {
    public var source: String
    public var destination: String
    public var proto: UInt8
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?

    public init(source: String, destination: String, proto: UInt8, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

public struct Response: Codable, Sendable, Equatable {
    public var version: Int
    public var ok: Bool
    /// One line: what went wrong (ok == false).
    public var error: String?
    /// Configuration errors, each "file:line:column: message".
    public var errors: [String]?
    public var flows: [FlowStatus]?
    public var sas: [SAStatus]?
    /// Counter name → value (IPsec.Counter.name).
    public var counters: [String: UInt64]?
    public var queues: [QueueStatus]?
    public var tunables: [String: Int]?
    public var event: Event?
    /// status: free-form facts (interface, backend, pid, uptime …).
    public var status: [String: String]?
    /// getspi: the SPI reserved.
    public var spi: UInt32?

    public init(ok: Bool = true, error: String? = nil) {
        self.version = ControlProtocol.version
        self.ok = ok
        self.error = error
    }

    public static func failure(_ message: String, errors: [String]? = nil) -> Response {
        var r = Response(ok: false, error: message)
        r.errors = errors
        return r
    }
}
