/* The history store: addresses, the SQLite backend (rows, baselines,
 * schema versions, corrupt rows), the bounded queue, and degradation on a
 * read-only directory and a full disk. Redis is tested in
 * tests/integration/test_store_redis.c against a real server. */
#include "test.h"

#include <sonde.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/sketch.h"
#include "store/store.h"
#include "trace/trace_int.h"

TEST_MAIN()

static char tmpdir[64];

static const char *make_dir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sonde-store-XXXXXX");
    ASSERT(mkdtemp(tmpdir) != NULL);
    return tmpdir;
}

static void remove_dir(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(test_store_addresses_parse_and_bad_ones_are_refused)
{
    sonde__store_spec s;
    char err[256];
    ASSERT_OK(sonde__store_spec_parse("off", &s, err, sizeof err));
    ASSERT_EQ(s.kind, SONDE__STORE_OFF);
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse(":memory:", &s, err, sizeof err));
    ASSERT_EQ(s.kind, SONDE__STORE_SQLITE);
    ASSERT_STR_EQ(s.path, ":memory:");
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("sqlite:///var/lib/x.db", &s, err, sizeof err));
    ASSERT_STR_EQ(s.path, "/var/lib/x.db");
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("sqlite:rel.db", &s, err, sizeof err));
    ASSERT_STR_EQ(s.path, "rel.db");
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("./history.db", &s, err, sizeof err));
    ASSERT_STR_EQ(s.path, "./history.db");
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("redis://10.0.0.5:6390/2", &s, err, sizeof err));
    ASSERT_EQ(s.kind, SONDE__STORE_REDIS);
    ASSERT_STR_EQ(s.host, "10.0.0.5");
    ASSERT_EQ(s.port, 6390);
    ASSERT_EQ(s.db, 2);
    ASSERT(s.password == NULL && s.user == NULL);
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("redis://:pa%40ss@localhost", &s, err, sizeof err));
    ASSERT_STR_EQ(s.host, "localhost");
    ASSERT_STR_EQ(s.password, "pa@ss");
    ASSERT_EQ(s.port, 6379);
    ASSERT_EQ(s.db, 0);
    sonde__store_spec_free(&s);
    ASSERT_OK(sonde__store_spec_parse("valkey://app:pw@[::1]:7000/0", &s, err, sizeof err));
    ASSERT_STR_EQ(s.user, "app");
    ASSERT_STR_EQ(s.password, "pw");
    ASSERT_STR_EQ(s.host, "::1");
    ASSERT_EQ(s.port, 7000);
    sonde__store_spec_free(&s);
    const char *bad[] = {"",
                         "   ",
                         "redis://h:0",
                         "redis://h:99999",
                         "redis://h:x",
                         "redis://h/abc",
                         "http://x",
                         "redis://h?x=1",
                         "redis://[::1",
                         "redis://a:%zz@h",
                         "redis://a:%00@h",
                         "sqlite:",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        int rc = sonde__store_spec_parse(bad[i], &s, err, sizeof err);
        if (rc != SONDE_EINVAL)
            TEST_FAIL_AT("\"%s\" parsed (%d)", bad[i], rc);
        ASSERT(err[0] != '\0');
        sonde__store_spec_free(&s);
    }
    ASSERT_EQ(sonde__store_spec_parse(NULL, &s, err, sizeof err), SONDE_EINVAL);
}

/* A row of op at minute m holding n values of v seconds, `errors` failed. */
struct row_buf {
    sonde_buf enc;
    sonde__op_row row;
};

static void make_row(struct row_buf *rb, const char *op, int64_t m, int n, double v,
                     uint64_t errors)
{
    sonde__sketch sk;
    ASSERT_OK(sonde__sketch_init(&sk, 0));
    for (int i = 0; i < n; i++)
        sonde__sketch_add(&sk, v * (1 + i % 7));
    memset(&rb->enc, 0, sizeof rb->enc);
    ASSERT_OK(sonde__sketch_encode(&sk, &rb->enc));
    sonde__sketch_free(&sk);
    memset(&rb->row, 0, sizeof rb->row);
    rb->row.op = op;
    rb->row.op_len = strlen(op);
    rb->row.minute = m;
    rb->row.errors = errors;
    rb->row.sketch = (const uint8_t *)rb->enc.data;
    rb->row.sketch_len = rb->enc.len;
    ASSERT_OK(sonde__row_fill_summary(&rb->row));
}

struct seen {
    int n;
    char ops[16][32];
    int64_t minutes[16];
    uint64_t errors[16], counts[16];
    size_t lens[16];
};

static int collect(const sonde__op_row *r, void *ud)
{
    struct seen *s = ud;
    if (s->n < 16) {
        snprintf(s->ops[s->n], sizeof s->ops[0], "%.*s", (int)r->op_len, r->op);
        s->minutes[s->n] = r->minute;
        s->errors[s->n] = r->errors;
        sonde__op_row copy = *r;
        s->counts[s->n] = sonde__row_fill_summary(&copy) == SONDE_OK ? copy.count : 0;
        s->lens[s->n] = r->sketch_len;
    }
    s->n++;
    return 0;
}

static int64_t scalar(const char *path, const char *sql)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *e = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &e);
    if (rc != SQLITE_OK)
        TEST_FAIL_AT("%s: %s", sql, e ? e : "?");
    sqlite3_close(db);
}

struct bl {
    int n;
    char op[32];
    double p95;
};

static int collect_baseline(const sonde__baseline_row *b, void *ud)
{
    struct bl *s = ud;
    s->n++;
    snprintf(s->op, sizeof s->op, "%s", b->op);
    s->p95 = b->p95;
    return 0;
}

TEST(test_sqlite_store_round_trips_rows_and_baselines)
{
    const char *dir = make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde__store *st;
    char err[256];
    ASSERT_OK(sonde__store_create(path, NULL, &st, err, sizeof err));
    ASSERT_EQ(sonde__store_kind(st), SONDE__STORE_SQLITE);
    struct row_buf a, b, c;
    make_row(&a, "clone", 1000, 10, 0.5, 1);
    make_row(&b, "clone", 1001, 3, 0.25, 0);
    make_row(&c, "fetch", 1000, 1, 2.0, 1);
    sonde__store_enqueue(st, &c.row);
    sonde__store_enqueue(st, &b.row);
    sonde__store_enqueue(st, &a.row);
    ASSERT_EQ(sonde__store_pending(st), 3);
    sonde__baseline_row base = {"clone", 0.4, 0.9, 2.0, 5, 10};
    sonde__store_enqueue_baseline(st, "clone", &base);
    ASSERT_OK(sonde__store_flush(st));
    ASSERT_EQ(sonde__store_pending(st), 0);
    struct seen s = {0};
    ASSERT_OK(sonde__store_read(st, NULL, 0, 5000, collect, &s));
    ASSERT_EQ(s.n, 3);
    ASSERT_STR_EQ(s.ops[0], "clone");
    ASSERT_EQ(s.minutes[0], 1000);
    ASSERT_U64_EQ(s.counts[0], 10);
    ASSERT_U64_EQ(s.errors[0], 1);
    ASSERT_EQ(s.lens[0], a.enc.len);
    ASSERT_EQ(s.minutes[1], 1001);
    ASSERT_STR_EQ(s.ops[2], "fetch");
    memset(&s, 0, sizeof s);
    ASSERT_OK(sonde__store_read(st, "clone", 1001, 1001, collect, &s));
    ASSERT_EQ(s.n, 1);
    ASSERT_U64_EQ(s.counts[0], 3);
    /* Denormalised columns for people with the sqlite3 shell. */
    ASSERT_EQ(scalar(path, "SELECT sum(count) FROM op_minutes WHERE op = 'clone'"), 13);
    struct bl bl = {0};
    ASSERT_OK(sonde__store_read_baselines(st, collect_baseline, &bl));
    ASSERT_EQ(bl.n, 1);
    ASSERT_STR_EQ(bl.op, "clone");
    ASSERT_DBL_EQ(bl.p95, 0.9);
    sonde__store_enqueue_baseline(st, "clone", NULL);
    ASSERT_OK(sonde__store_flush(st));
    memset(&bl, 0, sizeof bl);
    ASSERT_OK(sonde__store_read_baselines(st, collect_baseline, &bl));
    ASSERT_EQ(bl.n, 0);
    /* Prune. */
    int more = 1;
    ASSERT_OK(sonde__store_prune(st, 1001, &more));
    ASSERT_EQ(more, 0);
    memset(&s, 0, sizeof s);
    ASSERT_OK(sonde__store_read(st, NULL, 0, 5000, collect, &s));
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.minutes[0], 1001);
    ASSERT_U64_EQ(sonde__store_errors(st), 0);
    sonde__store_destroy(st);
    sonde_buf_free(&a.enc);
    sonde_buf_free(&b.enc);
    sonde_buf_free(&c.enc);
    remove_dir(dir);
}

TEST(test_sqlite_schema_is_versioned_and_a_newer_one_is_refused)
{
    const char *dir = make_dir();
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde__store *st, *st2;
    ASSERT_OK(sonde__store_create(path, NULL, &st, err, sizeof err));
    ASSERT_EQ(scalar(path, "PRAGMA user_version"), 2);
    ASSERT_EQ(scalar(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                           " ('op_minutes', 'baselines', 'error_groups', 'alerts', 'silences')"),
              5);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* A second writer on the same file (another process would do the
     * same): the schema is there, nothing to migrate. */
    ASSERT_OK(sonde__store_create(path, NULL, &st2, err, sizeof err));
    ASSERT_U64_EQ(sonde__store_errors(st2), 0);
    sonde__store_destroy(st2);
    sonde__store_destroy(st);
    /* A file from a future sonde: opening fails (counted), nothing crashes,
     * the reader says why. */
    exec_sql(path, "PRAGMA user_version = 99");
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = reg;
    ASSERT_OK(sonde__store_create(path, &so, &st, err, sizeof err));
    ASSERT_U64_EQ(sonde__store_errors(st), 1);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_store_errors_total{stage=\"open\"} 1\n");
    sonde_free(text);
    sonde__store_destroy(st);
    sonde_registry_destroy(reg);
    ASSERT_EQ(sonde__store_open_readonly(path, &st, err, sizeof err), SONDE_EIO);
    ASSERT_CONTAINS(err, "not a sonde store (schema version 99)");
    /* Not a database at all, and missing. */
    char junk[140];
    snprintf(junk, sizeof junk, "%s/junk.db", dir);
    FILE *fp = fopen(junk, "w");
    fputs("this is not sqlite, just text long enough to be a header.....\n", fp);
    fclose(fp);
    ASSERT_EQ(sonde__store_open_readonly(junk, &st, err, sizeof err), SONDE_EIO);
    snprintf(junk, sizeof junk, "%s/missing.db", dir);
    ASSERT_EQ(sonde__store_open_readonly(junk, &st, err, sizeof err), SONDE_EIO);
    sonde_op_stats *v;
    size_t n;
    ASSERT_EQ(sonde_trace_read_store(junk, NULL, 60, &v, &n), SONDE_EIO);
    ASSERT(strlen(sonde_last_error()) > 0);
    ASSERT_EQ(sonde_trace_read_store("redis://h:0", NULL, 60, &v, &n), SONDE_EINVAL);
    remove_dir(dir);
}

TEST(test_pruning_is_bounded_per_call_and_resumes)
{
    const char *dir = make_dir();
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde__store *st;
    ASSERT_OK(sonde__store_create(path, NULL, &st, err, sizeof err));
    exec_sql(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 26000)"
                   " INSERT INTO op_minutes(op, minute, count, errors, sum, sketch)"
                   " SELECT 'op', i, 1, 0, 1, x'01' FROM n");
    int more = 0;
    ASSERT_OK(sonde__store_prune(st, 25001, &more));
    ASSERT_EQ(more, 1);
    ASSERT_EQ(scalar(path, "SELECT count(*) FROM op_minutes"), 6000);
    ASSERT_OK(sonde__store_prune(st, 25001, &more));
    ASSERT_EQ(more, 0);
    ASSERT_EQ(scalar(path, "SELECT min(minute) FROM op_minutes"), 25001);
    sonde__store_destroy(st);
    remove_dir(dir);
}

TEST(test_the_queue_is_bounded_and_drops_the_oldest_rows_counted)
{
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = reg;
    so.max_pending = 5;
    so.retry_min_ms = 10;
    so.retry_max_ms = 20;
    sonde__store *st;
    char err[256];
    /* A path that can never be created. */
    ASSERT_OK(sonde__store_create("/proc/sonde-no-such-dir/h.db", &so, &st, err, sizeof err));
    struct row_buf rb;
    make_row(&rb, "op", 5, 4, 0.1, 0);
    for (int i = 0; i < 8; i++) {
        rb.row.minute = i;
        sonde__store_enqueue(st, &rb.row);
    }
    ASSERT_EQ(sonde__store_pending(st), 5);
    ASSERT_U64_EQ(sonde__store_dropped(st), 3);
    /* Within the backoff a flush returns at once without trying. */
    ASSERT_EQ(sonde__store_flush(st), SONDE_EUNREACHABLE);
    usleep(30000);
    ASSERT(sonde__store_flush(st) != SONDE_OK);
    usleep(30000);
    ASSERT(sonde__store_flush(st) != SONDE_OK);
    ASSERT_EQ(sonde__store_pending(st), 5);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_store_dropped_total{reason=\"buffer_full\"} 3\n");
    ASSERT_CONTAINS(text, "sonde_store_pending_rows 5\n");
    ASSERT_CONTAINS(text, "sonde_store_errors_total{stage=\"open\"} 3\n");
    sonde_free(text);
    sonde__store_destroy(st);
    text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_store_dropped_total{reason=\"closed\"} 5\n");
    sonde_free(text);
    sonde_registry_destroy(reg);
    sonde_buf_free(&rb.enc);
}

/* ---- degradation scenarios, run in a child process ---- */

static uint64_t fake_ns;
static uint64_t fake_clock(void)
{
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}
#define SEC UINT64_C(1000000000)
#define MIN_NS (60 * SEC)
#define T0 (UINT64_C(28928880) * MIN_NS)

/* Checks inside a child: report the line and exit non-zero. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  child check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

/* A tracer over the store at spec, with fast retries. */
static sonde__tracer *child_tracer(const char *spec, sonde_registry **reg, size_t max_pending)
{
    sonde__trace_set_clock(fake_clock);
    fake_ns = T0;
    CHECK(sonde_registry_create(NULL, reg) == SONDE_OK);
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = *reg;
    sonde__tracer *tr;
    CHECK(sonde__tracer_create(&o, &tr) == SONDE_OK);
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = *reg;
    so.max_pending = max_pending;
    so.retry_min_ms = 1;
    so.retry_max_ms = 2;
    char err[256];
    CHECK(sonde__store_create(spec, &so, &tr->store, err, sizeof err) == SONDE_OK);
    tr->retention_hours = 720;
    return tr;
}

/* One operation per minute for `minutes` minutes from minute `from`, each
 * followed by a flush. */
static void child_minutes(sonde__tracer *tr, sonde_op *op, int from, int minutes)
{
    for (int i = from; i < from + minutes; i++) {
        fake_ns = T0 + (uint64_t)i * MIN_NS + SEC;
        sonde_op_token t = sonde_op_begin_op(op);
        fake_ns += 20000000;
        sonde_op_end(t, 1);
        fake_ns = T0 + (uint64_t)(i + 1) * MIN_NS + 3 * SEC;
        usleep(3000); /* past the store's backoff */
        sonde__trace_tick(tr, 0);
    }
}

static double metric(sonde_registry *reg, const char *line_prefix)
{
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    /* At the start of a line: the # HELP line names the metric too. */
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s", line_prefix);
    const char *p = text ? strstr(text, needle) : NULL;
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    sonde_free(text);
    return v;
}

static void child_read_only(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde_registry *reg;
    sonde__tracer *tr = child_tracer(path, &reg, 20);
    sonde_op_opts oo;
    sonde_op_opts_init(&oo);
    oo.name = "ro";
    sonde_op *op;
    CHECK(sonde__trace_op_create(tr, &oo, &op) == SONDE_OK);
    child_minutes(tr, op, 0, 30);
    /* The store never opened: errors counted, the queue bounded, drops
     * counted, and the windows in memory are whole. */
    CHECK(access(path, F_OK) != 0);
    CHECK(metric(reg, "sonde_store_errors_total{stage=\"open\"} ") >= 30);
    CHECK(sonde__store_pending(tr->store) == 20);
    CHECK(metric(reg, "sonde_store_dropped_total{reason=\"buffer_full\"} ") == 10);
    sonde_op_stats st;
    CHECK(sonde__trace_stats(tr, "ro", 60, &st) == SONDE_OK);
    CHECK(st.count == 30);
    CHECK(fabs(st.p50_seconds - 0.02) < 0.0002);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    _exit(0);
}

static void child_full_disk(const char *dir)
{
    char path[160];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde_registry *reg;
    sonde__tracer *tr = child_tracer(path, &reg, 50);
    sonde_op_opts oo;
    sonde_op_opts_init(&oo);
    oo.name = "full";
    sonde_op *op;
    CHECK(sonde__trace_op_create(tr, &oo, &op) == SONDE_OK);
    child_minutes(tr, op, 0, 5);
    CHECK(sonde__store_pending(tr->store) == 0);
    /* The disk is full: no file may grow past its size now. */
    signal(SIGXFSZ, SIG_IGN);
    struct stat sb;
    char wal[170];
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK(stat(wal, &sb) == 0);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
    struct rlimit low = rl;
    low.rlim_cur = (rlim_t)sb.st_size;
    CHECK(setrlimit(RLIMIT_FSIZE, &low) == 0);
    child_minutes(tr, op, 5, 80);
    CHECK(metric(reg, "sonde_store_errors_total{stage=\"write\"} ") >= 1);
    CHECK(sonde__store_pending(tr->store) == 50);
    CHECK(metric(reg, "sonde_store_dropped_total{reason=\"buffer_full\"} ") == 30);
    /* Memory still answers the last hour. */
    sonde_op_stats st;
    CHECK(sonde__trace_stats(tr, "full", 60, &st) == SONDE_OK);
    CHECK(st.count == 60);
    /* Space again: the backlog is written. */
    CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
    usleep(5000);
    fake_ns += SEC;
    sonde__trace_tick(tr, 0);
    CHECK(sonde__store_pending(tr->store) == 0);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    sonde_op_stats *v;
    size_t n;
    fake_ns = T0 + 86 * MIN_NS;
    CHECK(sonde_trace_read_store(path, NULL, 1440, &v, &n) == SONDE_OK);
    /* Minutes 0-4 before the disk filled, then the 50 newest kept. */
    CHECK(n == 1 && v[0].count == 55);
    sonde_free(v);
    _exit(0);
}

static void run_child(void (*fn)(const char *), const char *dir, int drop_privileges)
{
    fflush(NULL);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        if (drop_privileges && getuid() == 0) {
            /* root ignores directory permissions: become nobody. */
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(3);
        }
        fn(dir);
        _exit(2);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST(test_a_read_only_directory_degrades_to_memory_with_counted_errors)
{
    const char *dir = make_dir();
    char ro[128];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    ASSERT_EQ(mkdir(ro, 0555), 0);
    ASSERT_EQ(chmod(dir, 0755), 0);
    run_child(child_read_only, ro, 1);
    remove_dir(dir);
}

TEST(test_a_full_disk_degrades_with_counted_errors_and_recovers)
{
    const char *dir = make_dir();
    run_child(child_full_disk, dir, 0);
    remove_dir(dir);
}

TEST(test_corrupt_rows_are_skipped_and_counted)
{
    const char *dir = make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/h.db", dir);
    sonde__trace_set_clock(fake_clock);
    fake_ns = T0 + 100 * MIN_NS;
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(NULL, &reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = reg;
    sonde__tracer *tr;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    sonde__store_opts so;
    memset(&so, 0, sizeof so);
    so.registry = reg;
    char err[256];
    ASSERT_OK(sonde__store_create(path, &so, &tr->store, err, sizeof err));
    struct row_buf a;
    make_row(&a, "op", (int64_t)(T0 / MIN_NS), 6, 0.5, 2);
    sonde__store_enqueue(tr->store, &a.row);
    ASSERT_OK(sonde__store_flush(tr->store));
    int64_t m = (int64_t)(T0 / MIN_NS);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO op_minutes(op, minute, count, errors, sum, min, max, sketch) VALUES"
             " ('op', %lld, 1, 0, 1, 1, 1, x'01ffffff'),"
             " ('op', %lld, 1, 5, 1, 1, 1, x'01'),"
             " ('op', %lld, 1, -1, 1, 1, 1, x'0100'),"
             " ('op', %lld, 1, 0, 1, 1, 1, x''),"
             " ('', %lld, 1, 0, 1, 1, 1, x'00')",
             (long long)m + 1, (long long)m + 2, (long long)m + 3, (long long)m + 4,
             (long long)m + 5);
    exec_sql(path, sql);
    sonde_op_stats st;
    ASSERT_OK(sonde__trace_stats(tr, "op", 1440, &st));
    ASSERT_U64_EQ(st.count, 6);
    ASSERT_U64_EQ(st.errors, 2);
    char *text = sonde_registry_render(reg, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT_CONTAINS(text, "sonde_store_errors_total{stage=\"decode\"} 4\n");
    sonde_free(text);
    sonde_op_stats *v;
    size_t n;
    ASSERT_OK(sonde_trace_read_store(path, NULL, 1440, &v, &n));
    ASSERT_EQ(n, 1);
    ASSERT_U64_EQ(v[0].count, 6);
    sonde_free(v);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    sonde__trace_set_clock(NULL);
    sonde_buf_free(&a.enc);
    remove_dir(dir);
}
