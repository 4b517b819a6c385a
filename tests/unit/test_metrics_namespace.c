/*
 * The registry-wide namespace: every family gets the prefix unless it opts
 * out; sonde's own families keep their names; request instrumentation
 * nests under it.
 */
#include "test.h"

#include <sonde.h>

TEST_MAIN()

TEST(test_registry_namespace_prefixes_every_family_unless_it_opts_out)
{
    sonde_registry_opts ro;
    sonde_registry_opts_init(&ro);
    ro.metric_namespace = "automation";
    sonde_registry *reg;
    ASSERT_OK(sonde_registry_create(&ro, &reg));
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = "api_calls_total";
    o.help = "calls";
    sonde_family *f;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &f));
    sonde_counter_inc(sonde_family_as_counter(f));
    sonde_metric_opts_init(&o);
    o.ns = "cache";
    o.name = "hit_ratio";
    ASSERT_OK(sonde_family_create(reg, SONDE_GAUGE, &o, &f));
    sonde_metric_opts_init(&o);
    o.name = "up";
    o.no_namespace = 1;
    ASSERT_OK(sonde_family_create(reg, SONDE_GAUGE, &o, &f));
    sonde_metric_opts_init(&o);
    o.name = "sonde_internal_total";
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &f));
    /* Registering the same definition again finds the prefixed family. */
    sonde_metric_opts_init(&o);
    o.name = "api_calls_total";
    o.help = "calls";
    sonde_family *again;
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &again));

    sonde_http_instr_opts io;
    sonde_http_instr_opts_init(&io);
    io.registry = reg;
    io.metric_namespace = "web";
    io.no_trace = 1;
    sonde_http_instr *in;
    ASSERT_OK(sonde_http_instr_create(&io, &in));

    sonde_buf b = {0};
    ASSERT_OK(sonde_registry_write_prometheus(reg, &b));
    ASSERT_CONTAINS(b.data, "\nautomation_api_calls_total 1\n");
    ASSERT_CONTAINS(b.data, "\nautomation_cache_hit_ratio 0\n");
    ASSERT_CONTAINS(b.data, "\nup 0\n");
    ASSERT_CONTAINS(b.data, "\nsonde_internal_total 0\n");
    ASSERT_CONTAINS(b.data, "# TYPE automation_web_http_requests_in_flight gauge");
    ASSERT_NOT_CONTAINS(b.data, "automation_up");
    sonde_buf_free(&b);

    /* Changing it applies to families registered afterwards. */
    ASSERT_EQ(sonde_registry_set_namespace(reg, "bad name"), SONDE_EBADNAME);
    ASSERT_OK(sonde_registry_set_namespace(reg, NULL));
    sonde_metric_opts_init(&o);
    o.name = "later_total";
    ASSERT_OK(sonde_family_create(reg, SONDE_COUNTER, &o, &f));
    ASSERT_OK(sonde_registry_write_prometheus(reg, &b));
    ASSERT_CONTAINS(b.data, "\nlater_total 0\n");
    ASSERT_CONTAINS(b.data, "\nautomation_api_calls_total 1\n");
    sonde_buf_free(&b);
    sonde_http_instr_destroy(in);
    sonde_registry_destroy(reg);

    ro.metric_namespace = "9bad";
    ASSERT_EQ(sonde_registry_create(&ro, &reg), SONDE_EBADNAME);
}
