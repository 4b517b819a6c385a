/* Per-thread cell blocks and the slot allocator; see metrics_int.h. */
#include "metrics_int.h"

#include <string.h>
#include <sys/mman.h>

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread uint64_t *sonde__tls_cells __attribute__((tls_model(SONDE_TLS_MODEL)));
__thread struct sonde__block *sonde__tls_block __attribute__((tls_model(SONDE_TLS_MODEL)));

#define block sonde__block

/* Cells per block. Decided once, at the first block, by the largest mapping
 * the system grants (1 GiB of address space, touched lazily; less under a
 * strict overcommit policy or an address-space limit). */
static uint32_t block_cells;
static _Atomic(struct block *) blocks;
/* Appending at the tail keeps the summation order fixed, so a floating-point
 * total can never come out smaller because a new block joined. */
static struct block *blocks_tail;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t next_slot = SONDE__SINK_SLOTS;
static pthread_key_t block_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Free slot ranges by length (lengths above FREE_MAX go to the last list). */
#define FREE_MAX 264
struct free_range {
    uint32_t first, n;
    struct free_range *next;
};
static struct free_range *free_lists[FREE_MAX + 1];

static void release_block(void *p)
{
    struct block *b = p;
    sonde__tls_cells = NULL;
    sonde__tls_block = NULL;
    atomic_store_explicit(&b->in_use, 0, memory_order_release);
}

static void make_key(void)
{
    pthread_key_create(&block_key, release_block);
}

static uint64_t *map_cells(size_t *cells_out)
{
    size_t want = block_cells ? (size_t)block_cells * 8 : (size_t)1 << 30;
    for (;;) {
        void *p = mmap(NULL, want, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            *cells_out = want / 8;
            return p;
        }
        if (block_cells || want <= ((size_t)1 << 20))
            return NULL;
        want /= 2;
    }
}

uint64_t *sonde__cells_acquire(void)
{
    if (!sonde_enabled())
        return NULL;
    if (sonde__tls_cells)
        return sonde__tls_cells;
    pthread_once(&key_once, make_key);
    struct block *b;
    for (b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire)) {
        int expect = 0;
        if (atomic_load_explicit(&b->in_use, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&b->in_use, &expect, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            break;
    }
    if (!b) {
        b = sonde__calloc(1, sizeof *b);
        if (!b)
            return NULL;
        atomic_store_explicit(&b->in_use, 1, memory_order_relaxed);
        pthread_mutex_lock(&slot_lock);
        size_t n = 0;
        b->cells = map_cells(&n);
        if (b->cells) {
            if (!block_cells)
                block_cells = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
            if (blocks_tail)
                atomic_store_explicit(&blocks_tail->next, b, memory_order_release);
            else
                atomic_store_explicit(&blocks, b, memory_order_release);
            blocks_tail = b;
        }
        pthread_mutex_unlock(&slot_lock);
        if (!b->cells) {
            sonde__free(b);
            return NULL;
        }
    }
    pthread_setspecific(block_key, b);
    sonde__tls_block = b;
    sonde__tls_cells = b->cells;
    return b->cells;
}

static int membarrier_ok; /* 1 registered, -1 unavailable */
static pthread_once_t membarrier_once = PTHREAD_ONCE_INIT;

static void membarrier_register(void)
{
    long rc = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
    membarrier_ok = rc == 0 ? 1 : -1;
}

/*
 * Grace period for objects unlinked from a lock-free table (the caller has
 * already made them unreachable). A lookup marks its thread block's
 * lookup_seq odd with a plain store and no fence; membarrier() makes every
 * running thread execute a full barrier, after which a lookup either shows
 * as in progress here, or started late enough to see the unlink. We then
 * wait (bounded) for the in-progress ones to move on.
 */
int sonde__grace_period(void)
{
    pthread_once(&membarrier_once, membarrier_register);
    if (membarrier_ok != 1)
        return 0;
    atomic_thread_fence(memory_order_seq_cst);
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        return 0;
    for (struct block *b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire)) {
        uint64_t seq = atomic_load_explicit(&b->lookup_seq, memory_order_acquire);
        if (!(seq & 1))
            continue;
        /* A lookup is a few hundred instructions; allow ~10 ms for a
         * descheduled thread, then give up and retry at a later removal. */
        int tries = 0;
        while (atomic_load_explicit(&b->lookup_seq, memory_order_acquire) == seq) {
            if (++tries > 1000)
                return 0;
            if (tries > 50)
                usleep(10);
            else
                sched_yield();
        }
    }
    return 1;
}

uint32_t sonde__slots_alloc(uint32_t n)
{
    if (n == 0)
        return UINT32_MAX;
    pthread_mutex_lock(&slot_lock);
    uint32_t first = UINT32_MAX;
    struct free_range **list = &free_lists[n < FREE_MAX ? n : FREE_MAX];
    for (struct free_range **pp = list; *pp; pp = &(*pp)->next) {
        if ((*pp)->n == n) {
            struct free_range *r = *pp;
            *pp = r->next;
            first = r->first;
            sonde__free(r);
            break;
        }
    }
    if (first == UINT32_MAX) {
        /* The block size is known once a block exists; before that, allow
         * the smallest size we would ever accept (1 MiB = 128k cells) so
         * registration never depends on whether a thread updated yet. */
        uint32_t limit = block_cells ? block_cells : (1u << 17);
        if (next_slot <= limit && n <= limit - next_slot) {
            first = next_slot;
            next_slot += n;
        } else if (!block_cells) {
            /* Map the first block now to learn the real size. */
            size_t cells = 0;
            uint64_t *probe = map_cells(&cells);
            if (probe) {
                munmap(probe, cells * 8);
                limit = cells > UINT32_MAX ? UINT32_MAX : (uint32_t)cells;
                if (n <= limit - next_slot) {
                    first = next_slot;
                    next_slot += n;
                }
            }
        }
    }
    pthread_mutex_unlock(&slot_lock);
    return first;
}

void sonde__slots_free(uint32_t first, uint32_t n)
{
    if (first == UINT32_MAX || first < SONDE__SINK_SLOTS || n == 0)
        return;
    struct free_range *r = sonde__malloc(sizeof *r);
    pthread_mutex_lock(&slot_lock);
    for (struct block *b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire))
        for (uint32_t i = 0; i < n; i++)
            __atomic_store_n(&b->cells[first + i], 0, __ATOMIC_RELAXED);
    if (r) {
        r->first = first;
        r->n = n;
        struct free_range **list = &free_lists[n < FREE_MAX ? n : FREE_MAX];
        r->next = *list;
        *list = r;
    }
    pthread_mutex_unlock(&slot_lock);
}

uint64_t sonde__cells_sum_u64(uint32_t slot)
{
    uint64_t sum = 0;
    for (struct block *b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire))
        sum += __atomic_load_n(&b->cells[slot], __ATOMIC_RELAXED);
    return sum;
}

double sonde__cells_sum_f64(uint32_t slot)
{
    double sum = 0;
    for (struct block *b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire)) {
        uint64_t bits = __atomic_load_n(&b->cells[slot], __ATOMIC_RELAXED);
        double d;
        memcpy(&d, &bits, 8);
        sum += d;
    }
    return sum;
}

void sonde__cells_sum_u64_n(uint32_t slot, uint32_t n, uint64_t *out)
{
    memset(out, 0, n * sizeof *out);
    for (struct block *b = atomic_load_explicit(&blocks, memory_order_acquire); b;
         b = atomic_load_explicit(&b->next, memory_order_acquire))
        for (uint32_t i = 0; i < n; i++)
            out[i] += __atomic_load_n(&b->cells[slot + i], __ATOMIC_RELAXED);
}
