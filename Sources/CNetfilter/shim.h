/* CNetfilter: libmnl, libnftnl and libnetfilter_queue (apt: libmnl-dev, libnftnl-dev,
 * libnetfilter-queue-dev). nftables rules and NFQUEUE verdicts go through these only. */
#ifndef ENCD_CNETFILTER_H
#define ENCD_CNETFILTER_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/batch.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#endif
