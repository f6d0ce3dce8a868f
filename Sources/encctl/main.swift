// encctl: ipsecctl(8) for encd. Everything but the process glue is in Control
// (EncctlOptions, IpsecctlConfig, IpsecctlFormat, Encctl.run); see Docs/encctl.8.md.

import Control
#if canImport(Glibc)
import Glibc
#endif

// A closed socket or pipe is an error to report (EPIPE), not a reason to die.
signal(SIGPIPE, SIG_IGN)
exit(Encctl.run(Array(CommandLine.arguments.dropFirst())))
