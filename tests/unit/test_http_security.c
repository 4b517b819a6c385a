/*
 * Security and limits of the monitoring server over real sockets: bearer
 * key, loopback-only default, basic auth (plain and crypt hashes), TLS,
 * rate limiting, connection caps, header and query limits, idle timeout and
 * the total request deadline against a slowloris client, hostile bytes.
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char url[8192];

static const char *U(const char *path)
{
    return url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), path);
}

static void opts_local(sonde_start_opts *o)
{
    sonde_stop(); /* in case a failed case left it running */
    sonde_start_opts_init(o);
    o->listen = "127.0.0.1:0";
    o->rate_limit_per_second = -1;
}

static long status_of(const char *u, const char *const *headers)
{
    http_req rq = {.headers = headers};
    http_resp r = http_do(u, &rq);
    long s = r.status;
    http_free(&r);
    return s;
}

/* A raw TCP connection to the server. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Wait up to ms for the peer to close; returns 1 when closed (EOF or
 * reset), 0 on timeout. Any bytes received are appended to out. */
static int wait_closed(int fd, int ms, char *out, size_t cap)
{
    size_t len = out ? strlen(out) : 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (el >= ms)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(ms - el)) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return 1;
        if (out && len + (size_t)n < cap) {
            memcpy(out + len, buf, (size_t)n);
            len += (size_t)n;
            out[len] = '\0';
        }
    }
}

TEST(test_api_key_protects_sensitive_endpoints)
{
    sonde_start_opts o;
    opts_local(&o);
    o.api_key = "s3cret-key";
    ASSERT_OK(sonde_start(&o));
    const char *sensitive[] = {"/info", "/metrics/json", "/health/detailed"};
    for (int i = 0; i < 3; i++) {
        http_resp r = http_get(U(sensitive[i]));
        ASSERT_EQ(r.status, 401);
        char wa[64];
        ASSERT(http_header(&r, "WWW-Authenticate", wa, sizeof wa));
        ASSERT_CONTAINS(wa, "Bearer");
        ASSERT_CONTAINS(r.body, "unauthorized");
        http_free(&r);
        const char *wrong[] = {"Authorization: Bearer s3cret-kez", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), wrong), 401);
        const char *prefix[] = {"Authorization: Bearer s3cret", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), prefix), 401);
        const char *longer[] = {"Authorization: Bearer s3cret-key2", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), longer), 401);
        const char *basic[] = {"Authorization: Basic czNjcmV0LWtleQ==", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), basic), 401);
        const char *right[] = {"Authorization: Bearer s3cret-key", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), right), 200);
        const char *lower[] = {"authorization: bearer s3cret-key", NULL};
        ASSERT_EQ(status_of(U(sensitive[i]), lower), 200);
    }
    /* Public endpoints need nothing. */
    const char *pub[] = {"/metrics", "/health", "/health/live", "/health/ready", "/status"};
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(status_of(U(pub[i]), NULL), 200);
    /* The key is never shown. */
    const char *right[] = {"Authorization: Bearer s3cret-key", NULL};
    http_req rq = {.headers = right};
    http_resp r = http_do(U("/info"), &rq);
    ASSERT_CONTAINS(r.body, "\"api_key\":\"<redacted>\"");
    ASSERT_NOT_CONTAINS(r.body, "s3cret");
    http_free(&r);
    sonde_stop();
}

TEST(test_api_key_defaults_from_the_environment)
{
    setenv("SONDE_API_KEY", "env-key", 1);
    sonde_start_opts o;
    opts_local(&o);
    ASSERT_OK(sonde_start(&o));
    unsetenv("SONDE_API_KEY");
    ASSERT_EQ(status_of(U("/info"), NULL), 401);
    const char *right[] = {"Authorization: Bearer env-key", NULL};
    ASSERT_EQ(status_of(U("/info"), right), 200);
    sonde_stop();
}

/* A local non-loopback IPv4 address, or "" if the host has none. */
static void local_non_loopback(char *out, size_t n)
{
    out[0] = '\0';
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct sockaddr_in *a = (struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n);
        break;
    }
    freeifaddrs(ifs);
}

TEST(test_without_key_sensitive_endpoints_answer_loopback_only)
{
    sonde_start_opts o;
    opts_local(&o);
    o.listen = ":0"; /* every interface */
    ASSERT_OK(sonde_start(&o));
    int port = sonde_listen_port();
    char u[256];
    ASSERT_EQ(status_of(url_of(u, sizeof u, "127.0.0.1", port, "/info"), NULL), 200);
    ASSERT_EQ(status_of(url_of(u, sizeof u, "[::1]", port, "/info"), NULL), 200);
    char ip[64];
    local_non_loopback(ip, sizeof ip);
    /* The test hosts (CI included) have a non-loopback interface; a
     * connection to it comes from that address, not from loopback. */
    ASSERT(ip[0] != '\0');
    http_resp r = http_get(url_of(u, sizeof u, ip, port, "/info"));
    ASSERT_EQ(r.status, 403);
    ASSERT_CONTAINS(r.body, "loopback clients only");
    http_free(&r);
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/metrics/json"), NULL), 403);
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/health/detailed"), NULL), 403);
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/metrics"), NULL), 200);
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/health"), NULL), 200);
    sonde_stop();

    /* With a key, a remote client with the key is allowed. */
    o.api_key = "k";
    ASSERT_OK(sonde_start(&o));
    port = sonde_listen_port();
    const char *right[] = {"Authorization: Bearer k", NULL};
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/info"), right), 200);
    ASSERT_EQ(status_of(url_of(u, sizeof u, ip, port, "/info"), NULL), 401);
    sonde_stop();
}

TEST(test_basic_auth_with_plain_and_hashed_passwords)
{
    sonde_start_opts o;
    opts_local(&o);
    o.basic_auth_user = "prom";
    o.basic_auth_password = "pa:ss word";
    ASSERT_OK(sonde_start(&o));
    http_resp r = http_get(U("/metrics"));
    ASSERT_EQ(r.status, 401);
    char wa[64];
    ASSERT(http_header(&r, "WWW-Authenticate", wa, sizeof wa));
    ASSERT_CONTAINS(wa, "Basic realm=\"sonde\"");
    http_free(&r);
    http_req rq = {.userpwd = "prom:pa:ss word"};
    r = http_do(U("/metrics"), &rq);
    ASSERT_EQ(r.status, 200);
    http_free(&r);
    /* Basic credentials also open sensitive endpoints from anywhere. */
    r = http_do(U("/info"), &rq);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "\"basic_auth_password\":\"<redacted>\"");
    ASSERT_NOT_CONTAINS(r.body, "ss word");
    http_free(&r);
    rq.userpwd = "prom:wrong";
    r = http_do(U("/metrics"), &rq);
    ASSERT_EQ(r.status, 401);
    http_free(&r);
    rq.userpwd = "other:pa:ss word";
    r = http_do(U("/metrics"), &rq);
    ASSERT_EQ(r.status, 401);
    http_free(&r);
    const char *garbage[] = {"Authorization: Basic !!!notbase64", NULL};
    ASSERT_EQ(status_of(U("/metrics"), garbage), 401);
    sonde_stop();

    /* A SHA-512 crypt hash, as in a Prometheus web configuration. */
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *hash = crypt_r("hashed-pw", "$6$saltsaltsalt$", &cd);
    ASSERT(hash && hash[0] == '$');
    char hcopy[256];
    snprintf(hcopy, sizeof hcopy, "%s", hash);
    o.basic_auth_password = hcopy;
    ASSERT_OK(sonde_start(&o));
    rq.userpwd = "prom:hashed-pw";
    for (int i = 0; i < 3; i++) { /* the second and third hit the cache */
        r = http_do(U("/health"), &rq);
        ASSERT_EQ(r.status, 200);
        http_free(&r);
    }
    rq.userpwd = "prom:hashed-pX";
    r = http_do(U("/health"), &rq);
    ASSERT_EQ(r.status, 401);
    http_free(&r);
    rq.userpwd = "prom:";
    r = http_do(U("/health"), &rq);
    ASSERT_EQ(r.status, 401);
    http_free(&r);
    sonde_stop();

    o.basic_auth_password = NULL;
    ASSERT_EQ(sonde_start(&o), SONDE_EINVAL);
}

TEST(test_tls_serves_https_with_the_given_certificate)
{
    char dir[] = "/tmp/sonde-tls-XXXXXX";
    ASSERT(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem "
             "-days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
             ">/dev/null 2>&1",
             dir, dir);
    ASSERT_EQ(system(cmd), 0);
    char cert[256], key[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    sonde_start_opts o;
    opts_local(&o);
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    ASSERT_OK(sonde_start(&o));
    char u[256];
    snprintf(u, sizeof u, "https://127.0.0.1:%d/metrics", sonde_listen_port());
    http_req rq = {.cainfo = cert};
    http_resp r = http_do(u, &rq);
    ASSERT_EQ(r.code, CURLE_OK);
    ASSERT_EQ(r.status, 200);
    ASSERT_CONTAINS(r.body, "# TYPE");
    http_free(&r);
    /* Plain HTTP to the TLS port gets no HTTP answer. */
    r = http_get(U("/metrics"));
    ASSERT(r.status != 200);
    http_free(&r);
    /* Certificate verification really happens: without the CA it fails. */
    http_req rq2 = {.cainfo = "/dev/null"};
    r = http_do(u, &rq2);
    ASSERT(r.code != CURLE_OK);
    http_free(&r);
    sonde_stop();

    /* A missing key file is an error code with a reason. */
    snprintf(key, sizeof key, "%s/missing.pem", dir);
    ASSERT_EQ(sonde_start(&o), SONDE_EIO);
    ASSERT_CONTAINS(sonde_last_error(), "missing.pem");
    /* A certificate that is not one. */
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cert, sizeof cert, "%s/key.pem", dir);
    ASSERT(sonde_start(&o) != SONDE_OK);
    ASSERT(!sonde_running());
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(test_rate_limit_answers_429_with_retry_after)
{
    sonde_start_opts o;
    opts_local(&o);
    /* One token per 100 s: a slow machine cannot refill the bucket between
     * the requests below. */
    o.rate_limit_per_second = 0.01;
    o.rate_limit_burst = 3;
    ASSERT_OK(sonde_start(&o));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(status_of(U("/health"), NULL), 200);
    http_resp r = http_get(U("/health/live"));
    ASSERT_EQ(r.status, 429);
    char ra[16];
    ASSERT(http_header(&r, "Retry-After", ra, sizeof ra));
    ASSERT(strtol(ra, NULL, 10) >= 90 && strtol(ra, NULL, 10) <= 100);
    ASSERT_CONTAINS(r.body, "rate limit exceeded");
    http_free(&r);
    ASSERT_EQ(status_of(U("/info"), NULL), 429);
    /* /metrics and /status are not limited: a scraper is never refused. */
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(status_of(U("/metrics"), NULL), 200);
        ASSERT_EQ(status_of(U("/status"), NULL), 200);
    }
    http_resp m = http_get(U("/metrics?name[]=sonde_http_rejected_total"));
    ASSERT_CONTAINS(m.body, "sonde_http_rejected_total{reason=\"rate_limited\"} ");
    http_free(&m);
    sonde_stop();
}

TEST(test_per_client_connection_cap_refuses_extra_connections)
{
    sonde_start_opts o;
    opts_local(&o);
    o.max_connections_per_client = 2;
    ASSERT_OK(sonde_start(&o));
    int port = sonde_listen_port();
    int a = raw_connect(port), b = raw_connect(port);
    ASSERT(a >= 0 && b >= 0);
    /* Let the server accept both before the third arrives. */
    usleep(100000);
    int c = raw_connect(port);
    ASSERT(c >= 0); /* the kernel accepts; MHD closes it at once */
    ASSERT_EQ(wait_closed(c, 3000, NULL, 0), 1);
    close(c);
    close(a);
    close(b);
    usleep(100000);
    ASSERT_EQ(status_of(U("/status"), NULL), 200);
    sonde_stop();
}

TEST(test_oversized_request_head_and_query_are_refused)
{
    sonde_start_opts o;
    opts_local(&o);
    o.max_header_bytes = 4096;
    ASSERT_OK(sonde_start(&o));
    static char big[9000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char hdr[9100];
    snprintf(hdr, sizeof hdr, "X-Big: %s", big);
    const char *h[] = {hdr, NULL};
    long st = status_of(U("/metrics"), h);
    ASSERT(st == 431 || st == 413 || st == 400);
    /* A long query string inside the head limit but over the query cap. */
    static char q[5000];
    memcpy(q, "/metrics?name[]=", 16);
    memset(q + 16, 'b', sizeof q - 17);
    q[sizeof q - 1] = '\0';
    o.max_header_bytes = 16384;
    sonde_stop();
    ASSERT_OK(sonde_start(&o));
    ASSERT_EQ(status_of(U(q), NULL), 414);
    ASSERT_EQ(status_of(U("/status"), NULL), 200);
    sonde_stop();
}

TEST(test_idle_connections_are_closed_after_the_idle_timeout)
{
    sonde_start_opts o;
    opts_local(&o);
    o.idle_timeout_seconds = 1;
    ASSERT_OK(sonde_start(&o));
    int fd = raw_connect(sonde_listen_port());
    ASSERT(fd >= 0);
    ASSERT_EQ(wait_closed(fd, 5000, NULL, 0), 1);
    close(fd);
    sonde_stop();
}

TEST(test_slowloris_client_is_cut_by_the_request_deadline)
{
    sonde_start_opts o;
    opts_local(&o);
    o.idle_timeout_seconds = 10;
    o.request_timeout_seconds = 1;
    ASSERT_OK(sonde_start(&o));
    int fd = raw_connect(sonde_listen_port());
    ASSERT(fd >= 0);
    const char *head = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    ASSERT_EQ(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    /* Trickle one header byte every 200 ms, well inside the idle timeout;
     * meanwhile other clients are served. */
    int closed = 0;
    for (int i = 0; i < 40 && !closed; i++) {
        if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
            closed = 1;
        else
            closed = wait_closed(fd, 200, NULL, 0);
        if (i == 2)
            ASSERT_EQ(status_of(U("/health/live"), NULL), 200);
    }
    ASSERT_EQ(closed, 1);
    close(fd);
    http_resp m = http_get(U("/metrics?name[]=sonde_http_rejected_total"));
    ASSERT_CONTAINS(m.body, "sonde_http_rejected_total{reason=\"deadline\"} 1");
    http_free(&m);
    sonde_stop();
}

TEST(test_keep_alive_connection_survives_between_requests)
{
    /* The deadline covers one request, not the whole connection. */
    sonde_start_opts o;
    opts_local(&o);
    o.request_timeout_seconds = 1;
    ASSERT_OK(sonde_start(&o));
    int fd = raw_connect(sonde_listen_port());
    ASSERT(fd >= 0);
    const char *req = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
        char buf[1024] = "";
        ASSERT_EQ(wait_closed(fd, 600, buf, sizeof buf), 0);
        ASSERT_CONTAINS(buf, "HTTP/1.1 200");
    }
    close(fd);
    sonde_stop();
}

TEST(test_hostile_bytes_get_an_error_and_the_server_keeps_serving)
{
    sonde_start_opts o;
    opts_local(&o);
    o.request_timeout_seconds = 1; /* bounds inputs that never finish a head */
    ASSERT_OK(sonde_start(&o));
#define RAW(s)                                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
    static const struct {
        const char *p;
        size_t n;
    } inputs[] = {
        RAW("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"),
        RAW("GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"),
        RAW("GET /metrics\x00 HTTP/1.1\r\n\r\n"),
        RAW("GET /metrics HTTP/9.9\r\n\r\n"),
        RAW("\r\n\r\n\r\n"),
        RAW("GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        RAW("GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
            "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        int fd = raw_connect(sonde_listen_port());
        ASSERT(fd >= 0);
        send(fd, inputs[i].p, inputs[i].n, MSG_NOSIGNAL);
        char buf[4096] = "";
        int closed = wait_closed(fd, 3000, buf, sizeof buf);
        /* Either an HTTP error status or a closed connection; never a 200
         * for a malformed request, never a hang. */
        ASSERT(closed || strstr(buf, "HTTP/1.1 4") || strstr(buf, "HTTP/1.1 5"));
        ASSERT(!strstr(buf, "HTTP/1.1 200"));
        close(fd);
    }
    ASSERT_EQ(status_of(U("/status"), NULL), 200);
    sonde_stop();
}

TEST_MAIN()
