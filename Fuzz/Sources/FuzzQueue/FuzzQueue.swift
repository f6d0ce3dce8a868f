// Fuzzes the NFQUEUE receive side: any bytes as one netlink datagram, walked message
// by message as NFQueue does (QueueParser.walk), each packet's payload read whole.
// Contract: a message that lies about its lengths is counted malformed, never read
// past; AddressSanitizer catches any byte read outside the datagram.

import FuzzDriver
import Kernel

let parser = QueueParser()

func fuzzQueue(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data = input else { return 0 }
    // A private copy, 4-byte aligned as the kernel's buffers are.
    let buf = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 8)
    defer { buf.deallocate() }
    buf.copyMemory(from: data, byteCount: size)
    var sum: UInt8 = 0
    _ = QueueParser.walk(UnsafeRawBufferPointer(start: buf, count: size), parser: parser) { kind, meta, offset in
        if case .packet(let at, let length) = kind {
            precondition(at >= 0 && length >= 0 && offset + at + length <= size, "payload outside the datagram")
            for i in 0..<length { sum &+= buf.load(fromByteOffset: offset + at + i, as: UInt8.self) }
            _ = meta.id
        }
    }
    return CInt(sum & 0)
}

@main enum Main {
    static func main() { runFuzzer(fuzzQueue) }
}
