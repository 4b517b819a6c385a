/*
 * Encoders: Prometheus text 0.0.4, OpenMetrics 1.0 text and sonde's JSON
 * (docs/json-format.md). One pass over the registry writing into the
 * caller's buffer; label sets were rendered when each series was created.
 * Collectors emit through the same sonde_emitter, so their output follows
 * the same rules.
 */
#include "expose_int.h"
#include "expose/visit.h"

#include <math.h>
#include <string.h>

struct sonde_emitter {
    sonde_format fmt;
    sonde_buf *out;
    int rc;
    const sonde_write_opts *filter;
    sonde_registry *reg;
    int nfamilies; /* JSON: families written so far */
    int nmetrics;  /* JSON: metrics written in the open family */
    /* Collector family in progress. */
    int open; /* a collector family is open */
    int skip; /* its samples are filtered out or invalid */
    sonde_metric_type type;
    char name[256];
    char om_name[256];
    /* Protobuf: the writer (its rc mirrors rc) and the open collector
     * family's mark. */
    sonde__pb pb;
    size_t pb_fam;
    /* Label text of the sample being emitted, reused across samples so a
     * collector's sample costs no allocation. */
    sonde_buf lb;
    /* Visitor mode (sonde__registry_visit_collectors): samples go to the
     * callbacks, nothing is written. */
    const sonde__visitor *visit;
    /* Text with escaping=allow-utf-8 and a family name outside the legacy
     * set: the name goes quoted inside the braces. */
    int qname;
    int created; /* OpenMetrics _created lines (registry option) */
};

#define OM(em)                                                                                     \
    ((em)->fmt == SONDE_FORMAT_OPENMETRICS || (em)->fmt == SONDE_FORMAT_OPENMETRICS_0_0_1)
#define PB(em) ((em)->fmt == SONDE_FORMAT_PROTOBUF)
#define JSON(em) ((em)->fmt == SONDE_FORMAT_JSON)

static void put(struct sonde_emitter *em, const char *s, size_t n)
{
    if (em->rc == SONDE_OK)
        em->rc = sonde__buf_append(em->out, s, n);
}
static void puts_(struct sonde_emitter *em, const char *s)
{
    put(em, s, strlen(s));
}

const char *sonde_format_content_type(sonde_format fmt)
{
    switch (fmt) {
    case SONDE_FORMAT_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case SONDE_FORMAT_PROTOBUF:
    case SONDE_FORMAT_PROMETHEUS_1_0_0:
        return sonde_format_content_type_escaped(fmt, SONDE_ESCAPING_UNDERSCORES);
    default:
        return sonde_format_content_type_escaped(fmt, SONDE_ESCAPING_UNDERSCORES);
    }
}

static const char *text_type(sonde_metric_type t, int om)
{
    switch (t) {
    case SONDE_COUNTER:
        return "counter";
    case SONDE_GAUGE:
        return "gauge";
    case SONDE_HISTOGRAM:
        return "histogram";
    case SONDE_SUMMARY:
        return "summary";
    case SONDE_INFO:
        return om ? "info" : "gauge";
    case SONDE_STATESET:
        return om ? "stateset" : "gauge";
    default:
        return om ? "unknown" : "untyped";
    }
}

static const char *json_type(sonde_metric_type t)
{
    switch (t) {
    case SONDE_COUNTER:
        return "counter";
    case SONDE_GAUGE:
        return "gauge";
    case SONDE_HISTOGRAM:
        return "histogram";
    case SONDE_SUMMARY:
        return "summary";
    case SONDE_INFO:
        return "info";
    case SONDE_STATESET:
        return "stateset";
    default:
        return "untyped";
    }
}

/* Sample values: whole numbers below 2^53 as plain integers (cheap, exact,
 * valid in every format), everything else shortest round-trip. */
static size_t fmt_value(char out[33], double v)
{
    if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v)
        return sonde__fmt_u64(out, (uint64_t)v);
    if (v < 0 && v > -9007199254740992.0 && v == (double)(int64_t)v) {
        out[0] = '-';
        return 1 + sonde__fmt_u64(out + 1, (uint64_t)(-(int64_t)v));
    }
    return sonde__fmt_double(out, v);
}

/* Epoch milliseconds as seconds with three decimals, without rounding
 * through a double. */
static size_t fmt_ms(char out[33], uint64_t ms)
{
    size_t n = sonde__fmt_u64(out, ms / 1000);
    out[n++] = '.';
    out[n++] = (char)('0' + (ms / 100) % 10);
    out[n++] = (char)('0' + (ms / 10) % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n] = '\0';
    return n;
}

/* One text line: name suffix{a,b,extra="v"} value\n. Any of the label parts
 * may be empty. */
static void text_line(struct sonde_emitter *em, const char *name, size_t nlen, const char *suffix,
                      const char *l1, size_t l1n, const char *l2, size_t l2n, const char *xname,
                      const char *xval, const char *val, size_t vlen)
{
    if (em->rc)
        return;
    size_t slen = suffix ? strlen(suffix) : 0;
    size_t xnl = xname ? strlen(xname) : 0, xvl = xval ? strlen(xval) : 0;
    size_t need = nlen + slen + l1n + l2n + xnl + xvl + vlen + 24;
    sonde_buf *b = em->out;
    if ((em->rc = sonde__buf_reserve(b, need)) != SONDE_OK)
        return;
    char *o = b->data + b->len;
    int sep = 0;
    if (em->qname)
        *o++ = '{', *o++ = '"';
    memcpy(o, name, nlen);
    o += nlen;
    if (slen) {
        memcpy(o, suffix, slen);
        o += slen;
    }
    if (em->qname) {
        *o++ = '"';
        sep = 1;
    }
    if (l1n || l2n || xnl || em->qname) {
        if (!em->qname)
            *o++ = '{';
        if (l1n) {
            if (sep)
                *o++ = ',';
            memcpy(o, l1, l1n);
            o += l1n;
            sep = 1;
        }
        if (l2n) {
            if (sep)
                *o++ = ',';
            memcpy(o, l2, l2n);
            o += l2n;
            sep = 1;
        }
        if (xnl) {
            if (sep)
                *o++ = ',';
            memcpy(o, xname, xnl);
            o += xnl;
            *o++ = '=';
            *o++ = '"';
            memcpy(o, xval, xvl);
            o += xvl;
            *o++ = '"';
        }
        *o++ = '}';
    }
    *o++ = ' ';
    memcpy(o, val, vlen);
    o += vlen;
    *o++ = '\n';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

/* OpenMetrics: append " # {labels} value timestamp" to the line just
 * written, when the slot holds an exemplar. */
static void om_exemplar(struct sonde_emitter *em, const struct sonde__exemplar *e)
{
    char blob[SONDE__EX_WORDS * 8];
    size_t len;
    double v;
    uint64_t ts;
    if (em->rc || !sonde__exemplar_read(e, blob, sizeof blob, &len, &v, &ts))
        return;
    em->out->len--; /* the newline */
    put(em, " # {", 4);
    for (size_t i = 0; i < len && !em->rc;) {
        const char *k = blob + i;
        size_t kl = strnlen(k, len - i);
        if (kl + 1 >= len - i)
            break;
        const char *val = k + kl + 1;
        size_t vl = strnlen(val, len - i - kl - 1);
        if (i)
            put(em, ",", 1);
        put(em, k, kl);
        put(em, "=\"", 2);
        if (!em->rc)
            em->rc = sonde__buf_label_escape(em->out, val, vl);
        put(em, "\"", 1);
        i += kl + vl + 2;
    }
    char tmp[40];
    put(em, "} ", 2);
    put(em, tmp, fmt_value(tmp, v));
    put(em, " ", 1);
    put(em, tmp, fmt_ms(tmp, ts));
    put(em, "\n", 1);
}

static void text_header(struct sonde_emitter *em, sonde_metric_type type, const char *name,
                        const char *om_name, const char *help, const char *unit)
{
    const char *fam = OM(em) ? om_name : name;
    const char *q = em->qname ? "\"" : "";
    if (help && *help) {
        puts_(em, "# HELP ");
        puts_(em, q);
        puts_(em, fam);
        puts_(em, q);
        put(em, " ", 1);
        /* 0.0.4 escapes backslash and newline in help; OpenMetrics also the
         * double quote. */
        if (em->rc == SONDE_OK)
            em->rc = sonde__buf_text_escape(em->out, help, strlen(help), OM(em));
        put(em, "\n", 1);
    }
    puts_(em, "# TYPE ");
    puts_(em, q);
    puts_(em, fam);
    puts_(em, q);
    put(em, " ", 1);
    puts_(em, text_type(type, OM(em)));
    put(em, "\n", 1);
    if (OM(em) && unit && *unit) {
        puts_(em, "# UNIT ");
        puts_(em, q);
        puts_(em, fam);
        puts_(em, q);
        put(em, " ", 1);
        puts_(em, unit);
        put(em, "\n", 1);
    }
}

static int name_wanted(const sonde_write_opts *o, const char *name, const char *om_name)
{
    if (!o || o->name_count == 0)
        return 1;
    for (size_t i = 0; i < o->name_count; i++) {
        const char *w = o->names[i];
        if (!w)
            continue;
        if (strcmp(w, name) == 0 || strcmp(w, om_name) == 0)
            return 1;
    }
    return 0;
}

/* ---- JSON pieces ---- */

static void json_family_open(struct sonde_emitter *em, sonde_metric_type type, const char *name,
                             const char *help, const char *unit)
{
    if (em->nfamilies++)
        put(em, ",", 1);
    puts_(em, "\n{\"name\":");
    if (!em->rc)
        em->rc = sonde__buf_json_str(em->out, name);
    puts_(em, ",\"type\":\"");
    puts_(em, json_type(type));
    puts_(em, "\",\"help\":");
    if (!em->rc)
        em->rc = sonde__buf_json_str(em->out, help ? help : "");
    puts_(em, ",\"unit\":");
    if (!em->rc)
        em->rc = sonde__buf_json_str(em->out, unit ? unit : "");
    puts_(em, ",\"metrics\":[");
    em->nmetrics = 0;
}

static void json_family_close(struct sonde_emitter *em)
{
    puts_(em, "]}");
}

/* {"labels":{k:v,...} : pairs from const kv, a raw blob and extra kv. */
static void json_metric_open(struct sonde_emitter *em, char **ckv, size_t nconst, char **names,
                             size_t nl, const char *raw, const char *const *kv, size_t npairs)
{
    if (em->nmetrics++)
        put(em, ",", 1);
    puts_(em, "{\"labels\":{");
    int n = 0;
    for (size_t i = 0; i < nconst && !em->rc; i++, n++) {
        if (n)
            put(em, ",", 1);
        em->rc = sonde__buf_json_str(em->out, ckv[2 * i]);
        put(em, ":", 1);
        if (!em->rc)
            em->rc = sonde__buf_json_str(em->out, ckv[2 * i + 1]);
    }
    const char *p = raw;
    for (size_t i = 0; i < nl && !em->rc; i++, n++) {
        if (n)
            put(em, ",", 1);
        em->rc = sonde__buf_json_str(em->out, names[i]);
        put(em, ":", 1);
        if (!em->rc)
            em->rc = sonde__buf_json_str(em->out, p);
        p += strlen(p) + 1;
    }
    for (size_t i = 0; i < npairs && !em->rc; i++, n++) {
        if (n)
            put(em, ",", 1);
        em->rc = sonde__buf_json_str(em->out, kv[2 * i]);
        put(em, ":", 1);
        if (!em->rc)
            em->rc = sonde__buf_json_str(em->out, kv[2 * i + 1] ? kv[2 * i + 1] : "");
    }
    put(em, "}", 1);
}

static void json_num(struct sonde_emitter *em, const char *key, double v)
{
    put(em, ",\"", 2);
    puts_(em, key);
    put(em, "\":", 2);
    if (em->rc)
        return;
    if (isnan(v) || isinf(v)) {
        em->rc = sonde__buf_json_double(em->out, v);
        return;
    }
    char tmp[40];
    size_t n = fmt_value(tmp, v);
    put(em, tmp, n);
}

static void json_hist_buckets(struct sonde_emitter *em, char **le, const uint64_t *cum, size_t nb)
{
    puts_(em, ",\"buckets\":[");
    for (size_t i = 0; i <= nb; i++) {
        char tmp[24];
        size_t n = sonde__fmt_u64(tmp, cum[i]);
        if (i)
            put(em, ",", 1);
        puts_(em, "{\"le\":\"");
        puts_(em, le[i]);
        puts_(em, "\",\"count\":");
        put(em, tmp, n);
        put(em, "}", 1);
    }
    put(em, "]", 1);
}

/* ---- native families ---- */

/* Render s's label set as name="value",... into b, replacing its contents.
 * Values flagged clean at creation (the usual case) are copied as they are,
 * after a single reserve; the others go through the escaper. */
static int label_text(sonde_buf *b, const struct sonde_family *f, const size_t *nlens,
                      const sonde_series *s)
{
    b->len = 0;
    const char *p = s->data;
    if (!(s->raw_len & SONDE__RAW_ESCAPE)) {
        /* raw_len counts each value plus its NUL; 4 more per label for
         * the '=', the quotes and the separator, plus the names. */
        size_t raw = SONDE__RAW_LEN(s);
        size_t need = raw + 4 * f->nlabels;
        for (size_t i = 0; i < f->nlabels; i++)
            need += nlens[i];
        int rc = sonde__buf_reserve(b, need);
        if (rc != SONDE_OK)
            return rc;
        char *o = b->data;
        for (size_t i = 0; i < f->nlabels; i++) {
            /* The last value ends where the raw blob does. */
            size_t nl = nlens[i];
            size_t vl = i + 1 == f->nlabels ? raw - (size_t)(p - s->data) - 1 : strlen(p);
            if (i)
                *o++ = ',';
            memcpy(o, f->label_names[i], nl);
            o += nl;
            *o++ = '=';
            *o++ = '"';
            memcpy(o, p, vl);
            o += vl;
            *o++ = '"';
            p += vl + 1;
        }
        b->len = (size_t)(o - b->data);
        return SONDE_OK;
    }
    int rc = SONDE_OK;
    for (size_t i = 0; i < f->nlabels && rc == SONDE_OK; i++) {
        size_t vl = strlen(p);
        if (i)
            rc = sonde__buf_putc(b, ',');
        if (rc == SONDE_OK)
            rc = sonde__buf_puts(b, f->label_names[i]);
        if (rc == SONDE_OK)
            rc = sonde__buf_append(b, "=\"", 2);
        if (rc == SONDE_OK)
            rc = sonde__buf_label_escape(b, p, vl);
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(b, '"');
        p += vl + 1;
    }
    return rc;
}

static void write_native(struct sonde_emitter *em, struct sonde_family *f)
{
    int om = OM(em);
    const char *sname = f->name;
    size_t snl = strlen(sname);
    if (JSON(em))
        json_family_open(em, f->type, f->name, f->help, f->unit);
    else
        text_header(em, f->type, f->name, f->om_name, f->help, f->unit);
    char val[40], created[40];
    size_t vl, cl;
    const char *ct = f->const_text;
    size_t ctn = f->const_text_len;

    if (f->cb) {
        double v = f->cb(f->cb_ud);
        if (JSON(em)) {
            json_metric_open(em, f->const_kv, f->nconst, NULL, 0, "", NULL, 0);
            json_num(em, "value", v);
            put(em, "}", 1);
            json_family_close(em);
            return;
        }
        vl = fmt_value(val, v);
        if (om && f->type == SONDE_COUNTER)
            text_line(em, f->om_name, strlen(f->om_name), "_total", ct, ctn, NULL, 0, NULL, NULL,
                      val, vl);
        else
            text_line(em, sname, snl, NULL, ct, ctn, NULL, 0, NULL, NULL, val, vl);
        return;
    }

    sonde_buf lbuf; /* the series' label text, reused */
    sonde_buf_init(&lbuf);
    size_t nlens[SONDE_MAX_LABELS];
    for (size_t i = 0; i < f->nlabels && i < SONDE_MAX_LABELS; i++)
        nlens[i] = strlen(f->label_names[i]);
    struct sonde_family *real = f->base ? f->base : f; /* views share the series */
    pthread_mutex_lock(&real->lock);
    for (sonde_series *s = real->head; s && em->rc == SONDE_OK; s = s->next) {
        const char *lt = "";
        size_t ltn = 0;
        if (f->nlabels && !JSON(em)) {
            if ((em->rc = label_text(&lbuf, f, nlens, s)) != SONDE_OK)
                break;
            lt = lbuf.data;
            ltn = lbuf.len;
        }
        if (JSON(em))
            json_metric_open(em, f->const_kv, f->nconst, f->label_names, f->nlabels, s->data, NULL,
                             0);
        switch (f->type) {
        case SONDE_COUNTER: {
            uint64_t iv = sonde__cells_sum_u64(s->slot);
            double fv = sonde__cells_sum_f64(s->slot + 1);
            if (JSON(em)) {
                json_num(em, "value", (double)iv + fv);
                put(em, ",\"created\":", 11);
                cl = fmt_ms(created, s->created_ms);
                put(em, created, cl);
                break;
            }
            vl = fv == 0 ? sonde__fmt_u64(val, iv) : fmt_value(val, (double)iv + fv);
            if (om) {
                text_line(em, f->om_name, strlen(f->om_name), "_total", ct, ctn, lt, ltn, NULL,
                          NULL, val, vl);
                if (s->ex)
                    om_exemplar(em, &s->ex->slot[0]);
                if (em->created) {
                    cl = fmt_ms(created, s->created_ms);
                    text_line(em, f->om_name, strlen(f->om_name), "_created", ct, ctn, lt, ltn,
                              NULL, NULL, created, cl);
                }
            } else {
                text_line(em, sname, snl, NULL, ct, ctn, lt, ltn, NULL, NULL, val, vl);
            }
            break;
        }
        case SONDE_GAUGE:
        case SONDE_UNTYPED: {
            double v = sonde_gauge_get((const sonde_gauge *)(const void *)s);
            if (JSON(em)) {
                json_num(em, "value", v);
                break;
            }
            vl = fmt_value(val, v);
            text_line(em, sname, snl, NULL, ct, ctn, lt, ltn, NULL, NULL, val, vl);
            break;
        }
        case SONDE_HISTOGRAM: {
            uint64_t cum[SONDE_MAX_BUCKETS + 1];
            double sum;
            if (f->native && f->nb == 0) {
                /* Native only: the text formats get count and sum. */
                cum[0] = sonde_histogram_get_count((const sonde_histogram *)(const void *)s);
                sum = sonde_histogram_get_sum((const sonde_histogram *)(const void *)s);
            } else {
                sonde__cells_sum_u64_n(s->slot, (uint32_t)f->nb + 1, cum);
                for (size_t i = 1; i <= f->nb; i++)
                    cum[i] += cum[i - 1];
                sum = sonde__cells_sum_f64(s->slot + (uint32_t)f->nb + 1);
            }
            uint64_t count = cum[f->nb];
            if (JSON(em)) {
                json_num(em, "count", (double)count);
                json_num(em, "sum", sum);
                json_hist_buckets(em, f->le_text, cum, f->nb);
                put(em, ",\"created\":", 11);
                cl = fmt_ms(created, s->created_ms);
                put(em, created, cl);
                break;
            }
            char **le = om ? f->le_text_om : f->le_text;
            for (size_t i = 0; i <= f->nb; i++) {
                vl = sonde__fmt_u64(val, cum[i]);
                text_line(em, sname, snl, "_bucket", ct, ctn, lt, ltn, "le", le[i], val, vl);
                if (om && s->ex && i < s->ex->n)
                    om_exemplar(em, &s->ex->slot[i]);
            }
            vl = sonde__fmt_u64(val, count);
            text_line(em, sname, snl, "_count", ct, ctn, lt, ltn, NULL, NULL, val, vl);
            vl = fmt_value(val, sum);
            text_line(em, sname, snl, "_sum", ct, ctn, lt, ltn, NULL, NULL, val, vl);
            if (om && em->created) {
                cl = fmt_ms(created, s->created_ms);
                text_line(em, sname, snl, "_created", ct, ctn, lt, ltn, NULL, NULL, created, cl);
            }
            break;
        }
        case SONDE_SUMMARY: {
            double qv[SONDE_MAX_QUANTILES];
            sonde__summary_snapshot(s->u.summary, f, qv, NULL, NULL);
            uint64_t count = sonde__cells_sum_u64(s->slot);
            double sum = sonde__cells_sum_f64(s->slot + 1);
            if (JSON(em)) {
                json_num(em, "count", (double)count);
                json_num(em, "sum", sum);
                puts_(em, ",\"quantiles\":[");
                for (size_t i = 0; i < f->nq; i++) {
                    if (i)
                        put(em, ",", 1);
                    puts_(em, "{\"quantile\":\"");
                    puts_(em, f->q_text[i]);
                    put(em, "\"", 1);
                    json_num(em, "value", qv[i]);
                    put(em, "}", 1);
                }
                put(em, "]", 1);
                put(em, ",\"created\":", 11);
                cl = fmt_ms(created, s->created_ms);
                put(em, created, cl);
                break;
            }
            char **qt = om ? f->q_text_om : f->q_text;
            for (size_t i = 0; i < f->nq; i++) {
                vl = fmt_value(val, qv[i]);
                text_line(em, sname, snl, NULL, ct, ctn, lt, ltn, "quantile", qt[i], val, vl);
            }
            vl = fmt_value(val, sum);
            text_line(em, sname, snl, "_sum", ct, ctn, lt, ltn, NULL, NULL, val, vl);
            vl = sonde__fmt_u64(val, count);
            text_line(em, sname, snl, "_count", ct, ctn, lt, ltn, NULL, NULL, val, vl);
            if (om && em->created) {
                cl = fmt_ms(created, s->created_ms);
                text_line(em, sname, snl, "_created", ct, ctn, lt, ltn, NULL, NULL, created, cl);
            }
            break;
        }
        case SONDE_STATESET: {
            size_t cur = (size_t)atomic_load_explicit(&s->u.gauge, memory_order_relaxed);
            if (JSON(em)) {
                puts_(em, ",\"states\":{");
                for (size_t i = 0; i < f->nstates && !em->rc; i++) {
                    if (i)
                        put(em, ",", 1);
                    em->rc = sonde__buf_json_str(em->out, f->states[i]);
                    puts_(em, i == cur ? ":1" : ":0");
                }
                put(em, "}", 1);
                break;
            }
            for (size_t i = 0; i < f->nstates && !em->rc; i++) {
                /* The state label carries the metric's own name. */
                sonde_buf st;
                sonde_buf_init(&st);
                sonde__buf_label_escape(&st, f->states[i], strlen(f->states[i]));
                text_line(em, sname, snl, NULL, ct, ctn, lt, ltn,
                          f->state_label ? f->state_label : sname, st.data ? st.data : "",
                          i == cur ? "1" : "0", 1);
                sonde_buf_free(&st);
            }
            break;
        }
        case SONDE_INFO: {
            if (JSON(em)) {
                json_num(em, "value", 1);
                break;
            }
            if (om)
                text_line(em, f->om_name, strlen(f->om_name), "_info", ct, ctn, lt, ltn, NULL, NULL,
                          "1", 1);
            else
                text_line(em, sname, snl, NULL, ct, ctn, lt, ltn, NULL, NULL, "1", 1);
            break;
        }
        }
        if (JSON(em))
            put(em, "}", 1);
    }
    pthread_mutex_unlock(&real->lock);
    sonde_buf_free(&lbuf);
    if (JSON(em))
        json_family_close(em);
}

/* ---- collector emitter ---- */

static void close_collector_family(struct sonde_emitter *em)
{
    if (em->open && !em->skip && JSON(em))
        json_family_close(em);
    if (em->open && !em->skip && PB(em)) {
        em->pb.rc = em->rc;
        sonde__pb_close(&em->pb, em->pb_fam);
        em->rc = em->pb.rc;
    }
    em->open = 0;
    em->skip = 0;
}

int sonde_emit_family(sonde_emitter *em, sonde_metric_type type, const char *name, const char *help,
                      const char *unit)
{
    if (!em)
        return SONDE_EINVAL;
    close_collector_family(em);
    em->open = 1;
    em->type = type;
    size_t nl = name ? strlen(name) : 0;
    if (!sonde__valid_metric_name(name) || nl >= sizeof em->name ||
        (type != SONDE_COUNTER && type != SONDE_GAUGE && type != SONDE_UNTYPED &&
         type != SONDE_INFO && type != SONDE_HISTOGRAM)) {
        em->skip = 1;
        atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
        return name && sonde__valid_metric_name(name) ? SONDE_EINVAL : SONDE_EBADNAME;
    }
    memcpy(em->name, name, nl + 1);
    memcpy(em->om_name, name, nl + 1);
    if (type == SONDE_COUNTER && nl > 6 && strcmp(name + nl - 6, "_total") == 0)
        em->om_name[nl - 6] = '\0';
    if (type == SONDE_INFO && nl > 5 && strcmp(name + nl - 5, "_info") == 0)
        em->om_name[nl - 5] = '\0';
    if (!name_wanted(em->filter, em->name, em->om_name)) {
        em->skip = 1;
        return SONDE_OK;
    }
    if (em->visit) {
        em->skip = !em->visit->family(em->visit->ud, type, em->name);
        return SONDE_OK;
    }
    if (JSON(em)) {
        json_family_open(em, type, name, help, unit);
    } else if (PB(em)) {
        em->pb.rc = em->rc;
        em->pb_fam = sonde__pb_family_open(&em->pb, name, help, unit, sonde__pb_type(type));
        em->rc = em->pb.rc;
    } else {
        text_header(em, type, em->name, em->om_name, help, unit);
    }
    return em->rc;
}

/* Protobuf: open a collector Metric with its label pairs (names checked). */
static int pb_metric_open(struct sonde_emitter *em, const char *const *kv, size_t npairs,
                          size_t *mark)
{
    for (size_t i = 0; i < npairs; i++)
        if (!sonde__valid_label_name(kv[2 * i]) || (kv[2 * i][0] == '_' && kv[2 * i][1] == '_')) {
            atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
            return SONDE_EBADLABEL;
        }
    em->pb.rc = em->rc;
    *mark = sonde__pb_open(&em->pb, 4);
    for (size_t i = 0; i < npairs; i++) {
        const char *v = kv[2 * i + 1] ? kv[2 * i + 1] : "";
        sonde__pb_label(&em->pb, kv[2 * i], v, strlen(v));
    }
    return SONDE_OK;
}

/* Render kv pairs as text labels into b; validates names. */
static int kv_text(sonde_buf *b, const char *const *kv, size_t npairs)
{
    for (size_t i = 0; i < npairs; i++) {
        if (!sonde__valid_label_name(kv[2 * i]) || (kv[2 * i][0] == '_' && kv[2 * i][1] == '_'))
            return SONDE_EBADLABEL;
        if (i)
            sonde__buf_putc(b, ',');
        sonde__buf_puts(b, kv[2 * i]);
        sonde__buf_append(b, "=\"", 2);
        const char *v = kv[2 * i + 1] ? kv[2 * i + 1] : "";
        int rc = sonde__buf_label_escape(b, v, strlen(v));
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(b, '"');
        if (rc)
            return rc;
    }
    return SONDE_OK;
}

/* Visitor mode: validate the label names like kv_text, then hand the sample
 * over with an optional extra label (le). */
static int visit_sample(struct sonde_emitter *em, const char *name, const char *const *kv,
                        size_t npairs, const char *xname, const char *xvalue, double value)
{
    const char *all[2 * (SONDE_MAX_LABELS + 1)];
    if (npairs > SONDE_MAX_LABELS)
        goto bad;
    for (size_t i = 0; i < npairs; i++) {
        if (!sonde__valid_label_name(kv[2 * i]) || (kv[2 * i][0] == '_' && kv[2 * i][1] == '_'))
            goto bad;
        all[2 * i] = kv[2 * i];
        all[2 * i + 1] = kv[2 * i + 1] ? kv[2 * i + 1] : "";
    }
    if (xname) {
        all[2 * npairs] = xname;
        all[2 * npairs + 1] = xvalue;
    }
    em->visit->sample(em->visit->ud, name, all, npairs + (xname != NULL), value);
    return SONDE_OK;
bad:
    atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
    return SONDE_EBADLABEL;
}

static int visit_histogram(struct sonde_emitter *em, const char *const *kv, size_t npairs,
                           const double *bounds, const uint64_t *cum, size_t nb, double sum)
{
    char name[sizeof em->name + 8], le[40];
    size_t nl = strlen(em->name);
    memcpy(name, em->name, nl);
    int rc = SONDE_OK;
    for (size_t i = 0; i <= nb && rc == SONDE_OK; i++) {
        sonde__fmt_double(le, i < nb ? bounds[i] : INFINITY);
        memcpy(name + nl, "_bucket", 8);
        rc = visit_sample(em, name, kv, npairs, "le", le, (double)cum[i]);
    }
    if (rc == SONDE_OK) {
        memcpy(name + nl, "_count", 7);
        rc = visit_sample(em, name, kv, npairs, NULL, NULL, (double)cum[nb]);
    }
    if (rc == SONDE_OK) {
        memcpy(name + nl, "_sum", 5);
        rc = visit_sample(em, name, kv, npairs, NULL, NULL, sum);
    }
    return rc;
}

int sonde_emit_sample(sonde_emitter *em, const char *const *kv, size_t npairs, double value)
{
    if (!em)
        return SONDE_EINVAL;
    if (!em->open)
        return SONDE_ESTATE;
    if (em->skip)
        return SONDE_OK;
    if (em->type == SONDE_HISTOGRAM)
        return SONDE_ETYPE;
    if (npairs && !kv)
        return SONDE_EINVAL;
    if (em->visit)
        return visit_sample(em, em->name, kv, npairs, NULL, NULL, value);
    if (PB(em)) {
        size_t m;
        int rc = pb_metric_open(em, kv, npairs, &m);
        if (rc)
            return rc;
        unsigned field = em->type == SONDE_COUNTER ? 3 : em->type == SONDE_UNTYPED ? 5 : 2;
        size_t g = sonde__pb_open(&em->pb, field);
        sonde__pb_double(&em->pb, 1, value);
        sonde__pb_close(&em->pb, g);
        sonde__pb_close(&em->pb, m);
        em->rc = em->pb.rc;
        return em->rc;
    }
    if (JSON(em)) {
        for (size_t i = 0; i < npairs; i++)
            if (!sonde__valid_label_name(kv[2 * i])) {
                atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
                return SONDE_EBADLABEL;
            }
        json_metric_open(em, NULL, 0, NULL, 0, "", kv, npairs);
        json_num(em, "value", value);
        put(em, "}", 1);
        return em->rc;
    }
    sonde_buf *lbp = &em->lb;
    sonde_buf_reset(lbp);
    int rc = kv_text(lbp, kv, npairs);
    if (rc) {
        atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
        return rc;
    }
    sonde_buf lb = *lbp;
    char val[40];
    size_t vl = fmt_value(val, value);
    const char *lt = lb.data ? lb.data : "";
    if (OM(em) && em->type == SONDE_COUNTER)
        text_line(em, em->om_name, strlen(em->om_name), "_total", lt, lb.len, NULL, 0, NULL, NULL,
                  val, vl);
    else if (OM(em) && em->type == SONDE_INFO)
        text_line(em, em->om_name, strlen(em->om_name), "_info", lt, lb.len, NULL, 0, NULL, NULL,
                  val, vl);
    else
        text_line(em, em->name, strlen(em->name), NULL, lt, lb.len, NULL, 0, NULL, NULL, val, vl);
    return em->rc;
}

int sonde_emit_histogram(sonde_emitter *em, const char *const *kv, size_t npairs,
                         const double *bounds, const uint64_t *cum, size_t nb, double sum)
{
    if (!em || !bounds || !cum || (npairs && !kv))
        return SONDE_EINVAL;
    if (!em->open)
        return SONDE_ESTATE;
    if (em->skip)
        return SONDE_OK;
    if (em->type != SONDE_HISTOGRAM)
        return SONDE_ETYPE;
    for (size_t i = 0; i < nb; i++)
        if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])) ||
            (i && cum[i] < cum[i - 1]) || cum[nb] < cum[i]) {
            atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
            return SONDE_EBUCKETS;
        }
    int om = OM(em);
    char le[40], val[40];
    if (em->visit)
        return visit_histogram(em, kv, npairs, bounds, cum, nb, sum);
    if (PB(em)) {
        size_t m;
        int rc = pb_metric_open(em, kv, npairs, &m);
        if (rc)
            return rc;
        size_t h = sonde__pb_open(&em->pb, 7);
        sonde__pb_uint(&em->pb, 1, cum[nb]);
        sonde__pb_double(&em->pb, 2, sum);
        for (size_t i = 0; i < nb; i++) {
            size_t b = sonde__pb_open(&em->pb, 3);
            sonde__pb_uint(&em->pb, 1, cum[i]);
            sonde__pb_double(&em->pb, 2, bounds[i]);
            sonde__pb_close(&em->pb, b);
        }
        sonde__pb_close(&em->pb, h);
        sonde__pb_close(&em->pb, m);
        em->rc = em->pb.rc;
        return em->rc;
    }
    if (JSON(em)) {
        json_metric_open(em, NULL, 0, NULL, 0, "", kv, npairs);
        json_num(em, "count", (double)cum[nb]);
        json_num(em, "sum", sum);
        puts_(em, ",\"buckets\":[");
        for (size_t i = 0; i <= nb; i++) {
            if (i)
                put(em, ",", 1);
            sonde__fmt_double(le, i < nb ? bounds[i] : INFINITY);
            puts_(em, "{\"le\":\"");
            puts_(em, le);
            puts_(em, "\",\"count\":");
            size_t n = sonde__fmt_u64(val, cum[i]);
            put(em, val, n);
            put(em, "}", 1);
        }
        puts_(em, "]}");
        return em->rc;
    }
    sonde_buf lb;
    sonde_buf_init(&lb);
    int rc = kv_text(&lb, kv, npairs);
    if (rc) {
        sonde_buf_free(&lb);
        atomic_fetch_add_explicit(&em->reg->collector_errors, 1, memory_order_relaxed);
        return rc;
    }
    const char *lt = lb.data ? lb.data : "";
    size_t nl = strlen(em->name);
    for (size_t i = 0; i <= nb; i++) {
        double b = i < nb ? bounds[i] : INFINITY;
        if (om)
            sonde__fmt_double_om(le, b);
        else
            sonde__fmt_double(le, b);
        size_t vl = sonde__fmt_u64(val, cum[i]);
        text_line(em, em->name, nl, "_bucket", lt, lb.len, NULL, 0, "le", le, val, vl);
    }
    size_t vl = sonde__fmt_u64(val, cum[nb]);
    text_line(em, em->name, nl, "_count", lt, lb.len, NULL, 0, NULL, NULL, val, vl);
    vl = fmt_value(val, sum);
    text_line(em, em->name, nl, "_sum", lt, lb.len, NULL, 0, NULL, NULL, val, vl);
    sonde_buf_free(&lb);
    return em->rc;
}

/* sonde's own bookkeeping for this registry. */
static void emit_self(struct sonde_emitter *em)
{
    sonde_registry *reg = em->reg;
    int any = 0;
    for (struct sonde_family *f = reg->head; f; f = f->next)
        if (f->nlabels)
            any = 1;
    if (any) {
        sonde_emit_family(em, SONDE_COUNTER, "sonde_metrics_dropped_series_total",
                          "Series not created because their family reached its cardinality "
                          "limit.",
                          NULL);
        for (struct sonde_family *f = reg->head; f; f = f->next) {
            if (!f->nlabels)
                continue;
            const char *kv[2] = {"family", f->name};
            sonde_emit_sample(em, kv, 1,
                              (double)atomic_load_explicit(&f->dropped, memory_order_relaxed));
        }
    }
    int ttl = 0;
    for (struct sonde_family *f = reg->head; f; f = f->next)
        ttl |= f->ttl_s != 0;
    if (ttl) {
        sonde_emit_family(em, SONDE_COUNTER, "sonde_metrics_series_expired_total",
                          "Series removed because they were not updated within their family's "
                          "TTL.",
                          NULL);
        for (struct sonde_family *f = reg->head; f; f = f->next) {
            if (!f->ttl_s)
                continue;
            const char *kv[2] = {"family", f->name};
            sonde_emit_sample(em, kv, 1,
                              (double)atomic_load_explicit(&f->expired, memory_order_relaxed));
        }
    }
    int ex = 0;
    for (struct sonde_family *f = reg->head; f; f = f->next)
        ex |= f->exemplars != 0;
    if (ex) {
        sonde_emit_family(em, SONDE_COUNTER, "sonde_metrics_exemplars_dropped_total",
                          "Exemplars not kept: invalid labels, over 128 characters, or a "
                          "concurrent writer on the same slot (process-wide).",
                          NULL);
        sonde_emit_sample(
            em, NULL, 0,
            (double)atomic_load_explicit(&sonde__exemplars_dropped, memory_order_relaxed));
    }
    if (reg->collectors) {
        sonde_emit_family(em, SONDE_COUNTER, "sonde_metrics_collector_errors_total",
                          "Families or samples from collectors refused as invalid.", NULL);
        sonde_emit_sample(
            em, NULL, 0,
            (double)atomic_load_explicit(&reg->collector_errors, memory_order_relaxed));
    }
    close_collector_family(em);
}

/* ---- UTF-8 names: render views ---- */

/* A metric name for the view: legacy names as they are; otherwise quoted
 * text (the quotes are added by the writer) or escaped per scheme. */
static char *view_metric_name(const char *n, int quote, sonde_escaping esc)
{
    sonde_buf b;
    sonde_buf_init(&b);
    size_t l = strlen(n);
    int rc;
    if (sonde__valid_metric_name(n))
        rc = sonde__buf_append(&b, n, l);
    else if (quote)
        rc = sonde__buf_label_escape(&b, n, l);
    else
        rc = sonde__buf_name_escape(&b, n, l, (int)esc);
    if (rc == SONDE_OK && !b.data)
        return sonde__strdup("");
    if (rc != SONDE_OK)
        sonde_buf_free(&b);
    return rc == SONDE_OK ? b.data : NULL;
}

/* A label name for the view: "quoted" (with the quotes) or escaped. */
static char *view_label_name(const char *n, int quote, sonde_escaping esc)
{
    size_t l = strlen(n);
    if (sonde__valid_label_name(n))
        return sonde__strdup(n);
    sonde_buf b;
    sonde_buf_init(&b);
    int rc;
    if (quote) {
        rc = sonde__buf_putc(&b, '"');
        if (rc == SONDE_OK)
            rc = sonde__buf_label_escape(&b, n, l);
        if (rc == SONDE_OK)
            rc = sonde__buf_putc(&b, '"');
    } else {
        rc = sonde__buf_name_escape(&b, n, l, (int)esc);
    }
    if (rc != SONDE_OK || !b.data) {
        sonde_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static void view_free(struct sonde_family *v)
{
    if (!v || !v->base)
        return;
    sonde__free(v->name);
    sonde__free(v->om_name);
    for (size_t i = 0; v->label_names && i < v->nlabels; i++)
        sonde__free(v->label_names[i]);
    sonde__free(v->label_names);
    for (size_t i = 0; v->const_kv && i < v->nconst; i++)
        sonde__free(v->const_kv[2 * i]);
    sonde__free(v->const_kv);
    sonde__free(v->const_text);
    sonde__free(v->state_label);
    sonde__free(v);
}

/* The family as a scraper with escaping esc sees it: f itself when its
 * names are all legacy or when they go out as they are (protobuf with
 * allow-utf-8); otherwise a view with quoted (text, allow-utf-8) or
 * escaped names. NULL: no memory. */
static struct sonde_family *view_of(struct sonde_family *f, int text, sonde_escaping esc)
{
    if (!f->utf8 || (!text && esc == SONDE_ESCAPING_ALLOW_UTF8))
        return f;
    int quote = text && esc == SONDE_ESCAPING_ALLOW_UTF8;
    struct sonde_family *v = sonde__malloc(sizeof *v);
    if (!v)
        return NULL;
    memcpy(v, f, sizeof *v);
    v->base = f;
    v->name = v->om_name = v->const_text = v->state_label = NULL;
    v->label_names = NULL;
    v->const_kv = NULL;
    v->name = view_metric_name(f->name, quote, esc);
    v->om_name = view_metric_name(f->om_name, quote, esc);
    v->state_label = view_label_name(f->name, quote, esc);
    v->label_names = sonde__calloc(f->nlabels + 1, sizeof(char *));
    v->const_kv = sonde__calloc(2 * f->nconst + 1, sizeof(char *));
    if (!v->name || !v->om_name || !v->state_label || !v->label_names || !v->const_kv)
        goto fail;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!(v->label_names[i] = view_label_name(f->label_names[i], quote, esc)))
            goto fail;
    sonde_buf b;
    sonde_buf_init(&b);
    int rc = SONDE_OK;
    for (size_t i = 0; i < f->nconst; i++) {
        v->const_kv[2 * i + 1] = f->const_kv[2 * i + 1];
        if (!(v->const_kv[2 * i] = view_label_name(f->const_kv[2 * i], quote, esc))) {
            rc = SONDE_ENOMEM;
            break;
        }
        if (i)
            rc = rc ? rc : sonde__buf_putc(&b, ',');
        rc = rc ? rc : sonde__buf_puts(&b, v->const_kv[2 * i]);
        rc = rc ? rc : sonde__buf_append(&b, "=\"", 2);
        rc = rc ? rc
                : sonde__buf_label_escape(&b, f->const_kv[2 * i + 1],
                                          strlen(f->const_kv[2 * i + 1]));
        rc = rc ? rc : sonde__buf_putc(&b, '"');
    }
    v->const_text = b.data ? b.data : sonde__strdup("");
    v->const_text_len = b.len;
    if (rc != SONDE_OK || !v->const_text)
        goto fail;
    return v;
fail:
    view_free(v);
    return NULL;
}

int sonde_registry_write(sonde_registry *reg, sonde_format fmt, const sonde_write_opts *opts,
                         sonde_buf *out)
{
    if (!out || (unsigned)fmt > SONDE_FORMAT_OPENMETRICS_0_0_1)
        return SONDE_EINVAL;
    if (!reg)
        reg = sonde_registry_default();
    struct sonde_emitter em;
    memset(&em, 0, sizeof em);
    em.fmt = fmt;
    em.out = out;
    em.filter = opts;
    em.reg = reg;
    em.pb.b = out;
    em.created = atomic_load(&reg->created_timestamps);
    em.pb.created = em.created;
    /* Names outside the legacy set: as they are only for the formats that
     * can carry them, escaped otherwise. */
    sonde_escaping esc = opts ? opts->escaping : SONDE_ESCAPING_UNDERSCORES;
    if ((unsigned)esc > SONDE_ESCAPING_ALLOW_UTF8 ||
        (esc == SONDE_ESCAPING_ALLOW_UTF8 &&
         (fmt == SONDE_FORMAT_PROMETHEUS || fmt == SONDE_FORMAT_OPENMETRICS_0_0_1)))
        esc = SONDE_ESCAPING_UNDERSCORES;
    if (fmt == SONDE_FORMAT_JSON)
        puts_(&em, "{\"families\":[");
    pthread_rwlock_rdlock(&reg->lock);
    for (struct sonde_family *f = reg->head; f && em.rc == SONDE_OK; f = f->next)
        if (name_wanted(opts, f->name, f->om_name)) {
            struct sonde_family *v = JSON(&em) ? f : view_of(f, !PB(&em), esc);
            if (!v) {
                em.rc = SONDE_ENOMEM;
                break;
            }
            em.qname = !PB(&em) && !JSON(&em) && esc == SONDE_ESCAPING_ALLOW_UTF8 &&
                       !sonde__valid_metric_name(f->name);
            if (PB(&em)) {
                em.pb.rc = em.rc;
                sonde__pb_write_family(&em.pb, v);
                em.rc = em.pb.rc;
            } else {
                write_native(&em, v);
            }
            em.qname = 0;
            if (v != f)
                view_free(v);
        }
    for (struct collector *c = reg->collectors; c && em.rc == SONDE_OK; c = c->next) {
        c->fn(&em, c->ud);
        close_collector_family(&em);
    }
    if (em.rc == SONDE_OK)
        emit_self(&em);
    pthread_rwlock_unlock(&reg->lock);
    sonde_buf_free(&em.lb);
    if (fmt == SONDE_FORMAT_JSON)
        puts_(&em, "\n]}\n");
    if (OM(&em))
        puts_(&em, "# EOF\n");
    return em.rc;
}

/* ---- pre-encoded collector output ---- */

int sonde__emit_raw_format(const sonde_emitter *em)
{
    if (!em || em->visit || (em->filter && em->filter->name_count))
        return -1;
    return (int)em->fmt;
}

int sonde__emit_raw(sonde_emitter *em, const char *data, size_t n)
{
    if (!em)
        return SONDE_EINVAL;
    close_collector_family(em);
    if (n == 0)
        return em->rc;
    /* JSON blocks are rendered as if families came before them: each
     * family starts with its separating comma, dropped when none did. */
    if (JSON(em) && em->nfamilies++ == 0 && data[0] == ',') {
        data++;
        n--;
    }
    put(em, data, n);
    return em->rc;
}

int sonde__emit_render(sonde_registry *reg, sonde_format fmt, sonde_collect_fn fn, void *ud,
                       sonde_buf *out)
{
    if (!out || !fn || (unsigned)fmt > SONDE_FORMAT_OPENMETRICS_0_0_1)
        return SONDE_EINVAL;
    if (!reg)
        reg = sonde_registry_default();
    struct sonde_emitter em;
    memset(&em, 0, sizeof em);
    em.fmt = fmt;
    em.out = out;
    em.reg = reg;
    em.pb.b = out;
    em.nfamilies = 1;
    fn(&em, ud);
    close_collector_family(&em);
    sonde_buf_free(&em.lb);
    return em.rc;
}

int sonde__registry_visit_collectors(sonde_registry *reg, const sonde__visitor *v)
{
    if (!reg)
        reg = sonde_registry_default();
    struct sonde_emitter em;
    memset(&em, 0, sizeof em);
    em.fmt = SONDE_FORMAT_PROMETHEUS;
    em.reg = reg;
    em.visit = v;
    pthread_rwlock_rdlock(&reg->lock);
    for (struct collector *c = reg->collectors; c; c = c->next) {
        c->fn(&em, c->ud);
        close_collector_family(&em);
    }
    emit_self(&em);
    pthread_rwlock_unlock(&reg->lock);
    sonde_buf_free(&em.lb);
    return SONDE_OK;
}

int sonde_registry_write_prometheus(sonde_registry *reg, sonde_buf *out)
{
    return sonde_registry_write(reg, SONDE_FORMAT_PROMETHEUS, NULL, out);
}

int sonde_registry_write_openmetrics(sonde_registry *reg, sonde_buf *out)
{
    return sonde_registry_write(reg, SONDE_FORMAT_OPENMETRICS, NULL, out);
}

int sonde_registry_write_json(sonde_registry *reg, sonde_buf *out)
{
    return sonde_registry_write(reg, SONDE_FORMAT_JSON, NULL, out);
}

char *sonde_registry_render(sonde_registry *reg, sonde_format fmt, size_t *len_out)
{
    sonde_buf b;
    sonde_buf_init(&b);
    if (sonde_registry_write(reg, fmt, NULL, &b) != SONDE_OK || !b.data) {
        sonde_buf_free(&b);
        return NULL;
    }
    if (len_out)
        *len_out = b.len;
    return b.data;
}
