/* Operations and logging: start/end lines at DEBUG with the correlation ID,
 * the operation's context frame around what is logged inside, and frames
 * that never cross threads. */
#include "test.h"

#include <sonde.h>

#include <pthread.h>

#include "trace/trace_int.h"

TEST_MAIN()

static char lines[64][2048];
static int nlines;

static void capture(const sonde_log_record *rec, const char *line, size_t len, void *ud)
{
    (void)rec;
    (void)ud;
    if (nlines < 64) {
        snprintf(lines[nlines], sizeof lines[0], "%.*s", (int)len, line);
        nlines++;
    }
}

static const char *find_line(const char *needle)
{
    for (int i = 0; i < nlines; i++)
        if (strstr(lines[i], needle))
            return lines[i];
    return NULL;
}

static void setup_logging(void)
{
    sonde_log_sink_remove_all();
    sonde_log_sink_opts so;
    sonde_log_sink_opts_init(&so);
    so.format = SONDE_LOG_FORMAT_JSON;
    so.fn = capture;
    ASSERT_OK(sonde_log_sink_add(SONDE_LOG_SINK_CALLBACK, &so, NULL));
    nlines = 0;
}

static sonde__tracer *tracer(sonde_registry **reg, int log_context)
{
    ASSERT_OK(sonde_registry_create(NULL, reg));
    sonde_trace_opts o;
    sonde_trace_opts_init(&o);
    o.registry = *reg;
    o.log_context = log_context;
    sonde__tracer *tr;
    ASSERT_OK(sonde__tracer_create(&o, &tr));
    return tr;
}

static sonde_op *op_of(sonde__tracer *tr, const char *name)
{
    sonde_op_opts o;
    sonde_op_opts_init(&o);
    o.name = name;
    sonde_op *op;
    ASSERT_OK(sonde__trace_op_create(tr, &o, &op));
    return op;
}

TEST(test_operations_log_start_and_end_at_debug_inside_their_context)
{
    setup_logging();
    ASSERT_OK(sonde_log_set_levels("info,sonde.trace=debug"));
    sonde_registry *reg;
    sonde__tracer *tr = tracer(&reg, 0);
    sonde_op *op = op_of(tr, "clone");
    sonde_logger *app = sonde_logger_get("app");
    int outer = sonde_log_context_push("req-1234", NULL, 0);
    ASSERT_GT(outer, 0);
    sonde_op_token t = sonde_op_begin_op(op);
    ASSERT_GT(sonde__trace_log_ctx(t), 0);
    SONDE_LOG(app, INFO, "cloning", SONDE_STR("repository", "repo1"));
    sonde_op_end(t, 0);
    SONDE_LOG(app, INFO, "after");
    sonde_log_context_pop(outer);
    const char *start = find_line("\"message\":\"operation started\"");
    ASSERT(start != NULL);
    ASSERT_CONTAINS(start, "\"level\":\"DEBUG\"");
    ASSERT_CONTAINS(start, "\"logger\":\"sonde.trace\"");
    ASSERT_CONTAINS(start, "\"correlation_id\":\"req-1234\"");
    ASSERT_CONTAINS(start, "\"event\":\"operation_start\"");
    const char *inside = find_line("\"message\":\"cloning\"");
    ASSERT(inside != NULL);
    ASSERT_CONTAINS(inside,
                    "\"correlation\":{\"correlation_id\":\"req-1234\",\"operation\":\"clone\"}");
    const char *end = find_line("\"message\":\"operation finished\"");
    ASSERT(end != NULL);
    ASSERT_CONTAINS(end, "\"success\":false");
    ASSERT_CONTAINS(end, "\"duration_seconds\":");
    ASSERT_CONTAINS(end, "\"operation\":\"clone\"");
    ASSERT_CONTAINS(end, "\"correlation_id\":\"req-1234\"");
    /* The frame was popped with the operation. */
    const char *after = find_line("\"message\":\"after\"");
    ASSERT(after != NULL);
    ASSERT_NOT_CONTAINS(after, "\"operation\":\"clone\"");
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
}

TEST(test_below_debug_operations_neither_log_nor_push_unless_asked)
{
    setup_logging();
    ASSERT_OK(sonde_log_set_levels("info,sonde.trace=info"));
    sonde_registry *reg;
    sonde__tracer *tr = tracer(&reg, 0);
    sonde_op *op = op_of(tr, "quiet");
    sonde_op_token t = sonde_op_begin_op(op);
    ASSERT_EQ(sonde__trace_log_ctx(t), 0);
    sonde_op_end(t, 1);
    ASSERT_EQ(nlines, 0);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    /* log_context = 1: the frame is pushed anyway (nested lines carry the
     * operation), nothing is logged by the operation itself. */
    tr = tracer(&reg, 1);
    op = op_of(tr, "joined");
    t = sonde_op_begin_op(op);
    ASSERT_GT(sonde__trace_log_ctx(t), 0);
    SONDE_LOG(sonde_logger_get("app"), INFO, "inside");
    sonde_op_end(t, 1);
    ASSERT_EQ(nlines, 1);
    ASSERT_CONTAINS(lines[0], "\"operation\":\"joined\"");
    ASSERT_CONTAINS(lines[0], "\"correlation_id\":\"");
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    /* log_context = -1: never, even at DEBUG. */
    ASSERT_OK(sonde_log_set_levels("debug,sonde.trace=debug"));
    tr = tracer(&reg, -1);
    op = op_of(tr, "never");
    t = sonde_op_begin_op(op);
    ASSERT_EQ(sonde__trace_log_ctx(t), 0);
    sonde_op_end(t, 1);
    /* End still logs at DEBUG (no frame to pop). */
    ASSERT(find_line("operation finished") != NULL);
    ASSERT(find_line("operation started") == NULL);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    ASSERT_OK(sonde_log_set_levels("info,sonde.trace=info"));
}

static sonde_op_token cross_token;
static void *end_elsewhere(void *arg)
{
    (void)arg;
    int mine = sonde_log_context_push("other-thread", NULL, 0);
    sonde_op_end(cross_token, 1);
    /* Our own frame is still there: the foreign token was not popped here. */
    char id[64];
    sonde_log_correlation_id(id, sizeof id);
    sonde_log_context_pop(mine);
    return strcmp(id, "other-thread") == 0 ? NULL : (void *)1;
}

TEST(test_an_operation_ended_on_another_thread_does_not_pop_its_frames)
{
    setup_logging();
    ASSERT_OK(sonde_log_set_levels("info,sonde.trace=debug"));
    sonde_registry *reg;
    sonde__tracer *tr = tracer(&reg, 0);
    sonde_op *op = op_of(tr, "cross");
    cross_token = sonde_op_begin_op(op);
    int frame = sonde__trace_log_ctx(cross_token);
    ASSERT_GT(frame, 0);
    pthread_t th;
    void *ret = (void *)2;
    ASSERT_EQ(pthread_create(&th, NULL, end_elsewhere, NULL), 0);
    pthread_join(th, &ret);
    ASSERT(ret == NULL);
    /* This thread's frame stays until popped by its owner. */
    char id[64];
    ASSERT_GT(sonde_log_correlation_id(id, sizeof id), 0);
    sonde_log_context_pop(frame);
    ASSERT_EQ(sonde_log_correlation_id(id, sizeof id), 0);
    sonde__tracer_destroy(tr);
    sonde_registry_destroy(reg);
    ASSERT_OK(sonde_log_set_levels("info,sonde.trace=info"));
}
