// XtNFQueue: target info for xtables' NFQUEUE target, revision 3
// (struct xt_NFQ_info_v3 {queuenum, queues_total, flags}, linux/netfilter/xt_NFQUEUE.h),
// used through nft_compat when the kernel has no native nf_tables `queue` expression.
// nft_compat wants the info padded to XT_ALIGN (8 bytes on 64-bit).

import CEncShim

enum XtNFQueue {
    static func info(number: UInt16, total: UInt16, fanout: Bool) -> [UInt8] {
        let size = Int(encshim_xt_nfq_info_v3_size())
        let aligned = (size + 7) & ~7
        var out = [UInt8](repeating: 0, count: aligned)
        // Never NFQ_FLAG_BYPASS: with no listener the packet must be dropped, not leak.
        let flags: UInt16 = fanout ? encshim_nfq_flag_cpu_fanout() : 0
        out.withUnsafeMutableBytes { encshim_xt_nfq_info_v3_fill($0.baseAddress, number, total, flags) }
        return out
    }
}
