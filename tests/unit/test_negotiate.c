/*
 * Content negotiation: every Accept form Prometheus sends (2.x defaults,
 * 3.x defaults with escaping=, the protobuf-first header of native
 * histograms), q-values, q=0, unknown versions and malformed input, and the
 * Content-Type naming version and escaping. Headers are parsed, never
 * compared as strings: reordered, respaced and recased variants must give
 * the same answer.
 */
#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void want(const char *accept, sonde_format fmt, sonde_escaping esc, int line)
{
    sonde_escaping got_esc = (sonde_escaping)99;
    sonde_format got = sonde_format_negotiate(accept, accept ? strlen(accept) : 0, &got_esc);
    if (got != fmt || got_esc != esc) {
        fprintf(stderr, "line %d: Accept \"%s\": got format %d escaping %d, want %d %d\n", line,
                accept ? accept : "(null)", (int)got, (int)got_esc, (int)fmt, (int)esc);
        failures++;
    }
}
#define WANT(a, f, e) want((a), (f), (e), __LINE__)

static void want_ct(sonde_format fmt, sonde_escaping esc, const char *needle, int present)
{
    const char *ct = sonde_format_content_type_escaped(fmt, esc);
    if ((strstr(ct, needle) != NULL) != present) {
        fprintf(stderr, "content type of %d/%d \"%s\" %s \"%s\"\n", (int)fmt, (int)esc, ct,
                present ? "lacks" : "has", needle);
        failures++;
    }
}

int main(void)
{
    const sonde_escaping U = SONDE_ESCAPING_UNDERSCORES, A = SONDE_ESCAPING_ALLOW_UTF8;
    /* Prometheus 3's default scrape header. */
    WANT("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
         "application/openmetrics-text;version=0.0.1;q=0.5,"
         "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
         "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
         SONDE_FORMAT_OPENMETRICS, A);
    /* The same ranges reordered, respaced and in another case. */
    WANT("*/*;q=0.2, TEXT/PLAIN; version=0.0.4; q=0.3 , text/plain;version=1.0.0;"
         "escaping=allow-utf-8;q=0.4,application/openmetrics-text; version=0.0.1; q=0.5,"
         "Application/OpenMetrics-Text; Version=\"1.0.0\"; Escaping=allow-utf-8; Q=0.6",
         SONDE_FORMAT_OPENMETRICS, A);
    /* Prometheus 3 with native histograms: protobuf first. */
    WANT("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited;escaping=allow-utf-8;q=0.7,"
         "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
         "application/openmetrics-text;version=0.0.1;q=0.5,"
         "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
         "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
         SONDE_FORMAT_PROTOBUF, A);
    /* Prometheus 2.42 with --enable-feature=native-histograms. */
    WANT("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
         SONDE_FORMAT_PROTOBUF, U);
    /* Prometheus 2.x default. */
    WANT("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
         "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         SONDE_FORMAT_OPENMETRICS, U);
    /* Each form alone. */
    WANT("application/openmetrics-text;version=0.0.1", SONDE_FORMAT_OPENMETRICS_0_0_1, U);
    WANT("application/openmetrics-text", SONDE_FORMAT_OPENMETRICS, U);
    WANT("text/plain;version=1.0.0", SONDE_FORMAT_PROMETHEUS_1_0_0, U);
    WANT("text/plain;version=1.0.0;escaping=allow-utf-8", SONDE_FORMAT_PROMETHEUS_1_0_0, A);
    WANT("text/plain;version=1.0.0;escaping=dots", SONDE_FORMAT_PROMETHEUS_1_0_0,
         SONDE_ESCAPING_DOTS);
    WANT("text/plain;version=1.0.0;escaping=values", SONDE_FORMAT_PROMETHEUS_1_0_0,
         SONDE_ESCAPING_VALUES);
    WANT("text/plain;version=1.0.0;escaping=underscores", SONDE_FORMAT_PROMETHEUS_1_0_0, U);
    WANT("text/plain;version=0.0.4", SONDE_FORMAT_PROMETHEUS, U);
    WANT("text/plain", SONDE_FORMAT_PROMETHEUS, U);
    WANT("text/*", SONDE_FORMAT_PROMETHEUS, U);
    WANT("*/*", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited",
         SONDE_FORMAT_PROTOBUF, U);
    /* 0.0.x formats cannot carry UTF-8 names: allow-utf-8 is not granted. */
    WANT("text/plain;version=0.0.4;escaping=allow-utf-8", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/openmetrics-text;version=0.0.1;escaping=allow-utf-8",
         SONDE_FORMAT_OPENMETRICS_0_0_1, U);
    /* Unknown escaping: the default. */
    WANT("text/plain;version=1.0.0;escaping=rot13", SONDE_FORMAT_PROMETHEUS_1_0_0, U);
    /* q=0 refuses a range; the next best wins. */
    WANT("application/openmetrics-text;q=0,text/plain;q=0.1", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=delimited;q=0.000,application/openmetrics-text;version=1.0.0;q=0.001",
         SONDE_FORMAT_OPENMETRICS, U);
    /* Everything refused: text 0.0.4 anyway (never a 406 for a scraper). */
    WANT("application/openmetrics-text;q=0,text/plain;q=0,*/*;q=0", SONDE_FORMAT_PROMETHEUS, U);
    /* Ties go to the first listed. */
    WANT("text/plain;version=1.0.0;q=0.5,application/openmetrics-text;q=0.5",
         SONDE_FORMAT_PROMETHEUS_1_0_0, U);
    /* Not offered: protobuf text encodings, unknown versions, other types. */
    WANT("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
         "encoding=text",
         SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/vnd.google.protobuf;encoding=delimited", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
         SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/openmetrics-text;version=2.0.0", SONDE_FORMAT_PROMETHEUS, U);
    WANT("text/plain;version=0.0.5", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/json", SONDE_FORMAT_PROMETHEUS, U);
    /* Malformed: bad q-values are ignored ranges, junk is harmless. */
    WANT("application/openmetrics-text;q=2", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/openmetrics-text;q=abc,text/plain;version=1.0.0;q=0.1",
         SONDE_FORMAT_PROMETHEUS_1_0_0, U);
    WANT("application/openmetrics-text;q=0.12345", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/openmetrics-text;q=-1", SONDE_FORMAT_PROMETHEUS, U);
    WANT(",,,;;;==,", SONDE_FORMAT_PROMETHEUS, U);
    WANT("application/openmetrics-text;version=\"1.0.0,text/plain", SONDE_FORMAT_PROMETHEUS, U);
    WANT("", SONDE_FORMAT_PROMETHEUS, U);
    WANT(NULL, SONDE_FORMAT_PROMETHEUS, U);
    /* Length-bounded: bytes past n are never read. */
    {
        const char *h = "text/plain;version=1.0.0XXXX";
        sonde_escaping e;
        if (sonde_format_negotiate(h, strlen(h) - 4, &e) != SONDE_FORMAT_PROMETHEUS_1_0_0) {
            fprintf(stderr, "length bound not honoured\n");
            failures++;
        }
    }

    /* Content types name the version, and the escaping for 1.0.0 formats. */
    want_ct(SONDE_FORMAT_PROTOBUF, A, "proto=io.prometheus.client.MetricFamily", 1);
    want_ct(SONDE_FORMAT_PROTOBUF, A, "encoding=delimited", 1);
    want_ct(SONDE_FORMAT_PROTOBUF, A, "escaping=allow-utf-8", 1);
    want_ct(SONDE_FORMAT_OPENMETRICS, U, "version=1.0.0", 1);
    want_ct(SONDE_FORMAT_OPENMETRICS, U, "escaping=underscores", 1);
    want_ct(SONDE_FORMAT_OPENMETRICS, SONDE_ESCAPING_DOTS, "escaping=dots", 1);
    want_ct(SONDE_FORMAT_PROMETHEUS_1_0_0, SONDE_ESCAPING_VALUES, "version=1.0.0", 1);
    want_ct(SONDE_FORMAT_PROMETHEUS_1_0_0, SONDE_ESCAPING_VALUES, "escaping=values", 1);
    want_ct(SONDE_FORMAT_OPENMETRICS_0_0_1, U, "version=0.0.1", 1);
    want_ct(SONDE_FORMAT_OPENMETRICS_0_0_1, U, "escaping", 0);
    want_ct(SONDE_FORMAT_PROMETHEUS, U, "version=0.0.4", 1);
    want_ct(SONDE_FORMAT_PROMETHEUS, U, "escaping", 0);
    /* The legacy helper agrees. */
    if (strcmp(sonde_format_content_type(SONDE_FORMAT_OPENMETRICS),
               "application/openmetrics-text; version=1.0.0; charset=utf-8") != 0) {
        fprintf(stderr, "sonde_format_content_type(OPENMETRICS) changed\n");
        failures++;
    }

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("negotiation: all cases pass\n");
    return 0;
}
