/* Off means off: with SONDE_ENABLED=0 (and in a -DSONDE_DISABLE=ON build,
 * where `make test-disabled` runs this file again) every component's calls
 * succeed and do nothing: no value changes, no line is written, no file is
 * created, no port is opened and no thread is started. */
#include "test.h"

#include <sonde.h>

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/worker.h"
#include "http/history.h"

TEST_MAIN()

__attribute__((constructor)) static void disable(void)
{
#ifdef SONDE_DISABLE
    /* Built off: the environment cannot turn it back on. */
    setenv("SONDE_ENABLED", "1", 1);
#else
    setenv("SONDE_ENABLED", "0", 1);
#endif
}

static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[160];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/sonde-disabled-XXXXXX");
        if (!mkdtemp(tmpdir))
            return NULL;
    }
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static int sink_calls;
static void count_sink(const sonde_log_record *rec, const char *line, size_t len, void *ud)
{
    (void)rec;
    (void)line;
    (void)len;
    (void)ud;
    sink_calls++;
}

static int check_runs;
static sonde_health_status counting_check(sonde_health_result *res, void *ud)
{
    (void)res;
    (void)ud;
    check_runs++;
    return SONDE_HEALTH_HEALTHY;
}

static int collector_calls;
static void counting_collector(sonde_emitter *em, void *ud)
{
    (void)em;
    (void)ud;
    collector_calls++;
}

static double callback_value(void *ud)
{
    (void)ud;
    return 42;
}

/* sonde_disable on a disabled sonde: succeeds, and it stays off. */
TEST(test_disabled_disable_call_succeeds)
{
    ASSERT_EQ(sonde_enabled(), 0);
    ASSERT_OK(sonde_disable());
    ASSERT_OK(sonde_disable());
    ASSERT_EQ(sonde_enabled(), 0);
}

TEST(test_disabled_metrics_keep_every_value_at_zero)
{
    ASSERT_EQ(sonde_enabled(), 0);
    int before = threads();
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_counter *c;
    sonde_gauge *g;
    sonde_histogram *h;
    ASSERT_OK(sonde_counter_create(reg, "d_requests_total", "r", &c));
    ASSERT_OK(sonde_gauge_create(reg, "d_in_flight", "g", &g));
    ASSERT_OK(sonde_histogram_create(reg, "d_seconds", "h", NULL, 0, &h));
    sonde_counter_inc(c);
    sonde_counter_add(c, 5);
    sonde_gauge_set(g, 7);
    sonde_gauge_inc(g);
    sonde_gauge_add(g, 3);
    sonde_gauge_dec(g);
    sonde_gauge_sub(g, 1);
    sonde_gauge_set_to_current_time(g);
    sonde_histogram_observe(h, 0.2);
    const char *ekv[] = {"trace_id", "x"};
    sonde_counter_add_exemplar(c, 1, ekv, 1);
    sonde_histogram_observe_exemplar(h, 0.3, ekv, 1);
    ASSERT_DBL_EQ(sonde_counter_get(c), 0);
    ASSERT_DBL_EQ(sonde_gauge_get(g), 0);
    ASSERT_U64_EQ(sonde_histogram_get_count(h), 0);
    ASSERT_DBL_EQ(sonde_histogram_get_sum(h), 0);

    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "d_latency_seconds";
    o.help = "s";
    sonde_family *sf;
    ASSERT_OK(sonde_family_create(reg, SONDE_SUMMARY, &o, &sf));
    sonde_summary *s = sonde_family_as_summary(sf);
    sonde_summary_observe(s, 3);
    ASSERT_U64_EQ(sonde_summary_get_count(s), 0);
    ASSERT_DBL_EQ(sonde_summary_get_sum(s), 0);

    const char *labels[] = {"path"};
    sonde_metric_opts_init(&o);
    o.name = "d_hits_total";
    o.help = "l";
    o.label_names = labels;
    o.label_count = 1;
    sonde_family *lf;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &lf));
    sonde_counter *lc = sonde_family_counter(lf, "/a");
    sonde_counter_inc(lc);
    ASSERT_DBL_EQ(sonde_counter_get(lc), 0);
    sonde_family *lg;
    sonde_metric_opts_init(&o);
    o.name = "d_temp";
    o.help = "l";
    o.label_names = labels;
    o.label_count = 1;
    o.series_ttl_seconds = 1; /* no sweep thread when disabled (checked below) */
    ASSERT_OK(sonde_family_create(reg, SONDE_GAUGE, &o, &lg));
    sonde_gauge *lgg = sonde_family_gauge(lg, "/a");
    sonde_gauge_set(lgg, 9);
    ASSERT_DBL_EQ(sonde_gauge_get(lgg), 0);

    const char *states[] = {"a", "b", "c"};
    sonde_metric_opts_init(&o);
    o.name = "d_state";
    o.help = "s";
    o.states = states;
    o.state_count = 3;
    sonde_stateset *ss;
    ASSERT_OK(sonde_stateset_create(reg, &o, &ss));
    sonde_stateset_set(ss, 2);
    ASSERT_EQ(sonde_stateset_get(ss), 0);

    sonde_metric_opts_init(&o);
    o.name = "d_callback";
    o.help = "c";
    sonde_family *cf;
    ASSERT_OK(sonde_callback_create(reg, SONDE_GAUGE, &o, callback_value, NULL, &cf));
    ASSERT_OK(sonde_registry_add_collector(reg, "d", counting_collector, NULL));
    const char *kv[] = {"version", "1"};
    ASSERT_OK(sonde_info_create(reg, "d_build", "b", kv, 1));
    ASSERT_OK(sonde_host_metrics_add(reg, NULL, 0));

    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(text != NULL);
    /* Nothing was counted, set or collected: no callback, no collector. */
    ASSERT_NOT_CONTAINS(text, " 5");
    ASSERT_NOT_CONTAINS(text, " 6");
    ASSERT_NOT_CONTAINS(text, " 9");
    ASSERT_NOT_CONTAINS(text, " 42");
    ASSERT_NOT_CONTAINS(text, "process_");
    ASSERT_NOT_CONTAINS(text, "node_");
    sonde_free(text);
    ASSERT_EQ(collector_calls, 0);
    ASSERT_EQ(threads(), before);
    sonde_registry_destroy(reg);
}

TEST(test_disabled_logging_configures_and_writes_nothing)
{
    int before = threads();
    const char *file = tmp_path("app.log");
    ASSERT(file != NULL);
    char path[160];
    snprintf(path, sizeof path, "%s", file);
    sonde_log_opts lo;
    sonde_log_opts_init(&lo);
    lo.file = path;
    lo.async = 1;
    lo.level = "debug";
    ASSERT_OK(sonde_log_configure(&lo));
    ASSERT_OK(sonde_log_configure(NULL));
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = count_sink;
    int id = -1;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    sonde_log_sink_opts_init(&so);
    so.path = path;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_FILE, &so, NULL));
    ASSERT_OK(sonde_log_set_levels("trace"));
    SONDE_LOGF(NULL, ERROR, "nothing %d", 1);
    sonde_log_writef(NULL, SONDE_LOG_ERROR, __FILE__, __LINE__, NULL, "nor %s", "this");
    ASSERT_OK(sonde_log_flush(100));
    ASSERT_OK(sonde_log_sink_remove(id));
    ASSERT_OK(sonde_log_shutdown(100));
    ASSERT_EQ(sink_calls, 0);
    ASSERT(!exists(path));
    sonde_log_stats st;
    sonde_log_get_stats(&st);
    ASSERT_U64_EQ(st.messages[SONDE_LOG_ERROR], 0);
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_tracing_succeeds_and_records_nothing)
{
    int before = threads();
    sonde_trace_opts to;
    sonde_trace_opts_init(&to);
    to.store = tmp_path("trace.db");
    char store[160];
    snprintf(store, sizeof store, "%s", to.store);
    to.store = store;
    ASSERT_OK(sonde_trace_start(&to));
    sonde_op *op = (sonde_op *)1;
    sonde_op_opts oo;
    sonde_op_opts_init(&oo);
    oo.name = "clone";
    ASSERT_OK(sonde_op_create(&oo, &op));
    ASSERT(op == NULL);
    sonde_op_token t = sonde_op_begin_op(op);
    ASSERT_DBL_EQ(sonde_op_end(t, 1), 0);
    t = sonde_op_begin("clone");
    sonde_op_end(t, 0);
    sonde_baseline b = {.avg_seconds = 1};
    ASSERT_OK(sonde_trace_set_baseline("clone", &b));
    sonde_op_stats st;
    ASSERT_OK(sonde_trace_get_stats("clone", 5, &st));
    ASSERT_U64_EQ(st.count, 0);
    sonde_op_stats *v = (sonde_op_stats *)1;
    size_t n = 9;
    ASSERT_OK(sonde_trace_list_stats(5, &v, &n));
    ASSERT_EQ(n, 0);
    ASSERT(v == NULL);
    sonde_trace_stop();
    ASSERT(!exists(store));
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_health_runs_no_check)
{
    int before = threads();
    sonde_health *h;
    ASSERT_OK(sonde_health_create(NULL, &h));
    sonde_health_check_opts co;
    sonde_health_check_opts_init(&co);
    co.name = "db";
    co.interval_seconds = 0.01;
    ASSERT_OK(sonde_health_add(h, &co, counting_check, NULL));
    co.name = "disk";
    ASSERT_OK(sonde_health_add_disk(h, &co, "/", 0, 0));
    ASSERT_OK(sonde_health_start(h));
    ASSERT_OK(sonde_health_run_now(h, NULL));
    ASSERT_OK(sonde_health_wait(h, NULL, 50));
    usleep(30000);
    ASSERT_EQ(check_runs, 0);
    ASSERT(!sonde__runtime_running());
    ASSERT_EQ(threads(), before);
    sonde_health_stop(h);
    sonde_health_destroy(h);
}

TEST(test_disabled_error_tracking_and_alerting_do_nothing)
{
    int before = threads();
    sonde_errors *t;
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    char store[160];
    snprintf(store, sizeof store, "%s", tmp_path("errors.db"));
    eo.store = store;
    ASSERT_OK(sonde_errors_create(&eo, &t));
    ASSERT_OK(sonde_errors_start(t));
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "any";
    r.kind = SONDE_RULE_ERRORS;
    r.threshold = 1; /* the first error would fire it */
    r.window_seconds = 60;
    ASSERT_OK(sonde_rule_opts_check(&r)); /* validation works the same disabled */
    ASSERT_OK(sonde_alerts_add_rule(t, &r));
    r.window_seconds = -1;
    ASSERT_EQ(sonde_rule_opts_check(&r), SONDE_EINVAL);
    r.window_seconds = 60;
    sonde_notifier_opts no;
    sonde_notifier_opts_init(&no);
    no.name = "hook";
    no.kind = SONDE_NOTIFY_WEBHOOK;
    no.url = "http://127.0.0.1:9/";
    ASSERT_OK(sonde_notifier_opts_check(&no));
    ASSERT_OK(sonde_alerts_add_notifier(t, &no));
    no.url = NULL;
    ASSERT_EQ(sonde_notifier_opts_check(&no), SONDE_EINVAL);
    sonde_error_capturef(t, SONDE_SEVERITY_CRITICAL, "E", NULL, 0, NULL, "boom %d", 1);
    sonde_errors_process(t);
    sonde_error_group *g;
    size_t n = 9;
    ASSERT_OK(sonde_errors_get_groups(t, NULL, &g, &n));
    ASSERT_EQ(n, 0);
    sonde_alert *a;
    n = 9;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n)); /* the rule, never evaluated */
    ASSERT_EQ(n, 1);
    ASSERT_EQ(a[0].state, SONDE_ALERT_INACTIVE);
    ASSERT_U64_EQ(a[0].notifications, 0);
    sonde_free(a);
    n = 9;
    ASSERT_OK(sonde_alerts_get(t, 1, &a, &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(sonde_alerts_wait_idle(t, 50));
    /* Silences: accepted, nothing kept, listed as none. */
    sonde_silence_matcher m = {"alertname", "any", 0, 1};
    sonde_silence_opts so;
    sonde_silence_opts_init(&so);
    so.matchers = &m;
    so.matcher_count = 1;
    so.duration = 3600;
    uint64_t sid = 9;
    ASSERT_OK(sonde_alerts_silence(t, &so, &sid));
    ASSERT_U64_EQ(sid, 0);
    ASSERT_OK(sonde_alerts_expire_silence(t, 12345));
    ASSERT_OK(sonde_alerts_set_silence_retention(t, 60));
    sonde_buf sb = {0};
    ASSERT_OK(sonde_alerts_silences_json(t, &sb));
    ASSERT_STR_EQ(sb.data, "[]");
    sonde_buf_free(&sb);
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    ASSERT(!exists(store));
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_metric_rules_add_and_do_nothing)
{
    int before = threads();
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_gauge *g;
    ASSERT_OK(sonde_gauge_create(reg, "depth", "h", &g));
    sonde_errors_opts eo;
    sonde_errors_opts_init(&eo);
    eo.registry = reg;
    sonde_errors *t;
    ASSERT_OK(sonde_errors_create(&eo, &t));
    ASSERT_OK(sonde_errors_start(t));
    static const int kinds[] = {SONDE_RULE_VALUE, SONDE_RULE_RATE, SONDE_RULE_INCREASE,
                                SONDE_RULE_RATIO, SONDE_RULE_QUANTILE};
    static const char *const names[] = {"v", "r", "i", "ra", "q"};
    for (size_t i = 0; i < 5; i++) {
        sonde_rule_opts r;
        sonde_rule_opts_init(&r);
        r.name = names[i];
        r.kind = kinds[i];
        r.metric = "depth{a=~\"x.*\"}";
        r.denominator = kinds[i] == SONDE_RULE_RATIO ? "depth" : NULL;
        r.quantile = 0.5;
        r.op = SONDE_OP_GE; /* 0 >= 0 would fire at once if evaluated */
        ASSERT_OK(sonde_alerts_add_rule(t, &r));
    }
    sonde_rule_opts r;
    sonde_rule_opts_init(&r);
    r.name = "plain";
    r.kind = SONDE_RULE_VALUE;
    r.metric = "depth";
    r.op = SONDE_OP_GE;
    ASSERT_OK(sonde_alerts_set_rules(t, &r, 1));
    ASSERT_EQ(sonde_alerts_add_rule(t, &r), SONDE_ECONFLICT); /* listed by set_rules */
    sonde_gauge_set(g, 10);
    sonde_errors_process(t);
    sonde_alert *a;
    size_t n = 9;
    ASSERT_OK(sonde_alerts_get(t, 0, &a, &n));
    ASSERT_EQ(n, 1);
    ASSERT_EQ(a[0].state, SONDE_ALERT_INACTIVE);
    ASSERT_STR_EQ(a[0].series, "{}");
    sonde_free(a);
    ASSERT_OK(sonde_alerts_get(t, 1, &a, &n));
    ASSERT_EQ(n, 0);
    ASSERT_OK(sonde_alerts_remove_rule(t, "plain"));
    sonde_errors_stop(t);
    sonde_errors_destroy(t);
    sonde_registry_destroy(reg);
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_start_serves_nothing)
{
    int before = threads();
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "127.0.0.1:0";
    ASSERT_OK(sonde_start(&so));
    ASSERT_EQ(sonde_listen_port(), 0);
    ASSERT(!sonde__runtime_running());
    ASSERT_EQ(threads(), before);
    sonde_stop();
}

TEST(test_disabled_demo_runs_and_writes_no_log)
{
    const char *bin = getenv("SONDE_BIN_DIR");
    ASSERT(bin != NULL);
    char log[160], cmd[512];
    snprintf(log, sizeof log, "%s", tmp_path("demo.log"));
    snprintf(cmd, sizeof cmd,
             "SONDE_ENABLED=%s %s/sonde-demo --web.listen-address 127.0.0.1:0 --duration 1 "
             "--log-file %s >/dev/null 2>&1",
             getenv("SONDE_ENABLED"), bin, log);
    ASSERT_EQ(system(cmd), 0);
    ASSERT(!exists(log));
}

TEST(test_disabled_remote_write_and_push_do_nothing)
{
    int before = threads();
    sonde_remote_write_opts o;
    sonde_remote_write_opts_init(&o);
    o.url = "http://127.0.0.1:1/api/v1/write";
    o.queue_dir = tmp_path("rwq");
    sonde_remote_write *rw = (sonde_remote_write *)1;
    ASSERT_OK(sonde_remote_write_create(&o, &rw));
    ASSERT(rw == NULL);
    ASSERT_OK(sonde_remote_write_start(rw));
    ASSERT_OK(sonde_remote_write_sample_now(rw));
    ASSERT_OK(sonde_remote_write_flush(rw, 10));
    sonde_remote_write_destroy(rw);
    ASSERT(!exists(tmp_path("rwq")));
    o.url = "not a url";
    ASSERT_OK(sonde_remote_write_opts_check(&o));
    ASSERT_STR_EQ(sonde_remote_write_name(NULL), "");
    /* Neither the environment nor the options of sonde_start start one. */
    setenv("SONDE_REMOTE_WRITE_URL", "http://127.0.0.1:1/api/v1/write", 1);
    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = "off";
    o.url = "http://127.0.0.1:1/other";
    so.remote_write = &o;
    ASSERT_OK(sonde_start(&so));
    so.remote_write = NULL;
    sonde_stop();
    ASSERT_OK(sonde_start(&so));
    sonde_stop();
    unsetenv("SONDE_REMOTE_WRITE_URL");
    ASSERT(!exists(tmp_path("rwq")));
    sonde_push_opts po;
    sonde_push_opts_init(&po);
    po.url = "http://127.0.0.1:1";
    po.job = "j";
    int status = -1;
    ASSERT_OK(sonde_push(&po, &status));
    ASSERT_EQ(status, 0);
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_dashboard_history_and_generate_config_do_nothing)
{
    int before = threads();
    sonde__history *h = NULL;
    ASSERT_OK(sonde__history_create(NULL, 100, &h));
    ASSERT(h != NULL);
    sonde__history_sample(h);
    sonde_buf b;
    sonde_buf_init(&b);
    ASSERT_OK(sonde__history_write_json(h, 0, NULL, &b));
    ASSERT_CONTAINS(b.data, "\"timestamps\":[]");
    ASSERT_CONTAINS(b.data, "\"series\":[\n]");
    sonde_buf_free(&b);
    ASSERT(!sonde__runtime_running());
    ASSERT_EQ(threads(), before);
    sonde__history_destroy(h);

    static const char *const lbl[] = {"route"};
    sonde_gen_family fam;
    memset(&fam, 0, sizeof fam);
    fam.name = "app_requests_total";
    fam.type = "counter";
    fam.labels = lbl;
    fam.label_count = 1;
    sonde_gen_input in;
    memset(&in, 0, sizeof in);
    in.families = &fam;
    in.family_count = 1;
    char dir[160], err[128];
    snprintf(dir, sizeof dir, "%s", tmp_path("generated"));
    size_t skipped = 7;
    ASSERT_OK(sonde_gen_write(NULL, &in, dir, &skipped, err, sizeof err));
    ASSERT_EQ(skipped, 0);
    ASSERT(!exists(dir));
    ASSERT_EQ(threads(), before);
}

TEST(test_disabled_left_no_file)
{
    ASSERT_EQ(rmdir(tmpdir), 0); /* empty: nothing was created in it */
}
