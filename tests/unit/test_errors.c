/*
 * Error tracking and alerting: normalisation, fingerprints and groups,
 * the capture queue's bound, rules with a controllable clock ("for",
 * deduplication, repeat, silences, resolution), the JSON documents.
 * Deliveries to real receivers are in tests/integration/.
 */
#include "test.h"

#include <sonde.h>

#include "errors/errors_int.h"
#include "errors/errors_query.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

TEST_MAIN()

/* Keep the test output readable: no log lines on stderr (tests that look
 * at log lines add their own sink). */
__attribute__((constructor)) static void quiet_logs(void)
{
    sonde_log_sink_remove_all();
}

/* The controllable clock; the worker reads it too, hence the atomics. */
static double fake_now_v = 1700000000.0;
static double now_fake(void)
{
    double v;
    __atomic_load(&fake_now_v, &v, __ATOMIC_SEQ_CST);
    return v;
}
#define fake_now now_fake()
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

/* A tracker on its own registry with the fake clock. */
static sonde_errors *tracker(sonde_registry **reg, size_t queue, size_t max_groups)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = *reg;
    o.clock = fake_clock;
    o.queue_size = queue;
    o.max_groups = max_groups;
    o.no_env_notifiers = 1;
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

static void capture_at(sonde_errors *t, int sev, const char *type, const char *msg,
                       const char *file, int line)
{
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = sev;
    e.type = type;
    e.message = msg;
    e.file = file;
    e.line = line;
    e.func = "handler";
    sonde_error_capture(t, &e);
}

static void norm(const char *in, const char *want)
{
    char out[256];
    size_t n = sonde__err_normalize(in, strlen(in), out, sizeof out);
    out[n] = '\0';
    ASSERT_STR_EQ(out, want);
}

TEST(test_normaliser_replaces_numbers_ids_hex_and_uuids)
{
    norm("user 4711 not found", "user <n> not found");
    norm("timeout after 30.5s", "timeout after <n>.<id>");
    norm("object 0xdeadBEEF freed", "object <hex> freed");
    norm("commit 3f2a9c1d7e not found", "commit <hex> not found");
    norm("request 123e4567-e89b-12d3-a456-426614174000 failed", "request <uuid> failed");
    norm("order ord_8f3KzQ2 rejected", "order ord_<id> rejected");
    norm("connect to 10.0.0.12:5432 refused", "connect to <n>.<n>.<n>.<n>:<n> refused");
    norm("plain words stay", "plain words stay");
    norm("", "");
    /* Words without digits are kept even when they are hex letters. */
    norm("bad deadbeef cafe", "bad deadbeef cafe");
    /* The output is cut at a token edge, never overflowing. */
    char small[8];
    size_t n = sonde__err_normalize("abc 12345678901234", 18, small, sizeof small);
    ASSERT_LE(n, sizeof small);
}

TEST(test_severity_names_parse_and_round_trip)
{
    for (int s = 1; s <= 4; s++)
        ASSERT_EQ(sonde_severity_parse(sonde_severity_name(s)), s);
    ASSERT_EQ(sonde_severity_parse("HIGH"), SONDE_SEVERITY_HIGH);
    ASSERT_EQ(sonde_severity_parse("warning"), SONDE_SEVERITY_MEDIUM);
    ASSERT_EQ(sonde_severity_parse("3"), SONDE_SEVERITY_HIGH);
    ASSERT_EQ(sonde_severity_parse("urgent"), SONDE_EINVAL);
    ASSERT_STR_EQ(sonde_severity_name(9), "unknown");
}

TEST(test_same_error_with_different_ids_lands_in_one_group)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    capture_at(t, SONDE_SEVERITY_HIGH, "DatabaseError", "user 42 not found in shard 7", "src/db.c",
               10);
    capture_at(t, SONDE_SEVERITY_HIGH, "DatabaseError", "user 4711 not found in shard 3",
               "src/db.c", 10);
    capture_at(t, SONDE_SEVERITY_LOW, "DatabaseError",
               "user 9 not found in shard 123e4567-e89b-12d3-a456-426614174000",
               "/other/build/src/db.c", 10);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    /* The third differs in its normalised message (<uuid> vs <n>). */
    ASSERT_EQ(n, 2);
    const sonde_error_group *two = g[0].count == 2 ? &g[0] : &g[1];
    ASSERT_EQ(two->count, 2);
    ASSERT_STR_EQ(two->title, "DatabaseError: user <n> not found in shard <n>");
    ASSERT_STR_EQ(two->message, "user 4711 not found in shard 3");
    ASSERT_STR_EQ(two->file, "src/db.c");
    ASSERT_EQ(two->line, 10);
    ASSERT_EQ(two->severity, SONDE_SEVERITY_HIGH);
    sonde_free(g);
    done(t, reg);
}

TEST(test_different_locations_make_two_groups)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    capture_at(t, SONDE_SEVERITY_HIGH, "IOError", "disk full", "src/a.c", 10);
    capture_at(t, SONDE_SEVERITY_HIGH, "IOError", "disk full", "src/a.c", 20);
    capture_at(t, SONDE_SEVERITY_HIGH, "IOError", "disk full", "src/b.c", 10);
    /* The same base name in another directory is the same location. */
    capture_at(t, SONDE_SEVERITY_HIGH, "IOError", "disk full", "/elsewhere/src/a.c", 10);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 3);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += g[i].count;
    ASSERT_EQ(total, 4);
    sonde_free(g);
    done(t, reg);
}

TEST(test_explicit_fingerprint_and_type_separate_groups)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.type = "A";
    e.message = "first";
    e.fingerprint = "payment-provider-down";
    sonde_error_capture(t, &e);
    e.message = "second, different text";
    e.line = 99;
    sonde_error_capture(t, &e);
    capture_at(t, SONDE_SEVERITY_HIGH, "TypeOne", "same text", "x.c", 1);
    capture_at(t, SONDE_SEVERITY_HIGH, "TypeTwo", "same text", "x.c", 1);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 3);
    sonde_free(g);
    done(t, reg);
}

TEST(test_group_keeps_first_last_count_and_last_sample_with_context)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    double t0 = fake_now;
    const char *ctx[] = {"query", "SELECT 1", "shard", "3"};
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_MEDIUM;
    e.type = "DatabaseError";
    e.message = "query failed";
    e.operation = "checkout";
    e.context = ctx;
    e.context_count = 2;
    e.errnum = ECONNREFUSED;
    e.backtrace = 1;
    SONDE_ERROR_HERE(&e);
    for (int i = 0; i < 3; i++) {
        sonde_error_capture(t, &e);
        advance(10);
    }
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(g[0].count, 3);
    ASSERT_DBL_NEAR(g[0].first_seen, t0, 1e-3);
    ASSERT_DBL_NEAR(g[0].last_seen, t0 + 20, 1e-3);
    ASSERT_STR_EQ(g[0].operation, "checkout");
    ASSERT_EQ(g[0].errnum, ECONNREFUSED);
    ASSERT_STR_EQ(g[0].func, __func__);
    ASSERT_EQ(strlen(g[0].fingerprint), 16);
    sonde_free(g);

    sonde_buf b = {0};
    ASSERT_OK(sonde_errors_write_json(t, NULL, &b));
    ASSERT_CONTAINS(b.data, "\"total_groups\":1");
    ASSERT_CONTAINS(b.data, "\"count\":3");
    ASSERT_CONTAINS(b.data, "\"context\":{\"query\":\"SELECT 1\",\"shard\":\"3\"}");
    ASSERT_CONTAINS(b.data, "\"errno\":111");
    ASSERT_CONTAINS(b.data, "\"operation\":\"checkout\"");
    ASSERT_CONTAINS(b.data, "\"backtrace\":[\"");
    ASSERT_CONTAINS(b.data, "\"severity\":\"medium\"");
    sonde_buf_free(&b);
    done(t, reg);
}

TEST(test_filters_by_severity_since_type_and_limit)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    capture_at(t, SONDE_SEVERITY_LOW, "Minor", "old low", "f.c", 1);
    advance(3600);
    capture_at(t, SONDE_SEVERITY_HIGH, "Major", "recent high", "f.c", 2);
    capture_at(t, SONDE_SEVERITY_CRITICAL, "Major", "recent critical", "f.c", 3);
    sonde_errors_process(t);
    sonde_errors_filter f = {0};
    sonde_error_group *g;
    size_t n;
    f.min_severity = SONDE_SEVERITY_HIGH;
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 2);
    sonde_free(g);
    memset(&f, 0, sizeof f);
    f.since = fake_now - 60;
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 2);
    sonde_free(g);
    memset(&f, 0, sizeof f);
    f.type = "Minor";
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(g[0].message, "old low");
    sonde_free(g);
    memset(&f, 0, sizeof f);
    f.limit = 1;
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 1);
    sonde_free(g);
    /* The same through the /errors query parser. */
    char type[65];
    const char *why = NULL;
    const char *q = "severity=high&since=30m&type=Ma%6aor";
    ASSERT_OK(sonde__errors_filter_from_query(q, strlen(q), fake_now, &f, type, sizeof type, &why));
    ASSERT_EQ(f.min_severity, SONDE_SEVERITY_HIGH);
    ASSERT_DBL_NEAR(f.since, fake_now - 1800, 1e-6);
    ASSERT_STR_EQ(f.type, "Major");
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 2);
    sonde_free(g);
    q = "severity=urgent";
    ASSERT_EQ(sonde__errors_filter_from_query(q, strlen(q), fake_now, &f, type, sizeof type, &why),
              SONDE_EINVAL);
    ASSERT_CONTAINS(why, "severity");
    done(t, reg);
}

TEST(test_duration_and_since_parsers)
{
    double d;
    ASSERT_OK(sonde__parse_duration("90", &d));
    ASSERT_DBL_EQ(d, 90);
    ASSERT_OK(sonde__parse_duration("1h30m", &d));
    ASSERT_DBL_EQ(d, 5400);
    ASSERT_OK(sonde__parse_duration("250ms", &d));
    ASSERT_DBL_EQ(d, 0.25);
    ASSERT_OK(sonde__parse_duration("7d", &d));
    ASSERT_DBL_EQ(d, 604800);
    ASSERT_EQ(sonde__parse_duration("1y", &d), SONDE_EPARSE);
    ASSERT_EQ(sonde__parse_duration("-5m", &d), SONDE_EPARSE);
    ASSERT_EQ(sonde__parse_duration("", &d), SONDE_EPARSE);
    ASSERT_OK(sonde__parse_rfc3339("2023-11-14T22:13:20Z", &d));
    ASSERT_DBL_EQ(d, 1700000000);
    ASSERT_OK(sonde__parse_rfc3339("2023-11-15T00:13:20.5+02:00", &d));
    ASSERT_DBL_EQ(d, 1700000000.5);
    ASSERT_OK(sonde__parse_since("1700000000", 1800000000, &d));
    ASSERT_DBL_EQ(d, 1700000000);
    ASSERT_OK(sonde__parse_since("1h", 1800000000, &d));
    ASSERT_DBL_EQ(d, 1800000000 - 3600);
}

TEST(test_full_queue_drops_and_counts_never_blocks)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 16, 0);
    for (int i = 0; i < 20; i++)
        capture_at(t, SONDE_SEVERITY_HIGH, "Flood", "x", "f.c", 1);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(g[0].count, 16);
    sonde_free(g);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_errors_dropped_total 4");
    /* Every capture is counted in the metric, dropped or not. */
    ASSERT_CONTAINS(text, "sonde_errors_total{severity=\"high\",type=\"Flood\"} 20");
    ASSERT_CONTAINS(text, "sonde_error_groups 1");
    sonde_free(text);
    /* Drained: room again. */
    capture_at(t, SONDE_SEVERITY_HIGH, "Flood", "x", "f.c", 1);
    sonde_errors_process(t);
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(g[0].count, 17);
    sonde_free(g);
    done(t, reg);
}

TEST(test_group_table_forgets_least_recently_seen_and_prunes_old)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 3);
    capture_at(t, SONDE_SEVERITY_HIGH, "A", "a", "f.c", 1);
    capture_at(t, SONDE_SEVERITY_HIGH, "B", "b", "f.c", 1);
    capture_at(t, SONDE_SEVERITY_HIGH, "C", "c", "f.c", 1);
    capture_at(t, SONDE_SEVERITY_HIGH, "A", "a", "f.c", 1); /* A is recent again */
    capture_at(t, SONDE_SEVERITY_HIGH, "D", "d", "f.c", 1); /* evicts B */
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 3);
    ASSERT_STR_EQ(g[0].type, "D");
    ASSERT_STR_EQ(g[1].type, "A");
    ASSERT_STR_EQ(g[2].type, "C");
    sonde_free(g);
    /* Thirty-one days later a fresh error arrives; the old groups go. */
    advance(31 * 86400.0);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "e", "f.c", 1);
    sonde_errors_process(t);
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(g[0].type, "E");
    sonde_free(g);
    done(t, reg);
}

/* ---- rules ---- */

static const sonde_alert *find_alert(const sonde_alert *a, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].rule, name) == 0)
            return &a[i];
    return NULL;
}

/* State and notification count of a rule after processing. */
static int state_of(sonde_errors *t, const char *name, uint64_t *notifications)
{
    sonde_errors_process(t);
    sonde_alert *a;
    size_t n;
    if (sonde_alerts_get(t, 0, &a, &n) != SONDE_OK)
        return -1;
    const sonde_alert *x = find_alert(a, n, name);
    int s = x ? x->state : -1;
    if (notifications)
        *notifications = x ? x->notifications : 0;
    sonde_free(a);
    return s;
}

static void add_errors_rule(sonde_errors *t, const char *name, int min_sev, uint64_t threshold,
                            double window, double for_s, double repeat_s)
{
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = name;
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = min_sev;
    r.threshold = threshold;
    r.window_seconds = window;
    r.for_seconds = for_s;
    r.repeat_seconds = repeat_s;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
}

TEST(test_error_threshold_fires_within_window_and_resolves_when_it_slides)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    add_errors_rule(t, "HighErrors", SONDE_SEVERITY_HIGH, 3, 60, 0, 0);
    uint64_t notes;
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    capture_at(t, SONDE_SEVERITY_LOW, "E", "below the severity", "f.c", 2);
    capture_at(t, SONDE_SEVERITY_LOW, "E", "below the severity", "f.c", 2);
    ASSERT_EQ(state_of(t, "HighErrors", &notes), SONDE_ALERT_INACTIVE);
    advance(30);
    capture_at(t, SONDE_SEVERITY_CRITICAL, "E", "x", "f.c", 1);
    ASSERT_EQ(state_of(t, "HighErrors", NULL), SONDE_ALERT_INACTIVE);
    advance(29);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    ASSERT_EQ(state_of(t, "HighErrors", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    /* Still three within the window: still firing, not notified again. */
    advance(0.5);
    ASSERT_EQ(state_of(t, "HighErrors", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    /* The first error leaves the window: resolved, and notified. */
    advance(1);
    ASSERT_EQ(state_of(t, "HighErrors", &notes), SONDE_ALERT_RESOLVED);
    ASSERT_EQ(notes, 2);
    sonde_alert *h;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &h, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(h[0].state, SONDE_ALERT_RESOLVED);
    ASSERT_DBL_NEAR(h[0].resolved_at - h[0].fired_at, 1.5, 1e-6);
    ASSERT_CONTAINS(h[0].summary, "3 errors of severity >= high within 1m (threshold 3)");
    sonde_free(h);
    done(t, reg);
}

TEST(test_error_rule_filters_by_type_and_operation)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "PaymentErrors";
    r.kind = SONDE_RULE_ERRORS;
    r.type = "PaymentError";
    r.operation = "checkout";
    r.threshold = 2;
    r.window_seconds = 60;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.type = "PaymentError";
    e.operation = "refund";
    sonde_error_capture(t, &e);
    e.type = "OtherError";
    e.operation = "checkout";
    sonde_error_capture(t, &e);
    ASSERT_EQ(state_of(t, "PaymentErrors", NULL), SONDE_ALERT_INACTIVE);
    e.type = "PaymentError";
    sonde_error_capture(t, &e);
    sonde_error_capture(t, &e);
    ASSERT_EQ(state_of(t, "PaymentErrors", NULL), SONDE_ALERT_FIRING);
    done(t, reg);
}

TEST(test_for_duration_keeps_alert_pending_until_it_elapses)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 256, 0);
    add_errors_rule(t, "Sustained", 0, 1, 120, 30, 0);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    uint64_t notes;
    ASSERT_EQ(state_of(t, "Sustained", &notes), SONDE_ALERT_PENDING);
    advance(29);
    ASSERT_EQ(state_of(t, "Sustained", &notes), SONDE_ALERT_PENDING);
    ASSERT_EQ(notes, 0);
    advance(1);
    ASSERT_EQ(state_of(t, "Sustained", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    /* A condition that clears while pending never fires. */
    add_errors_rule(t, "Blip", 0, 1, 10, 60, 0);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    ASSERT_EQ(state_of(t, "Blip", NULL), SONDE_ALERT_PENDING);
    advance(11);
    ASSERT_EQ(state_of(t, "Blip", &notes), SONDE_ALERT_INACTIVE);
    ASSERT_EQ(notes, 0);
    sonde_alert *h;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &h, &n));
    ASSERT_EQ(n, 1); /* only Sustained fired */
    ASSERT_STR_EQ(h[0].rule, "Sustained");
    sonde_free(h);
    done(t, reg);
}

TEST(test_repeat_interval_renotifies_a_firing_alert_and_dedups_in_between)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 256, 0);
    add_errors_rule(t, "Repeat", 0, 1, 100000, 0, 600);
    add_errors_rule(t, "Never", 0, 1, 100000, 0, -1);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    uint64_t notes;
    ASSERT_EQ(state_of(t, "Repeat", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    for (int i = 0; i < 5; i++) {
        /* More errors and evaluations: one alert, no new notification. */
        capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
        advance(100);
        ASSERT_EQ(state_of(t, "Repeat", &notes), SONDE_ALERT_FIRING);
        ASSERT_EQ(notes, 1);
    }
    advance(100);
    ASSERT_EQ(state_of(t, "Repeat", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 2);
    advance(599);
    ASSERT_EQ(state_of(t, "Repeat", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 2);
    advance(1);
    ASSERT_EQ(state_of(t, "Repeat", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 3);
    ASSERT_EQ(state_of(t, "Never", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    done(t, reg);
}

TEST(test_silence_suppresses_then_notifies_when_it_ends)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 256, 0);
    add_errors_rule(t, "Noisy", 0, 1, 100000, 0, -1);
    add_errors_rule(t, "Other", 0, 1, 100000, 0, -1);
    const char *m[] = {"alertname", "Noisy", "service", "unit"};
    uint64_t id;
    ASSERT_OK(sonde_alerts_add_silence(t, m, 2, 0, fake_now + 300, "maintenance", &id));
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    uint64_t notes;
    ASSERT_EQ(state_of(t, "Noisy", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 0);
    ASSERT_EQ(state_of(t, "Other", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    sonde_buf b = {0};
    ASSERT_OK(sonde_alerts_write_json(t, &b));
    ASSERT_CONTAINS(b.data, "\"rule\":\"Noisy\",\"kind\":\"errors\",\"state\":\"firing\"");
    ASSERT_CONTAINS(b.data, "\"silenced\":true");
    ASSERT_CONTAINS(b.data, "\"comment\":\"maintenance\"");
    sonde_buf_free(&b);
    advance(299);
    ASSERT_EQ(state_of(t, "Noisy", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 0);
    advance(1);
    ASSERT_EQ(state_of(t, "Noisy", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    /* A matcher on another value silences nothing; removal works. */
    const char *m2[] = {"alertname", "Nobody"};
    ASSERT_OK(sonde_alerts_add_silence(t, m2, 1, 0, fake_now + 300, NULL, &id));
    ASSERT_OK(sonde_alerts_remove_silence(t, id));
    ASSERT_EQ(sonde_alerts_remove_silence(t, id), SONDE_ENOTFOUND);
    done(t, reg);
}

TEST(test_resolution_of_a_never_notified_alert_is_not_sent)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 256, 0);
    add_errors_rule(t, "Quiet", 0, 1, 60, 0, -1);
    const char *m[] = {"alertname", "Quiet"};
    ASSERT_OK(sonde_alerts_add_silence(t, m, 1, 0, fake_now + 3600, NULL, NULL));
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    uint64_t notes;
    ASSERT_EQ(state_of(t, "Quiet", &notes), SONDE_ALERT_FIRING);
    advance(61);
    ASSERT_EQ(state_of(t, "Quiet", &notes), SONDE_ALERT_RESOLVED);
    ASSERT_EQ(notes, 0);
    done(t, reg);
}

TEST(test_removed_rule_resolves_its_alert)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 256, 0);
    add_errors_rule(t, "Temp", 0, 1, 600, 0, -1);
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    ASSERT_EQ(state_of(t, "Temp", NULL), SONDE_ALERT_FIRING);
    ASSERT_OK(sonde_alerts_remove_rule(t, "Temp"));
    ASSERT_EQ(state_of(t, "Temp", NULL), -1);
    sonde_alert *h;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &h, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(h[0].state, SONDE_ALERT_RESOLVED);
    sonde_free(h);
    ASSERT_EQ(sonde_alerts_remove_rule(t, "Temp"), SONDE_ENOTFOUND);
    done(t, reg);
}

TEST(test_rule_validation_reports_reasons)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "bad name";
    r.kind = SONDE_RULE_ERRORS;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "invalid name");
    r.name = "Rate";
    r.kind = SONDE_RULE_FAILURE_RATE;
    r.percent = 10;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    ASSERT_CONTAINS(sonde_last_error(), "needs an operation");
    r.operation = "clone";
    r.percent = 0;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    r.percent = 10;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_ECONFLICT);
    r.name = "Labels";
    const char *bad_labels[] = {"alertname", "x"};
    r.labels = bad_labels;
    r.label_count = 1;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    r.labels = NULL;
    r.label_count = 0;
    r.window_seconds = -1;
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_EINVAL);
    /* Failure-rate rules stay unknown until tracing measures the
     * operation. */
    ASSERT_EQ(state_of(t, "Rate", NULL), SONDE_ALERT_INACTIVE);
    done(t, reg);
}

/* ---- health rule ---- */

static volatile int health_mode;
static sonde_health_status controlled(sonde_health_result *res, void *ud)
{
    (void)ud;
    sonde_health_result_set_message(res, "mode %d", health_mode);
    return health_mode ? SONDE_HEALTH_UNHEALTHY : SONDE_HEALTH_HEALTHY;
}
static sonde_health_status always_ok(sonde_health_result *res, void *ud)
{
    (void)res;
    (void)ud;
    return SONDE_HEALTH_HEALTHY;
}

TEST(test_health_rule_fires_below_percentage_and_resolves)
{
    sonde_registry *reg, *hreg;
    sonde_errors *t = tracker(&reg, 64, 0);
    ASSERT_OK(sonde_registry_create(NULL, &hreg));
    sonde_health_opts ho = {.registry = hreg};
    sonde_health *h;
    ASSERT_OK(sonde_health_create(&ho, &h));
    sonde_health_check_opts co;
    sonde_health_check_opts_init(&co);
    co.name = "db";
    ASSERT_OK(sonde_health_add(h, &co, controlled, NULL));
    co.name = "disk";
    ASSERT_OK(sonde_health_add(h, &co, always_ok, NULL));
    ASSERT_OK(sonde_health_start(h));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "HealthDegraded";
    r.kind = SONDE_RULE_HEALTH;
    r.percent = 80;
    r.health = h;
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    health_mode = 1;
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    ASSERT_EQ(state_of(t, "HealthDegraded", NULL), SONDE_ALERT_FIRING);
    sonde_alert *a;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    ASSERT_DBL_EQ(a[0].value, 50);
    ASSERT_STR_EQ(a[0].summary, "health at 50.0% (below 80%)");
    sonde_free(a);
    health_mode = 0;
    ASSERT_OK(sonde_health_wait(h, NULL, 5000));
    advance(1);
    ASSERT_EQ(state_of(t, "HealthDegraded", NULL), SONDE_ALERT_RESOLVED);
    sonde_health_stop(h);
    done(t, reg);
    sonde_health_destroy(h);
    sonde_registry_destroy(hreg);
}

/* ---- logging ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];
static void log_sink(const sonde_log_record *rec, const char *line, size_t len, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&log_lock);
    size_t l = strlen(log_text);
    snprintf(log_text + l, sizeof log_text - l, "%d %s %.*s | %.*s", rec->level, rec->logger,
             (int)rec->message_len, rec->message, (int)len, line);
    pthread_mutex_unlock(&log_lock);
}

/* Route every log line to log_text (JSON format). */
static int capture_logs(void)
{
    log_text[0] = '\0';
    sonde_log_sink_remove_all();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = log_sink;
    so.format = SONDE_LOG_FORMAT_JSON;
    int id = -1;
    if (sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id) != SONDE_OK)
        return -1;
    return id;
}

TEST(test_log_notifier_writes_firing_and_resolution_on_the_worker)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    int sink = capture_logs();
    ASSERT_GE(sink, 0);
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.kind = SONDE_NOTIFY_LOG;
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    ASSERT_EQ(sonde_alerts_add_notifier(t, &no), SONDE_ECONFLICT);
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "Crit";
    r.kind = SONDE_RULE_ERRORS;
    r.min_severity = SONDE_SEVERITY_CRITICAL;
    r.window_seconds = 10;
    r.summary = "{value} critical errors in {window} on {rule}";
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    ASSERT_OK(sonde_errors_start(t));
    capture_at(t, SONDE_SEVERITY_CRITICAL, "Boom", "exploded", "f.c", 1);
    ASSERT_EQ(state_of(t, "Crit", NULL), SONDE_ALERT_FIRING);
    ASSERT_OK(sonde_alerts_wait_idle(t, 5000));
    advance(11);
    ASSERT_EQ(state_of(t, "Crit", NULL), SONDE_ALERT_RESOLVED);
    ASSERT_OK(sonde_alerts_wait_idle(t, 5000));
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "log", &st));
    ASSERT_EQ(st.sent, 2);
    ASSERT_EQ(st.failed, 0);
    sonde_errors_stop(t);
    sonde_log_sink_remove(sink);
    pthread_mutex_lock(&log_lock);
    ASSERT_CONTAINS(log_text, "5 sonde.alerts alert Crit firing (severity critical): 1 critical "
                              "errors in 10s on Crit");
    ASSERT_CONTAINS(log_text, "3 sonde.alerts alert Crit resolved");
    /* The captured error itself is logged at CRITICAL with its fields. */
    ASSERT_CONTAINS(log_text, "6 sonde.errors exploded |");
    ASSERT_CONTAINS(log_text, "\"type\":\"Boom\",\"severity\":\"critical\",\"fingerprint\":\"");
    ASSERT_CONTAINS(log_text, "\"location\":\"f.c:1 handler\"");
    pthread_mutex_unlock(&log_lock);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_alert_notifications_total{notifier=\"log\"} 2");
    ASSERT_CONTAINS(text, "sonde_alert_notifications_failed_total{notifier=\"log\"} 0");
    sonde_free(text);
    done(t, reg);
}

TEST(test_capture_takes_the_logging_correlation_and_context)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    int sink = capture_logs();
    ASSERT_GE(sink, 0);
    sonde_field ctx[] = {SONDE_STR("operation", "clone_all"), SONDE_INT("attempt", 3)};
    int tok = sonde_log_context_push("req-7f3a9c", ctx, 2);
    ASSERT_GT(tok, 0);
    const char *pairs[] = {"repo", "sonde"};
    sonde_error_info e;
    sonde_error_info_init(&e);
    e.severity = SONDE_SEVERITY_HIGH;
    e.type = "GitError";
    e.message = "clone failed";
    e.context = pairs;
    e.context_count = 1;
    SONDE_ERROR_HERE(&e);
    sonde_error_capture(t, &e);
    sonde_log_context_pop(tok);
    /* Outside any context: no correlation. */
    capture_at(t, SONDE_SEVERITY_HIGH, "Other", "x", "f.c", 1);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n;
    sonde_errors_filter f = {.type = "GitError"};
    ASSERT_OK(sonde_errors_get_groups(t, &f, &g, &n));
    ASSERT_EQ(n, 1);
    ASSERT_STR_EQ(g[0].correlation_id, "req-7f3a9c");
    sonde_free(g);
    sonde_buf b = {0};
    ASSERT_OK(sonde_errors_write_json(t, NULL, &b));
    ASSERT_CONTAINS(b.data, "\"correlation\":{\"correlation_id\":\"req-7f3a9c\",\"operation\":"
                            "\"clone_all\",\"attempt\":3}");
    ASSERT_CONTAINS(b.data, "\"context\":{\"repo\":\"sonde\"}");
    sonde_buf_free(&b);
    sonde_log_sink_remove(sink);
    pthread_mutex_lock(&log_lock);
    /* The log line of the error carries the same correlation. */
    ASSERT_CONTAINS(log_text, "\"correlation\":{\"correlation_id\":\"req-7f3a9c\",\"operation\":"
                              "\"clone_all\"");
    ASSERT_CONTAINS(log_text, "\"context\":{\"repo\":\"sonde\"}");
    pthread_mutex_unlock(&log_lock);
    done(t, reg);
}

TEST(test_error_log_lines_are_capped_per_second_and_the_rest_counted)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 512, 0);
    int sink = capture_logs();
    ASSERT_GE(sink, 0);
    /* Wait for the start of a second, so that all land in one. */
    uint64_t s0 = sonde__now_mono_ns() / 1000000000u;
    while (sonde__now_mono_ns() / 1000000000u == s0)
        usleep(1000);
    for (int i = 0; i < 150; i++)
        capture_at(t, SONDE_SEVERITY_HIGH, "Flood", "x", "f.c", 1);
    sonde_errors_process(t);
    usleep(1100000);
    capture_at(t, SONDE_SEVERITY_HIGH, "Flood", "x", "f.c", 1);
    sonde_errors_process(t);
    sonde_log_sink_remove(sink);
    pthread_mutex_lock(&log_lock);
    int lines = 0;
    for (const char *p = log_text; (p = strstr(p, "5 sonde.errors x |")); p++)
        lines++;
    ASSERT_EQ(lines, 101);
    ASSERT_CONTAINS(log_text, "50 more captured errors were not logged (at most 100 a second)");
    pthread_mutex_unlock(&log_lock);
    done(t, reg);
}

TEST(test_notifier_validation)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_notifier_opts o;
    sonde_notifier_opts_init(&o);
    o.kind = SONDE_NOTIFY_WEBHOOK;
    o.url = "ftp://example.org/";
    ASSERT_EQ(sonde_alerts_add_notifier(t, &o), SONDE_EINVAL);
    o.url = "http://127.0.0.1:1/hook";
    const char *bad_headers[] = {"NoColon"};
    o.headers = bad_headers;
    o.header_count = 1;
    ASSERT_EQ(sonde_alerts_add_notifier(t, &o), SONDE_EINVAL);
    const char *headers[] = {"Authorization: Bearer x"};
    o.headers = headers;
    ASSERT_OK(sonde_alerts_add_notifier(t, &o));
    o.kind = SONDE_NOTIFY_COMMAND;
    o.name = "cmd";
    ASSERT_EQ(sonde_alerts_add_notifier(t, &o), SONDE_EINVAL);
    ASSERT_OK(sonde_alerts_remove_notifier(t, "webhook"));
    ASSERT_EQ(sonde_alerts_remove_notifier(t, "webhook"), SONDE_ENOTFOUND);
    done(t, reg);
}

TEST(test_second_tracker_on_a_registry_is_refused)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    sonde_errors *t2 = NULL;
    ASSERT_EQ(sonde_errors_create(&o, &t2), SONDE_ECONFLICT);
    ASSERT(t2 == NULL);
    o.queue_size = 3;
    o.registry = NULL;
    ASSERT_EQ(sonde_errors_create(&o, &t2), SONDE_EINVAL);
    done(t, reg);
}

TEST(test_set_rules_keeps_unchanged_rules_and_their_state)
{
    sonde_registry *reg;
    sonde_errors *t = tracker(&reg, 64, 0);
    sonde_rule_opts rs[2];
    sonde_rule_opts_init(&rs[0]);
    rs[0].name = "Keep";
    rs[0].kind = SONDE_RULE_ERRORS;
    rs[0].window_seconds = 600;
    rs[0].repeat_seconds = -1;
    rs[1] = rs[0];
    rs[1].name = "Drop";
    ASSERT_OK(sonde_alerts_set_rules(t, rs, 2));
    capture_at(t, SONDE_SEVERITY_HIGH, "E", "x", "f.c", 1);
    uint64_t notes;
    ASSERT_EQ(state_of(t, "Keep", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(state_of(t, "Drop", NULL), SONDE_ALERT_FIRING);
    /* Keep is unchanged: still firing, not notified again. Drop goes (and
     * resolves); New starts. */
    rs[1].name = "New";
    rs[1].threshold = 5;
    ASSERT_OK(sonde_alerts_set_rules(t, rs, 2));
    ASSERT_EQ(state_of(t, "Keep", &notes), SONDE_ALERT_FIRING);
    ASSERT_EQ(notes, 1);
    ASSERT_EQ(state_of(t, "Drop", NULL), -1);
    ASSERT_EQ(state_of(t, "New", NULL), SONDE_ALERT_INACTIVE);
    /* A changed definition is a new rule. */
    rs[0].threshold = 3;
    ASSERT_OK(sonde_alerts_set_rules(t, rs, 1));
    ASSERT_EQ(state_of(t, "Keep", &notes), SONDE_ALERT_INACTIVE);
    ASSERT_EQ(state_of(t, "New", NULL), -1);
    /* An invalid list changes nothing. */
    rs[1].name = "bad name";
    ASSERT_EQ(sonde_alerts_set_rules(t, rs, 2), SONDE_EINVAL);
    ASSERT_EQ(state_of(t, "Keep", NULL), SONDE_ALERT_INACTIVE);
    rs[1] = rs[0];
    ASSERT_EQ(sonde_alerts_set_rules(t, rs, 2), SONDE_ECONFLICT);
    sonde_alert *h;
    size_t n;
    ASSERT_OK(sonde_alerts_get(t, 1, &h, &n));
    ASSERT_EQ(n, 2); /* Keep and Drop fired once each; both resolved */
    ASSERT_EQ(h[0].state, SONDE_ALERT_RESOLVED);
    ASSERT_EQ(h[1].state, SONDE_ALERT_RESOLVED);
    sonde_free(h);
    done(t, reg);
}

TEST(test_set_notifiers_replaces_changed_and_keeps_environment_ones)
{
    setenv("SONDE_WEBHOOK_URL", "http://127.0.0.1:9/hook", 1);
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_errors_opts o;
    sonde_errors_opts_init(&o);
    o.registry = reg;
    o.no_log = 1;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&o, &t));
    ASSERT_OK(sonde_errors_start(t));
    unsetenv("SONDE_WEBHOOK_URL");
    sonde_notifier_opts ns[2];
    sonde_notifier_opts_init(&ns[0]);
    ns[0].kind = SONDE_NOTIFY_LOG;
    ns[0].name = "a";
    ns[1] = ns[0];
    ns[1].name = "b";
    ASSERT_OK(sonde_alerts_set_notifiers(t, ns, 2));
    sonde_notifier_stats st;
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "a", &st));
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "b", &st));
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ASSERT_OK(sonde_alerts_set_notifiers(t, ns, 1));
    ASSERT_EQ(sonde_alerts_get_notifier_stats(t, "b", &st), SONDE_ENOTFOUND);
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "webhook", &st));
    ns[1].name = "a";
    ASSERT_EQ(sonde_alerts_set_notifiers(t, ns, 2), SONDE_ECONFLICT);
    ASSERT_OK(sonde_alerts_get_notifier_stats(t, "a", &st));
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
}
