/*
 * Private parts of the encoders shared between encode.c and protobuf.c.
 */
#ifndef SONDE_EXPOSE_INT_H
#define SONDE_EXPOSE_INT_H

#include "metrics/metrics_int.h"

/* io.prometheus.client.MetricType values. */
enum {
    SONDE__PB_COUNTER = 0,
    SONDE__PB_GAUGE = 1,
    SONDE__PB_SUMMARY = 2,
    SONDE__PB_UNTYPED = 3,
    SONDE__PB_HISTOGRAM = 4
};

/* A protobuf writer over a sonde_buf; the first error sticks in rc. */
typedef struct sonde__pb {
    sonde_buf *b;
    int rc;
    int created; /* write created_timestamp fields */
} sonde__pb;

void sonde__pb_raw(sonde__pb *p, const void *d, size_t n);
void sonde__pb_varint(sonde__pb *p, uint64_t v);
void sonde__pb_uint(sonde__pb *p, unsigned field, uint64_t v);
void sonde__pb_sint(sonde__pb *p, unsigned field, int64_t v);
void sonde__pb_double(sonde__pb *p, unsigned field, double v);
void sonde__pb_str(sonde__pb *p, unsigned field, const char *s, size_t n);
/* Start a length-delimited message (field 0: a top-level delimited one);
 * returns the mark sonde__pb_close needs. */
size_t sonde__pb_open(sonde__pb *p, unsigned field);
void sonde__pb_close(sonde__pb *p, size_t mark);
/* A Metric's LabelPair (field 1). */
void sonde__pb_label(sonde__pb *p, const char *name, const char *value, size_t vn);
int sonde__pb_type(sonde_metric_type t);
/* Open a MetricFamily message with its name, help, type and unit. */
size_t sonde__pb_family_open(sonde__pb *p, const char *name, const char *help, const char *unit,
                             int type);
/* One registered family as a complete delimited MetricFamily. */
void sonde__pb_write_family(sonde__pb *p, struct sonde_family *f);

#endif
