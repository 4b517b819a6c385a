/*
 * The remote writer's bounded queue: compressed batches in memory, then in
 * a segment file (see export_int.h for the file layout). Order is kept:
 * once anything is on disk, new batches go to disk too, and memory is
 * refilled from the disk head as it empties. Past the bound the oldest
 * batch overall is dropped and counted.
 *
 * The file is written without fsync: it survives the process (a crash, a
 * kill -9, a restart), not the machine losing power.
 */
#include "export/export_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define HDR 16
#define REC 12
static const char MAGIC[8] = {'S', 'N', 'D', 'R', 'W', 'Q', '1', '\0'};

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int pread_all(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *b = buf;
    while (n) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *b = buf;
    while (n) {
        ssize_t r = pwrite(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int write_header(sonde__rw_queue *q)
{
    uint8_t h[HDR];
    memcpy(h, MAGIC, 8);
    put32(h + 8, (uint32_t)q->rd);
    put32(h + 12, (uint32_t)(q->rd >> 32));
    return pwrite_all(q->fd, h, HDR, 0);
}

void sonde__rw_block_free(sonde__rw_block *b)
{
    if (!b)
        return;
    sonde__free(b->data);
    sonde__free(b);
}

static size_t cost(const sonde__rw_block *b)
{
    return (size_t)b->len + SONDE__RW_BLOCK_OVERHEAD;
}

/* Read the record at rd into a new block; NULL on damage (the rest of the
 * file is then discarded) or memory shortage. */
static sonde__rw_block *disk_read(sonde__rw_queue *q, uint64_t *reclen)
{
    uint8_t h[REC];
    if (pread_all(q->fd, h, REC, q->rd) != 0)
        goto damaged;
    uint32_t len = get32(h), ns = get32(h + 4), crc = get32(h + 8);
    if ((uint64_t)len + REC > q->wr - q->rd)
        goto damaged;
    sonde__rw_block *b = sonde__calloc(1, sizeof *b);
    uint8_t *d = sonde__malloc(len ? len : 1);
    if (!b || !d) {
        sonde__free(b);
        sonde__free(d);
        return NULL;
    }
    if (pread_all(q->fd, d, len, q->rd + REC) != 0 || (uint32_t)crc32(0L, d, len) != crc) {
        sonde__free(b);
        sonde__free(d);
        goto damaged;
    }
    b->data = d;
    b->len = len;
    b->nsamples = ns;
    *reclen = REC + (uint64_t)len;
    return b;
damaged:
    q->disk_errors++;
    q->wr = q->rd;
    q->disk_samples = 0;
    if (ftruncate(q->fd, (off_t)q->wr) != 0)
        q->disk_errors++;
    return NULL;
}

/* Copy the live records to the start of the file once the dead prefix is
 * larger than them, so the file does not grow without bound. Crash-safe:
 * the destination never overlaps the live source, and the header moves
 * only after the copy. */
static void disk_compact(sonde__rw_queue *q)
{
    uint64_t live = q->wr - q->rd;
    if (q->rd - HDR < live || q->rd - HDR < (1u << 20))
        return;
    uint8_t buf[65536];
    for (uint64_t off = 0; off < live;) {
        size_t n = live - off < sizeof buf ? (size_t)(live - off) : sizeof buf;
        if (pread_all(q->fd, buf, n, q->rd + off) != 0 ||
            pwrite_all(q->fd, buf, n, HDR + off) != 0) {
            q->disk_errors++;
            return;
        }
        off += n;
    }
    q->rd = HDR;
    q->wr = HDR + live;
    if (write_header(q) != 0 || ftruncate(q->fd, (off_t)q->wr) != 0)
        q->disk_errors++;
}

static void disk_advance(sonde__rw_queue *q, uint64_t reclen, uint32_t nsamples)
{
    q->rd += reclen;
    q->disk_samples -= q->disk_samples >= nsamples ? nsamples : q->disk_samples;
    if (q->rd >= q->wr) {
        q->rd = q->wr = HDR;
        q->disk_samples = 0;
        if (ftruncate(q->fd, HDR) != 0)
            q->disk_errors++;
    }
    if (write_header(q) != 0)
        q->disk_errors++;
    disk_compact(q);
}

static int disk_append(sonde__rw_queue *q, const sonde__rw_block *b)
{
    uint8_t h[REC];
    put32(h, b->len);
    put32(h + 4, b->nsamples);
    put32(h + 8, (uint32_t)crc32(0L, b->data, b->len));
    if (pwrite_all(q->fd, h, REC, q->wr) != 0 || pwrite_all(q->fd, b->data, b->len, q->wr + REC))
        return -1;
    q->wr += REC + (uint64_t)b->len;
    q->disk_samples += b->nsamples;
    return 0;
}

static void mem_append(sonde__rw_queue *q, sonde__rw_block *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->mem_bytes += cost(b);
    q->mem_samples += b->nsamples;
    if (q->mem_bytes + q->reserved > q->mem_peak)
        q->mem_peak = q->mem_bytes + q->reserved;
}

static sonde__rw_block *mem_pop(sonde__rw_queue *q)
{
    sonde__rw_block *b = q->head;
    if (!b)
        return NULL;
    q->head = b->next;
    if (!q->head)
        q->tail = NULL;
    q->mem_bytes -= cost(b);
    q->mem_samples -= b->nsamples;
    b->next = NULL;
    return b;
}

/* Move records from the disk head into memory while they fit. */
static void refill(sonde__rw_queue *q)
{
    while (q->fd >= 0 && q->wr > q->rd) {
        uint8_t h[REC];
        if (pread_all(q->fd, h, REC, q->rd) != 0)
            return;
        if (q->mem_bytes + get32(h) + SONDE__RW_BLOCK_OVERHEAD > q->mem_max)
            return;
        uint64_t reclen = 0;
        sonde__rw_block *b = disk_read(q, &reclen);
        if (!b)
            return;
        disk_advance(q, reclen, b->nsamples);
        mem_append(q, b);
    }
}

int sonde__rw_queue_init(sonde__rw_queue *q, size_t mem_max, const char *path, size_t disk_max)
{
    memset(q, 0, sizeof *q);
    q->fd = -1;
    q->mem_max = mem_max;
    q->disk_max = disk_max;
    if (!path)
        return SONDE_OK;
    q->path = sonde__strdup(path);
    if (!q->path)
        return SONDE_ENOMEM;
    q->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (q->fd < 0) {
        sonde__set_error("remote write: cannot open queue file %s: %s", path, strerror(errno));
        return SONDE_EIO;
    }
    struct stat st;
    if (fstat(q->fd, &st) != 0) {
        sonde__set_error("remote write: cannot stat %s: %s", path, strerror(errno));
        return SONDE_EIO;
    }
    uint8_t h[HDR];
    q->rd = q->wr = HDR;
    if ((uint64_t)st.st_size >= HDR && pread_all(q->fd, h, HDR, 0) == 0 &&
        memcmp(h, MAGIC, 8) == 0) {
        uint64_t rd = get32(h + 8) | (uint64_t)get32(h + 12) << 32;
        uint64_t end = (uint64_t)st.st_size;
        if (rd >= HDR && rd <= end) {
            /* Replay: keep every intact record from the read offset on. */
            uint64_t off = rd;
            uint64_t samples = 0;
            while (off + REC <= end) {
                uint8_t r[REC];
                if (pread_all(q->fd, r, REC, off) != 0)
                    break;
                uint32_t len = get32(r);
                if (off + REC + len > end)
                    break;
                uint8_t *d = sonde__malloc(len ? len : 1);
                if (!d)
                    return SONDE_ENOMEM;
                int ok = pread_all(q->fd, d, len, off + REC) == 0 &&
                         (uint32_t)crc32(0L, d, len) == get32(r + 8);
                sonde__free(d);
                if (!ok)
                    break;
                samples += get32(r + 4);
                off += REC + (uint64_t)len;
            }
            if (off != end)
                q->disk_errors++;
            q->rd = rd;
            q->wr = off;
            q->disk_samples = samples;
        } else {
            q->disk_errors++;
        }
    } else if (st.st_size != 0) {
        q->disk_errors++;
    }
    if (q->rd == q->wr)
        q->rd = q->wr = HDR;
    if (ftruncate(q->fd, (off_t)q->wr) != 0 || write_header(q) != 0) {
        sonde__set_error("remote write: cannot write queue file %s: %s", path, strerror(errno));
        return SONDE_EIO;
    }
    return SONDE_OK;
}

void sonde__rw_queue_free(sonde__rw_queue *q)
{
    sonde__rw_block *b;
    while ((b = mem_pop(q)))
        sonde__rw_block_free(b);
    if (q->fd >= 0)
        close(q->fd);
    sonde__free(q->path);
    q->fd = -1;
    q->path = NULL;
}

uint64_t sonde__rw_queue_drop_oldest(sonde__rw_queue *q)
{
    sonde__rw_block *b = mem_pop(q);
    if (b) {
        uint64_t n = b->nsamples;
        sonde__rw_block_free(b);
        refill(q);
        return n;
    }
    if (q->fd >= 0 && q->wr > q->rd) {
        uint8_t h[REC];
        if (pread_all(q->fd, h, REC, q->rd) != 0) {
            q->wr = q->rd;
            return 0;
        }
        uint32_t ns = get32(h + 4);
        disk_advance(q, REC + (uint64_t)get32(h), ns);
        return ns;
    }
    return 0;
}

void sonde__rw_queue_push(sonde__rw_queue *q, sonde__rw_block *blk)
{
    size_t c = cost(blk);
    int disk = q->fd >= 0;
    if (c > q->mem_max && (!disk || REC + (uint64_t)blk->len > q->disk_max)) {
        q->dropped_too_big += blk->nsamples;
        sonde__rw_block_free(blk);
        return;
    }
    if (!disk) {
        while (q->head && q->mem_bytes + q->reserved + c > q->mem_max)
            q->dropped_full += sonde__rw_queue_drop_oldest(q);
        if (q->mem_bytes + q->reserved + c > q->mem_max) {
            /* Only the batch on the wire is older, and it cannot be
             * dropped while it is sent: this one goes, so the bound
             * holds. */
            q->dropped_full += blk->nsamples;
            sonde__rw_block_free(blk);
            return;
        }
        mem_append(q, blk);
        return;
    }
    if (q->wr == q->rd && q->mem_bytes + q->reserved + c <= q->mem_max) {
        mem_append(q, blk);
        return;
    }
    uint64_t rec = REC + (uint64_t)blk->len;
    while ((q->wr - q->rd) + rec > q->disk_max && (q->head || q->wr > q->rd))
        q->dropped_full += sonde__rw_queue_drop_oldest(q);
    /* Dropping may have emptied the disk and made room in memory. */
    if (q->wr == q->rd && q->mem_bytes + q->reserved + c <= q->mem_max) {
        mem_append(q, blk);
        return;
    }
    if (disk_append(q, blk) != 0) {
        /* A full or failing disk: keep the batch in memory if it fits,
         * else it is lost like any batch past the bound. */
        q->disk_errors++;
        if (ftruncate(q->fd, (off_t)q->wr) != 0)
            q->disk_errors++;
        while (q->head && q->mem_bytes + q->reserved + c > q->mem_max)
            q->dropped_full += sonde__rw_queue_drop_oldest(q);
        if (q->mem_bytes + q->reserved + c <= q->mem_max) {
            mem_append(q, blk);
            return;
        }
        q->dropped_full += blk->nsamples;
        sonde__rw_block_free(blk);
        return;
    }
    sonde__rw_block_free(blk);
}

sonde__rw_block *sonde__rw_queue_pop(sonde__rw_queue *q)
{
    sonde__rw_block *b = mem_pop(q);
    if (b) {
        refill(q);
        return b;
    }
    if (q->fd >= 0 && q->wr > q->rd) {
        uint64_t reclen = 0;
        b = disk_read(q, &reclen);
        if (b)
            disk_advance(q, reclen, b->nsamples);
    }
    return b;
}

int sonde__rw_queue_spill(sonde__rw_queue *q)
{
    if (q->fd < 0)
        return SONDE_ESTATE;
    if (!q->head)
        return SONDE_OK;
    /* Rewrite: memory blocks (older) first, then the disk records, into a
     * new file renamed over the old one. */
    sonde_buf tmp;
    sonde_buf_init(&tmp);
    if (sonde__buf_printf(&tmp, "%s.tmp", q->path) != SONDE_OK)
        return SONDE_ENOMEM;
    int fd = open(tmp.data, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sonde_buf_free(&tmp);
        return SONDE_EIO;
    }
    sonde__rw_queue nq = *q;
    nq.fd = fd;
    nq.rd = nq.wr = HDR;
    nq.disk_samples = 0;
    int rc = write_header(&nq) == 0 ? SONDE_OK : SONDE_EIO;
    uint64_t disk_live = q->wr - q->rd;
    /* Oldest memory blocks give way if everything does not fit. */
    uint64_t mem_rec = 0;
    for (sonde__rw_block *b = q->head; b; b = b->next)
        mem_rec += REC + (uint64_t)b->len;
    while (q->head && mem_rec + disk_live > q->disk_max) {
        mem_rec -= REC + (uint64_t)q->head->len;
        q->dropped_full += sonde__rw_queue_drop_oldest(q);
    }
    for (sonde__rw_block *b = q->head; b && rc == SONDE_OK; b = b->next)
        if (disk_append(&nq, b) != 0)
            rc = SONDE_EIO;
    uint8_t buf[65536];
    for (uint64_t off = 0; off < disk_live && rc == SONDE_OK;) {
        size_t n = disk_live - off < sizeof buf ? (size_t)(disk_live - off) : sizeof buf;
        if (pread_all(q->fd, buf, n, q->rd + off) != 0 || pwrite_all(fd, buf, n, nq.wr + off))
            rc = SONDE_EIO;
        off += n;
    }
    if (rc == SONDE_OK && rename(tmp.data, q->path) != 0)
        rc = SONDE_EIO;
    if (rc != SONDE_OK) {
        close(fd);
        unlink(tmp.data);
        sonde_buf_free(&tmp);
        return rc;
    }
    close(q->fd);
    q->fd = fd;
    q->wr = nq.wr + disk_live;
    q->rd = HDR;
    q->disk_samples += nq.disk_samples;
    sonde__rw_block *b;
    while ((b = mem_pop(q)))
        sonde__rw_block_free(b);
    sonde_buf_free(&tmp);
    return SONDE_OK;
}

uint64_t sonde__rw_queue_samples(const sonde__rw_queue *q)
{
    return q->mem_samples + q->disk_samples;
}

uint64_t sonde__rw_queue_disk_bytes(const sonde__rw_queue *q)
{
    return q->fd >= 0 ? q->wr - q->rd : 0;
}
