// Fuzzes the control protocol on the daemon's side: any bytes as a request body (JSON)
// decoded and, when it decodes, answered by a ControlPlane running a small policy, with
// no kernel. Contract: a malformed request is an error reply, never a trap; a refused
// change leaves the running configuration as it was.

import FuzzDriver
import Config
import Control
import Daemon
import EncCore
import Foundation
import IPsec

let plane: ControlPlane = {
    let p = ControlPlane(log: Log(level: .error), clock: CoarseClock(start: 100), store: MemorySequenceStore(),
                         maxPolicy: 1000, configFile: "/nonexistent/ipsec.conf",
                         localAddresses: { [IPAddress("192.0.2.1")!] })
    let key = { (b: String) in "0x" + String(repeating: b, count: 20) }
    try! p.start(ConfigParser.parse(text: """
        flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
        esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey \(key("11")):\(key("22"))
        """, fileName: "fuzz.conf"))
    return p
}()

func fuzzControl(_ input: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data = input else { return 0 }
    let body = Data(bytes: data, count: size)
    guard let request = try? JSONDecoder().decode(Request.self, from: body) else { return 0 }
    if request.command == .monitor { return 0 }     // streams; the server handles it
    // Every SA, the configuration's and a key daemon's (add, remove, update).
    let before = plane.box.value.sad.count, generation = plane.box.value.generation
    let r = plane.respond(to: request)
    if !r.ok && (plane.box.value.sad.count != before || plane.box.value.generation != generation) {
        fatalError("a refused request changed the policy")
    }
    _ = try? JSONEncoder().encode(r)
    return 0
}

@main enum Main {
    static func main() { runFuzzer(fuzzControl) }
}
