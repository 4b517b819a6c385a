/*
 * Sinks: stderr/stdout, files (size rotation, external rotation, SIGHUP
 * reopen), the systemd journal (native protocol), syslog (RFC 3164
 * datagrams) and user callbacks.
 *
 * Every sink is touched only with the sinks lock held. A failing sink never
 * stops the others and never blocks: each line it cannot write is counted
 * in sonde_log_write_errors_total, and its change of state (failing,
 * recovered) is reported once as a log line, after the lock is released.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SINK_BUF_FLUSH (64 * 1024)

typedef struct log_sink {
    int id;
    int type;
    int level;
    int format; /* resolved: JSON or CONSOLE */
    int color;  /* resolved: 0 or 1 */
    int is_default;
    int fd;
    int own_fd;
    /* files */
    char *path;
    uint64_t size, max_bytes;
    unsigned keep, check_ms, mode;
    uint64_t next_check_ns;
    dev_t dev;
    ino_t ino;
    int regular;
    int reopen_gen;
    sonde_buf out;
    uint64_t out_lines;
    /* sockets */
    struct sockaddr_un addr;
    socklen_t alen;
    char *ident;
    int facility;
    /* callbacks */
    sonde_log_sink_fn fn;
    void *userdata;
    /* state reporting */
    int failing;
    int report_level; /* 0: nothing to report */
    char report[320];
} log_sink;

static struct {
    log_sink *s[LOG_MAX_SINKS];
    int n;
    int next_id;
    atomic_int min_level;
    atomic_int any_report;
} S = {.next_id = 1, .min_level = SONDE_LOG_OFF};

_Atomic int sonde__no_sighup;

int sonde__sinks_min_level(void)
{
    return atomic_load_explicit(&S.min_level, memory_order_relaxed);
}

static void update_min_level_locked(void)
{
    int m = SONDE_LOG_OFF;
    for (int i = 0; i < S.n; i++)
        if (S.s[i]->level < m)
            m = S.s[i]->level;
    atomic_store(&S.min_level, m);
}

static void set_report(log_sink *s, int level, const char *fmt, ...) SONDE_PRINTF(3, 4);
static void set_report(log_sink *s, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->report, sizeof s->report, fmt, ap);
    va_end(ap);
    if (n < 0)
        s->report[0] = '\0';
    s->report_level = level;
    atomic_store_explicit(&S.any_report, 1, memory_order_release);
}

static const char *sink_name(const log_sink *s)
{
    switch (s->type) {
    case SONDE_LOG_SINK_STDERR:
        return "stderr";
    case SONDE_LOG_SINK_STDOUT:
        return "stdout";
    case SONDE_LOG_SINK_FILE:
        return s->path;
    case SONDE_LOG_SINK_JOURNAL:
        return "journal";
    case SONDE_LOG_SINK_SYSLOG:
        return "syslog";
    default:
        return "callback";
    }
}

static void sink_failed(log_sink *s, uint64_t lines, int err)
{
    sonde__log_count_write_errors(lines);
    if (!s->failing) {
        s->failing = 1;
        set_report(s, SONDE_LOG_ERROR,
                   "log sink %s cannot write: %s; lines are dropped and counted", sink_name(s),
                   strerror(err));
    }
}

static void sink_ok(log_sink *s)
{
    if (s->failing) {
        s->failing = 0;
        set_report(s, SONDE_LOG_WARNING, "log sink %s writes again", sink_name(s));
    }
}

/* ---- files ---- */

static int file_open(log_sink *s)
{
    int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, s->mode);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->regular = S_ISREG(st.st_mode);
        s->size = s->regular ? (uint64_t)st.st_size : 0;
    }
    s->fd = fd;
    s->own_fd = 1;
    return 0;
}

static void fd_flush(log_sink *s)
{
    if (s->out.len == 0)
        return;
    if (s->fd < 0) {
        sink_failed(s, s->out_lines, ENOENT);
    } else {
        size_t off = 0;
        int err = 0;
        while (off < s->out.len) {
            ssize_t w = write(s->fd, s->out.data + off, s->out.len - off);
            if (w > 0) {
                off += (size_t)w;
            } else if (w < 0 && errno == EINTR) {
                continue;
            } else {
                err = w < 0 ? errno : EIO;
                break;
            }
        }
        if (err) {
            /* Count the lines that did not make it out whole. */
            uint64_t lost = 0;
            for (size_t i = off; i < s->out.len; i++)
                lost += s->out.data[i] == '\n';
            sink_failed(s, lost ? lost : 1, err);
        } else {
            sink_ok(s);
        }
    }
    sonde_buf_reset(&s->out);
    s->out_lines = 0;
}

static void file_reopen(log_sink *s)
{
    fd_flush(s);
    if (s->fd >= 0 && s->own_fd)
        close(s->fd);
    s->fd = -1;
    int rc = file_open(s);
    if (rc < 0) {
        if (!s->failing) {
            s->failing = 1;
            set_report(s, SONDE_LOG_ERROR,
                       "cannot open log file %s: %s; lines are dropped and counted", s->path,
                       strerror(-rc));
        }
    } else {
        sink_ok(s);
    }
}

static void path_n(char *out, size_t cap, const char *path, unsigned n)
{
    int l = snprintf(out, cap, "%s.%u", path, n);
    if (l < 0 || (size_t)l >= cap)
        out[0] = '\0';
}

static void file_rotate(log_sink *s)
{
    fd_flush(s);
    char a[PATH_MAX + 16], b[PATH_MAX + 16];
    for (unsigned i = s->keep; i >= 1; i--) {
        path_n(b, sizeof b, s->path, i);
        if (i == 1) {
            if (b[0])
                rename(s->path, b);
        } else {
            path_n(a, sizeof a, s->path, i - 1);
            if (a[0] && b[0])
                rename(a, b);
        }
    }
    file_reopen(s);
    s->size = 0;
}

/* Before writing: honour SIGHUP / sonde_log_reopen, notice external
 * rotation or deletion (path no longer names our file), retry a failed
 * open. */
static void file_check(log_sink *s)
{
    int gen = atomic_load_explicit(&sonde__lg.reopen_gen, memory_order_relaxed);
    if (gen != s->reopen_gen) {
        s->reopen_gen = gen;
        file_reopen(s);
        s->next_check_ns = sonde__now_mono_ns() + (uint64_t)s->check_ms * 1000000u;
        return;
    }
    uint64_t now = sonde__now_mono_ns();
    if (now < s->next_check_ns)
        return;
    s->next_check_ns = now + (uint64_t)s->check_ms * 1000000u;
    struct stat st;
    if (s->fd < 0 || stat(s->path, &st) != 0 || st.st_dev != s->dev || st.st_ino != s->ino)
        file_reopen(s);
}

static void fd_append(log_sink *s, const char *line, size_t len)
{
    if (s->type == SONDE_LOG_SINK_FILE) {
        file_check(s);
        if (s->fd < 0) {
            sink_failed(s, 1, ENOENT);
            return;
        }
        if (s->regular && s->max_bytes && s->size > 0 && s->size + len > s->max_bytes)
            file_rotate(s);
        s->size += len;
    }
    if (sonde__buf_append(&s->out, line, len) != SONDE_OK) {
        sink_failed(s, 1, ENOMEM);
        return;
    }
    s->out_lines++;
    if (s->out.len >= SINK_BUF_FLUSH)
        fd_flush(s);
}

/* ---- journal ---- */

static int journal_priority(int level)
{
    switch (level) {
    case SONDE_LOG_CRITICAL:
        return 2;
    case SONDE_LOG_ERROR:
        return 3;
    case SONDE_LOG_WARNING:
        return 4;
    case SONDE_LOG_INFO:
        return 6;
    default:
        return 7;
    }
}

/* NAME=value\n, or the binary form when the value holds a newline. */
static void jfield(sonde_buf *b, const char *name, const char *v, size_t n)
{
    sonde__buf_puts(b, name);
    if (memchr(v, '\n', n)) {
        sonde__buf_putc(b, '\n');
        uint64_t le = n;
        unsigned char l8[8];
        for (int i = 0; i < 8; i++)
            l8[i] = (unsigned char)(le >> (8 * i));
        sonde__buf_append(b, l8, 8);
    } else {
        sonde__buf_putc(b, '=');
    }
    sonde__buf_append(b, v, n);
    sonde__buf_putc(b, '\n');
}

static void jname(char *out, size_t cap, const char *k, size_t n)
{
    static const char *const reserved[] = {"MESSAGE",   "PRIORITY",       "SYSLOG_IDENTIFIER",
                                           "CODE_FILE", "CODE_LINE",      "CODE_FUNC",
                                           "LOGGER",    "CORRELATION_ID", "TID",
                                           "ERRNO",     "MESSAGE_ID",     "SYSLOG_FACILITY"};
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap && o < 60; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 32);
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            c = '_';
        if (o == 0 && c == '_')
            continue;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    int clash = o == 0 || (out[0] >= '0' && out[0] <= '9');
    for (size_t i = 0; i < SONDE_ARRAY_LEN(reserved) && !clash; i++)
        clash = strcmp(out, reserved[i]) == 0;
    if (clash) {
        char tmp[72];
        int l = snprintf(tmp, sizeof tmp, "F_%s", out);
        if (l < 0)
            l = 0;
        if ((size_t)l >= cap)
            l = (int)cap - 1;
        memcpy(out, tmp, (size_t)l);
        out[l] = '\0';
    }
}

static void journal_items(sonde_buf *b, fmt_cache *fc, const char *blob, size_t len)
{
    size_t off = 0;
    int nest = 0;
    fb_item it;
    char name[72], num[40];
    while (sonde__fb_next(blob, len, &off, &it)) {
        if (it.type == SONDE_FIELD_OBJECT || it.type == SONDE_FIELD_LIST) {
            nest++;
            continue;
        }
        if (it.type == SONDE_FIELD_CLOSE) {
            if (nest)
                nest--;
            continue;
        }
        if (nest || it.type == SONDE_FIELD_BACKTRACE)
            continue;
        jname(name, sizeof name, it.key, it.klen);
        if (sonde__mask_enabled() && !(it.flags & FB_PREMASKED) &&
            sonde__mask_key(it.key, it.klen)) {
            jfield(b, name, "***", 3);
            continue;
        }
        int l = -1;
        switch (it.type) {
        case SONDE_FIELD_STR: {
            const char *s = it.s;
            size_t n = it.slen;
            if (!(it.flags & FB_PREMASKED) && sonde__mask_enabled()) {
                sonde_buf_reset(&fc->tmp2);
                if (sonde__mask_value(s, n, &fc->tmp2) == 1) {
                    s = fc->tmp2.data;
                    n = fc->tmp2.len;
                }
            }
            jfield(b, name, s, n);
            continue;
        }
        case SONDE_FIELD_INT:
            l = snprintf(num, sizeof num, "%lld", (long long)it.v.i);
            break;
        case SONDE_FIELD_UINT:
            l = snprintf(num, sizeof num, "%llu", (unsigned long long)it.v.u);
            break;
        case SONDE_FIELD_DOUBLE:
            l = (int)sonde__fmt_double(num, it.v.d);
            break;
        case SONDE_FIELD_BOOL:
            l = snprintf(num, sizeof num, "%s", it.v.b ? "true" : "false");
            break;
        case SONDE_FIELD_ERRNO:
            l = snprintf(num, sizeof num, "%d", (int)it.v.i);
            memcpy(name, "ERRNO", 6);
            break;
        default:
            continue;
        }
        if (l < 0)
            l = 0;
        if ((size_t)l >= sizeof num)
            l = sizeof num - 1;
        jfield(b, name, num, (size_t)l);
    }
}

static void journal_send(log_sink *s, fmt_cache *fc, const rec_view *v)
{
    sonde_buf *b = &s->out;
    sonde_buf_reset(b);
    const sonde_buf *m = sonde__fc_message(fc);
    jfield(b, "MESSAGE", m->data ? m->data : "", m->len);
    char num[32];
    int l = snprintf(num, sizeof num, "%d", journal_priority(v->h.level));
    jfield(b, "PRIORITY", num, l > 0 ? (size_t)l : 0);
    jfield(b, "SYSLOG_IDENTIFIER", s->ident, strlen(s->ident));
    const struct sonde_logger *lg = v->h.lg ? v->h.lg : &sonde__root_logger;
    jfield(b, "LOGGER", lg->name, lg->name_len);
    if (v->h.file) {
        const char *f = v->h.file;
        jfield(b, "CODE_FILE", f, strnlen(f, 512));
        l = snprintf(num, sizeof num, "%d", (int)v->h.line);
        jfield(b, "CODE_LINE", num, l > 0 ? (size_t)l : 0);
    }
    if (v->h.func)
        jfield(b, "CODE_FUNC", v->h.func, strnlen(v->h.func, 256));
    l = snprintf(num, sizeof num, "%d", (int)v->h.tid);
    jfield(b, "TID", num, l > 0 ? (size_t)l : 0);
    if (v->h.cid_len)
        jfield(b, "CORRELATION_ID", v->cid, v->h.cid_len);
    journal_items(b, fc, v->ctx, v->h.ctx_len);
    journal_items(b, fc, v->fields, v->h.fields_len);
    ssize_t w = sendto(s->fd, b->data, b->len, MSG_NOSIGNAL, (struct sockaddr *)&s->addr, s->alen);
    if (w < 0)
        sink_failed(s, 1, errno);
    else
        sink_ok(s);
    sonde_buf_reset(b);
}

/* ---- syslog ---- */

static void syslog_send(log_sink *s, fmt_cache *fc, const rec_view *v)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const sonde_buf *line =
        s->format == SONDE_LOG_FORMAT_CONSOLE ? sonde__fc_console(fc, 0) : sonde__fc_json(fc);
    time_t t = (time_t)(v->h.ts_us / 1000000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    char head[256];
    int l = snprintf(head, sizeof head, "<%d>%s %2d %02d:%02d:%02d %s[%d]: ",
                     s->facility * 8 + journal_priority(v->h.level), mon[tm.tm_mon % 12],
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, s->ident, sonde__lg.pid);
    if (l < 0)
        l = 0;
    if ((size_t)l >= sizeof head)
        l = sizeof head - 1;
    sonde_buf *b = &s->out;
    sonde_buf_reset(b);
    sonde__buf_append(b, head, (size_t)l);
    size_t n = line->len;
    if (n && line->data[n - 1] == '\n')
        n--;
    sonde__buf_append(b, line->data, n);
    ssize_t w = sendto(s->fd, b->data, b->len, MSG_NOSIGNAL, (struct sockaddr *)&s->addr, s->alen);
    if (w < 0)
        sink_failed(s, 1, errno);
    else
        sink_ok(s);
    sonde_buf_reset(b);
}

/* ---- callbacks ---- */

static void callback_send(log_sink *s, fmt_cache *fc, const rec_view *v)
{
    const sonde_buf *line = s->format == SONDE_LOG_FORMAT_CONSOLE ? sonde__fc_console(fc, s->color)
                                                                  : sonde__fc_json(fc);
    const sonde_buf *m = sonde__fc_message(fc);
    char cid[SONDE_CORRELATION_ID_MAX + 1];
    size_t cl = v->h.cid_len < sizeof cid ? v->h.cid_len : sizeof cid - 1;
    memcpy(cid, v->cid, cl);
    cid[cl] = '\0';
    const struct sonde_logger *lg = v->h.lg ? v->h.lg : &sonde__root_logger;
    sonde_log_record r = {
        .level = v->h.level,
        .logger = lg->name,
        .message = m->data ? m->data : "",
        .message_len = m->len,
        .correlation_id = cid,
        .timestamp_us = v->h.ts_us,
        .file = sonde__log_basename(v->h.file),
        .line = v->h.line,
        .function = v->h.func,
        .tid = v->h.tid,
    };
    s->fn(&r, line->data ? line->data : "", line->len, s->userdata);
}

/* ---- the sink list ---- */

void sonde__sinks_write(fmt_cache *fc, const rec_view *v, int flush)
{
    for (int i = 0; i < S.n; i++) {
        log_sink *s = S.s[i];
        if (v->h.level < s->level)
            continue;
        switch (s->type) {
        case SONDE_LOG_SINK_STDERR:
        case SONDE_LOG_SINK_STDOUT:
        case SONDE_LOG_SINK_FILE: {
            const sonde_buf *line = s->format == SONDE_LOG_FORMAT_CONSOLE
                                        ? sonde__fc_console(fc, s->color)
                                        : sonde__fc_json(fc);
            fd_append(s, line->data, line->len);
            if (flush)
                fd_flush(s);
            break;
        }
        case SONDE_LOG_SINK_JOURNAL:
            journal_send(s, fc, v);
            break;
        case SONDE_LOG_SINK_SYSLOG:
            syslog_send(s, fc, v);
            break;
        case SONDE_LOG_SINK_CALLBACK:
            callback_send(s, fc, v);
            break;
        default:
            break;
        }
    }
}

void sonde__sinks_flush(void)
{
    for (int i = 0; i < S.n; i++) {
        log_sink *s = S.s[i];
        if (s->type == SONDE_LOG_SINK_STDERR || s->type == SONDE_LOG_SINK_STDOUT ||
            s->type == SONDE_LOG_SINK_FILE)
            fd_flush(s);
    }
}

void sonde__sinks_report(void)
{
    if (!atomic_load_explicit(&S.any_report, memory_order_acquire))
        return;
    char msgs[LOG_MAX_SINKS][320];
    int levels[LOG_MAX_SINKS];
    int n = 0;
    pthread_mutex_lock(&sonde__lg.sinks_lock);
    atomic_store(&S.any_report, 0);
    for (int i = 0; i < S.n; i++) {
        if (S.s[i]->report_level) {
            levels[n] = S.s[i]->report_level;
            memcpy(msgs[n], S.s[i]->report, sizeof msgs[n]);
            S.s[i]->report_level = 0;
            n++;
        }
    }
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    sonde_logger *lg = sonde_logger_get("sonde.log");
    for (int i = 0; i < n; i++)
        if (sonde_log_enabled(lg, levels[i]))
            sonde_log_write(lg, levels[i], NULL, 0, NULL, msgs[i], NULL, 0);
}

static void sink_free(log_sink *s)
{
    if (!s)
        return;
    if (s->fd >= 0 && s->own_fd)
        close(s->fd);
    sonde_buf_free(&s->out);
    sonde__free(s->path);
    sonde__free(s->ident);
    sonde__free(s);
}

static int want_color(int fd, int opt)
{
    if (opt > 0)
        return 1;
    if (opt < 0)
        return 0;
    const char *term = getenv("TERM");
    if (getenv("NO_COLOR") || (term && strcmp(term, "dumb") == 0))
        return 0;
    return isatty(fd);
}

static void sighup_handler(int sig)
{
    SONDE_UNUSED(sig);
    atomic_fetch_add_explicit(&sonde__lg.reopen_gen, 1, memory_order_relaxed);
}

void sonde__sink_install_sighup(void)
{
    static atomic_int installed;
    if (atomic_load(&sonde__no_sighup) || atomic_exchange(&installed, 1))
        return;
    struct sigaction old;
    if (sigaction(SIGHUP, NULL, &old) != 0)
        return;
    /* Default (terminate) or ignored (often inherited from nohup or a
     * supervisor): nobody handles it, so reopening files is all it will
     * do. A handler of the application's own stays: it calls
     * sonde_log_reopen. */
    if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sighup_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

SONDE_API void sonde_log_reopen(void)
{
    atomic_fetch_add_explicit(&sonde__lg.reopen_gen, 1, memory_order_relaxed);
}

SONDE_API void sonde_log_sink_opts_init(sonde_log_sink_opts *opts)
{
    if (opts)
        memset(opts, 0, sizeof *opts);
}

static int sock_setup(log_sink *s, const char *path, const char *dflt)
{
    const char *p = path ? path : dflt;
    if (strlen(p) >= sizeof s->addr.sun_path) {
        sonde__set_error("socket path too long: %s", p);
        return SONDE_EINVAL;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        sonde__set_error("no socket at %s", p);
        return SONDE_EIO;
    }
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        sonde__set_error("socket: %s", strerror(errno));
        return SONDE_EIO;
    }
    s->own_fd = 1;
    s->addr.sun_family = AF_UNIX;
    memcpy(s->addr.sun_path, p, strlen(p) + 1);
    s->alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1);
    return SONDE_OK;
}

int sonde__sink_add(sonde_log_sink_type type, const sonde_log_sink_opts *o, int is_default, int *id)
{
    sonde_log_sink_opts dflt;
    if (!o) {
        sonde_log_sink_opts_init(&dflt);
        o = &dflt;
    }
    if (o->level < 0 || o->level > SONDE_LOG_OFF || o->format < 0 ||
        o->format > SONDE_LOG_FORMAT_CONSOLE || o->keep > 1000)
        return SONDE_EINVAL;
    log_sink *s = sonde__calloc(1, sizeof *s);
    if (!s)
        return SONDE_ENOMEM;
    s->type = type;
    s->fd = -1;
    s->level = o->level ? o->level : SONDE_LOG_TRACE;
    s->is_default = is_default;
    s->format = o->format ? o->format : SONDE_LOG_FORMAT_JSON;
    s->reopen_gen = atomic_load(&sonde__lg.reopen_gen);
    int rc = SONDE_OK;
    const char *prog = program_invocation_short_name ? program_invocation_short_name : "sonde";
    switch (type) {
    case SONDE_LOG_SINK_STDERR:
    case SONDE_LOG_SINK_STDOUT:
        s->fd = type == SONDE_LOG_SINK_STDERR ? 2 : 1;
        if (!o->format)
            s->format = isatty(s->fd) ? SONDE_LOG_FORMAT_CONSOLE : SONDE_LOG_FORMAT_JSON;
        s->color = s->format == SONDE_LOG_FORMAT_CONSOLE && want_color(s->fd, o->color);
        break;
    case SONDE_LOG_SINK_FILE:
        if (!o->path || !*o->path || strlen(o->path) >= PATH_MAX) {
            rc = SONDE_EINVAL;
            break;
        }
        s->path = sonde__strdup(o->path);
        s->max_bytes = o->max_bytes;
        s->keep = o->keep ? o->keep : 5;
        s->check_ms = o->check_interval_ms ? o->check_interval_ms : 1000;
        s->mode = o->file_mode ? o->file_mode : 0640;
        s->color = o->color > 0;
        if (!s->path) {
            rc = SONDE_ENOMEM;
            break;
        }
        int e = file_open(s);
        if (e < 0) {
            sonde__set_error("cannot open log file %s: %s", o->path, strerror(-e));
            rc = SONDE_EIO;
            break;
        }
        s->next_check_ns = sonde__now_mono_ns() + (uint64_t)s->check_ms * 1000000u;
        break;
    case SONDE_LOG_SINK_JOURNAL:
        rc = sock_setup(s, o->path, "/run/systemd/journal/socket");
        break;
    case SONDE_LOG_SINK_SYSLOG:
        rc = sock_setup(s, o->path, "/dev/log");
        s->facility = o->facility > 0 && o->facility < 24 ? o->facility : 1;
        break;
    case SONDE_LOG_SINK_CALLBACK:
        if (!o->fn)
            rc = SONDE_EINVAL;
        s->fn = o->fn;
        s->userdata = o->userdata;
        s->color = o->color > 0;
        break;
    default:
        rc = SONDE_EINVAL;
    }
    if (!rc && (type == SONDE_LOG_SINK_JOURNAL || type == SONDE_LOG_SINK_SYSLOG)) {
        s->ident = sonde__strdup(o->ident ? o->ident : prog);
        if (!s->ident)
            rc = SONDE_ENOMEM;
    }
    if (rc) {
        sink_free(s);
        return rc;
    }
    pthread_mutex_lock(&sonde__lg.sinks_lock);
    if (S.n >= LOG_MAX_SINKS) {
        pthread_mutex_unlock(&sonde__lg.sinks_lock);
        sink_free(s);
        return SONDE_ELIMIT;
    }
    s->id = S.next_id++;
    S.s[S.n++] = s;
    update_min_level_locked();
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    if (type == SONDE_LOG_SINK_FILE)
        sonde__sink_install_sighup();
    if (id)
        *id = s->id;
    return SONDE_OK;
}

/* Remove sinks matching (id, or every default one when id is 0, or all
 * when id < 0); cfg_lock held by the caller. */
static int remove_where(int id)
{
    log_sink *gone[LOG_MAX_SINKS];
    int ng = 0;
    pthread_mutex_lock(&sonde__lg.sinks_lock);
    int w = 0;
    for (int i = 0; i < S.n; i++) {
        log_sink *s = S.s[i];
        int match = id < 0 || (id == 0 ? s->is_default : s->id == id);
        if (match) {
            if (s->type != SONDE_LOG_SINK_JOURNAL && s->type != SONDE_LOG_SINK_SYSLOG &&
                s->type != SONDE_LOG_SINK_CALLBACK)
                fd_flush(s);
            gone[ng++] = s;
        } else {
            S.s[w++] = s;
        }
    }
    S.n = w;
    update_min_level_locked();
    pthread_mutex_unlock(&sonde__lg.sinks_lock);
    for (int i = 0; i < ng; i++)
        sink_free(gone[i]);
    return ng;
}

void sonde__sinks_remove_defaults(void)
{
    remove_where(0);
}

SONDE_API int sonde_log_sink_add(sonde_log_sink_type type, const sonde_log_sink_opts *opts, int *id)
{
    sonde__log_init();
    if (sonde__log_in_sink())
        return SONDE_ESTATE;
    if (!sonde_enabled()) {
        /* Off: nothing opened; removing this ID (0) succeeds. */
        if (id)
            *id = 0;
        return SONDE_OK;
    }
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    int rc = sonde__sink_add(type, opts, 0, id);
    if (!rc)
        sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    return rc;
}

SONDE_API int sonde_log_sink_remove(int id)
{
    if (!sonde_enabled())
        return SONDE_OK;
    if (id <= 0)
        return SONDE_ENOTFOUND;
    if (sonde__log_in_sink())
        return SONDE_ESTATE;
    sonde__log_init();
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    int n = remove_where(id);
    sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
    return n ? SONDE_OK : SONDE_ENOTFOUND;
}

SONDE_API void sonde_log_sink_remove_all(void)
{
    sonde__log_init();
    if (sonde__log_in_sink())
        return;
    /* Queued lines still go to the sinks they were written for. */
    sonde_log_flush(1000);
    pthread_mutex_lock(&sonde__lg.cfg_lock);
    remove_where(-1);
    sonde__log_recompute_locked();
    pthread_mutex_unlock(&sonde__lg.cfg_lock);
}
