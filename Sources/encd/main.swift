// encd: the daemon. Parses arguments and hands over to Daemon.EncDaemon.

import Daemon
import Foundation

let options: Options
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write("encd: \(error)\n".data(using: .utf8)!)
    exit(64)
}

let daemon = EncDaemon(options: options)
if options.checkOnly {
    do {
        let c = try daemon.loadConfiguration()
        print("\(options.file): configuration OK (\(c.flows.count) flows, \(c.sas.count) SAs)")
        exit(0)
    } catch {
        daemon.log.error("\(error)")
        exit(1)
    }
}
if options.unload {
    do {
        print(try daemon.unload())
        exit(0)
    } catch {
        daemon.log.error("\(error)")
        exit(1)
    }
}
daemon.handleSignals()          // before start-up: a SIGHUP then must not kill encd
do {
    try daemon.start()
} catch {
    daemon.log.error("\(error)")
    daemon.stop()
    exit(1)
}
daemon.runUntilSignalled()
daemon.stop()
exit(daemon.exitStatus)
