/* CAllocCounter: counts heap allocations so the benchmark and the allocation test
 * can prove that the packet path allocates nothing.
 *
 * Linking this target into an executable replaces malloc, calloc, realloc,
 * reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc and pvalloc
 * for the whole process (ELF symbol interposition: the executable's definitions win
 * over libc's for every shared object, so the Swift runtime, Foundation and OpenSSL
 * are counted too). Each replacement bumps two counters and forwards to glibc's own
 * allocator (__libc_malloc and friends, which glibc exports), so behaviour and
 * performance are otherwise unchanged.
 *
 * Two views: process-wide totals (every thread, relaxed atomics) and per-thread
 * totals (the calling thread only), which stay exact while other threads allocate,
 * e.g. tests running in parallel.
 *
 * Only for encbench and the allocation tests: never link it into encd. */
#ifndef ENCD_CALLOCCOUNTER_H
#define ENCD_CALLOCCOUNTER_H
#include <stdint.h>

/* Allocations (malloc, calloc, realloc, aligned variants) since the process started,
 * all threads. A realloc counts as one allocation, whether it moves or not. */
uint64_t encalloc_allocations(void);
/* free calls with a non-NULL pointer, all threads. */
uint64_t encalloc_frees(void);
/* Allocations made by the calling thread. */
uint64_t encalloc_thread_allocations(void);
#endif
