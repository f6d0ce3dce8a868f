// The sequence state file: what it refuses (damaged, truncated, impossible numbers,
// failed writes) and what it keeps (reservations across restarts, by key when the SPI
// changes, exact marks after a clean stop).

import Crypto
import EncCore
import Foundation
import IPsec
import Testing
@testable import Daemon

@Suite struct FileSequenceStoreTests {
    static func spec(spi: UInt32 = 0x1000, key: UInt8 = 0x11, cipher: String = "aes-128-gcm") -> SASpec {
        let alg = EncryptionAlgorithm.named(cipher)!
        let bytes = (alg.keyBits.upperBound + alg.cipher.saltBits) / 8
        let auth: IntegrityAlgorithm? = alg.cipher.isCombined ? nil : .named("hmac-sha2-256")
        return SASpec(proto: .esp, source: IPAddress("192.0.2.1")!, destination: IPAddress("192.0.2.2")!, spi: spi,
                      encryption: alg, encryptionKey: SecretKey([UInt8](repeating: key, count: bytes)),
                      integrity: auth, integrityKey: auth.map { SecretKey([UInt8](repeating: 0xaa, count: $0.keyBits / 8)) },
                      replayWindow: 64)
    }

    /// A scratch state directory, removed by `done`.
    struct Dir {
        let path = NSTemporaryDirectory() + "encd-seq-\(UUID().uuidString)"
        init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        var file: String { path + "/sequences" }
        func write(_ bytes: [UInt8]) { FileManager.default.createFile(atPath: file, contents: Data(bytes)) }
        func write(_ text: String) { write(Array(text.utf8)) }
        func done() { try? FileManager.default.removeItem(atPath: path) }
    }

    func refusal(_ d: Dir) -> String {
        do { _ = try FileSequenceStore(path: d.file); return "" } catch { return "\(error)" }
    }

    @Test func reservationsSurviveARestart() throws {
        let d = Dir(); defer { d.done() }
        let s1 = try FileSequenceStore(path: d.file)
        let c = s1.claim(Self.spec(), .outbound)
        #expect(c.reserved == 0 && s1.reserve(c, through: 65536))
        let s2 = try FileSequenceStore(path: d.file)
        #expect(s2.claim(Self.spec(), .outbound).reserved == 65536)
        let text = try String(contentsOfFile: d.file, encoding: .utf8)
        #expect(text.hasPrefix("salt ") && text.hasSuffix("end 1\n"))
        #expect(text.contains("out esp 0x00001000 192.0.2.2 65536 key "))
    }

    @Test func damagedFilesAreRefusedWithFileAndLine() throws {
        let d = Dir(); defer { d.done() }
        let s = try FileSequenceStore(path: d.file)
        let c = s.claim(Self.spec(), .outbound)
        _ = s.reserve(c, through: 65536)
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: d.file)))
        let lines = String(decoding: good, as: UTF8.self).split(separator: "\n")

        d.write(good + [0xff, 0xfe, 0x0a])                              // a line of invalid UTF-8
        #expect(refusal(d).hasPrefix("\(d.file):4: not UTF-8"))
        d.write(Array(good.prefix(30)))                                // cut mid-line
        #expect(refusal(d).contains("\(d.file):1: last line has no end: truncated"))
        d.write(lines.dropLast().joined(separator: "\n") + "\n")       // cut at a line end
        #expect(refusal(d).contains("no end line: truncated"))
        d.write(lines[0] + "\n" + lines[1].replacingOccurrences(of: " 65536 ", with: " 18446744073709551615 ") + "\nend 1\n")
        #expect(refusal(d).contains("\(d.file):2: sequence number 18446744073709551615 is beyond anything an SA can reach"))
        d.write(lines[0] + "\nout esp 0x1000 nowhere 5 sa\nend 1\n")
        #expect(refusal(d).contains("\(d.file):2: bad address \"nowhere\""))
        d.write(lines[0] + "\n" + lines[1] + "\nend 2\n")
        #expect(refusal(d).contains("end line counts 2 spaces, the file has 1"))
        #expect(refusal(d).contains("restoring the file from a backup"))
        try FileManager.default.removeItem(atPath: d.file)
        try FileManager.default.createDirectory(atPath: d.file, withIntermediateDirectories: false)
        #expect(refusal(d).contains("cannot read the sequence state"))
    }

    @Test func versionOneLinesCarryOverToTheKeyedSpace() throws {
        let d = Dir(); defer { d.done() }
        d.write("esp 0x00001000 192.0.2.2 131072\n")
        let s = try FileSequenceStore(path: d.file)
        let c = s.claim(Self.spec(), .outbound)
        #expect(c.reserved == 131072)
        #expect(s.reserve(c, through: 200000))
        let text = try String(contentsOfFile: d.file, encoding: .utf8)
        #expect(text.contains("out esp 0x00001000 192.0.2.2 200000 key ") && !text.contains("131072"))
    }

    @Test func sameKeyUnderAnotherSPIContinuesAboveItsNumbers() throws {
        let d = Dir(); defer { d.done() }
        let s = try FileSequenceStore(path: d.file)
        _ = s.reserve(s.claim(Self.spec(spi: 0x1000), .outbound), through: 70000)
        let s2 = try FileSequenceStore(path: d.file)
        #expect(s2.claim(Self.spec(spi: 0x2000), .outbound).reserved == 70000)     // renumbered, same key
        #expect(s2.claim(Self.spec(spi: 0x1000, key: 0x22), .outbound).reserved == 0)   // new key: new space
        // CBC's IV is not the sequence number: its space is the SA's.
        _ = s2.reserve(s2.claim(Self.spec(spi: 0x3000, cipher: "aes-128"), .outbound), through: 9)
        #expect(s2.claim(Self.spec(spi: 0x3001, cipher: "aes-128"), .outbound).reserved == 0)
    }

    @Test func aNewerClaimEndsTheOlderOnesReservations() throws {
        let d = Dir(); defer { d.done() }
        let s = try FileSequenceStore(path: d.file)
        let old = s.claim(Self.spec(), .outbound)
        #expect(s.reserve(old, through: 100))
        let new = s.claim(Self.spec(), .outbound)
        #expect(new.reserved == 100)
        #expect(!s.reserve(old, through: 200))
        #expect(s.reserve(new, through: 300))
    }

    @Test func aFailedWriteIsAFailedReservation() throws {
        let d = Dir(); defer { d.done() }
        var io = DurableIO.system
        let fail = Mutex(false)
        io.replace = { path, bytes in fail.withLock { $0 } ? EIO : DurableIO.replaceFile(path, bytes) }
        let s = try FileSequenceStore(path: d.file, io: io)
        let c = s.claim(Self.spec(), .outbound)
        #expect(s.reserve(c, through: 10))
        fail.withLock { $0 = true }
        #expect(!s.reserve(c, through: 20) && s.lastWriteError == EIO)
        fail.withLock { $0 = false }
        let again = try FileSequenceStore(path: d.file)
        #expect(again.claim(Self.spec(), .outbound).reserved == 10)
        // The directory's fsync failing fails the write too (the rename may not be durable).
        #expect(DurableIO.replaceFile(d.path + "/x", [1, 2, 3], fsyncDirectory: { _ in errno = EIO; return -1 }) == EIO)
        #expect(DurableIO.replaceFile(d.path + "/x", [1, 2, 3]) == 0)
    }

    @Test func settlingRecordsExactlyHowFarAnSAGot() throws {
        let d = Dir(); defer { d.done() }
        let s = try FileSequenceStore(path: d.file)
        let sa = try SecurityAssociation(Self.spec(), direction: .outbound, store: s, now: 0)
        sa.activate()
        for _ in 0..<5 { _ = sa.takeSequence() }
        sa.settle()
        let again = try FileSequenceStore(path: d.file)
        #expect(again.claim(Self.spec(), .outbound).reserved == 5)
        // Inbound: the window of the next SA starts above what was accepted.
        let inbound = try SecurityAssociation(Self.spec(spi: 0x1001, key: 0x33), direction: .inbound, store: again, now: 0)
        inbound.activate()
        #expect(inbound.mayAccept(7))
        inbound.replay.commit(7)
        inbound.accepted(7)
        inbound.settle()
        let third = try FileSequenceStore(path: d.file)
        let next = try SecurityAssociation(Self.spec(spi: 0x1001, key: 0x33), direction: .inbound, store: third, now: 0)
        next.activate()
        #expect(next.replay.check(7) == .duplicate && next.replay.check(8) == .ok(8))
    }
}

import Synchronization
