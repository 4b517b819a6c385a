/*
 * Remote write 1.0 request bodies: pending samples -> WriteRequest
 * (protobuf-c, generated from proto/remote.proto) -> snappy block format.
 * The label arrays were built once per series by the sampler; here each
 * sample only points a TimeSeries at them. The message arrays are reused
 * from one batch to the next.
 */
#include "export/export_int.h"

#include <snappy-c.h>
#include <string.h>

void sonde__rw_encoder_free(sonde__rw_encoder *e)
{
    sonde__free(e->ts);
    sonde__free(e->ts_ptrs);
    sonde__free(e->smp);
    sonde__free(e->smp_ptrs);
    sonde__free(e->raw);
    memset(e, 0, sizeof *e);
}

static int reserve(sonde__rw_encoder *e, size_t n)
{
    if (n <= e->cap)
        return SONDE_OK;
    size_t nc = e->cap ? e->cap : 256;
    while (nc < n)
        nc *= 2;
    SondeRw__TimeSeries *ts = sonde__realloc(e->ts, nc * sizeof *ts);
    if (ts)
        e->ts = ts;
    SondeRw__TimeSeries **tp = sonde__realloc(e->ts_ptrs, nc * sizeof *tp);
    if (tp)
        e->ts_ptrs = tp;
    SondeRw__Sample *sm = sonde__realloc(e->smp, nc * sizeof *sm);
    if (sm)
        e->smp = sm;
    SondeRw__Sample **sp = sonde__realloc(e->smp_ptrs, nc * sizeof *sp);
    if (sp)
        e->smp_ptrs = sp;
    if (!ts || !tp || !sm || !sp)
        return SONDE_ENOMEM;
    e->cap = nc;
    return SONDE_OK;
}

int sonde__rw_encode(sonde__rw_encoder *e, const sonde__rw_pending *p, size_t n, uint8_t **out,
                     size_t *out_len, size_t *raw_len)
{
    *out = NULL;
    *out_len = 0;
    if (reserve(e, n) != SONDE_OK)
        return SONDE_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        SondeRw__Sample *sm = &e->smp[i];
        sonde_rw__sample__init(sm);
        sm->value = p[i].value;
        sm->timestamp = p[i].ts_ms;
        e->smp_ptrs[i] = sm;
        SondeRw__TimeSeries *ts = &e->ts[i];
        sonde_rw__time_series__init(ts);
        ts->n_labels = p[i].series->nlabels;
        ts->labels = p[i].series->label_ptrs;
        ts->n_samples = 1;
        ts->samples = &e->smp_ptrs[i];
        e->ts_ptrs[i] = ts;
    }
    SondeRw__WriteRequest req;
    sonde_rw__write_request__init(&req);
    req.n_timeseries = n;
    req.timeseries = e->ts_ptrs;
    size_t need = sonde_rw__write_request__get_packed_size(&req);
    if (need > e->raw_cap) {
        uint8_t *r = sonde__realloc(e->raw, need);
        if (!r)
            return SONDE_ENOMEM;
        e->raw = r;
        e->raw_cap = need;
    }
    size_t packed = sonde_rw__write_request__pack(&req, e->raw);
    size_t clen = snappy_max_compressed_length(packed);
    uint8_t *c = sonde__malloc(clen ? clen : 1);
    if (!c)
        return SONDE_ENOMEM;
    if (snappy_compress((const char *)e->raw, packed, (char *)c, &clen) != SNAPPY_OK) {
        sonde__free(c);
        return SONDE_ENOMEM;
    }
    /* Give back the slack of the worst-case bound. */
    uint8_t *shrunk = sonde__realloc(c, clen ? clen : 1);
    *out = shrunk ? shrunk : c;
    *out_len = clen;
    if (raw_len)
        *raw_len = packed;
    return SONDE_OK;
}
