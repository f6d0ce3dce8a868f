/* CEncShim is mostly header-only (include/CEncShim.h); what needs headers Swift's
 * module cannot see lives here. */
#include "CEncShim.h"
#include <linux/udp.h>

long encshim_udp_send_run(int fd, int ipv6, const void *local, const void *remote, uint16_t port,
                          int traffic_class, int hop_limit, uint16_t segment, const void *buf, size_t len) {
    union {
        char buf[CMSG_SPACE(sizeof(struct encshim_in6_pktinfo)) + 2 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct sockaddr_in to4;
    struct sockaddr_in6 to6;
    struct iovec iov = { (void *)buf, len };
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(control.buf, 0, sizeof control.buf);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.buf;
    m.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    size_t used = 0;
    if (ipv6) {
        memset(&to6, 0, sizeof to6);
        to6.sin6_family = AF_INET6;
        memcpy(&to6.sin6_addr, remote, 16);
        to6.sin6_port = htons(port);
        m.msg_name = &to6;
        m.msg_namelen = sizeof to6;
        struct encshim_in6_pktinfo info;
        memset(&info, 0, sizeof info);
        memcpy(&info.addr, local, 16);
        c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
        used += CMSG_SPACE(sizeof info);
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_TCLASS; c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &traffic_class, sizeof(int));
        used += CMSG_SPACE(sizeof(int));
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IPV6; c->cmsg_type = IPV6_HOPLIMIT; c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &hop_limit, sizeof(int));
        used += CMSG_SPACE(sizeof(int));
    } else {
        memset(&to4, 0, sizeof to4);
        to4.sin_family = AF_INET;
        memcpy(&to4.sin_addr, remote, 4);
        to4.sin_port = htons(port);
        m.msg_name = &to4;
        m.msg_namelen = sizeof to4;
        struct encshim_in_pktinfo_v4 info;
        memset(&info, 0, sizeof info);
        memcpy(&info.spec_dst, local, 4);
        c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_PKTINFO; c->cmsg_len = CMSG_LEN(sizeof info);
        memcpy(CMSG_DATA(c), &info, sizeof info);
        used += CMSG_SPACE(sizeof info);
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_TOS; c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &traffic_class, sizeof(int));
        used += CMSG_SPACE(sizeof(int));
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_IP; c->cmsg_type = IP_TTL; c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &hop_limit, sizeof(int));
        used += CMSG_SPACE(sizeof(int));
    }
    if (segment) {
        c = CMSG_NXTHDR(&m, c);
        c->cmsg_level = IPPROTO_UDP; c->cmsg_type = UDP_SEGMENT; c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &segment, sizeof(uint16_t));
        used += CMSG_SPACE(sizeof(uint16_t));
    }
    m.msg_controllen = used;
    return (long)sendmsg(fd, &m, 0);
}
