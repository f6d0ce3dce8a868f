/* CNetfilter: libmnl, libnftnl and libnetfilter_queue (apt: libmnl-dev, libnftnl-dev,
 * libnetfilter-queue-dev), plus the kernel's netlink headers (rtnetlink for links,
 * routes and rules). nftables rules, NFQUEUE verdicts and routing go through these only. */
#ifndef ENCD_CNETFILTER_H
#define ENCD_CNETFILTER_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
/* glibc first: linux/libc-compat.h then skips its own in_addr/in6_addr copies. */
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/batch.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* Header sizes Swift cannot compute from macros. */
static inline size_t cnf_nlmsg_hdrlen(void) { return MNL_NLMSG_HDRLEN; }
static inline size_t cnf_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
static inline uint16_t cnf_nla_type_mask(void) { return NLA_TYPE_MASK; }
#endif
