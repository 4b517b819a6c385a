/*
 * Pushgateway client: push (PUT), push-add (POST) and delete of one group,
 * addressed by job and grouping key, synchronously over libcurl.
 */
#include "export/export_int.h"
#include "metrics/metrics_int.h"

#include <curl/curl.h>
#include <string.h>

void sonde_push_opts_init(sonde_push_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

typedef struct out {
    char *p;
    size_t n, len;
    int full;
} out;

static void put(out *o, const char *s, size_t n)
{
    if (o->len + n >= o->n) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* One grouping-key pair: "/name/value", or "/name@base64/<b64>" for values
 * the path cannot carry as they are. */
static void pair(out *o, const char *name, const char *value)
{
    size_t vn = strlen(value);
    put(o, "/", 1);
    put(o, name, strlen(name));
    if (vn == 0 || memchr(value, '/', vn)) {
        put(o, "@base64/", 8);
        if (vn == 0) {
            put(o, "=", 1);
            return;
        }
        char chunk[5];
        for (size_t i = 0; i < vn; i += 3) {
            size_t k = vn - i < 3 ? vn - i : 3;
            size_t cl = sonde__base64url((const unsigned char *)value + i, k, chunk);
            put(o, chunk, cl);
        }
        return;
    }
    put(o, "/", 1);
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < vn; i++) {
        unsigned char c = (unsigned char)value[i];
        if (unreserved(c)) {
            put(o, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(o, e, 3);
        }
    }
}

int sonde_push_path(const char *job, const char *const *grouping, size_t grouping_count, char *buf,
                    size_t n)
{
    if (!job || !*job || !buf || (grouping_count && !grouping))
        return SONDE_EINVAL;
    for (size_t i = 0; i < grouping_count; i++) {
        const char *k = grouping[2 * i];
        if (!k || !grouping[2 * i + 1] || !sonde__valid_label_name(k) ||
            (k[0] == '_' && k[1] == '_') || strcmp(k, "job") == 0)
            return SONDE_EINVAL;
    }
    out o = {buf, n, 0, 0};
    put(&o, "/metrics", 8);
    pair(&o, "job", job);
    for (size_t i = 0; i < grouping_count; i++)
        pair(&o, grouping[2 * i], grouping[2 * i + 1]);
    if (o.full || n == 0)
        return SONDE_ETOOBIG;
    buf[o.len] = '\0';
    return o.len > INT32_MAX ? SONDE_ETOOBIG : (int)o.len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sonde_buf *b = ud;
    size_t len = size * n;
    if (b->len < 512)
        sonde__buf_append(b, p, len < 512 - b->len ? len : 512 - b->len);
    return len;
}

int sonde_push(const sonde_push_opts *o, int *status_out)
{
    sonde__clear_error();
    if (status_out)
        *status_out = 0;
    if (!sonde_enabled())
        return SONDE_OK; /* off: nothing is sent */
    if (!o || !o->url || !o->job || !*o->job) {
        sonde__set_error("push: url and job are required");
        return SONDE_EINVAL;
    }
    if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
        sonde__set_error("push: url must start with http:// or https:// (got '%s')", o->url);
        return SONDE_EINVAL;
    }
    size_t plen = 64 + strlen(o->job) * 4;
    for (size_t i = 0; i < o->grouping_count && o->grouping; i++)
        plen += 16 + (o->grouping[2 * i] ? strlen(o->grouping[2 * i]) : 0) +
                (o->grouping[2 * i + 1] ? strlen(o->grouping[2 * i + 1]) * 4 : 0);
    char *path = sonde__malloc(plen);
    if (!path)
        return SONDE_ENOMEM;
    int pl = sonde_push_path(o->job, o->grouping, o->grouping_count, path, plen);
    if (pl < 0) {
        sonde__free(path);
        sonde__set_error("push: invalid grouping key (label names must be valid, not job, "
                         "not reserved)");
        return SONDE_EINVAL;
    }
    sonde_buf url, body, resp;
    sonde_buf_init(&url);
    sonde_buf_init(&body);
    sonde_buf_init(&resp);
    size_t ul = strlen(o->url);
    while (ul && o->url[ul - 1] == '/')
        ul--;
    int rc = sonde__buf_append(&url, o->url, ul);
    if (rc == SONDE_OK)
        rc = sonde__buf_append(&url, path, (size_t)pl + 1);
    sonde__free(path);
    const char *data = NULL;
    size_t dlen = 0;
    if (rc == SONDE_OK && o->method != SONDE_PUSH_DELETE) {
        if (o->body) {
            data = o->body;
            dlen = o->body_len ? o->body_len : strlen(o->body);
        } else {
            rc = sonde_registry_write_prometheus(o->registry, &body);
            data = body.data ? body.data : "";
            dlen = body.len;
        }
    }
    CURL *e = rc == SONDE_OK ? curl_easy_init() : NULL;
    struct curl_slist *hdrs = NULL;
    if (rc == SONDE_OK && !e)
        rc = SONDE_ENOMEM;
    if (rc != SONDE_OK) {
        sonde_buf_free(&url);
        sonde_buf_free(&body);
        return rc;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, url.data);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sonde/" SONDE_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     (long)((o->timeout_seconds > 0 ? o->timeout_seconds : 10) * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    hdrs = curl_slist_append(hdrs, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
    hdrs = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
    sonde_buf auth;
    sonde_buf_init(&auth);
    if (hdrs && o->bearer_token &&
        sonde__buf_printf(&auth, "Authorization: Bearer %s", o->bearer_token) == SONDE_OK)
        hdrs = curl_slist_append(hdrs, auth.data);
    sonde_buf_free(&auth);
    if (!hdrs) {
        curl_easy_cleanup(e);
        sonde_buf_free(&url);
        sonde_buf_free(&body);
        return SONDE_ENOMEM;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (o->basic_auth_user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, o->basic_auth_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, o->basic_auth_password ? o->basic_auth_password : "");
    }
    if (o->tls_ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->tls_ca_file);
    if (o->tls_insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    switch (o->method) {
    case SONDE_PUSH_DELETE:
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case SONDE_PUSH_ADD:
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)dlen);
        break;
    default:
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)dlen);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
        break;
    }
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status_out)
        *status_out = (int)status;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        sonde__set_error("push: %s timed out", url.data);
        rc = SONDE_ETIMEOUT;
    } else if (cc != CURLE_OK) {
        sonde__set_error("push: %s unreachable: %s", url.data,
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = SONDE_EUNREACHABLE;
    } else if (status < 200 || status >= 300) {
        /* The gateway's reason, one line. */
        size_t n = resp.len;
        while (n && (resp.data[n - 1] == '\n' || resp.data[n - 1] == '\r'))
            n--;
        sonde__set_error("push: %s answered %ld: %.*s", url.data, status, (int)n,
                         resp.data ? resp.data : "");
        rc = SONDE_EIO;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
    sonde_buf_free(&url);
    sonde_buf_free(&body);
    sonde_buf_free(&resp);
    return rc;
}
