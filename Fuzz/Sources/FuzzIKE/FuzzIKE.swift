// Fuzzes encd-iked's IKEv2 codec (issue #10): any bytes as one UDP payload, decoded;
// what decodes is encoded again and must decode to the same message, and an SK
// payload's inner bytes are walked as a payload chain. Contract: a value or an
// IKEDecodeError for every input, never a trap or an out-of-bounds read.

import FuzzDriver
import IKE

func fuzzIKE(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: input, count: size))
    guard case .success(let message) = IKEMessage.decode(bytes) else { return 0 }
    let again = IKEMessage.decode(message.encode())
    precondition(again == .success(message), "re-encoded message decodes differently")
    for p in message.payloads {
        if case .encrypted(let first, let data) = p.body { _ = IKEPayloads.decode(data, first: first) }
    }
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzIKE) }
}
