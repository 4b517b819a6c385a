/*
 * Silences at run time: matchers (equality, regex, negation), states and
 * order of the list, expiry, the retention, the request parser's errors,
 * notifications held back while a silence matches and sent when it is
 * expired, and the /alerts/silences endpoint over HTTP (add, list, expire,
 * bad input, 413, 401 without the key).
 */
#include "test.h"

#include "http_client.h"

#include <sonde.h>

#include "errors/errors_int.h"
#include "errors/silences.h"

#include <stdlib.h>
#include <string.h>

TEST_MAIN()

__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

static double fake_now_v = 1700000000.0;
static double now_fake(void)
{
    double v;
    __atomic_load(&fake_now_v, &v, __ATOMIC_SEQ_CST);
    return v;
}
static double fake_clock(void *ud)
{
    (void)ud;
    return now_fake();
}
static void advance(double s)
{
    double v = now_fake() + s;
    __atomic_store(&fake_now_v, &v, __ATOMIC_SEQ_CST);
}

static sonde_errors *tracker(sonde_registry **reg)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = *reg;
    o.clock = fake_clock;
    o.no_env_notifiers = 1;
    o.no_log = 1;
    o.service_name = "unit";
    sonde_errors *t = NULL;
    ASSERT_OK(sonde_errors_create(&o, &t));
    return t;
}

static void done(sonde_errors *t, sonde_registry *reg)
{
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}

static void add_rule(sonde_errors *t, const char *name, const char *team)
{
    const char *labels[] = {"team", team};
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = name;
    r.kind = SONDE_RULE_ERRORS;
    r.threshold = 1;
    r.window_seconds = 100000;
    r.labels = labels;
    r.label_count = 1;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
}

static void capture(sonde_errors *t)
{
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_HIGH;
    e.type = "E";
    e.message = "boom";
    e.file = "f.c";
    e.line = 1;
    sonde_error_capture(t, &e);
}

/* Evaluate, then the state, silenced flag and notification count of one
 * alert. */
static int state_of(sonde_errors *t, const char *name, int *silenced, uint64_t *notes)
{
    sonde_errors_process(t);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    int st = -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].rule, name) == 0) {
            st = a[i].state;
            if (silenced)
                *silenced = a[i].silenced;
            if (notes)
                *notes = a[i].notifications;
        }
    }
    sonde_free(a);
    return st;
}

static uint64_t add_silence(sonde_errors *t, const sonde_silence_matcher *m, size_t n,
                            double starts, double duration)
{
    sonde_silence_opts o;
    sonde_silence_opts_init(&o);
    o.matchers = m;
    o.matcher_count = n;
    o.starts = starts;
    o.duration = duration;
    o.comment = "maintenance";
    o.created_by = "ops";
    uint64_t id = 0;
    ASSERT_OK(sonde_alerts_silence(t, &o, &id));
    ASSERT_NE(id, 0);
    return id;
}

TEST(test_silence_holds_notifications_back_and_expiry_releases_them)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    add_rule(t, "ApiErrors", "payments");
    add_rule(t, "DbErrors", "storage");
    const sonde_silence_matcher m[] = {{"alertname", "Api.*", 1, 1}, {"team", "storage", 0, 0}};
    uint64_t id = add_silence(t, m, 2, 0, 7200);
    capture(t);
    int sil = -1;
    uint64_t notes = 99;
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(sil, 1);
    ASSERT_EQ(notes, 0);
    ASSERT_EQ(state_of(t, "DbErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(sil, 0);
    ASSERT_EQ(notes, 1);
    /* /alerts shows it silenced and the silence with it. */
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_write_json(t, &b));
    ASSERT_CONTAINS(b.data, "\"silenced\":true");
    ASSERT_CONTAINS(b.data, "\"silences\":[{\"id\":\"");
    ASSERT_CONTAINS(b.data, "{\"name\":\"alertname\",\"value\":\"Api.*\",\"isRegex\":true,"
                            "\"isEqual\":true}");
    sonde_buf_free(&b);
    advance(60);
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 0);
    /* Expired: the firing alert is told at the next evaluation. */
    ASSERT_OK(sonde_alerts_expire_silence(t, id));
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(sil, 0);
    ASSERT_EQ(notes, 1);
    /* Expiring again is fine; an unknown id is not found. */
    ASSERT_OK(sonde_alerts_expire_silence(t, id));
    ASSERT_EQ(sonde_alerts_expire_silence(t, id ^ 1), SONDE_ENOTFOUND);
    /* /alerts lists current silences only; the full list keeps it. */
    ASSERT_OK(sonde_alerts_write_json(t, &b));
    ASSERT_CONTAINS(b.data, "\"silences\":[]");
    sonde_buf_free(&b);
    ASSERT_OK(sonde_alerts_silences_json(t, &b));
    ASSERT_CONTAINS(b.data, "\"status\":{\"state\":\"expired\"}");
    sonde_buf_free(&b);
    done(t, reg);
}

TEST(test_silence_ends_by_itself_and_the_alert_is_told_then)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    add_rule(t, "ApiErrors", "payments");
    const sonde_silence_matcher m[] = {{"team", "payments", 0, 1}};
    add_silence(t, m, 1, 0, 300);
    capture(t);
    uint64_t notes;
    int sil;
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 0);
    advance(299);
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 0);
    advance(1);
    ASSERT_EQ(state_of(t, "ApiErrors", &sil, &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    ASSERT_EQ(sil, 0);
    done(t, reg);
}

TEST(test_silence_list_has_states_in_order)
{
    __atomic_store(&fake_now_v, &(double){1700000000.0}, __ATOMIC_SEQ_CST);
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    const sonde_silence_matcher m[] = {{"alertname", "A", 0, 1}};
    uint64_t gone = add_silence(t, m, 1, 0, 100);
    uint64_t later = add_silence(t, m, 1, now_fake() + 3600, 60);
    uint64_t soon = add_silence(t, m, 1, 0, 600);
    uint64_t long_one = add_silence(t, m, 1, 0, 6000);
    ASSERT_OK(sonde_alerts_expire_silence(t, gone));
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_silences_json(t, &b));
    char ids[4][17];
    sonde__silence_id_format(soon, ids[0]);
    sonde__silence_id_format(long_one, ids[1]);
    sonde__silence_id_format(later, ids[2]);
    sonde__silence_id_format(gone, ids[3]);
    const char *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = strstr(b.data, ids[i]);
        ASSERT(p[i] != NULL);
    }
    /* Active by end, then pending, then expired. */
    ASSERT(p[0] < p[1] && p[1] < p[2] && p[2] < p[3]);
    ASSERT_CONTAINS(b.data, "\"state\":\"pending\"");
    ASSERT_CONTAINS(b.data, "\"comment\":\"maintenance\",\"createdBy\":\"ops\"");
    /* The pending one starts an hour from now and lasts a minute. */
    ASSERT_CONTAINS(b.data, "\"startsAt\":\"2023-11-14T23:13:20.000Z\","
                            "\"endsAt\":\"2023-11-14T23:14:20.000Z\"");
    sonde_buf_free(&b);
    done(t, reg);
}

TEST(test_expired_silences_are_kept_for_the_retention)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    ASSERT_OK(sonde_alerts_set_silence_retention(t, 3600));
    ASSERT_EQ(sonde_alerts_set_silence_retention(t, -1), SONDE_EINVAL);
    const sonde_silence_matcher m[] = {{"alertname", "A", 0, 1}};
    uint64_t id = add_silence(t, m, 1, 0, 60);
    char hex[17];
    sonde__silence_id_format(id, hex);
    advance(61 + 3500);
    sonde_errors_process(t);
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_silences_json(t, &b));
    ASSERT_CONTAINS(b.data, hex);
    sonde_buf_free(&b);
    advance(200);
    sonde_errors_process(t);
    ASSERT_OK(sonde_alerts_silences_json(t, &b));
    ASSERT_STR_EQ(b.data, "[]");
    sonde_buf_free(&b);
    done(t, reg);
}

TEST(test_bad_silences_are_refused_with_the_reason)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg);
    sonde_silence_opts o;
    struct {
        sonde_silence_matcher m;
        double duration, ends;
        const char *why;
    } cases[] = {
        {{"alertname", "", 0, 1}, 60, 0, "must not match the empty string"},
        {{"alertname", "x", 0, 0}, 60, 0, "must not match the empty string"},
        {{"alertname", ".*", 1, 1}, 60, 0, "must not match the empty string"},
        {{"alertname", "(", 1, 1}, 60, 0, "bad regular expression"},
        {{"bad-name", "x", 0, 1}, 60, 0, "bad label name"},
        {{"alertname", "x", 0, 1}, 0, 0, "needs an end time or a duration"},
        {{"alertname", "x", 0, 1}, 0, 1000, "ends before it starts"},
        {{"alertname", "x", 0, 1}, -5, 0, "not negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sonde_silence_opts_init(&o);
        o.matchers = &cases[i].m;
        o.matcher_count = 1;
        o.duration = cases[i].duration;
        o.ends = cases[i].ends;
        uint64_t id = 7;
        ASSERT_EQ(sonde_alerts_silence(t, &o, &id), SONDE_EINVAL);
        ASSERT_EQ(id, 0);
        ASSERT_CONTAINS(sonde_last_error(), cases[i].why);
    }
    /* Ends in the past (starts given, before now). */
    sonde_silence_matcher m = {"alertname", "x", 0, 1};
    sonde_silence_opts_init(&o);
    o.matchers = &m;
    o.matcher_count = 1;
    o.starts = now_fake() - 100;
    o.duration = 50;
    ASSERT_EQ(sonde_alerts_silence(t, &o, NULL), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "ends in the past");
    o.matchers = NULL;
    ASSERT_EQ(sonde_alerts_silence(t, &o, NULL), SONDE_EINVAL);
    /* The older pairs API still works and removes at once. */
    const char *pairs[] = {"alertname", "A"};
    uint64_t id;
    ASSERT_OK(sonde_alerts_add_silence(t, pairs, 1, 0, now_fake() + 60, NULL, &id));
    ASSERT_OK(sonde_alerts_remove_silence(t, id));
    ASSERT_EQ(sonde_alerts_remove_silence(t, id), SONDE_ENOTFOUND);
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_silences_json(t, &b));
    ASSERT_STR_EQ(b.data, "[]");
    sonde_buf_free(&b);
    done(t, reg);
}

static const char *parse_error(const char *body)
{
    static char err[256];
    sonde__silence_req r;
    if (sonde__silence_req_parse(body, strlen(body), &r, err, sizeof err) == SONDE_OK) {
        sonde__silence_req_free(&r);
        return "(parsed)";
    }
    return err;
}

TEST(test_request_parser_takes_both_matcher_forms_and_names_problems)
{
    sonde__silence_req r;
    char err[256];
    const char *body = "{\"matchers\":[{\"name\":\"alertname\",\"value\":\"X\",\"isRegex\":false,"
                       "\"isEqual\":true},\"service=~api|web\",\"env != prod\",\"a!~b.*\","
                       "\"q=\\\"quoted\\\"\"],\"startsAt\":\"2026-01-02T03:04:05Z\","
                       "\"endsAt\":\"2026-01-02T05:04:05Z\",\"comment\":\"c\",\"createdBy\":\"me\","
                       "\"id\":\"\"}";
    ASSERT_OK(sonde__silence_req_parse(body, strlen(body), &r, err, sizeof err));
    ASSERT_EQ(r.n, 5);
    ASSERT_STR_EQ(r.m[0].name, "alertname");
    ASSERT(!r.m[0].is_regex && r.m[0].is_equal);
    ASSERT_STR_EQ(r.m[1].name, "service");
    ASSERT_STR_EQ(r.m[1].value, "api|web");
    ASSERT(r.m[1].is_regex && r.m[1].is_equal);
    ASSERT_STR_EQ(r.m[2].name, "env");
    ASSERT_STR_EQ(r.m[2].value, "prod");
    ASSERT(!r.m[2].is_regex && !r.m[2].is_equal);
    ASSERT(r.m[3].is_regex && !r.m[3].is_equal);
    ASSERT_STR_EQ(r.m[4].value, "quoted");
    ASSERT_DBL_EQ(r.ends - r.starts, 7200);
    ASSERT_STR_EQ(r.comment, "c");
    ASSERT_STR_EQ(r.created_by, "me");
    sonde__silence_req_free(&r);

    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"2h\"}"), "(parsed)");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"duration\":90}"), "(parsed)");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],"),
                  "body is not JSON: unexpected end: expected a key at byte 20");
    ASSERT_STR_EQ(parse_error("[]"), "body: expected a JSON object, not array");
    ASSERT_STR_EQ(parse_error("{\"duration\":\"1h\"}"),
                  "matchers: missing (an array of at least one matcher)");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"]}"), "endsAt or duration: one is required");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"1h\","
                              "\"endsAt\":\"2030-01-01T00:00:00Z\"}"),
                  "endsAt and duration: give one, not both");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"ab\"],\"duration\":\"1h\"}"),
                  "matcher \"ab\": expected name=value, name!=value, name=~regex or name!~regex");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"1a=b\"],\"duration\":\"1h\"}"),
                  "matcher \"1a=b\": bad label name \"1a\"");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[{\"name\":\"a\"}],\"duration\":\"1h\"}"),
                  "matchers[0]: needs \"name\" and \"value\"");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[{\"name\":\"a\",\"value\":\"b\",\"isRegex\":1}],"
                              "\"duration\":\"1h\"}"),
                  "matchers[0].isRegex: expected true or false");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[7],\"duration\":\"1h\"}"),
                  "matchers[0]: expected an object or a \"name=value\" string");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"soon\"}"),
                  "duration: expected a positive duration such as \"2h\" or \"90m\", or seconds");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"endsAt\":\"tomorrow\"}"),
                  "endsAt: expected an RFC 3339 time such as \"2026-01-02T15:04:05Z\"");
    ASSERT_STR_EQ(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"1h\",\"comment\":5}"),
                  "comment: expected a string, not number");
    ASSERT_CONTAINS(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"1h\",\"author\":\"x\"}"),
                    "unknown member \"author\"");
    ASSERT_CONTAINS(parse_error("{\"matchers\":[\"a=b\"],\"duration\":\"1h\",\"id\":\"abc\"}"),
                    "changing a silence is not supported");
}

TEST(test_silence_ids_round_trip)
{
    char hex[17];
    uint64_t id;
    sonde__silence_id_format(0x0123456789abcdefull, hex);
    ASSERT_STR_EQ(hex, "0123456789abcdef");
    ASSERT_OK(sonde__silence_id_parse(hex, &id));
    ASSERT_U64_EQ(id, 0x0123456789abcdefull);
    ASSERT_OK(sonde__silence_id_parse("0123456789ABCDEF", &id));
    ASSERT_EQ(sonde__silence_id_parse("0123456789abcde", &id), SONDE_EINVAL);
    ASSERT_EQ(sonde__silence_id_parse("0123456789abcdef0", &id), SONDE_EINVAL);
    ASSERT_EQ(sonde__silence_id_parse("0123456789abcdeg", &id), SONDE_EINVAL);
    ASSERT_EQ(sonde__silence_id_parse("0000000000000000", &id), SONDE_EINVAL);
}

/* ---- over HTTP ---- */

static char url[256];
static const char *U(const char *path)
{
    return url_of(url, sizeof url, "127.0.0.1", sonde_listen_port(), path);
}

static http_resp call(const char *method, const char *path, const char *key, const char *body)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key ? key : "");
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    http_req rq = {.method = method, .headers = key ? headers : headers + 1, .body = body};
    return http_do(U(path), &rq);
}

TEST(test_silences_endpoint_adds_lists_expires_and_refuses_bad_input)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    eo.no_env_notifiers = 1;
    eo.no_log = 1;
    eo.tick_ms = 5;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&eo, &t));
    sonde_start_opts o;
    sonde_start_opts_init(&o);
    o.listen = "127.0.0.1:0";
    o.api_key = "secret-key";
    o.errors = t;
    ASSERT_OK(sonde_start(&o));

    const char *good = "{\"matchers\":[\"alertname=Disk\",{\"name\":\"team\",\"value\":\"ops|db\","
                       "\"isRegex\":true}],\"duration\":\"2h\",\"comment\":\"swap disk\","
                       "\"createdBy\":\"alice\"}";
    /* The key is required, for every method. */
    http_resp h = call("POST", "/alerts/silences", NULL, good);
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    h = call("POST", "/alerts/silences", "wrong", good);
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    h = call(NULL, "/alerts/silences", NULL, NULL);
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    h = call("DELETE", "/alerts/silences/0123456789abcdef", NULL, NULL);
    ASSERT_EQ(h.status, 401);
    http_free(&h);
    /* Nothing was added by those. */
    h = call(NULL, "/alerts/silences", "secret-key", NULL);
    ASSERT_EQ(h.status, 200);
    ASSERT_STR_EQ(h.body, "[]\n");
    http_free(&h);

    h = call("POST", "/alerts/silences", "secret-key", good);
    ASSERT_EQ(h.status, 201);
    ASSERT_CONTAINS(h.body, "{\"silenceID\":\"");
    char id[17] = "";
    const char *p = strstr(h.body, "\"silenceID\":\"");
    ASSERT(p != NULL);
    memcpy(id, p + 13, 16);
    http_free(&h);

    h = call(NULL, "/alerts/silences", "secret-key", NULL);
    ASSERT_EQ(h.status, 200);
    ASSERT_CONTAINS(h.body, id);
    ASSERT_CONTAINS(h.body, "\"status\":{\"state\":\"active\"}");
    ASSERT_CONTAINS(h.body, "{\"name\":\"team\",\"value\":\"ops|db\",\"isRegex\":true,"
                            "\"isEqual\":true}");
    ASSERT_CONTAINS(h.body, "\"createdBy\":\"alice\"");
    http_free(&h);

    /* Bad bodies: 400 naming the problem. */
    h = call("POST", "/alerts/silences", "secret-key", "{\"matchers\":[\"alertname=X\"]}");
    ASSERT_EQ(h.status, 400);
    ASSERT_CONTAINS(h.body, "endsAt or duration: one is required");
    http_free(&h);
    h = call("POST", "/alerts/silences", "secret-key", "{\"matchers\":[\"x=~(\"],\"duration\":60}");
    ASSERT_EQ(h.status, 400);
    ASSERT_CONTAINS(h.body, "bad regular expression");
    http_free(&h);
    h = call("POST", "/alerts/silences", "secret-key", "not json");
    ASSERT_EQ(h.status, 400);
    ASSERT_CONTAINS(h.body, "body is not JSON: unexpected character: expected a value at byte 0");
    http_free(&h);
    h = call("POST", "/alerts/silences", "secret-key", "");
    ASSERT_EQ(h.status, 400);
    http_free(&h);
    /* Past the body limit: 413. */
    size_t big = SONDE__SILENCE_MAX_BODY + 100;
    char *large = malloc(big + 1);
    ASSERT(large != NULL);
    memset(large, ' ', big);
    memcpy(large, "{\"comment\":\"", 12);
    large[big - 2] = '"';
    large[big - 1] = '}';
    large[big] = '\0';
    h = call("POST", "/alerts/silences", "secret-key", large);
    ASSERT_EQ(h.status, 413);
    http_free(&h);
    free(large);

    /* Expire: 200, listed as expired; unknown: 404. */
    char path[64];
    snprintf(path, sizeof path, "/alerts/silences/%s", id);
    h = call("DELETE", path, "secret-key", NULL);
    ASSERT_EQ(h.status, 200);
    http_free(&h);
    h = call(NULL, "/alerts/silences", "secret-key", NULL);
    ASSERT_CONTAINS(h.body, "\"status\":{\"state\":\"expired\"}");
    http_free(&h);
    h = call("DELETE", "/alerts/silences/0123456789abcdef", "secret-key", NULL);
    ASSERT_EQ(h.status, 404);
    ASSERT_CONTAINS(h.body, "no such silence");
    http_free(&h);
    h = call("DELETE", "/alerts/silences/nothex", "secret-key", NULL);
    ASSERT_EQ(h.status, 404);
    http_free(&h);
    h = call("DELETE", "/alerts/silences", "secret-key", NULL);
    ASSERT_EQ(h.status, 405);
    http_free(&h);
    h = call("PUT", "/alerts/silences", "secret-key", good);
    ASSERT_EQ(h.status, 405);
    http_free(&h);

    sonde_stop();
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
