// encstat: netstat(1) for encd. Parses the command line and hands over to
// Control.NetstatRun; the socket and the kernel's queue file are the only things here.

import Control
import Foundation
import Kernel

func fail(_ message: String, _ code: Int32) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

let options: NetstatOptions
do {
    options = try NetstatOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail("\(error)", 64)
}

var run = NetstatRun(options) { request in
    try ControlClient(path: options.socket).call(request)
}
// An encd that does not report its queues: read the kernel's figures for the queue
// numbers encd binds by default.
run.fallbackQueues = {
    let config = EncdRulesetConfig()
    let roles = [config.spdQueue: "spd", config.outputQueue: "ipsec-out", config.inputQueue: "ipsec-in",
                 config.cleartextQueue: "cleartext"]
    let stats = (try? QueueStats.read()) ?? []
    return stats.compactMap { q in
        roles[q.queue].map {
            QueueStatus(number: q.queue, role: $0, waiting: q.waiting, queueDropped: q.queueDropped,
                        userDropped: q.userDropped, received: UInt64(q.idSequence))
        }
    }
}

do {
    if options.wait != nil {
        try run.interval(sleep: { sleep(UInt32($0)) }, write: { FileHandle.standardOutput.write(Data($0.utf8)) })
    } else {
        FileHandle.standardOutput.write(Data(try run.report().utf8))
    }
} catch {
    fail("encstat: \(error)", 1)
}
