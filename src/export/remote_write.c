/*
 * The remote writer: sampling, batching and sending on the runtime worker.
 *
 * Every RW_TICK_MS the worker runs tick(): sample when the interval is due,
 * cut full batches (and the remainder once the batch deadline passes) into
 * the queue, then drive one HTTP request over curl multi. Requests go out
 * one at a time and in queue order: a receiver such as Prometheus refuses
 * a series' samples that arrive older than what it already has, so batches
 * are never sent in parallel or reordered. rw->lock serialises the worker
 * with sonde_remote_write_sample_now and destroy; the figures read by
 * sonde_remote_write_get_stats and the self-metrics collector are atomics.
 */
#include "export/export_int.h"
#include "core/worker.h"

#include <sonde/log.h>

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RW_TICK_MS 20
/* Longest tick while there is nothing to send: the next sampling is
 * awaited with one wake-up, not fifty a second. */
#define RW_IDLE_TICK_MS 1000
/* Longest time one tick waits for a fast receiver's answer. */
#define RW_TICK_WAIT_MS 8

enum { CODE_2XX, CODE_4XX, CODE_429, CODE_5XX, CODE_ERROR, NCODES };
static const char *const code_names[NCODES] = {"2xx", "4xx", "429", "5xx", "error"};

struct sonde_remote_write {
    pthread_mutex_t lock;
    /* configuration, owned */
    char *url, *name, *bearer, *bearer_file, *user, *pass, *ca, *cert, *key;
    int insecure;
    sonde_registry *self_reg;
    char collector[96];
    bool collector_added;
    uint64_t interval_ns, deadline_ns, timeout_ms;
    double min_backoff, max_backoff, max_retry_after, flush_timeout;
    size_t max_samples;

    sonde__rw_sampler smp;
    sonde__rw_encoder enc;
    sonde__rw_queue q;

    /* sender */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    sonde__rw_block *inflight; /* oldest batch, being sent or waiting to be retried */
    bool busy;                 /* inflight is on the wire */
    char err[CURL_ERROR_SIZE];
    double retry_after; /* from the current answer, -1: none */
    double backoff;     /* last wait, seconds */
    uint64_t retry_at_ns;
    uint64_t next_sample_ns;
    uint64_t rng;
    bool logged_reject;

    uint64_t timer_id;
    uint32_t tick_ms; /* current interval of the timer */
    bool started;

    /* figures */
    _Atomic uint64_t sent, failed, retried, drop_rejected, drop_shutdown, requests;
    _Atomic uint64_t pending, mem_bytes, disk_bytes, mem_peak, drop_full, drop_big;
    _Atomic uint64_t last_send_bits;
    _Atomic int last_status;
    _Atomic uint64_t by_code[NCODES];
};

static void set_last_send(sonde_remote_write *rw, double t)
{
    uint64_t b;
    memcpy(&b, &t, sizeof b);
    atomic_store(&rw->last_send_bits, b);
}

static double get_last_send(const sonde_remote_write *rw)
{
    uint64_t b = atomic_load(&rw->last_send_bits);
    double t;
    memcpy(&t, &b, sizeof t);
    return t;
}

/* Mirror queue state into the atomics read by other threads. Under lock. */
static void publish(sonde_remote_write *rw)
{
    uint64_t pend = sonde__rw_queue_samples(&rw->q) + rw->smp.npending;
    if (rw->inflight)
        pend += rw->inflight->nsamples;
    atomic_store(&rw->pending, pend);
    uint64_t mem = rw->q.mem_bytes;
    if (rw->inflight)
        mem += rw->inflight->len + SONDE__RW_BLOCK_OVERHEAD;
    atomic_store(&rw->mem_bytes, mem);
    if (mem > atomic_load(&rw->mem_peak))
        atomic_store(&rw->mem_peak, mem);
    atomic_store(&rw->disk_bytes, sonde__rw_queue_disk_bytes(&rw->q));
    atomic_store(&rw->drop_full, rw->q.dropped_full);
    atomic_store(&rw->drop_big, rw->q.dropped_too_big);
}

void sonde_remote_write_opts_init(sonde_remote_write_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

/* Set or clear the in-flight batch, keeping its bytes inside the memory
 * bound of the queue. Under lock. */
static void set_inflight(sonde_remote_write *rw, sonde__rw_block *b)
{
    rw->inflight = b;
    rw->q.reserved = b ? (size_t)b->len + SONDE__RW_BLOCK_OVERHEAD : 0;
}

static void free_inflight(sonde_remote_write *rw)
{
    sonde__rw_block_free(rw->inflight);
    set_inflight(rw, NULL);
}

/* ---- batching ---- */

/* Encode pending samples into queued batches: every full batch, and the
 * rest too when force is set or the oldest has waited the deadline. */
static int cut_batches(sonde_remote_write *rw, uint64_t now_ns, bool force)
{
    sonde__rw_sampler *s = &rw->smp;
    size_t off = 0;
    int rc = SONDE_OK;
    while (rc == SONDE_OK && s->npending - off > 0) {
        size_t n = s->npending - off;
        if (n >= rw->max_samples)
            n = rw->max_samples;
        else if (!force && now_ns - s->first_pending_ns < rw->deadline_ns)
            break;
        sonde__rw_block *b = sonde__calloc(1, sizeof *b);
        uint8_t *data = NULL;
        size_t len = 0;
        if (!b || (rc = sonde__rw_encode(&rw->enc, s->pending + off, n, &data, &len, NULL))) {
            sonde__free(b);
            rc = SONDE_ENOMEM;
            break;
        }
        b->data = data;
        b->len = (uint32_t)len;
        b->nsamples = (uint32_t)n;
        /* Memory only and full: a batch waiting for its retry is the
         * oldest, so it is the first to go. */
        if (rw->q.fd < 0 && rw->inflight && !rw->busy &&
            rw->q.mem_bytes + rw->q.reserved + len + SONDE__RW_BLOCK_OVERHEAD > rw->q.mem_max) {
            rw->q.dropped_full += rw->inflight->nsamples;
            free_inflight(rw);
        }
        sonde__rw_queue_push(&rw->q, b);
        off += n;
    }
    sonde__rw_consume(s, off);
    if (off && s->npending)
        s->first_pending_ns = now_ns; /* the remainder starts a new deadline */
    return rc;
}

static long do_sample(sonde_remote_write *rw, uint64_t now_ns)
{
    int64_t now_ms = (int64_t)(sonde__now_wall() * 1000.0);
    return sonde__rw_sample(&rw->smp, now_ms, now_ns);
}

/* ---- sending ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    sonde_remote_write *rw = ud;
    size_t len = size * n;
    static const char k[] = "retry-after:";
    if (len > sizeof k - 1 && strncasecmp(p, k, sizeof k - 1) == 0) {
        double secs;
        if (sonde__parse_retry_after(p + sizeof k - 1, len - (sizeof k - 1), (int64_t)time(NULL),
                                     &secs) == 0)
            rw->retry_after = secs;
    }
    return len;
}

/* Read a bearer token file; trailing whitespace removed. */
static int read_token(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t got = fread(out, 1, n - 1, f);
    fclose(f);
    while (got && (out[got - 1] == '\n' || out[got - 1] == '\r' || out[got - 1] == ' '))
        got--;
    out[got] = '\0';
    return got ? 0 : -1;
}

static int build_headers(sonde_remote_write *rw)
{
    curl_slist_free_all(rw->headers);
    rw->headers = NULL;
    const char *fixed[] = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                           "X-Prometheus-Remote-Write-Version: 0.1.0", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        struct curl_slist *l = curl_slist_append(rw->headers, fixed[i]);
        if (!l)
            return SONDE_ENOMEM;
        rw->headers = l;
    }
    char tok[4096];
    const char *token = rw->bearer;
    if (!token && rw->bearer_file && read_token(rw->bearer_file, tok, sizeof tok) == 0)
        token = tok;
    if (token) {
        sonde_buf b;
        sonde_buf_init(&b);
        if (sonde__buf_printf(&b, "Authorization: Bearer %s", token) != SONDE_OK)
            return SONDE_ENOMEM;
        struct curl_slist *l = curl_slist_append(rw->headers, b.data);
        sonde_buf_free(&b);
        if (!l)
            return SONDE_ENOMEM;
        rw->headers = l;
    }
    return SONDE_OK;
}

static int start_request(sonde_remote_write *rw)
{
    if (!rw->multi && !(rw->multi = curl_multi_init()))
        return SONDE_ENOMEM;
    if (!rw->easy) {
        if (!(rw->easy = curl_easy_init()))
            return SONDE_ENOMEM;
        CURL *e = rw->easy;
        curl_easy_setopt(e, CURLOPT_URL, rw->url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "sonde/" SONDE_VERSION_STRING);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, rw);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, rw->err);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rw->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(rw->timeout_ms < 10000 ? rw->timeout_ms : 10000));
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        if (rw->user) {
            curl_easy_setopt(e, CURLOPT_USERNAME, rw->user);
            curl_easy_setopt(e, CURLOPT_PASSWORD, rw->pass ? rw->pass : "");
        }
        if (rw->ca)
            curl_easy_setopt(e, CURLOPT_CAINFO, rw->ca);
        if (rw->cert)
            curl_easy_setopt(e, CURLOPT_SSLCERT, rw->cert);
        if (rw->key)
            curl_easy_setopt(e, CURLOPT_SSLKEY, rw->key);
        if (rw->insecure) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
    if (build_headers(rw) != SONDE_OK)
        return SONDE_ENOMEM;
    curl_easy_setopt(rw->easy, CURLOPT_HTTPHEADER, rw->headers);
    curl_easy_setopt(rw->easy, CURLOPT_POSTFIELDS, (const char *)rw->inflight->data);
    curl_easy_setopt(rw->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rw->inflight->len);
    rw->retry_after = -1;
    rw->err[0] = '\0';
    if (curl_multi_add_handle(rw->multi, rw->easy) != CURLM_OK)
        return SONDE_ENOMEM;
    rw->busy = true;
    atomic_fetch_add(&rw->requests, 1);
    return SONDE_OK;
}

static double next_backoff(sonde_remote_write *rw)
{
    double b = rw->backoff > 0 ? rw->backoff * 2 : rw->min_backoff;
    if (b > rw->max_backoff)
        b = rw->max_backoff;
    rw->backoff = b;
    /* xorshift64 jitter: up to 50% more, so many writers that failed
     * together do not retry together. */
    rw->rng ^= rw->rng << 13;
    rw->rng ^= rw->rng >> 7;
    rw->rng ^= rw->rng << 17;
    double j = (double)(rw->rng >> 11) / 9007199254740992.0;
    return b * (1.0 + 0.5 * j);
}

static void finish_request(sonde_remote_write *rw, CURLcode cc, uint64_t now_ns)
{
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(rw->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(rw->multi, rw->easy);
    rw->busy = false;
    atomic_store(&rw->last_status, (int)status);
    uint64_t n = rw->inflight->nsamples;
    if (cc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&rw->by_code[CODE_2XX], 1);
        atomic_fetch_add(&rw->sent, n);
        set_last_send(rw, sonde__now_wall());
        rw->backoff = 0;
        free_inflight(rw);
        return;
    }
    atomic_fetch_add(&rw->failed, n);
    double wait;
    if (cc == CURLE_OK && status == 429) {
        atomic_fetch_add(&rw->by_code[CODE_429], 1);
        wait = next_backoff(rw);
        double ra = rw->retry_after;
        if (ra > rw->max_retry_after)
            ra = rw->max_retry_after;
        if (ra > wait)
            wait = ra;
    } else if (cc == CURLE_OK && status < 500) {
        /* 4xx (and anything else that is neither success nor a server
         * error): the receiver refuses this batch; sending it again would
         * be refused again. */
        atomic_fetch_add(&rw->by_code[CODE_4XX], 1);
        atomic_fetch_add(&rw->drop_rejected, n);
        if (!rw->logged_reject) {
            rw->logged_reject = true;
            sonde__diag(SONDE_LOG_ERROR, "remote_write",
                        "%s answered %ld: batch of %llu samples dropped (counted in "
                        "sonde_remote_write_samples_dropped_total{reason=\"rejected\"})",
                        rw->name, status, (unsigned long long)n);
        }
        free_inflight(rw);
        return;
    } else {
        atomic_fetch_add(&rw->by_code[cc == CURLE_OK ? CODE_5XX : CODE_ERROR], 1);
        wait = next_backoff(rw);
    }
    atomic_fetch_add(&rw->retried, n);
    rw->retry_at_ns = now_ns + (uint64_t)(wait * 1e9);
}

/* Check the request on the wire; start the next one when allowed. Under
 * lock. wait_ms bounds the time spent waiting for an answer. */
static void drive(sonde_remote_write *rw, uint64_t now_ns, int wait_ms)
{
    uint64_t until = now_ns + (uint64_t)wait_ms * 1000000u;
    for (;;) {
        if (!rw->busy) {
            if (!rw->inflight)
                set_inflight(rw, sonde__rw_queue_pop(&rw->q));
            if (!rw->inflight || now_ns < rw->retry_at_ns)
                return;
            if (start_request(rw) != SONDE_OK)
                return;
        }
        int running = 0;
        curl_multi_perform(rw->multi, &running);
        CURLMsg *m;
        int left;
        bool done = false;
        while ((m = curl_multi_info_read(rw->multi, &left)))
            if (m->msg == CURLMSG_DONE) {
                finish_request(rw, m->data.result, sonde__now_mono_ns());
                done = true;
                break;
            }
        now_ns = sonde__now_mono_ns();
        if (done)
            continue;
        if (now_ns >= until)
            return;
        int ms = (int)((until - now_ns) / 1000000u);
        curl_multi_poll(rw->multi, NULL, 0, ms > 0 ? ms : 1, NULL);
        now_ns = sonde__now_mono_ns();
    }
}

static void tick(void *ud, uint64_t now_ns)
{
    sonde_remote_write *rw = ud;
    pthread_mutex_lock(&rw->lock);
    if (now_ns >= rw->next_sample_ns) {
        do_sample(rw, now_ns);
        rw->next_sample_ns += rw->interval_ns;
        if (rw->next_sample_ns <= now_ns)
            rw->next_sample_ns = now_ns + rw->interval_ns;
    }
    cut_batches(rw, now_ns, false);
    drive(rw, now_ns, RW_TICK_WAIT_MS);
    publish(rw);
    /* Tick fast while something waits to be sent; otherwise sleep until
     * the next sampling (sample_now and flush wake the timer). */
    uint64_t now = sonde__now_mono_ns();
    uint32_t ms = RW_TICK_MS;
    if (!rw->inflight && !rw->q.head && rw->smp.npending == 0 &&
        sonde__rw_queue_disk_bytes(&rw->q) == 0) {
        uint64_t wait = rw->next_sample_ns > now ? (rw->next_sample_ns - now) / 1000000u : 0;
        ms = wait < RW_TICK_MS        ? RW_TICK_MS
             : wait > RW_IDLE_TICK_MS ? RW_IDLE_TICK_MS
                                      : (uint32_t)wait;
    }
    if (ms != rw->tick_ms || ms != RW_TICK_MS) {
        rw->tick_ms = ms;
        sonde__runtime_set_interval(rw->timer_id, ms);
    }
    pthread_mutex_unlock(&rw->lock);
}

/* Make the worker tick now (after batches were queued by another
 * thread). Under lock. */
static void wake(sonde_remote_write *rw)
{
    if (rw->started && rw->tick_ms != RW_TICK_MS)
        sonde__runtime_trigger(rw->timer_id);
}

/* ---- self-metrics ---- */

static void collect(sonde_emitter *em, void *ud)
{
    sonde_remote_write *rw = ud;
    const char *kv[4] = {"remote", rw->name, NULL, NULL};
    struct {
        const char *name, *help;
        _Atomic uint64_t *v;
    } counters[] = {
        {"sonde_remote_write_samples_sent_total", "Samples accepted by the remote receiver.",
         &rw->sent},
        {"sonde_remote_write_samples_failed_total",
         "Samples in remote write requests that failed (any cause).", &rw->failed},
        {"sonde_remote_write_samples_retried_total",
         "Samples in remote write requests scheduled to be sent again.", &rw->retried},
    };
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
        sonde_emit_family(em, SONDE_COUNTER, counters[i].name, counters[i].help, NULL);
        sonde_emit_sample(em, kv, 1, (double)atomic_load(counters[i].v));
    }
    sonde_emit_family(em, SONDE_COUNTER, "sonde_remote_write_samples_dropped_total",
                      "Samples given up: queue_full (oldest past the queue bound), rejected "
                      "(4xx answer), too_large (batch over the bound), shutdown.",
                      NULL);
    struct {
        const char *reason;
        uint64_t v;
    } drops[] = {{"queue_full", atomic_load(&rw->drop_full)},
                 {"rejected", atomic_load(&rw->drop_rejected)},
                 {"too_large", atomic_load(&rw->drop_big)},
                 {"shutdown", atomic_load(&rw->drop_shutdown)}};
    kv[2] = "reason";
    for (size_t i = 0; i < 4; i++) {
        kv[3] = drops[i].reason;
        sonde_emit_sample(em, kv, 2, (double)drops[i].v);
    }
    sonde_emit_family(em, SONDE_COUNTER, "sonde_remote_write_requests_total",
                      "Remote write requests by outcome (status class, 429, or error for no "
                      "answer).",
                      NULL);
    kv[2] = "code";
    for (size_t i = 0; i < NCODES; i++) {
        kv[3] = code_names[i];
        sonde_emit_sample(em, kv, 2, (double)atomic_load(&rw->by_code[i]));
    }
    sonde_emit_family(em, SONDE_GAUGE, "sonde_remote_write_samples_pending",
                      "Samples waiting to be sent (memory and disk).", NULL);
    sonde_emit_sample(em, kv, 1, (double)atomic_load(&rw->pending));
    sonde_emit_family(em, SONDE_GAUGE, "sonde_remote_write_queue_bytes",
                      "Bytes held by queued batches, by medium.", NULL);
    kv[2] = "medium";
    kv[3] = "memory";
    sonde_emit_sample(em, kv, 2, (double)atomic_load(&rw->mem_bytes));
    kv[3] = "disk";
    sonde_emit_sample(em, kv, 2, (double)atomic_load(&rw->disk_bytes));
    sonde_emit_family(em, SONDE_GAUGE, "sonde_remote_write_last_send_timestamp_seconds",
                      "Unix time of the last request the receiver accepted (0: none yet).", NULL);
    sonde_emit_sample(em, kv, 1, get_last_send(rw));
}

/* ---- lifecycle ---- */

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = sonde__strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static double secs_or(double v, double def)
{
    return v > 0 ? v : def;
}

/* The URL without credentials and query, for the remote label. */
static char *display_name(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    sonde_buf b;
    sonde_buf_init(&b);
    if (scheme_end)
        sonde__buf_append(&b, url, (size_t)(host - url));
    if (at && (!slash || at < slash))
        host = at + 1;
    size_t n = strcspn(host, "?#");
    sonde__buf_append(&b, host, n);
    if (sonde__buf_putc(&b, '\0') != SONDE_OK) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void rw_free(sonde_remote_write *rw)
{
    if (rw->collector_added)
        sonde_registry_remove_collector(rw->self_reg, rw->collector);
    sonde__rw_sampler_free(&rw->smp);
    sonde__rw_encoder_free(&rw->enc);
    sonde__rw_queue_free(&rw->q);
    sonde__rw_block_free(rw->inflight);
    if (rw->easy) {
        if (rw->busy)
            curl_multi_remove_handle(rw->multi, rw->easy);
        curl_easy_cleanup(rw->easy);
    }
    if (rw->multi)
        curl_multi_cleanup(rw->multi);
    curl_slist_free_all(rw->headers);
    char *strs[] = {rw->url,  rw->name, rw->bearer, rw->bearer_file, rw->user,
                    rw->pass, rw->ca,   rw->cert,   rw->key};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        sonde__free(strs[i]);
    pthread_mutex_destroy(&rw->lock);
    sonde__free(rw);
}

/* The checks of sonde_remote_write_create that need no resources. */
static int check_scalars(const sonde_remote_write_opts *o)
{
    if (!o || !o->url || (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8))) {
        sonde__set_error("remote write: url must start with http:// or https://");
        return SONDE_EINVAL;
    }
    if (o->interval_seconds != 0 &&
        !(o->interval_seconds >= 0.05 && o->interval_seconds <= 86400)) {
        sonde__set_error("remote write: interval_seconds must be between 0.05 and 86400");
        return SONDE_EINVAL;
    }
    if (o->max_samples_per_send > 1000000) {
        sonde__set_error("remote write: max_samples_per_send must be at most 1000000");
        return SONDE_EINVAL;
    }
    if (o->queue_max_bytes && o->queue_max_bytes < 65536) {
        sonde__set_error("remote write: queue_max_bytes must be at least 65536");
        return SONDE_EINVAL;
    }
    int kinds = !!(o->bearer_token || o->bearer_token_file) + !!o->basic_auth_user;
    if (kinds > 1 || (o->bearer_token && o->bearer_token_file)) {
        sonde__set_error("remote write: choose one of bearer_token, bearer_token_file, "
                         "basic auth");
        return SONDE_EINVAL;
    }
    if (o->batch_deadline_seconds < 0 || o->timeout_seconds < 0 || o->min_backoff_seconds < 0 ||
        o->max_backoff_seconds < 0 || o->max_retry_after_seconds < 0) {
        sonde__set_error("remote write: durations must not be negative");
        return SONDE_EINVAL;
    }
    if (o->tls_key_file && !o->tls_cert_file) {
        sonde__set_error("remote write: tls_key_file without tls_cert_file");
        return SONDE_EINVAL;
    }
    return SONDE_OK;
}

static int check_opts(const sonde_remote_write_opts *o)
{
    int rc = check_scalars(o);
    if (rc != SONDE_OK)
        return rc;
    /* Patterns and external labels: compiled and copied as create does. */
    sonde__rw_sampler tmp;
    rc = sonde__rw_sampler_init(&tmp, o->registry, o->external_labels, o->external_label_count,
                                o->keep, o->keep_count, o->drop, o->drop_count);
    sonde__rw_sampler_free(&tmp);
    return rc;
}

int sonde_remote_write_opts_check(const sonde_remote_write_opts *opts)
{
    sonde__clear_error();
    if (!sonde_enabled())
        return SONDE_OK;
    return check_opts(opts);
}

const char *sonde_remote_write_name(const sonde_remote_write *rw)
{
    return rw ? rw->name : "";
}

int sonde_remote_write_create(const sonde_remote_write_opts *o, sonde_remote_write **out)
{
    sonde__clear_error();
    if (!out)
        return SONDE_EINVAL;
    *out = NULL;
    if (!sonde_enabled())
        return SONDE_OK; /* off: *out stays NULL, and every call accepts NULL */
    int rc = check_opts(o);
    if (rc != SONDE_OK)
        return rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sonde_remote_write *rw = sonde__calloc(1, sizeof *rw);
    if (!rw)
        return SONDE_ENOMEM;
    pthread_mutex_init(&rw->lock, NULL);
    bool oom = false;
    rw->url = dup_opt(o->url, &oom);
    rw->name = o->name ? dup_opt(o->name, &oom) : display_name(o->url);
    rw->bearer = dup_opt(o->bearer_token, &oom);
    rw->bearer_file = dup_opt(o->bearer_token_file, &oom);
    rw->user = dup_opt(o->basic_auth_user, &oom);
    rw->pass = dup_opt(o->basic_auth_password, &oom);
    rw->ca = dup_opt(o->tls_ca_file, &oom);
    rw->cert = dup_opt(o->tls_cert_file, &oom);
    rw->key = dup_opt(o->tls_key_file, &oom);
    rw->insecure = o->tls_insecure_skip_verify;
    rw->q.fd = -1;
    if (oom || !rw->name) {
        rw_free(rw);
        return SONDE_ENOMEM;
    }
    rw->interval_ns = (uint64_t)(secs_or(o->interval_seconds, 15) * 1e9);
    rw->deadline_ns = (uint64_t)(secs_or(o->batch_deadline_seconds, 5) * 1e9);
    rw->timeout_ms = (uint64_t)(secs_or(o->timeout_seconds, 30) * 1000);
    rw->min_backoff = secs_or(o->min_backoff_seconds, 0.05);
    rw->max_backoff = secs_or(o->max_backoff_seconds, 5);
    if (rw->max_backoff < rw->min_backoff)
        rw->max_backoff = rw->min_backoff;
    rw->max_retry_after = secs_or(o->max_retry_after_seconds, 300);
    rw->flush_timeout = o->flush_timeout_seconds < 0 ? 0 : secs_or(o->flush_timeout_seconds, 5);
    rw->max_samples = o->max_samples_per_send ? o->max_samples_per_send : 2000;
    rw->rng =
        (uint64_t)sonde__now_mono_ns() ^ (uint64_t)(uintptr_t)rw ^ UINT64_C(0x9e3779b97f4a7c15);
    rc = sonde__rw_sampler_init(&rw->smp, o->registry, o->external_labels, o->external_label_count,
                                o->keep, o->keep_count, o->drop, o->drop_count);
    if (rc == SONDE_OK) {
        char *path = NULL;
        if (o->queue_dir) {
            /* One file per receiver URL, so several writers can share the
             * directory and a restart finds its own backlog. */
            uint64_t h = UINT64_C(1469598103934665603);
            for (const char *p = o->url; *p; p++) {
                h ^= (unsigned char)*p;
                h *= UINT64_C(1099511628211);
            }
            sonde_buf b;
            sonde_buf_init(&b);
            if (mkdir(o->queue_dir, 0700) != 0 && errno != EEXIST) {
                sonde__set_error("remote write: cannot create queue_dir %s: %s", o->queue_dir,
                                 strerror(errno));
                rc = SONDE_EIO;
            } else if (sonde__buf_printf(&b, "%s/remote-write-%016llx.queue", o->queue_dir,
                                         (unsigned long long)h) != SONDE_OK) {
                rc = SONDE_ENOMEM;
            }
            path = b.data;
        }
        if (rc == SONDE_OK)
            rc = sonde__rw_queue_init(&rw->q, o->queue_max_bytes ? o->queue_max_bytes : 32u << 20,
                                      path, o->disk_max_bytes ? o->disk_max_bytes : 1u << 30);
        sonde__free(path);
    }
    if (rc == SONDE_OK) {
        rw->self_reg = o->self_registry ? o->self_registry : rw->smp.reg;
        int n = snprintf(rw->collector, sizeof rw->collector, "sonde_remote_write@%p", (void *)rw);
        if (n < 0 || (size_t)n >= sizeof rw->collector)
            rc = SONDE_ENOMEM;
        else
            rc = sonde_registry_add_collector(rw->self_reg, rw->collector, collect, rw);
        rw->collector_added = rc == SONDE_OK;
    }
    if (rc != SONDE_OK) {
        rw_free(rw);
        return rc;
    }
    pthread_mutex_lock(&rw->lock);
    publish(rw);
    pthread_mutex_unlock(&rw->lock);
    *out = rw;
    return SONDE_OK;
}

int sonde_remote_write_start(sonde_remote_write *rw)
{
    if (!rw)
        return sonde_enabled() ? SONDE_EINVAL : SONDE_OK;
    pthread_mutex_lock(&rw->lock);
    if (rw->started) {
        pthread_mutex_unlock(&rw->lock);
        return SONDE_ESTATE;
    }
    /* The first sampling happens now, so a flush right after start has
     * something to wait for. */
    uint64_t now = sonde__now_mono_ns();
    do_sample(rw, now);
    cut_batches(rw, now, false);
    publish(rw);
    rw->next_sample_ns = now + rw->interval_ns;
    rw->tick_ms = RW_TICK_MS;
    /* Registered under the lock: a tick (which reads timer_id) cannot run
     * before the id is stored. Lock order: rw->lock, then the worker's. */
    int rc = sonde__runtime_every(RW_TICK_MS, tick, rw, &rw->timer_id);
    pthread_mutex_unlock(&rw->lock);
    if (rc != SONDE_OK)
        return rc;
    rc = sonde__runtime_start();
    if (rc != SONDE_OK) {
        sonde__runtime_cancel(rw->timer_id);
        return rc;
    }
    pthread_mutex_lock(&rw->lock);
    rw->started = true;
    pthread_mutex_unlock(&rw->lock);
    return SONDE_OK;
}

int sonde_remote_write_sample_now(sonde_remote_write *rw)
{
    if (!rw)
        return sonde_enabled() ? SONDE_EINVAL : SONDE_OK;
    pthread_mutex_lock(&rw->lock);
    uint64_t now = sonde__now_mono_ns();
    long n = do_sample(rw, now);
    int rc = cut_batches(rw, now, true);
    publish(rw);
    wake(rw);
    pthread_mutex_unlock(&rw->lock);
    if (n < 0)
        return (int)n;
    if (rc != SONDE_OK)
        return rc;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

static bool idle(sonde_remote_write *rw)
{
    return !rw->inflight && rw->smp.npending == 0 && sonde__rw_queue_samples(&rw->q) == 0 &&
           !rw->q.head && sonde__rw_queue_disk_bytes(&rw->q) == 0;
}

int sonde_remote_write_flush(sonde_remote_write *rw, int timeout_ms)
{
    if (!rw)
        return sonde_enabled() ? SONDE_EINVAL : SONDE_OK;
    uint64_t until = sonde__now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    pthread_mutex_lock(&rw->lock);
    cut_batches(rw, sonde__now_mono_ns(), true);
    publish(rw);
    wake(rw);
    bool started = rw->started;
    pthread_mutex_unlock(&rw->lock);
    if (!started)
        return SONDE_ESTATE;
    for (;;) {
        pthread_mutex_lock(&rw->lock);
        bool done = idle(rw);
        pthread_mutex_unlock(&rw->lock);
        if (done)
            return SONDE_OK;
        if (sonde__now_mono_ns() >= until)
            return SONDE_ETIMEOUT;
        usleep(5000);
    }
}

void sonde_remote_write_get_stats(const sonde_remote_write *rw, sonde_remote_write_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!rw)
        return;
    sonde_remote_write *m = (sonde_remote_write *)rw;
    st->samples_sent = atomic_load(&m->sent);
    st->samples_failed = atomic_load(&m->failed);
    st->samples_retried = atomic_load(&m->retried);
    st->dropped_queue_full = atomic_load(&m->drop_full);
    st->dropped_rejected = atomic_load(&m->drop_rejected);
    st->dropped_shutdown = atomic_load(&m->drop_shutdown);
    st->dropped_too_large = atomic_load(&m->drop_big);
    st->samples_pending = atomic_load(&m->pending);
    st->queue_memory_bytes = atomic_load(&m->mem_bytes);
    st->queue_disk_bytes = atomic_load(&m->disk_bytes);
    st->queue_memory_peak_bytes = atomic_load(&m->mem_peak);
    st->requests = atomic_load(&m->requests);
    st->last_send_seconds = get_last_send(m);
    st->last_status = atomic_load(&m->last_status);
}

void sonde_remote_write_destroy(sonde_remote_write *rw)
{
    if (!rw)
        return;
    pthread_mutex_lock(&rw->lock);
    bool started = rw->started;
    rw->started = false;
    pthread_mutex_unlock(&rw->lock);
    if (started) {
        sonde__runtime_cancel(rw->timer_id);
        sonde__runtime_stop();
    }
    /* Last attempt to deliver, on the caller's thread, bounded in time. */
    pthread_mutex_lock(&rw->lock);
    uint64_t now = sonde__now_mono_ns();
    cut_batches(rw, now, true);
    uint64_t until = now + (uint64_t)(rw->flush_timeout * 1e9);
    while (rw->flush_timeout > 0 && !idle(rw) && now < until) {
        /* A pending retry wait is honoured unless it outlasts the budget. */
        if (!rw->busy && rw->retry_at_ns > now && rw->retry_at_ns >= until)
            break;
        drive(rw, now, 50);
        now = sonde__now_mono_ns();
        if (!rw->busy && rw->inflight && rw->retry_at_ns > now) {
            uint64_t w = rw->retry_at_ns - now;
            usleep((useconds_t)(w / 1000 < 100000 ? w / 1000 : 100000));
            now = sonde__now_mono_ns();
        }
    }
    if (rw->busy) {
        curl_multi_remove_handle(rw->multi, rw->easy);
        rw->busy = false;
    }
    /* What is left: kept on disk (oldest first) when there is a disk,
     * otherwise counted as lost. */
    if (rw->inflight) {
        rw->inflight->next = rw->q.head;
        rw->q.head = rw->inflight;
        if (!rw->q.tail)
            rw->q.tail = rw->inflight;
        rw->q.mem_bytes += rw->inflight->len + SONDE__RW_BLOCK_OVERHEAD;
        rw->q.mem_samples += rw->inflight->nsamples;
        set_inflight(rw, NULL);
    }
    if (rw->q.head && sonde__rw_queue_spill(&rw->q) != SONDE_OK) {
        uint64_t lost = rw->q.mem_samples;
        sonde__rw_block *b;
        while ((b = rw->q.head)) {
            rw->q.head = b->next;
            sonde__rw_block_free(b);
        }
        rw->q.tail = NULL;
        rw->q.mem_bytes = 0;
        rw->q.mem_samples = 0;
        atomic_fetch_add(&rw->drop_shutdown, lost);
    }
    pthread_mutex_unlock(&rw->lock);
    rw_free(rw);
}
