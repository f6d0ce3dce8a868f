// FileSequenceStore: outbound sequence-number reservations kept in one file under the
// state directory, rewritten atomically (temporary file, fsync, rename, fsync of the
// directory) before a reservation is granted. After a crash encd starts every SA one
// above the highest number it ever reserved, so no (key, IV) pair repeats.
//
// File format, one SA a line:  esp 0x00001000 192.0.2.2 65536

import Foundation
import EncCore
import IPsec
import Synchronization

public final class FileSequenceStore: SequenceStore, @unchecked Sendable {
    public let path: String
    private let state: Mutex<[SAKey: UInt64]>

    /// Loads `path` if it exists; a damaged line makes the whole file refused, since
    /// guessing low would reuse IVs.
    public init(path: String) throws {
        self.path = path
        var loaded: [SAKey: UInt64] = [:]
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for (i, line) in text.split(separator: "\n").enumerated() where !line.isEmpty {
                let f = line.split(separator: " ")
                guard f.count == 4, let proto = f[0] == "esp" ? IPsecProtocol.esp : (f[0] == "ah" ? .ah : nil),
                      f[1].hasPrefix("0x"), let spi = UInt32(f[1].dropFirst(2), radix: 16),
                      let dst = IPAddress(String(f[2])), let limit = UInt64(f[3]) else {
                    throw DaemonError("\(path):\(i + 1): damaged sequence reservation; refusing to guess (remove the file only if every SA in it has new keys)")
                }
                loaded[SAKey(destination: dst, spi: spi, proto: proto)] = limit
            }
        }
        state = Mutex(loaded)
    }

    public func firstSequence(for sa: SAKey) -> UInt64 {
        state.withLock { ($0[sa] ?? 0) + 1 }
    }

    public func reserve(_ sa: SAKey, through limit: UInt64) -> Bool {
        state.withLock { s in
            let old = s[sa]
            s[sa] = max(old ?? 0, limit)
            if write(s) { return true }
            s[sa] = old
            return false
        }
    }

    /// Writes the whole table durably; false when any step failed.
    private func write(_ s: [SAKey: UInt64]) -> Bool {
        var text = ""
        for (k, v) in s.sorted(by: { ($0.key.spi, $0.key.destination) < ($1.key.spi, $1.key.destination) }) {
            text += "\(k.proto) 0x\(hex8(k.spi)) \(k.destination) \(v)\n"
        }
        let tmp = path + ".tmp"
        let dir = (path as NSString).deletingLastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        let ok = text.utf8CString.withUnsafeBufferPointer { b -> Bool in
            let n = b.count - 1
            return Foundation.write(fd, b.baseAddress, n) == n
        } && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else { return false }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        return true
    }
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 8 - s.count)) + s
}
