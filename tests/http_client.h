/*
 * A small libcurl client for the HTTP tests: one request, the status, the
 * body and the headers the tests look at. Header-only; include it in one
 * test file per executable.
 */
#ifndef SONDE_TEST_HTTP_CLIENT_H
#define SONDE_TEST_HTTP_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct http_resp {
    long status; /* 0 when the request failed at the transport level */
    char *body;  /* NUL-terminated, decoded if auto_decode */
    size_t len;
    char headers[4096]; /* raw response headers, lower-cased names kept as sent */
    char error[CURL_ERROR_SIZE];
    CURLcode code;
} http_resp;

typedef struct http_req {
    const char *method;         /* NULL: GET */
    const char *const *headers; /* NULL-terminated "Name: value" list */
    const char *body;           /* request body or NULL */
    bool decode_gzip;           /* send Accept-Encoding: gzip and decode */
    bool insecure;              /* TLS without verification */
    const char *cainfo;         /* CA file for TLS */
    long timeout_ms;            /* 0: 10 s */
    const char *userpwd;        /* basic auth "user:pass" */
} http_req;

static __attribute__((unused)) size_t http__write(char *p, size_t sz, size_t n, void *ud)
{
    http_resp *r = ud;
    size_t add = sz * n;
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static __attribute__((unused)) size_t http__header(char *p, size_t sz, size_t n, void *ud)
{
    http_resp *r = ud;
    size_t add = sz * n, have = strlen(r->headers);
    if (have + add < sizeof r->headers) {
        memcpy(r->headers + have, p, add);
        r->headers[have + add] = '\0';
    }
    return add;
}

static __attribute__((unused)) void http_free(http_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Value of a response header (case-insensitive name) copied into out, or
 * NULL when absent. */
static __attribute__((unused)) const char *http_header(const http_resp *r, const char *name,
                                                       char *out, size_t n)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    while (p && *p) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r\n");
            if (l >= n)
                l = n - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static __attribute__((unused)) http_resp http_do(const char *url, const http_req *rq)
{
    http_resp r;
    memset(&r, 0, sizeof r);
    r.body = calloc(1, 1);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http__write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http__header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.error);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq && rq->timeout_ms ? rq->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (rq && rq->method) {
        if (strcmp(rq->method, "HEAD") == 0)
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        else
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (rq && rq->body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
    if (rq && rq->headers)
        for (const char *const *h = rq->headers; *h; h++)
            hl = curl_slist_append(hl, *h);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (rq && rq->decode_gzip)
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (rq && rq->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (rq && rq->cainfo)
        curl_easy_setopt(c, CURLOPT_CAINFO, rq->cainfo);
    if (rq && rq->userpwd) {
        curl_easy_setopt(c, CURLOPT_USERPWD, rq->userpwd);
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
    r.code = curl_easy_perform(c);
    if (r.code == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r;
}

static __attribute__((unused)) http_resp http_get(const char *url)
{
    return http_do(url, NULL);
}

/* Build "http://127.0.0.1:<port><path>" into a static-per-call buffer. */
static __attribute__((unused)) const char *url_of(char *buf, size_t n, const char *host, int port,
                                                  const char *path)
{
    snprintf(buf, n, "http://%s:%d%s", host, port, path);
    return buf;
}

#endif
