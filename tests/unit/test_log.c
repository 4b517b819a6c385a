/* The structured logger: line format, fields, levels, contexts and
 * correlation IDs, operations, errors, bad input, truncation, console
 * format, configuration. Every captured line is checked with jq. */
#include "test_log_util.h"

#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>

static sonde_logger *ops(void)
{
    return sonde_logger_get("mgit.operations");
}

TEST(test_log_jq_is_installed)
{
    ASSERT(jq_available());
}

TEST(test_log_line_has_documented_top_level_keys)
{
    capture_reset();
    int line = __LINE__ + 1;
    SONDE_LOG(ops(), INFO, "Starting clone", SONDE_STR("repository", "repo1"),
              SONDE_STR("provider", "github"));
    const char *l = capture_last();
    ASSERT_JQ(l, "keys_unsorted | join(\",\")",
              "timestamp,level,logger,message,fields,source,pid,tid");
    ASSERT_JQ(l, ".level", "INFO");
    ASSERT_JQ(l, ".logger", "mgit.operations");
    ASSERT_JQ(l, ".message", "Starting clone");
    ASSERT_JQ(l, ".fields | [.repository, .provider] | join(\" \")", "repo1 github");
    char src[128];
    snprintf(src, sizeof src, "test_log.c:%d:test_log_line_has_documented_top_level_keys", line);
    ASSERT_JQ(l, ".source", src);
    ASSERT_JQ(l,
              ".timestamp | "
              "test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\\\.[0-9]{6}Z$\")",
              "true");
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    ASSERT_JQ(l, ".pid", pid);
    ASSERT_JQ(l, ".tid | type", "number");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_timestamp_is_utc_now_with_microseconds)
{
    capture_reset();
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    SONDE_LOG(ops(), INFO, "tick");
    clock_gettime(CLOCK_REALTIME, &b);
    /* jq parses the seconds part; the microseconds come after the dot. */
    const char *secs = jq_line(capture_last(), ".timestamp | .[0:19] + \"Z\" | fromdateiso8601");
    long long s = strtoll(secs, NULL, 10);
    ASSERT_GE(s, (long long)a.tv_sec);
    ASSERT_LE(s, (long long)b.tv_sec);
}

TEST(test_log_typed_fields_render_as_json_types)
{
    capture_reset();
    SONDE_LOG(ops(), INFO, "types", SONDE_STR("s", "text"), SONDE_INT("i", -42),
              SONDE_UINT("u", UINT64_MAX), SONDE_DOUBLE("d", 2.5), SONDE_DOUBLE("nan", NAN),
              SONDE_BOOL("t", 1), SONDE_BOOL("f", 0), SONDE_NULL("z"), SONDE_STR("nul", NULL),
              SONDE_OBJECT("repo"), SONDE_STR("name", "r1"), SONDE_OBJECT("owner"),
              SONDE_INT("id", 7), SONDE_CLOSE(), SONDE_CLOSE(), SONDE_LIST("tags"),
              SONDE_STR(NULL, "a"), SONDE_INT(NULL, 2), SONDE_LIST(NULL), SONDE_BOOL(NULL, 1),
              SONDE_CLOSE(), SONDE_CLOSE());
    const char *l = capture_last();
    ASSERT_JQ(l, ".fields | [.s, .i, .d, .t, .f, .z, .nul] | tojson",
              "[\"text\",-42,2.5,true,false,null,null]");
    ASSERT_JQ(l, ".fields | [(.s|type), (.i|type), (.t|type)] | join(\",\")",
              "string,number,boolean");
    ASSERT_CONTAINS(l, "\"u\":18446744073709551615");
    ASSERT_JQ(l, ".fields.nan", "NaN");
    ASSERT_JQ(l, ".fields.repo.owner.id", "7");
    ASSERT_JQ(l, ".fields.repo.name", "r1");
    ASSERT_JQ(l, ".fields.tags | tojson", "[\"a\",2,[true]]");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_unbalanced_nesting_is_repaired)
{
    capture_reset();
    SONDE_LOG(ops(), INFO, "open", SONDE_OBJECT("a"), SONDE_LIST("b"), SONDE_INT(NULL, 1));
    ASSERT_JQ(capture_last(), ".fields | tojson", "{\"a\":{\"b\":[1]}}");
    SONDE_LOG(ops(), INFO, "close", SONDE_CLOSE(), SONDE_INT("x", 1), SONDE_CLOSE(), SONDE_CLOSE());
    ASSERT_JQ(capture_last(), ".fields | tojson", "{\"x\":1}");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_printf_message_is_formatted)
{
    capture_reset();
    SONDE_LOGF(ops(), WARNING, "retry %d of %d for %s", 2, 5, "repo1");
    ASSERT_JQ(capture_last(), ".message", "retry 2 of 5 for repo1");
    ASSERT_JQ(capture_last(), ".level", "WARNING");
    /* A long formatted message (beyond the 512-byte fast path). */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    SONDE_LOGF(ops(), INFO, "<%s>", big);
    ASSERT_JQ(capture_last(), ".message | length", "3001");
    ASSERT_CAPTURE_VALID_JSON();
}

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

TEST(test_log_below_level_skips_the_call_and_its_arguments)
{
    capture_reset();
    sonde_logger *lg = sonde_logger_get("quiet");
    sonde_logger_set_level(lg, SONDE_LOG_WARNING);
    evaluated = 0;
    SONDE_LOG(lg, INFO, "not written", SONDE_INT("n", side_effect()));
    SONDE_LOGF(lg, DEBUG, "not written %d", side_effect());
    ASSERT_EQ(evaluated, 0);
    ASSERT_EQ(cap_.lines, 0);
    ASSERT(!sonde_log_enabled(lg, SONDE_LOG_INFO));
    ASSERT(sonde_log_enabled(lg, SONDE_LOG_WARNING));
    SONDE_LOG(lg, ERROR, "written", SONDE_INT("n", side_effect()));
    ASSERT_EQ(evaluated, 1);
    ASSERT_EQ(cap_.lines, 1);
    sonde_logger_set_level(lg, 0);
}

static void count_errors(const sonde_log_record *r, const char *line, size_t len, void *ud)
{
    (void)line;
    (void)len;
    if (r->level >= SONDE_LOG_ERROR)
        ++*(int *)ud;
}

TEST(test_log_sink_level_filters_per_sink)
{
    capture_reset();
    static int errors_seen;
    errors_seen = 0;
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.level = SONDE_LOG_ERROR;
    ASSERT_EQ(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, NULL), SONDE_EINVAL);
    so.fn = count_errors;
    so.userdata = &errors_seen;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    SONDE_LOG(ops(), DEBUG, "debug");
    SONDE_LOG(ops(), INFO, "info");
    SONDE_LOG(ops(), ERROR, "error");
    SONDE_LOG(ops(), CRITICAL, "critical");
    ASSERT_EQ(cap_.lines, 4);
    ASSERT_EQ(errors_seen, 2);
    ASSERT_OK(sonde_log_sink_remove(id));
    ASSERT_EQ(sonde_log_sink_remove(id), SONDE_ENOTFOUND);
}

TEST(test_log_named_loggers_inherit_the_dotted_parent_level)
{
    capture_reset();
    ASSERT_OK(sonde_log_set_levels("warning, mgit=debug, mgit.net = error"));
    ASSERT_EQ(sonde_logger_level(NULL), SONDE_LOG_WARNING);
    ASSERT_EQ(sonde_logger_level(sonde_logger_get("mgit")), SONDE_LOG_DEBUG);
    ASSERT_EQ(sonde_logger_level(sonde_logger_get("mgit.operations")), SONDE_LOG_DEBUG);
    ASSERT_EQ(sonde_logger_level(sonde_logger_get("mgit.net.http")), SONDE_LOG_ERROR);
    ASSERT_EQ(sonde_logger_level(sonde_logger_get("other")), SONDE_LOG_WARNING);
    sonde_logger *lg = sonde_logger_get("mgit.operations");
    ASSERT(sonde_log_enabled(lg, SONDE_LOG_DEBUG));
    ASSERT(!sonde_log_enabled(lg, SONDE_LOG_TRACE));
    sonde_logger_set_level(lg, SONDE_LOG_TRACE);
    ASSERT(sonde_log_enabled(lg, SONDE_LOG_TRACE));
    ASSERT_STR_EQ(sonde_logger_name(lg), "mgit.operations");
    ASSERT_STR_EQ(sonde_logger_name(NULL), "root");
    ASSERT(sonde_logger_get("") == sonde_logger_get(NULL));
    ASSERT(sonde_logger_get("mgit") == sonde_logger_get("mgit"));
    sonde_logger_set_level(lg, 0);
    sonde_logger_set_level(sonde_logger_get("mgit"), 0);
    sonde_logger_set_level(sonde_logger_get("mgit.net"), 0);
    ASSERT_OK(sonde_log_set_levels("trace"));
    ASSERT_EQ(sonde_logger_level(sonde_logger_get("mgit.net.http")), SONDE_LOG_TRACE);
}

TEST(test_log_level_spec_and_names_are_validated)
{
    ASSERT_EQ(sonde_log_set_levels("loud"), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_set_levels("info,=debug"), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_set_levels(""), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_set_levels(",,"), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_set_levels(NULL), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_set_levels("a b=info"), SONDE_EPARSE);
    ASSERT_EQ(sonde_log_level_parse("WARN"), SONDE_LOG_WARNING);
    ASSERT_EQ(sonde_log_level_parse("Critical"), SONDE_LOG_CRITICAL);
    ASSERT_EQ(sonde_log_level_parse("fatal"), SONDE_LOG_CRITICAL);
    ASSERT_EQ(sonde_log_level_parse("3"), SONDE_LOG_INFO);
    ASSERT_EQ(sonde_log_level_parse("8"), 0);
    ASSERT_EQ(sonde_log_level_parse("inf"), 0);
    ASSERT_STR_EQ(sonde_log_level_name(SONDE_LOG_WARNING), "WARNING");
    ASSERT_STR_EQ(sonde_log_level_name(42), "?");
}

TEST(test_log_nested_contexts_share_one_correlation_id)
{
    capture_reset();
    char id_outer[64] = "", id_inner[64] = "";
    {
        SONDE_LOG_CONTEXT(SONDE_STR("operation", "clone_all"), SONDE_STR("organization", "myorg"));
        sonde_log_correlation_id(id_outer, sizeof id_outer);
        {
            SONDE_LOG_CONTEXT(SONDE_STR("provider", "github"), SONDE_STR("user_id", "u42"));
            SONDE_LOG(ops(), ERROR, "clone failed", SONDE_STR("repository", "repo1"));
            sonde_log_correlation_id(id_inner, sizeof id_inner);
        }
        SONDE_LOG(ops(), INFO, "after inner");
    }
    SONDE_LOG(ops(), INFO, "outside");
    ASSERT_EQ(strlen(id_outer), 32);
    ASSERT_STR_EQ(id_inner, id_outer);
    ASSERT_EQ(sonde_log_correlation_id(NULL, 0), 0);
    const char *p = cap_.path;
    ASSERT_CAPTURE_VALID_JSON();
    /* The query from the requirement document. */
    ASSERT_STR_EQ(
        jq_out(
            p,
            "select(.correlation.operation == \"clone_all\" and .level == \"ERROR\") | .message"),
        "clone failed");
    char expect[256];
    snprintf(expect, sizeof expect, "%s,clone_all,myorg,github,u42", id_outer);
    ASSERT_STR_EQ(jq_out(p,
                         "select(.message == \"clone failed\") | .correlation | [.correlation_id, "
                         ".operation, .organization, .provider, .user_id] | join(\",\")"),
                  expect);
    snprintf(expect, sizeof expect, "%s,clone_all,false", id_outer);
    ASSERT_STR_EQ(jq_out(p,
                         "select(.message == \"after inner\") | .correlation | [.correlation_id, "
                         ".operation, has(\"provider\")] | map(tostring) | join(\",\")"),
                  expect);
    ASSERT_STR_EQ(jq_out(p, "select(.message == \"outside\") | has(\"correlation\")"), "false");
}

TEST(test_log_inner_frame_key_hides_outer_key)
{
    capture_reset();
    int t1 = sonde_log_context_push(
        NULL,
        (sonde_field[]){SONDE_STR("operation", "bulk_clone"), SONDE_STR("organization", "myorg")},
        2);
    ASSERT_EQ(t1, 1);
    int t2 = sonde_log_context_push(NULL, (sonde_field[]){SONDE_STR("operation", "clone")}, 1);
    ASSERT_EQ(t2, 2);
    SONDE_LOG(ops(), INFO, "x");
    ASSERT_JQ(capture_last(), ".correlation | [.operation, .organization] | join(\",\")",
              "clone,myorg");
    ASSERT_NOT_CONTAINS(capture_last(), "bulk_clone");
    sonde_log_context_pop(t2);
    SONDE_LOG(ops(), INFO, "y");
    ASSERT_JQ(capture_last(), ".correlation.operation", "bulk_clone");
    sonde_log_context_pop(t1);
    sonde_log_context_pop(t1); /* stale: ignored */
    sonde_log_context_pop(-5);
    SONDE_LOG(ops(), INFO, "z");
    ASSERT_JQ(capture_last(), "has(\"correlation\")", "false");
}

TEST(test_log_request_context_uses_the_given_id)
{
    capture_reset();
    {
        SONDE_LOG_REQUEST_CONTEXT("req-123", SONDE_STR("client_ip", "10.0.0.1"));
        {
            SONDE_LOG_CONTEXT(SONDE_STR("operation", "login"));
            SONDE_LOG(ops(), INFO, "in");
        }
    }
    ASSERT_JQ(capture_last(),
              ".correlation | [.correlation_id, .client_ip, .operation] | join(\",\")",
              "req-123,10.0.0.1,login");
    {
        /* An ID with characters that could inject into logs is replaced. */
        SONDE_LOG_REQUEST_CONTEXT("bad\"}\n{\"level\":\"CRITICAL");
        SONDE_LOG(ops(), INFO, "in");
    }
    ASSERT_JQ(capture_last(), ".correlation.correlation_id | test(\"^[0-9a-f]{32}$\")", "true");
    {
        /* No fields at all. */
        SONDE_LOG_REQUEST_CONTEXT(NULL);
        SONDE_LOG(ops(), INFO, "in");
    }
    ASSERT_JQ(capture_last(), ".correlation | keys | join(\",\")", "correlation_id");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_correlation_ids_are_random_128_bit_hex)
{
    char a[33], b[33];
    sonde_log_new_correlation_id(a);
    sonde_log_new_correlation_id(b);
    ASSERT_EQ(strlen(a), 32);
    ASSERT(strcmp(a, b) != 0);
    for (int i = 0; i < 32; i++)
        ASSERT(strchr("0123456789abcdef", a[i]) != NULL);
}

TEST(test_log_correlation_from_headers_prefers_traceparent)
{
    char out[SONDE_CORRELATION_ID_MAX + 1];
    ASSERT_EQ(sonde_log_correlation_from_headers(
                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "req-1", out),
              1);
    ASSERT_STR_EQ(out, "4bf92f3577b34da6a3ce929d0e0e4736");
    ASSERT_EQ(sonde_log_correlation_from_headers("garbage", "  req-1  ", out), 2);
    ASSERT_STR_EQ(out, "req-1");
    ASSERT_EQ(sonde_log_correlation_from_headers(NULL, "has space", out), 0);
    ASSERT_EQ(strlen(out), 32);
    ASSERT_EQ(sonde_log_correlation_from_headers(NULL, NULL, out), 0);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    ASSERT_EQ(sonde_log_correlation_from_headers(NULL, longid, out), 0);
}

TEST(test_log_traceparent_parser_follows_w3c)
{
    static const struct {
        const char *in;
        int ok;
    } cases[] = {
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1},
        {" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t", 1},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", 1},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 1},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", 0},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", 0},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 0},
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 0},
        {"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", 0},
        {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 0},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", 0},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char t[33], p[17];
        int rc = sonde_log_traceparent_parse(cases[i].in, strlen(cases[i].in), t, p);
        if ((rc == SONDE_OK) != cases[i].ok)
            TEST_FAIL_AT("case %zu \"%s\": got %d, want ok=%d", i, cases[i].in, rc, cases[i].ok);
        if (cases[i].ok) {
            ASSERT_STR_EQ(t, "4bf92f3577b34da6a3ce929d0e0e4736");
            ASSERT_STR_EQ(p, "00f067aa0ba902b7");
        }
    }
    ASSERT_EQ(sonde_log_traceparent_parse(NULL, 0, NULL, NULL), SONDE_EPARSE);
}

typedef struct {
    sonde_log_context *ctx;
    char id[64];
    char inside_id[64];
} handoff;

static void *worker(void *arg)
{
    handoff *h = arg;
    sonde_log_correlation_id(h->id, sizeof h->id); /* none yet */
    {
        SONDE_LOG_ADOPT_CONTEXT(h->ctx);
        SONDE_LOG_CONTEXT(SONDE_STR("worker", "w1"));
        SONDE_LOG(ops(), WARNING, "from worker", SONDE_STR("repository", "repo2"));
        sonde_log_correlation_id(h->inside_id, sizeof h->inside_id);
    }
    return NULL;
}

TEST(test_log_context_follows_a_handoff_to_another_thread)
{
    capture_reset();
    handoff h;
    memset(&h, 0, sizeof h);
    char main_id[64];
    {
        SONDE_LOG_CONTEXT(SONDE_STR("operation", "clone_all"), SONDE_STR("provider", "github"),
                          SONDE_STR("password", "hunter2"));
        sonde_log_correlation_id(main_id, sizeof main_id);
        h.ctx = sonde_log_context_capture();
        ASSERT(h.ctx != NULL);
        SONDE_LOG(ops(), INFO, "from main");
    }
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, worker, &h), 0);
    pthread_join(th, NULL);
    sonde_log_context_release(h.ctx);
    ASSERT_STR_EQ(h.id, "");
    ASSERT_STR_EQ(h.inside_id, main_id);
    const char *p = cap_.path;
    ASSERT_CAPTURE_VALID_JSON();
    char expect[256];
    snprintf(expect, sizeof expect, "%s,clone_all,github,***,w1", main_id);
    ASSERT_STR_EQ(jq_out(p,
                         "select(.message == \"from worker\") | .correlation | [.correlation_id, "
                         ".operation, .provider, .password, .worker] | join(\",\")"),
                  expect);
    /* Two threads, one correlation ID. */
    ASSERT_STR_EQ(jq_slurp(p, "map(.tid) | unique | length"), "2");
    ASSERT_STR_EQ(jq_slurp(p, "map(.correlation.correlation_id) | unique | length"), "1");
}

TEST(test_log_context_stack_depth_is_bounded)
{
    int first = 0, last = 0;
    for (int i = 0; i < SONDE_LOG_MAX_DEPTH + 8; i++) {
        int t = sonde_log_context_push(NULL, (sonde_field[]){SONDE_INT("depth", i)}, 1);
        if (i == 0)
            first = t;
        if (i < SONDE_LOG_MAX_DEPTH)
            ASSERT_EQ(t, i + 1);
        else
            ASSERT_EQ(t, SONDE_ELIMIT);
        last = t;
    }
    sonde_log_context_pop(last); /* negative: nothing */
    ASSERT_EQ(sonde_log_correlation_id(NULL, 0), 32);
    sonde_log_context_pop(first);
    ASSERT_EQ(sonde_log_correlation_id(NULL, 0), 0);
}

TEST(test_log_context_values_are_bounded)
{
    capture_reset();
    static char big[20000];
    memset(big, 'v', sizeof big - 1);
    int t = sonde_log_context_push(
        NULL, (sonde_field[]){SONDE_STR("big", big), SONDE_STR("next", "n")}, 2);
    ASSERT_GT(t, 0);
    SONDE_LOG(ops(), INFO, "x");
    sonde_log_context_pop(t);
    const char *l = capture_last();
    ASSERT_JQ(l, ".correlation.big | length", "526"); /* 512 + "...[truncated]" */
    ASSERT_JQ(l, ".correlation.next", "n");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_operation_start_and_end_time_the_operation)
{
    capture_reset();
    sonde_log_op op;
    SONDE_LOG_OP_START(&op, ops(), "clone", SONDE_STR("repository", "repo1"));
    SONDE_LOG(ops(), DEBUG, "working");
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    SONDE_LOG_OP_END(&op, 1, SONDE_INT("objects", 12));
    const char *p = cap_.path;
    ASSERT_CAPTURE_VALID_JSON();
    ASSERT_STR_EQ(jq_out(p, "select(.fields.event == \"operation_start\") | [.message, .level, "
                            ".correlation.operation, .correlation.repository] | join(\",\")"),
                  "clone started,INFO,clone,repo1");
    ASSERT_STR_EQ(jq_out(p, "select(.message == \"working\") | .correlation.operation"), "clone");
    ASSERT_STR_EQ(jq_out(p, "select(.fields.event == \"operation_end\") | [.message, .level, "
                            "(.fields.success|tostring), (.fields.objects|tostring), "
                            ".correlation.operation] | join(\",\")"),
                  "clone completed,INFO,true,12,clone");
    double d = strtod(
        jq_out(p, "select(.fields.event == \"operation_end\") | .fields.duration_seconds"), NULL);
    ASSERT(d >= 0.019 && d < 5);
    ASSERT_EQ(sonde_log_correlation_id(NULL, 0), 0);

    capture_reset();
    SONDE_LOG_OP_START(&op, ops(), "push");
    double d2 = sonde_log_operation_end(&op, 0, NULL, 0);
    ASSERT(d2 >= 0);
    ASSERT_JQ(capture_last(), "[.message, .level, (.fields.success|tostring)] | join(\",\")",
              "push failed,ERROR,false");
}

TEST(test_log_errno_and_backtrace)
{
    capture_reset();
    SONDE_LOG(ops(), ERROR, "open failed", SONDE_STR("path", "/nope"), SONDE_ERRNUM(ENOENT),
              SONDE_BACKTRACE());
    const char *l = capture_last();
    ASSERT_JQ(l, ".fields | [(.errno|tostring), .error] | join(\",\")",
              "2,No such file or directory");
    ASSERT_JQ(l, ".backtrace | type", "array");
    ASSERT(atoi(jq_line(l, ".backtrace | length")) >= 1);
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_invalid_utf8_and_control_characters_stay_valid_json)
{
    capture_reset();
    SONDE_LOG(ops(), INFO, "bad \xff\xfe utf8 \x01 ctl \"quote\" back\\slash\nnewline \xc3\xa9",
              SONDE_STR("k\xff", "v\x80\x1f"), SONDE_STR("overlong", "\xc0\xaf"),
              SONDE_STR("surrogate", "\xed\xa0\x80"), SONDE_STR("cut", "\xe2\x82"));
    const char *l = capture_last();
    ASSERT_EQ(strchr(l, '\n') - l + 1, (long)strlen(l)); /* one line */
    ASSERT_JQ(l, ".message",
              "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \x01 ctl \"quote\" back\\slash\nnewline \xc3\xa9");
    ASSERT_JQ(l, ".fields | keys[0]", "cut");
    ASSERT_JQ(l, ".fields.overlong", "\xef\xbf\xbd\xef\xbf\xbd");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_nul_bytes_in_values_are_escaped)
{
    capture_reset();
    SONDE_LOG(ops(), INFO, "nul", SONDE_STRN("k", "a\0b", 3));
    ASSERT_CONTAINS(capture_last(), "\"k\":\"a\\u0000b\"");
    ASSERT_JQ(capture_last(), ".fields.k | length", "3");
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_huge_lines_are_truncated_with_a_marker)
{
    capture_reset();
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'm', n);
    big[n] = '\0';
    SONDE_LOG(ops(), INFO, big, SONDE_STR("value", big), SONDE_STR("after", "x"));
    const char *l = capture_last();
    ASSERT_LE(strlen(l), 16384);
    ASSERT_JQ(l, ".truncated", "true");
    ASSERT_JQ(l, ".message | endswith(\"...[truncated]\")", "true");
    ASSERT_JQ(l, ".fields.value | endswith(\"...[truncated]\")", "true");
    ASSERT_JQ(l, ".source | startswith(\"test_log.c:\")", "true");

    /* Many fields: the ones that do not fit are left out. */
    enum { NF = 3000 };
    sonde_field *f = malloc(NF * sizeof *f);
    for (int i = 0; i < NF; i++)
        f[i] = SONDE_STR("some_key_name", "some value text");
    sonde_log_write(ops(), SONDE_LOG_INFO, __FILE__, __LINE__, __func__, "many", f, NF);
    l = capture_last();
    ASSERT_LE(strlen(l), 16384);
    ASSERT_JQ(l, ".truncated", "true");
    free(f);

    /* Escaping expands: 1 MiB of control characters is 6 MiB escaped. */
    memset(big, '\x01', n);
    SONDE_LOG(ops(), INFO, "ctl", SONDE_STR("v", big));
    ASSERT_LE(strlen(capture_last()), 16384);

    /* A smaller configured line size. */
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.max_line_bytes = 4096;
    ASSERT_OK(sonde_log_configure(&o));
    SONDE_LOG(ops(), INFO, big, SONDE_STR("v", big));
    ASSERT_LE(strlen(capture_last()), 4096);
    ASSERT_JQ(capture_last(), ".truncated", "true");
    o.max_line_bytes = 100;
    ASSERT_EQ(sonde_log_configure(&o), SONDE_EINVAL);
    o.max_line_bytes = 0;
    ASSERT_OK(sonde_log_configure(&o));
    free(big);
    ASSERT_CAPTURE_VALID_JSON();
}

TEST(test_log_printf_huge_message_is_truncated)
{
    capture_reset();
    size_t n = 100000;
    char *big = malloc(n + 1);
    memset(big, 'p', n);
    big[n] = '\0';
    SONDE_LOGF(ops(), INFO, "%s%s", big, big);
    ASSERT_LE(strlen(capture_last()), 16384);
    ASSERT_JQ(capture_last(), ".message | endswith(\"...[truncated]\")", "true");
    free(big);
    ASSERT_CAPTURE_VALID_JSON();
}

static char console_line[8192];
static void console_fn(const sonde_log_record *r, const char *line, size_t len, void *ud)
{
    (void)r;
    (void)ud;
    size_t n = len < sizeof console_line - 1 ? len : sizeof console_line - 1;
    memcpy(console_line, line, n);
    console_line[n] = '\0';
}

TEST(test_log_console_format_is_human_readable)
{
    capture_reset();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = console_fn;
    so.format = SONDE_LOG_FORMAT_CONSOLE;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    {
        SONDE_LOG_REQUEST_CONTEXT("req-9", SONDE_STR("operation", "clone_all"));
        SONDE_LOG(ops(), WARNING, "Starting clone", SONDE_STR("repository", "repo1"),
                  SONDE_STR("note", "two words"), SONDE_INT("n", 3), SONDE_STR("token", "abc"));
    }
    ASSERT_CONTAINS(console_line, " WARNING  mgit.operations: Starting clone");
    ASSERT_CONTAINS(console_line, " repository=repo1 note=\"two words\" n=3 token=*** ");
    ASSERT_CONTAINS(console_line, "correlation_id=req-9 operation=clone_all");
    ASSERT_CONTAINS(console_line, "(test_log.c:");
    ASSERT_NOT_CONTAINS(console_line, "\033[");
    ASSERT_EQ(strchr(console_line, '\n') - console_line + 1, (long)strlen(console_line));
    ASSERT_OK(sonde_log_sink_remove(id));
    so.color = 1;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    SONDE_LOG(ops(), ERROR, "red\nline");
    ASSERT_CONTAINS(console_line, "\033[31mERROR\033[0m");
    ASSERT_CONTAINS(console_line, "red\\nline");
    ASSERT_OK(sonde_log_sink_remove(id));
}

TEST(test_log_stats_count_messages_by_level)
{
    capture_reset();
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    SONDE_LOG(ops(), INFO, "1");
    SONDE_LOG(ops(), INFO, "2");
    SONDE_LOG(ops(), ERROR, "3");
    sonde_log_get_stats(&b);
    ASSERT_U64_EQ(b.messages[SONDE_LOG_INFO] - a.messages[SONDE_LOG_INFO], 2);
    ASSERT_U64_EQ(b.messages[SONDE_LOG_ERROR] - a.messages[SONDE_LOG_ERROR], 1);
}

TEST(test_log_self_metrics_are_exposed)
{
    capture_reset();
    SONDE_LOG(ops(), WARNING, "w");
    sonde_log_stats st;
    sonde_log_get_stats(&st);
    char *text = sonde_registry_render(NULL, SONDE_FORMAT_PROMETHEUS, NULL);
    ASSERT(text != NULL);
    char want[128];
    snprintf(want, sizeof want, "sonde_log_messages_total{level=\"warning\"} %llu\n",
             (unsigned long long)st.messages[SONDE_LOG_WARNING]);
    ASSERT_CONTAINS(text, want);
    ASSERT_CONTAINS(text, "# TYPE sonde_log_dropped_total counter\n");
    ASSERT_CONTAINS(text, "# TYPE sonde_log_write_errors_total counter\n");
    snprintf(want, sizeof want, "sonde_log_dropped_total %llu\n", (unsigned long long)st.dropped);
    ASSERT_CONTAINS(text, want);
    sonde_free(text);
}

static int inside_rc[4];
static void recursive_fn(const sonde_log_record *r, const char *line, size_t len, void *ud)
{
    (void)line;
    (void)len;
    (void)ud;
    if (strcmp(r->message, "outer") == 0) {
        SONDE_LOG(ops(), ERROR, "from inside a sink");
        /* Reconfiguring from here would deadlock: refused. */
        inside_rc[0] = sonde_log_configure(NULL);
        inside_rc[1] = sonde_log_sink_add(SONDE_LOG_SINK_STDERR, NULL, NULL);
        inside_rc[2] = sonde_log_flush(100);
        inside_rc[3] = sonde_log_set_levels("debug");
    }
}

TEST(test_log_call_from_a_callback_sink_is_dropped_not_deadlocked)
{
    capture_reset();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = recursive_fn;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    SONDE_LOG(ops(), INFO, "outer");
    sonde_log_get_stats(&b);
    ASSERT_U64_EQ(b.dropped - a.dropped, 1);
    ASSERT_EQ(cap_.lines, 1);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(inside_rc[i], SONDE_ESTATE);
    ASSERT_OK(sonde_log_sink_remove(id));
}

static void always_logs_fn(const sonde_log_record *r, const char *line, size_t len, void *ud)
{
    (void)r;
    (void)line;
    (void)len;
    (void)ud;
    SONDE_LOG(ops(), ERROR, "echo from a sink"); /* would loop forever if queued */
}

TEST(test_log_callback_that_logs_in_async_mode_neither_loops_nor_deadlocks)
{
    capture_reset();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = always_logs_fn;
    int id;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, &id));
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.async = 1;
    o.block_when_full = 1;
    ASSERT_OK(sonde_log_configure(&o));
    sonde_log_stats a, b;
    sonde_log_get_stats(&a);
    for (int i = 0; i < 100; i++)
        SONDE_LOG(ops(), INFO, "line", SONDE_INT("i", i));
    ASSERT_OK(sonde_log_flush(5000));
    ASSERT_OK(sonde_log_shutdown(5000));
    sonde_log_get_stats(&b);
    ASSERT_EQ(cap_.lines, 100);
    ASSERT_U64_EQ(b.dropped - a.dropped, 100);
    o.async = 0;
    ASSERT_OK(sonde_log_configure(&o));
    ASSERT_OK(sonde_log_sink_remove(id));
}

TEST(test_log_internal_diagnostics_become_log_lines)
{
    capture_reset();
    sonde__diag(SONDE_LOG_WARNING, "http", "bind failed on port %d", 80);
    ASSERT_JQ(capture_last(), "[.logger, .level, .message] | join(\",\")",
              "http,WARNING,bind failed on port 80");
}

TEST(test_log_asynchronous_mode_flushes_on_critical_and_on_flush)
{
    capture_reset();
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.level = "trace";
    o.async = 1;
    ASSERT_OK(sonde_log_configure(&o));
    for (int i = 0; i < 1000; i++)
        SONDE_LOG(ops(), DEBUG, "queued", SONDE_INT("i", i));
    SONDE_LOG(ops(), CRITICAL, "stop");
    /* CRITICAL returns only once everything before it is written. */
    ASSERT_EQ(cap_.lines, 1001);
    ASSERT_JQ(capture_last(), ".message", "stop");
    SONDE_LOG(ops(), INFO, "after");
    ASSERT_OK(sonde_log_flush(2000));
    ASSERT_EQ(cap_.lines, 1002);
    ASSERT_OK(sonde_log_shutdown(2000));
    SONDE_LOG(ops(), INFO, "sync again");
    ASSERT_EQ(cap_.lines, 1003);
    ASSERT_STR_EQ(
        jq_slurp(cap_.path,
                 "[.[] | select(.message == \"queued\") | .fields.i] | . == [range(1000)]"),
        "true");
    ASSERT_CAPTURE_VALID_JSON();
    o.async = 0;
    ASSERT_OK(sonde_log_configure(&o));
}

TEST(test_log_environment_configures_levels_file_and_console)
{
    const char *dir = test_tmpdir();
    char file[300], errpath[300];
    snprintf(file, sizeof file, "%s/env.log", dir);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    unlink(file);
    setenv("SONDE_LOG_LEVEL", "debug", 1);
    setenv("SONDE_LOG_FILE", file, 1);
    setenv("SONDE_LOG_FORMAT", "json", 1);
    setenv("SONDE_LOG_CONSOLE_LEVEL", "error", 1);
    /* Console output goes to our stderr: send it to a file for a while. */
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = sonde_log_configure(NULL);
    SONDE_LOG(ops(), DEBUG, "debug line");
    SONDE_LOG(ops(), TRACE, "trace line");
    SONDE_LOG(ops(), ERROR, "error line");
    sonde_log_flush(1000);
    dup2(saved, 2);
    close(saved);
    unsetenv("SONDE_LOG_LEVEL");
    unsetenv("SONDE_LOG_FILE");
    unsetenv("SONDE_LOG_FORMAT");
    unsetenv("SONDE_LOG_CONSOLE_LEVEL");
    capture_reset();
    ASSERT_OK(rc);
    ASSERT_STR_EQ(jq_out(file, ".message"), "debug line\nerror line");
    ASSERT_EQ(jq_every_line(file), 0);
    ASSERT_STR_EQ(jq_out(errpath, ".message"), "error line");
    ASSERT_EQ(jq_every_line(errpath), 0);
    /* A bad value is reported as a warning line, not applied. */
    setenv("SONDE_LOG_LEVEL", "chatty", 1);
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.console = -1;
    ASSERT_OK(sonde_log_configure(&o));
    unsetenv("SONDE_LOG_LEVEL");
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.fn = capture_fn;
    so.userdata = &cap_;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, NULL));
    ASSERT_EQ(sonde_logger_level(NULL), SONDE_LOG_INFO);
    capture_reset();
}

TEST(test_log_configure_rejects_bad_options)
{
    sonde_log_opts o;
    sonde_log_opts_init(&o);
    o.no_env = 1;
    o.console = -1;
    o.queue_slots = 1000; /* not a power of two */
    ASSERT_EQ(sonde_log_configure(&o), SONDE_EINVAL);
    o.queue_slots = 0;
    o.level = "debug,x=";
    ASSERT_EQ(sonde_log_configure(&o), SONDE_EPARSE);
    o.level = NULL;
    o.file = "/nonexistent-dir/x/app.log";
    ASSERT_EQ(sonde_log_configure(&o), SONDE_EIO);
    capture_reset();
}

TEST_MAIN()
