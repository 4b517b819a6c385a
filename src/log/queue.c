/*
 * The asynchronous queue: a bounded multi-producer, single-consumer ring of
 * fixed 256-byte slots (after D. Vyukov's bounded MPMC queue), where a
 * record takes k consecutive slots.
 *
 * Every slot carries a sequence number: seq == p means "free for the record
 * starting or continuing at position p", seq == p + 1 means "written at
 * position p", and the consumer frees position p by storing p + capacity.
 *
 * Producer: read tail = p, look at the *last* slot it needs, p + k - 1. If
 * that slot is free for p + k - 1, every slot before it is free too (the
 * consumer frees positions in order, with release stores, and our acquire
 * load of the last one makes the earlier frees visible), so a CAS of tail
 * from p to p + k claims them all. If the last slot is still occupied by
 * the previous lap, the queue is full. The producer then copies its chunks
 * and publishes the slots from last to first, the first with a seq_cst
 * store: a consumer that sees the first slot written sees all of them.
 *
 * Consumer (whoever holds the sinks lock): at head h, the record is ready
 * when slot h says h + 1; its size (first 4 bytes) gives k; it copies the
 * chunks out and frees the k slots in order.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <string.h>

#define SLOT_SIZE 256
#define SLOT_DATA (SLOT_SIZE - 8)

typedef struct lq_slot {
    _Atomic uint64_t seq;
    char data[SLOT_DATA];
} lq_slot;

struct log_queue {
    lq_slot *slots;
    size_t cap, mask, max_k;
    _Alignas(SONDE_CACHE_LINE) _Atomic uint64_t tail;
    _Alignas(SONDE_CACHE_LINE) _Atomic uint64_t head;
};

log_queue *sonde__lq_create(size_t slots)
{
    log_queue *q = sonde__calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->slots = sonde__calloc(slots, sizeof *q->slots);
    if (!q->slots) {
        sonde__free(q);
        return NULL;
    }
    q->cap = slots;
    q->mask = slots - 1;
    /* A record may take at most a quarter of the ring, so one huge record
     * never waits for the whole ring to drain. */
    q->max_k = slots / 4;
    for (size_t i = 0; i < slots; i++)
        atomic_init(&q->slots[i].seq, i);
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    return q;
}

size_t sonde__lq_max_record(log_queue *q)
{
    return q->max_k * SLOT_DATA;
}

int sonde__lq_push(log_queue *q, const void *rec, size_t len)
{
    size_t k = (len + SLOT_DATA - 1) / SLOT_DATA;
    if (k == 0 || k > q->max_k)
        return -2;
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        uint64_t last = pos + k - 1;
        uint64_t seq = atomic_load_explicit(&q->slots[last & q->mask].seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - last);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + k, memory_order_acq_rel,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return -1; /* full */
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    const char *src = rec;
    for (size_t i = 0; i < k; i++) {
        size_t n = len - i * SLOT_DATA;
        if (n > SLOT_DATA)
            n = SLOT_DATA;
        memcpy(q->slots[(pos + i) & q->mask].data, src + i * SLOT_DATA, n);
    }
    for (size_t i = k - 1; i > 0; i--)
        atomic_store_explicit(&q->slots[(pos + i) & q->mask].seq, pos + i + 1,
                              memory_order_release);
    atomic_store_explicit(&q->slots[pos & q->mask].seq, pos + 1, memory_order_seq_cst);
    return 0;
}

int sonde__lq_pop(log_queue *q, sonde_buf *out)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    lq_slot *s = &q->slots[h & q->mask];
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != h + 1)
        return 0;
    uint32_t len;
    memcpy(&len, s->data, sizeof len);
    size_t k = (len + SLOT_DATA - 1) / SLOT_DATA;
    /* Producers only push records they encoded; a bad size would be a bug.
     * Skip one slot rather than read past the ring. */
    int ok = len >= sizeof(rec_hdr) && k >= 1 && k <= q->max_k;
    if (!ok)
        k = 1;
    sonde_buf_reset(out);
    if (ok && sonde__buf_reserve(out, len) == SONDE_OK) {
        for (size_t i = 0; i < k; i++) {
            size_t n = len - i * SLOT_DATA;
            if (n > SLOT_DATA)
                n = SLOT_DATA;
            memcpy(out->data + i * SLOT_DATA, q->slots[(h + i) & q->mask].data, n);
        }
        out->len = len;
    } else {
        ok = 0;
    }
    for (size_t i = 0; i < k; i++)
        atomic_store_explicit(&q->slots[(h + i) & q->mask].seq, h + i + q->cap,
                              memory_order_release);
    atomic_store_explicit(&q->head, h + k, memory_order_release);
    if (!ok)
        sonde__log_count_drop();
    return ok ? 1 : -1;
}

uint64_t sonde__lq_tail(log_queue *q)
{
    return atomic_load_explicit(&q->tail, memory_order_seq_cst);
}
uint64_t sonde__lq_head(log_queue *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire);
}
