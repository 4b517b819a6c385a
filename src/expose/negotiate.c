/*
 * Content negotiation for /metrics: the Accept header's media ranges, their
 * q-values and the escaping= parameter, and the Content-Type that names
 * what was chosen. Zero-allocation, bounded by the input length, total on
 * any bytes (fuzzed by fuzz/fuzz_accept.c).
 */
#include "core/internal.h"

#include <sonde/metrics.h>

#include <string.h>

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static int ieq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i])
            return 0;
    return 1;
}

static void trim(const char **s, size_t *n)
{
    while (*n && ((*s)[0] == ' ' || (*s)[0] == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* q-value per RFC 9110: 0, 1, 0.ddd or 1.000. Anything else is malformed:
 * returns -1 and the range is ignored. */
static int parse_q(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int v = (s[0] - '0') * 1000;
    if (n == 1)
        return v;
    if (s[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v += (s[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

/* One media range's parameters, split on ';' outside quotes. */
struct range {
    const char *type;
    size_t tn;
    const char *version, *proto, *encoding, *escaping;
    size_t vn, pn, en, sn;
    int q; /* 0..1000, -1 malformed */
};

static void param(struct range *r, const char *p, size_t pl)
{
    trim(&p, &pl);
    size_t eq = 0;
    while (eq < pl && p[eq] != '=')
        eq++;
    if (eq == pl)
        return;
    const char *k = p, *v = p + eq + 1;
    size_t kn = eq, vn = pl - eq - 1;
    trim(&k, &kn);
    trim(&v, &vn);
    if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
        v++;
        vn -= 2;
    }
    if (ieq(k, kn, "q")) {
        r->q = parse_q(v, vn);
    } else if (ieq(k, kn, "version")) {
        r->version = v;
        r->vn = vn;
    } else if (ieq(k, kn, "proto")) {
        r->proto = v;
        r->pn = vn;
    } else if (ieq(k, kn, "encoding")) {
        r->encoding = v;
        r->en = vn;
    } else if (ieq(k, kn, "escaping")) {
        r->escaping = v;
        r->sn = vn;
    }
}

/* The format a range asks for, or -1 when sonde does not offer it. */
static int range_format(const struct range *r)
{
    if (ieq(r->type, r->tn, "application/vnd.google.protobuf")) {
        /* Only the delimited MetricFamily stream; the text and
         * compact-text debugging encodings are not offered. */
        if (!r->proto || !ieq(r->proto, r->pn, "io.prometheus.client.metricfamily"))
            return -1;
        if (!r->encoding || !ieq(r->encoding, r->en, "delimited"))
            return -1;
        return SONDE_FORMAT_PROTOBUF;
    }
    if (ieq(r->type, r->tn, "application/openmetrics-text")) {
        if (!r->version || ieq(r->version, r->vn, "1.0.0"))
            return SONDE_FORMAT_OPENMETRICS;
        if (ieq(r->version, r->vn, "0.0.1"))
            return SONDE_FORMAT_OPENMETRICS_0_0_1;
        return -1;
    }
    if (ieq(r->type, r->tn, "text/plain")) {
        if (!r->version || ieq(r->version, r->vn, "0.0.4"))
            return SONDE_FORMAT_PROMETHEUS;
        if (ieq(r->version, r->vn, "1.0.0"))
            return SONDE_FORMAT_PROMETHEUS_1_0_0;
        return -1;
    }
    if (ieq(r->type, r->tn, "text/*") || ieq(r->type, r->tn, "*/*"))
        return SONDE_FORMAT_PROMETHEUS;
    return -1;
}

static sonde_escaping range_escaping(const struct range *r, int fmt)
{
    if (!r->escaping)
        return SONDE_ESCAPING_UNDERSCORES;
    if (ieq(r->escaping, r->sn, "allow-utf-8"))
        /* The 0.0.x formats cannot carry quoted names. */
        return fmt == SONDE_FORMAT_PROTOBUF || fmt == SONDE_FORMAT_PROMETHEUS_1_0_0 ||
                       fmt == SONDE_FORMAT_OPENMETRICS
                   ? SONDE_ESCAPING_ALLOW_UTF8
                   : SONDE_ESCAPING_UNDERSCORES;
    if (ieq(r->escaping, r->sn, "dots"))
        return SONDE_ESCAPING_DOTS;
    if (ieq(r->escaping, r->sn, "values"))
        return SONDE_ESCAPING_VALUES;
    return SONDE_ESCAPING_UNDERSCORES;
}

sonde_format sonde_format_negotiate(const char *accept, size_t n, sonde_escaping *esc)
{
    int best_fmt = SONDE_FORMAT_PROMETHEUS, best_q = 0;
    sonde_escaping best_esc = SONDE_ESCAPING_UNDERSCORES;
    size_t i = 0;
    while (accept && i < n) {
        /* One element: up to a ',' outside quotes. */
        size_t start = i;
        int quoted = 0;
        while (i < n && (quoted || accept[i] != ',')) {
            if (accept[i] == '"')
                quoted = !quoted;
            i++;
        }
        const char *e = accept + start;
        size_t en = i - start;
        i++;
        struct range r;
        memset(&r, 0, sizeof r);
        r.q = 1000;
        size_t j = 0;
        while (j < en && e[j] != ';')
            j++;
        r.type = e;
        r.tn = j;
        trim(&r.type, &r.tn);
        while (j < en) {
            size_t ps = ++j;
            quoted = 0;
            while (j < en && (quoted || e[j] != ';')) {
                if (e[j] == '"')
                    quoted = !quoted;
                j++;
            }
            param(&r, e + ps, j - ps);
        }
        if (r.q <= 0)
            continue; /* q=0: refused; malformed q: ignored */
        int fmt = range_format(&r);
        if (fmt < 0 || r.q <= best_q)
            continue;
        best_q = r.q;
        best_fmt = fmt;
        best_esc = range_escaping(&r, fmt);
    }
    if (esc)
        *esc = best_esc;
    return (sonde_format)best_fmt;
}

#define PB                                                                                         \
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
#define OM1 "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define TX1 "text/plain; version=1.0.0; charset=utf-8"

const char *sonde_format_content_type_escaped(sonde_format fmt, sonde_escaping esc)
{
    static const char *const pb[4] = {PB "; escaping=underscores", PB "; escaping=dots",
                                      PB "; escaping=values", PB "; escaping=allow-utf-8"};
    static const char *const om[4] = {OM1 "; escaping=underscores", OM1 "; escaping=dots",
                                      OM1 "; escaping=values", OM1 "; escaping=allow-utf-8"};
    static const char *const tx[4] = {TX1 "; escaping=underscores", TX1 "; escaping=dots",
                                      TX1 "; escaping=values", TX1 "; escaping=allow-utf-8"};
    unsigned e = (unsigned)esc < 4 ? (unsigned)esc : 0;
    switch (fmt) {
    case SONDE_FORMAT_PROTOBUF:
        return pb[e];
    case SONDE_FORMAT_OPENMETRICS:
        return om[e];
    case SONDE_FORMAT_PROMETHEUS_1_0_0:
        return tx[e];
    case SONDE_FORMAT_OPENMETRICS_0_0_1:
        return "application/openmetrics-text; version=0.0.1; charset=utf-8";
    case SONDE_FORMAT_JSON:
        return "application/json";
    default:
        return "text/plain; version=0.0.4; charset=utf-8";
    }
}
