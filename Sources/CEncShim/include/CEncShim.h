/* CEncShim: kernel constants that Swift cannot import (macros with casts, ioctl
 * numbers) and tiny inline helpers, all prefixed encshim_. Constants come from the
 * kernel headers, never retyped. */
#ifndef ENCD_CENCSHIM_H
#define ENCD_CENCSHIM_H
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>

static inline unsigned long encshim_tunsetiff(void) { return TUNSETIFF; }
static inline short encshim_iff_tun(void) { return IFF_TUN; }
static inline short encshim_iff_no_pi(void) { return IFF_NO_PI; }
static inline int encshim_errno(void) { return errno; }
#endif
