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
    /// Re-reads the configuration file, as SIGHUP does.
    case reload
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

    public init(_ command: Command, what: String? = nil, verbose: Bool? = nil, showKeys: Bool? = nil,
                config: String? = nil, configName: String? = nil, name: String? = nil, value: String? = nil) {
        self.version = ControlProtocol.version
        self.command = command
        self.what = what
        self.verbose = verbose
        self.showKeys = showKeys
        self.config = config
        self.configName = configName
        self.name = name
        self.value = value
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

    public init(kind: String, time: Double, text: String) {
        self.kind = kind
        self.time = time
        self.text = text
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
