// FileSequenceStore: sequence-number reservations (SequenceStore) kept in one file in
// the state directory, rewritten atomically (temporary file, fsync, rename, fsync of
// the directory) before a reservation is granted. After a crash encd starts every SA
// above the highest number it ever reserved, so no (key, IV) pair repeats, and every
// inbound SA's replay window above the numbers it may have accepted.
//
// File format (version 2), one line each:
//   salt 00112233445566778899aabbccddeeff
//   out esp 0x00001000 192.0.2.2 65536 key 3fa9c1d07b2e4a6f8e1d2c3b4a596877
//   in esp 0x00001001 192.0.2.1 131072 sa
//   end 2
// `key DIGEST` marks a space keyed by the SA's key (counter-mode and combined
// ciphers: the SPI or peer may change, the numbers go on); `sa` a space keyed by the
// destination, SPI and protocol shown. Lines of version 1 ("esp 0x00001000 192.0.2.2
// 65536") are outbound spaces by SA and are read as such. `end N` closes the file with
// the number of space lines, so a file cut at a line boundary is noticed too.
//
// Nothing is guessed: a file that cannot be read, is not UTF-8, has a line that does
// not parse or a number no SA could have reached is refused with its path and line
// number. Resetting would reuse nonces; only the administrator can decide to start
// over, and only with new keys.

import Crypto
import EncCore
import Foundation
import IPsec
import Kernel
import Synchronization

public final class FileSequenceStore: SequenceStore, @unchecked Sendable {
    public let path: String
    private let state: Mutex<SequenceLedger>
    private let salt: [UInt8]
    private let io: DurableIO
    /// Numbers above this cannot have been reached by any SA (2^64 - 2^32): a larger
    /// one means the file is damaged.
    static let plausibleLimit: UInt64 = UInt64.max - UInt64(UInt32.max)

    /// Loads `path` if it exists (a new store gets a random salt, written with the first
    /// reservation). Throws `DaemonError` naming the file and line when it is damaged.
    public init(path: String, io: DurableIO = .system) throws {
        self.path = path
        self.io = io
        let recovery = "refusing to guess (restoring the file from a backup keeps the keys usable; otherwise give every SA in it new keys, then remove it)"
        guard let data = try io.read(path) else {
            var fresh = [UInt8](repeating: 0, count: 16)
            guard io.random(&fresh) else { throw DaemonError("\(path): no random salt for a new sequence state file") }
            salt = fresh
            state = Mutex(SequenceLedger())
            return
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            let line = Self.firstInvalidLine(data)
            throw DaemonError("\(path):\(line): not UTF-8: damaged sequence state, \(recovery)")
        }
        var ledger = SequenceLedger()
        var salt: [UInt8]?
        var end: Int?
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, line) in lines.enumerated() {
            if line.isEmpty && i == lines.count - 1 { break }
            let where_ = "\(path):\(i + 1)"
            if i == lines.count - 1 { throw DaemonError("\(where_): last line has no end: truncated sequence state, \(recovery)") }
            do {
                if end != nil { throw DaemonError("a line after the end line") }
                switch try Self.parse(line) {
                case .end(let n):
                    guard n == ledger.entries.count else {
                        throw DaemonError("end line counts \(n) spaces, the file has \(ledger.entries.count)")
                    }
                    end = n
                case .salt(let s):
                    guard salt == nil else { throw DaemonError("second salt line") }
                    salt = s
                case .entry(let key, let entry):
                    guard ledger.entries[key] == nil else { throw DaemonError("second line for the same space") }
                    ledger.entries[key] = entry
                }
            } catch let e as DaemonError {
                throw DaemonError("\(where_): \(e.description): damaged sequence state, \(recovery)")
            }
        }
        // Version 2 starts with its salt and closes with its end line; version 1 had neither.
        if salt != nil && end == nil {
            throw DaemonError("\(path):\(lines.count): no end line: truncated sequence state, \(recovery)")
        }
        let keyed = ledger.entries.keys.contains { if case .keys = $0.identity { true } else { false } }
        if salt == nil && (keyed || end != nil) {
            throw DaemonError("\(path):1: no salt line: damaged sequence state, \(recovery)")
        }
        if let salt { self.salt = salt } else {
            var fresh = [UInt8](repeating: 0, count: 16)
            guard io.random(&fresh) else { throw DaemonError("\(path): no random salt") }
            self.salt = fresh
        }
        state = Mutex(ledger)
    }

    public func claim(_ spec: SASpec, _ space: SequenceSpace) -> SequenceClaim {
        let identity = SequenceIdentity.of(spec, salt: salt)
        return state.withLock { ledger in
            // A space first recorded by SA (version 1, or before this cipher was keyed
            // by its key) moves to the key identity, keeping its numbers.
            if case .keys = identity, let legacy = ledger.entries.removeValue(forKey: .init(.sa(spec.key), space)) {
                let k = SequenceLedger.Key(identity, space)
                var e = ledger.entries[k] ?? legacy
                e.reserved = max(e.reserved, legacy.reserved)
                ledger.entries[k] = e
            }
            return ledger.claim(identity, space, sa: spec.key)
        }
    }

    public func reserve(_ claim: SequenceClaim, through limit: UInt64) -> Bool {
        record(claim) { $0.reserving(claim, through: limit) }
    }

    public func recorded(_ spec: SASpec, _ space: SequenceSpace) -> UInt64? {
        let identity = SequenceIdentity.of(spec, salt: salt)
        return state.withLock { $0.recorded(identity, space, sa: spec.key) }
    }

    public func settle(_ claim: SequenceClaim, at used: UInt64) -> Bool {
        record(claim) { $0.settling(claim, at: used) }
    }

    public func retire(_ claim: SequenceClaim) -> Bool {
        record(claim) { $0.retiring(claim) }
    }

    /// Writes the ledger `change` makes, and keeps it only once it is on disk.
    private func record(_ claim: SequenceClaim, _ change: (SequenceLedger) -> SequenceLedger) -> Bool {
        state.withLock { ledger in
            guard ledger.holds(claim) else { return false }
            let next = change(ledger)
            let e = io.replace(path, Array(Self.text(next, salt: salt).utf8))
            lastError.withLock { $0 = e }
            guard e == 0 else { return false }
            ledger = next
            return true
        }
    }

    public func stillHolds(_ claim: SequenceClaim) -> Bool { state.withLock { $0.holds(claim) } }

    /// The errno of the last failed write (0 after a good one), for the log.
    public var lastWriteError: Int32 { lastError.withLock { $0 } }
    private let lastError = Mutex<Int32>(0)

    // MARK: The file

    enum Line {
        case salt([UInt8])
        case end(Int)
        case entry(SequenceLedger.Key, SequenceLedger.Entry)
    }

    static func parse(_ line: Substring) throws -> Line {
        var f = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if f.count == 2 && f[0] == "salt" {
            guard let s = Hex.decode(f[1]), s.count == 16 else { throw DaemonError("bad salt") }
            return .salt(s)
        }
        if f.count == 2 && f[0] == "end" {
            guard f[1].allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(f[1]) else { throw DaemonError("bad end line") }
            return .end(n)
        }
        var space = SequenceSpace.outbound
        var identity: SequenceIdentity?
        if f.count == 4 {
            // version 1: outbound, by SA
        } else if f.count == 6 || f.count == 7, let s = SequenceSpace(rawValue: f[0]) {
            space = s
            f.removeFirst()
            let kind = f.count == 6 ? f.removeLast() : nil
            let tag = f.removeLast()
            switch (tag, kind) {
            case ("sa", nil): break
            case ("key", let digest?):
                guard let d = Hex.decode(digest), d.count == 16 else { throw DaemonError("bad key digest") }
                identity = .keys(d)
            default:
                throw DaemonError("expected \"sa\" or \"key DIGEST\" at the end of the line")
            }
        } else {
            throw DaemonError("expected \"in|out esp|ah 0xSPI DESTINATION LIMIT sa|key DIGEST\"")
        }
        guard let proto = f[0] == "esp" ? IPsecProtocol.esp : (f[0] == "ah" ? .ah : nil) else {
            throw DaemonError("expected esp or ah, found \"\(f[0])\"")
        }
        guard f[1].hasPrefix("0x"), f[1].count <= 10, let spi = UInt32(f[1].dropFirst(2), radix: 16) else {
            throw DaemonError("bad spi \"\(f[1])\"")
        }
        guard let dst = IPAddress(f[2]) else { throw DaemonError("bad address \"\(f[2])\"") }
        guard f[3].allSatisfy({ $0.isASCII && $0.isNumber }), let limit = UInt64(f[3]) else {
            throw DaemonError("bad sequence number \"\(f[3])\"")
        }
        guard limit <= plausibleLimit else {
            throw DaemonError("sequence number \(limit) is beyond anything an SA can reach")
        }
        let sa = SAKey(destination: dst, spi: spi, proto: proto)
        return .entry(.init(identity ?? .sa(sa), space), .init(reserved: limit, sa: sa))
    }

    static func text(_ ledger: SequenceLedger, salt: [UInt8]) -> String {
        var out = "salt \(Hex.encode(salt))\n"
        let rows = ledger.entries.map { (k, e) -> String in
            let id: String
            switch k.identity {
            case .keys(let d): id = "key \(Hex.encode(d))"
            case .sa: id = "sa"
            }
            return "\(k.space.rawValue) \(e.sa.proto) 0x\(hex8(e.sa.spi)) \(e.sa.destination) \(e.reserved) \(id)"
        }
        for r in rows.sorted() { out += r + "\n" }
        return out + "end \(rows.count)\n"
    }

    /// 1-based line of the first byte sequence that is not UTF-8.
    static func firstInvalidLine(_ data: [UInt8]) -> Int {
        var line = 1
        var start = 0
        for (i, b) in data.enumerated() where b == 0x0a {
            if String(validating: data[start..<i], as: UTF8.self) == nil { return line }
            line += 1
            start = i + 1
        }
        return line
    }
}

/// The file operations a durable store needs, each retried on EINTR; `system` is the
/// real one, tests replace single steps to make them fail.
public struct DurableIO: Sendable {
    public var read: @Sendable (String) throws -> [UInt8]?
    /// 0 on success, else the errno of the step that failed.
    public var replace: @Sendable (String, [UInt8]) -> Int32
    public var random: @Sendable (inout [UInt8]) -> Bool

    public init(read: @escaping @Sendable (String) throws -> [UInt8]?,
                replace: @escaping @Sendable (String, [UInt8]) -> Int32,
                random: @escaping @Sendable (inout [UInt8]) -> Bool) {
        self.read = read
        self.replace = replace
        self.random = random
    }

    /// The whole file, nil when it does not exist; throws when it cannot be read.
    public static func readFile(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw DaemonError("\(path): cannot read the sequence state: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let r = chunk.withUnsafeMutableBytes { b in Syscall.retry { Glibc.read(fd, b.baseAddress, b.count) } }
            switch r {
            case .done(0): return out
            case .done(let n): out += chunk[0..<n]
            case .wouldBlock, .failed:
                let e = r == .wouldBlock ? EAGAIN : { if case .failed(let x) = r { return x } else { return EIO } }()
                throw DaemonError("\(path): cannot read the sequence state: \(String(cString: strerror(e)))")
            }
        }
    }

    /// Writes `bytes` to `path` so that after a crash either the old or the new
    /// content is there, and the new one is on disk before this returns 0 (else the
    /// errno of the step that failed): temporary file, write, fsync, rename, fsync of
    /// the directory.
    public static func replaceFile(_ path: String, _ bytes: [UInt8],
                                   fsyncDirectory: (Int32) -> Int32 = { fsync($0) }) -> Int32 {
        func failed(_ r: IOResult) -> Int32 {
            switch r {
            case .failed(let e): return e
            case .wouldBlock: return EAGAIN
            case .done: return EIO      // a write that moved nothing
            }
        }
        let tmp = path + ".tmp"
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return errno }
        var written = 0
        var error: Int32 = 0
        while error == 0 && written < bytes.count {
            let r = bytes.withUnsafeBytes { b in
                Syscall.retry { Glibc.write(fd, b.baseAddress! + written, b.count - written) }
            }
            if case .done(let n) = r, n > 0 { written += n } else { error = failed(r) }
        }
        if error == 0 {
            let r = Syscall.retry { fsync(fd) }
            if case .done = r {} else { error = failed(r) }
        }
        close(fd)
        if error == 0 {
            let r = Syscall.retry { rename(tmp, path) }
            if case .done = r {} else { error = failed(r) }
        }
        guard error == 0 else {
            unlink(tmp)
            return error
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { return errno }
        defer { close(dfd) }
        let r = Syscall.retry { fsyncDirectory(dfd) }
        if case .done = r { return 0 }
        return failed(r)
    }

    public static let system = DurableIO(
        read: { try readFile($0) },
        replace: { replaceFile($0, $1) },
        random: { bytes in
            guard let r = KeyFingerprint.randomBytes(bytes.count) else { return false }
            bytes = r
            return true
        })
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}
