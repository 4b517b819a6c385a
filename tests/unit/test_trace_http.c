/* /performance on the server of sonde_start: JSON figures of one or every
 * operation, parameter errors, unknown operations, and the API key. */
#include "test.h"

#include <sonde.h>

#include <curl/curl.h>

#include "trace/trace_int.h"

TEST_MAIN()

struct body {
    char data[65536];
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct body *b = ud;
    size_t add = sz * n;
    if (b->len + add >= sizeof b->data)
        return 0;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static long get(const char *path, const char *key, struct body *b)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sonde_listen_port(), path);
    b->len = 0;
    b->data[0] = '\0';
    CURL *c = curl_easy_init();
    ASSERT(c != NULL);
    struct curl_slist *h = NULL;
    char auth[128];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (h)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static void start(const char *key)
{
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.api_key = key ? key : "";
    o.rate_limit_per_second = -1;
    ASSERT_OK(sonde_start(&o));
}

TEST(test_performance_endpoint_answers_json_figures)
{
    /* Before anything is traced: an empty list, and no tracer created. */
    start(NULL);
    struct body b0;
    ASSERT_EQ(get("/performance", NULL, &b0), 200);
    ASSERT_CONTAINS(b0.data, "\"operations\":[]}");
    ASSERT(sonde__trace_peek() == NULL);
    sonde_stop();
    sonde_trace_opts to;
    sonde_trace_opts_init(&to);
    to.store = "off";
    ASSERT_OK(sonde_trace_start(&to));
    start(NULL);
    for (int i = 0; i < 10; i++)
        sonde_op_end(sonde_op_begin("git clone"), i != 0);
    sonde_op_end(sonde_op_begin("fetch"), 1);
    struct body b;
    ASSERT_EQ(get("/performance", NULL, &b), 200);
    ASSERT_CONTAINS(b.data, "{\"window_minutes\":1440,\"relative_error\":0.01,\"operations\":[");
    ASSERT_CONTAINS(b.data, "\"operation\":\"fetch\"");
    ASSERT_CONTAINS(b.data, "\"operation\":\"git clone\"");
    ASSERT_CONTAINS(b.data, "\"count\":10,\"errors\":1,\"success_rate\":0.9,");
    ASSERT_EQ(get("/performance?operation=git%20clone&hours=2", NULL, &b), 200);
    ASSERT_CONTAINS(b.data, "{\"window_minutes\":120,");
    ASSERT_NOT_CONTAINS(b.data, "fetch");
    ASSERT_CONTAINS(b.data, "\"count\":10");
    ASSERT_EQ(get("/performance?operation=git+clone&minutes=5", NULL, &b), 200);
    ASSERT_CONTAINS(b.data, "{\"window_minutes\":5,");
    ASSERT_EQ(get("/performance?operation=nothing", NULL, &b), 404);
    ASSERT_CONTAINS(b.data, "\"error\":\"no such operation\"");
    ASSERT_EQ(get("/performance?hours=abc", NULL, &b), 400);
    ASSERT_CONTAINS(b.data, "hours must be");
    ASSERT_EQ(get("/performance?hours=0", NULL, &b), 400);
    ASSERT_EQ(get("/performance?hours=1&minutes=5", NULL, &b), 400);
    ASSERT_EQ(get("/performance?operation=%zz", NULL, &b), 400);
    sonde_stop();
    /* With a key: sensitive. */
    start("s3cret-key");
    ASSERT_EQ(get("/performance", NULL, &b), 401);
    ASSERT_EQ(get("/performance", "wrong", &b), 401);
    ASSERT_EQ(get("/performance", "s3cret-key", &b), 200);
    ASSERT_CONTAINS(b.data, "\"operation\":\"fetch\"");
    sonde_stop();
    sonde_trace_stop();
}

TEST(test_performance_query_strings_parse)
{
    sonde__perf_query q;
    char err[128];
    ASSERT_OK(sonde__perf_query_parse("", 0, &q, err, sizeof err));
    ASSERT_EQ(q.minutes, 1440);
    ASSERT_EQ(q.has_operation, 0);
    const char *s = "x=1&&operation=a%2Fb%26c&hours=24&junk";
    ASSERT_OK(sonde__perf_query_parse(s, strlen(s), &q, err, sizeof err));
    ASSERT_STR_EQ(q.operation, "a/b&c");
    ASSERT_EQ(q.minutes, 1440);
    s = "minutes=7";
    ASSERT_OK(sonde__perf_query_parse(s, strlen(s), &q, err, sizeof err));
    ASSERT_EQ(q.minutes, 7);
    const char *bad[] = {"operation=",        "operation=%", "operation=%4",      "operation=%00x",
                         "hours=-1",          "hours=1x",    "hours=99999999999", "minutes=0",
                         "hours=1&minutes=1", NULL};
    for (int i = 0; bad[i]; i++)
        if (sonde__perf_query_parse(bad[i], strlen(bad[i]), &q, err, sizeof err) != SONDE_EINVAL)
            TEST_FAIL_AT("\"%s\" accepted", bad[i]);
    char longop[400] = "operation=";
    memset(longop + 10, 'a', 200);
    longop[210] = '\0';
    ASSERT_EQ(sonde__perf_query_parse(longop, strlen(longop), &q, err, sizeof err), SONDE_EINVAL);
}
