/* Counting replacements for the C allocation functions; see CAllocCounter.h.
 * Every function forwards to glibc's implementation; glibc exports __libc_malloc,
 * __libc_calloc, __libc_realloc, __libc_free, __libc_memalign, __libc_valloc and
 * __libc_pvalloc, so no dlsym (which itself allocates) is needed. posix_memalign,
 * aligned_alloc and reallocarray have no exported __libc_ twin and are built here
 * from __libc_memalign / __libc_realloc with glibc's argument checks. */
#define _GNU_SOURCE
#include "CAllocCounter.h"
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(__GLIBC__) && !defined(__linux__)
#error "CAllocCounter interposes glibc's allocator; port it before using it elsewhere"
#endif

#ifndef ENCD_NO_ALLOC_COUNTER
/* Sanitizer builds (scripts/sanitizers.sh) define ENCD_NO_ALLOC_COUNTER: their own
 * allocator must not be interposed, and the counters then read 0. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static uint64_t total_allocations;
static uint64_t total_frees;
/* initial-exec: reading it never allocates (the executable's static TLS block). */
static __thread uint64_t thread_allocations __attribute__((tls_model("initial-exec")));

static inline void count_allocation(void) {
    __atomic_fetch_add(&total_allocations, 1, __ATOMIC_RELAXED);
    thread_allocations += 1;
}

void *malloc(size_t size) {
    count_allocation();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count_allocation();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    count_allocation();
    return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    count_allocation();
    return __libc_realloc(p, bytes);
}

void free(void *p) {
    if (p != NULL) __atomic_fetch_add(&total_frees, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    /* POSIX: a power of two multiple of sizeof(void *). */
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
        return EINVAL;
    count_allocation();
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size) {
    count_allocation();
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count_allocation();
    return __libc_pvalloc(size);
}

#else
static uint64_t total_allocations, total_frees;
static __thread uint64_t thread_allocations;
#endif

uint64_t encalloc_allocations(void) { return __atomic_load_n(&total_allocations, __ATOMIC_RELAXED); }
uint64_t encalloc_frees(void) { return __atomic_load_n(&total_frees, __ATOMIC_RELAXED); }
uint64_t encalloc_thread_allocations(void) { return thread_allocations; }

