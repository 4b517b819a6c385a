/*
 * Per-client token buckets in a fixed-size, 4-way set-associative table:
 * memory never grows with the number of clients. A client missing from its
 * set replaces the set's least recently seen entry (and starts with a full
 * bucket), so an attacker cycling through addresses can at worst reset
 * buckets, never exhaust memory or block other sets.
 */
#include "http/http.h"

#include <netinet/in.h>
#include <string.h>

#define WAYS 4

typedef struct entry {
    unsigned char addr[16];
    bool used;
    double tokens;
    uint64_t last_ns;
} entry;

typedef struct set {
    sonde__spin lock;
    entry e[WAYS];
} set;

struct sonde__ratelimit {
    double rate, burst;
    size_t nsets; /* power of two */
    set *sets;
};

sonde__ratelimit *sonde__ratelimit_create(double rate, double burst, size_t max_clients)
{
    sonde__ratelimit *rl = sonde__calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    size_t n = 1;
    while (n * WAYS < max_clients && n < ((size_t)1 << 20))
        n <<= 1;
    rl->sets = sonde__calloc(n, sizeof *rl->sets);
    if (!rl->sets) {
        sonde__free(rl);
        return NULL;
    }
    rl->nsets = n;
    rl->rate = rate;
    rl->burst = burst < 1 ? 1 : burst;
    return rl;
}

void sonde__ratelimit_destroy(sonde__ratelimit *rl)
{
    if (!rl)
        return;
    sonde__free(rl->sets);
    sonde__free(rl);
}

/* The client's address as 16 bytes (IPv4 as IPv4-mapped IPv6), without the
 * port: all connections of one host share a bucket. */
static void addr_key(const struct sockaddr *sa, unsigned char out[16])
{
    memset(out, 0, 16);
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out[10] = out[11] = 0xFF;
        memcpy(out + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &in6->sin6_addr, 16);
    }
}

static uint64_t hash16(const unsigned char k[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++) {
        h ^= k[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

bool sonde__ratelimit_take(sonde__ratelimit *rl, const struct sockaddr *sa, uint64_t now,
                           double *retry_after_s)
{
    unsigned char k[16];
    addr_key(sa, k);
    set *s = &rl->sets[hash16(k) & (rl->nsets - 1)];
    sonde__spin_lock(&s->lock);
    entry *e = NULL, *victim = &s->e[0];
    for (int i = 0; i < WAYS; i++) {
        if (s->e[i].used && memcmp(s->e[i].addr, k, 16) == 0) {
            e = &s->e[i];
            break;
        }
        if (!s->e[i].used || (victim->used && s->e[i].last_ns < victim->last_ns))
            victim = &s->e[i];
    }
    if (!e) {
        e = victim;
        memcpy(e->addr, k, 16);
        e->used = true;
        e->tokens = rl->burst;
        e->last_ns = now;
    }
    double dt = now > e->last_ns ? (double)(now - e->last_ns) / 1e9 : 0;
    e->tokens += dt * rl->rate;
    if (e->tokens > rl->burst)
        e->tokens = rl->burst;
    e->last_ns = now;
    bool ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    else if (retry_after_s)
        *retry_after_s = (1.0 - e->tokens) / rl->rate;
    sonde__spin_unlock(&s->lock);
    return ok;
}
