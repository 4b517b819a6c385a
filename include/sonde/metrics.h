/*
 * sonde/metrics.h - counters, gauges, histograms, summaries, label vectors,
 * callback metrics, collectors, state sets and info metrics.
 *
 * Model: a registry holds metric families; a family has a type, a name, help,
 * optional unit, label names and constant labels; each distinct set of label
 * values is a series (a "child"). A family without label names has exactly
 * one series, created with the family.
 *
 * Hot path: sonde_counter_inc/add, sonde_gauge_set/inc/..., and
 * sonde_histogram_observe never lock, never allocate (after the calling
 * thread's first update, which sets up its cells), never make a syscall and
 * never fail. Counters and histograms write only to memory owned by the
 * calling thread; a scrape sums those cells. Label lookups by value are
 * lock-free and allocation-free for series that already exist; keep the
 * returned handle to skip the lookup entirely.
 *
 * Handles stay valid until the series is removed (sonde_family_remove,
 * sonde_family_clear) or its registry destroyed. Using a handle after that is
 * a bug of the caller.
 */
#ifndef SONDE_METRICS_H
#define SONDE_METRICS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sonde_registry sonde_registry;
typedef struct sonde_family sonde_family;
/* Series handles: distinct types so the compiler catches a gauge passed to
 * a counter function. All are children of some sonde_family. */
typedef struct sonde_counter sonde_counter;
typedef struct sonde_gauge sonde_gauge;
typedef struct sonde_histogram sonde_histogram;
typedef struct sonde_summary sonde_summary;
typedef struct sonde_stateset sonde_stateset;

/** Metric types. Values are ABI. */
typedef enum sonde_metric_type {
    SONDE_COUNTER = 1,
    SONDE_GAUGE = 2,
    SONDE_HISTOGRAM = 3,
    SONDE_SUMMARY = 4,
    SONDE_INFO = 5,
    SONDE_STATESET = 6,
    SONDE_UNTYPED = 7
} sonde_metric_type;

/** Default cardinality limit per family (series). */
#define SONDE_DEFAULT_MAX_SERIES 10000
/** Most label names a family may declare. */
#define SONDE_MAX_LABELS 16
/** Most buckets a histogram may declare (not counting +Inf). */
#define SONDE_MAX_BUCKETS 256
/** Most quantile objectives a summary may declare. */
#define SONDE_MAX_QUANTILES 16

/* ------------------------------------------------------------------------ */
/* Registries                                                               */

/** Registry options; zero means default for every field. */
typedef struct sonde_registry_opts {
    /** Register the standard process_* collector. Default (0): no for
     * sonde_registry_create; the default registry always has it. */
    int process_metrics;
    /** Registry-wide namespace: every family registered in the registry
     * gets the prefix "<metric_namespace>_" (before its own ns and
     * subsystem), except families that set no_namespace and sonde's own
     * sonde_* and process_* families. NULL or "": none. Must be a valid
     * metric name. Copied. */
    const char *metric_namespace;
    /** Non-zero: metric and label names of the families registered in the
     * registry may be any non-empty valid UTF-8 ("http.server.duration",
     * "région"), as Prometheus 3 accepts. A scraper that asks for
     * escaping=allow-utf-8 (text and OpenMetrics 1.0.0, protobuf) gets them
     * as they are, quoted in the text formats ({"my.metric","label.x"="v"});
     * any other scraper gets them escaped per its escaping= scheme
     * (underscores by default; see sonde_escaping). Names that are valid
     * legacy names are never changed. Default (0): legacy names only
     * ([a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*). */
    int utf8_names;
    /** Non-zero: expose each counter, histogram and summary series' creation
     * time: OpenMetrics <name>_created lines and the protobuf
     * created_timestamp fields (Prometheus reads them with
     * --enable-feature=created-timestamp-zero-ingestion). Off by default,
     * as in the Go client: they add a series per series. The JSON format
     * always carries "created". */
    int created_timestamps;
} sonde_registry_opts;

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_registry_opts_init(sonde_registry_opts *opts);

/**
 * Create an independent registry. opts may be NULL (defaults). On success
 * *out owns a registry the caller frees with sonde_registry_destroy.
 * Returns SONDE_OK, SONDE_EINVAL or SONDE_ENOMEM. Any thread; allocates.
 */
SONDE_API int sonde_registry_create(const sonde_registry_opts *opts, sonde_registry **out);

/**
 * Destroy a registry, its families and series; accepts NULL. No other thread
 * may use the registry or any handle from it during or after the call.
 * The default registry is never destroyed (the call is ignored for it).
 */
SONDE_API void sonde_registry_destroy(sonde_registry *reg);

/**
 * Set the registry-wide namespace (see sonde_registry_opts.metric_namespace)
 * of reg (NULL: the default registry) for the families registered from
 * now on; families already registered keep their names. ns NULL or ""
 * removes it. Returns SONDE_OK, SONDE_EBADNAME or SONDE_ENOMEM. Any
 * thread.
 */
SONDE_API int sonde_registry_set_namespace(sonde_registry *reg, const char *ns);

/**
 * Turn created timestamps on (non-zero) or off for reg (NULL: the default
 * registry); see sonde_registry_opts.created_timestamps. Takes effect at
 * the next scrape. Returns SONDE_OK. Any thread.
 */
SONDE_API int sonde_registry_set_created_timestamps(sonde_registry *reg, int on);

/**
 * Allow (non-zero) or refuse UTF-8 metric and label names (see
 * sonde_registry_opts.utf8_names) in reg (NULL: the default registry) for
 * families registered from now on. Returns SONDE_OK. Any thread.
 */
SONDE_API int sonde_registry_set_utf8_names(sonde_registry *reg, int allow);

/**
 * The process-wide default registry, created at first use with the process
 * collector and sonde's self-metrics. Never NULL. Any thread.
 */
SONDE_API sonde_registry *sonde_registry_default(void);

/* ------------------------------------------------------------------------ */
/* Families                                                                 */

/** Options for a metric family; zero means default for every field. */
typedef struct sonde_metric_opts {
    /** Optional prefixes: the full name is ns_subsystem_name. NULL or "" to
     * omit. */
    const char *ns;
    const char *subsystem;
    /** Required. [a-zA-Z_:][a-zA-Z0-9_:]*; counters conventionally end in
     * _total (OpenMetrics output strips it from the family name). */
    const char *name;
    /** Help text, any bytes (escaped on output). NULL means none. */
    const char *help;
    /** OpenMetrics unit ("seconds", "bytes"). When set the full name must
     * end with "_" unit (before _total for counters). NULL means none. */
    const char *unit;
    /** Label names of the series; label_count of them. Reserved names
     * (__*), "le" on histograms and "quantile" on summaries are refused. */
    const char *const *label_names;
    size_t label_count;
    /** Constant labels, as pairs: const_labels[2i] = name,
     * const_labels[2i+1] = value; const_label_count pairs. */
    const char *const *const_labels;
    size_t const_label_count;
    /** Cardinality limit: most series in the family. 0 means
     * SONDE_DEFAULT_MAX_SERIES (10,000). Past it, new series are refused
     * with SONDE_ELIMIT and counted in
     * sonde_metrics_dropped_series_total{family}. */
    size_t max_series;
    /** Histogram upper bounds, strictly increasing, finite; +Inf is
     * implicit. NULL means sonde_default_buckets (Prometheus defaults). */
    const double *buckets;
    size_t bucket_count;
    /** Summary objectives: quantiles in [0,1]. NULL means none (only _sum
     * and _count are exposed). */
    const double *quantiles;
    size_t quantile_count;
    /** Summary sliding window in seconds (default 600) split into
     * age_buckets rotating parts (default 5); observations older than the
     * window no longer count in the quantiles (_sum and _count are
     * cumulative). Quantiles are within 1% relative error of the exact
     * value of their rank while the positive values seen in one part span
     * a max/min ratio of at most 25,000 (e.g. 1 ms to 25 s, any magnitude);
     * past that the lowest quantiles lose accuracy first. Zero and negative
     * values are reported as 0. Tested in tests/unit/test_summary_window.c. */
    double max_age_seconds;
    unsigned age_buckets;
    /** State names, for SONDE_STATESET; state_count of them. */
    const char *const *states;
    size_t state_count;
    /** Native (exponential) histogram, for SONDE_HISTOGRAM: a factor > 1
     * turns it on and picks the resolution, the coarsest schema (-4..8)
     * whose bucket growth 2^(2^-schema) is at most the factor (1.1 gives
     * schema 3, 2 gives 0, 65536 gives -4). 0: classic histogram only.
     * With a factor, classic buckets are kept alongside only when
     * `buckets` is given. Native histograms are exposed in the protobuf
     * format; the text formats show the classic part. Each series keeps
     * per-thread cells for the buckets of |v| in [2^-40, 2^40) at the
     * chosen schema (larger values count in the top bucket); NaN counts
     * in the count and sum only. */
    double native_bucket_factor;
    /** Most populated native buckets exposed per series; past it the
     * exposition lowers the schema (merging neighbour buckets) until they
     * fit. 0 means 160. */
    size_t native_max_buckets;
    /** Zero bucket: observations with |v| at most this go there. 0 means
     * 2^-40 (also the least value used). */
    double native_zero_threshold;
    /** Non-zero: do not apply the registry-wide namespace to this family. */
    int no_namespace;
    /** Exemplars, for counters and histograms: SONDE_EXEMPLARS_ON keeps the
     * latest exemplar given to sonde_counter_add_exemplar /
     * sonde_histogram_observe_exemplar, one per counter and one per
     * histogram bucket (native-only histograms: one per series);
     * SONDE_EXEMPLARS_FROM_LOG also makes every plain update inside a
     * logging context attach {trace_id="<correlation ID>"}. Exposed in
     * OpenMetrics and protobuf. 0: none (the _exemplar calls then only
     * update). Costs about 600 bytes per counter or bucket. */
    int exemplars;
    /** Series TTL in seconds, for families with label names: a series not
     * updated (nor looked up) for this long is removed from the exposition
     * by the runtime worker's sweep (once a second; the TTL is rounded up
     * to whole seconds) and counted in
     * sonde_metrics_series_expired_total{family}. Its cells are freed, but
     * handles to it stay valid: the series itself is kept (about 100 bytes
     * plus its label values) and comes back, starting from zero, when its
     * labels are looked up again or when the next sweep sees an update made
     * through a kept handle (updates between the expiry and that sweep are
     * lost). The cost on the update path is a relaxed load and compare
     * (a store once a second). 0: series never expire. */
    double series_ttl_seconds;
} sonde_metric_opts;

/** Values of sonde_metric_opts.exemplars. */
#define SONDE_EXEMPLARS_ON 1
#define SONDE_EXEMPLARS_FROM_LOG 2
/** Longest exemplar label set: label names and values together, in UTF-8
 * characters (OpenMetrics). */
#define SONDE_EXEMPLAR_MAX_RUNES 128

/** Zero the options (all defaults). Any thread. */
SONDE_API void sonde_metric_opts_init(sonde_metric_opts *opts);

/**
 * Register a family of the given type in reg (NULL: the default registry).
 *
 * Registering a name again with an identical definition returns the existing
 * family; a different definition (type, labels, buckets, objectives, unit,
 * constant labels) fails with SONDE_ECONFLICT. The reason, naming both
 * definitions, is available from sonde_last_error on this thread.
 * Returns SONDE_OK, SONDE_EINVAL, SONDE_EBADNAME, SONDE_EBADLABEL,
 * SONDE_EBUCKETS, SONDE_EOBJECTIVES, SONDE_ECONFLICT or SONDE_ENOMEM.
 * *out is owned by the registry. SONDE_INFO and SONDE_STATESET families are
 * created with sonde_info_create and sonde_stateset_create instead.
 * Any thread; allocates. When sonde is disabled returns SONDE_OK with a
 * family whose series ignore every update.
 */
SONDE_API int sonde_family_create(sonde_registry *reg, sonde_metric_type type,
                                  const sonde_metric_opts *opts, sonde_family **out);

/** Deprecated: the same as sonde_last_error (sonde/common.h). */
SONDE_API SONDE_DEPRECATED("use sonde_last_error") const char *sonde_registry_last_error(void);

/** The family's full name. Borrowed; valid while the family lives. */
SONDE_API const char *sonde_family_name(const sonde_family *fam);

/** The family's type. */
SONDE_API sonde_metric_type sonde_family_type(const sonde_family *fam);

/** Number of series currently in the family. Any thread, lock-free. */
SONDE_API size_t sonde_family_series_count(const sonde_family *fam);

/**
 * Find or create the series with these label values (n must equal the
 * family's label count; values are copied; any bytes allowed, NULL means
 * ""). On success *out is the series handle (cast it to the family's type
 * with the sonde_series_as_* helpers or use the typed lookups below).
 * Existing series: lock-free, no allocation. New series: takes the family
 * lock and allocates. Returns SONDE_OK, SONDE_ELABELCOUNT, SONDE_ELIMIT
 * (cardinality limit, counted), SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_family_get(sonde_family *fam, const char *const *values, size_t n, void **out);

/**
 * Typed variadic lookups: pass exactly as many const char * label values as
 * the family has label names. Never NULL: on any error (wrong type, limit
 * reached, no memory) they return a sink series whose updates are
 * discarded, and the error is counted (for the limit) and available from
 * sonde_last_error. Any thread; same cost as sonde_family_get.
 */
SONDE_API sonde_counter *sonde_family_counter(sonde_family *fam, ...);
SONDE_API sonde_gauge *sonde_family_gauge(sonde_family *fam, ...);
SONDE_API sonde_histogram *sonde_family_histogram(sonde_family *fam, ...);
SONDE_API sonde_summary *sonde_family_summary(sonde_family *fam, ...);

/**
 * The same lookups with the values as an array of n (n must equal the
 * family's label count, else the sink is returned and SONDE_ELABELCOUNT
 * recorded). Never NULL for a non-NULL family. Any thread.
 */
SONDE_API sonde_counter *sonde_family_counter_n(sonde_family *fam, const char *const *values,
                                                size_t n);
SONDE_API sonde_gauge *sonde_family_gauge_n(sonde_family *fam, const char *const *values, size_t n);
SONDE_API sonde_histogram *sonde_family_histogram_n(sonde_family *fam, const char *const *values,
                                                    size_t n);
SONDE_API sonde_summary *sonde_family_summary_n(sonde_family *fam, const char *const *values,
                                                size_t n);

/*
 * In C, the variadic lookups are macros over the array forms: no va_list
 * cost, and a wrong number of values is caught (SONDE_ELABELCOUNT) instead
 * of reading past the arguments. Define SONDE_NO_LABEL_MACROS to call the
 * variadic functions instead; C++ always does.
 */
#if !defined(__cplusplus) && !defined(SONDE_NO_LABEL_MACROS) && !defined(SONDE__BUILDING)
#define SONDE__VALUES(...)                                                                         \
    ((const char *const[]){__VA_ARGS__}),                                                          \
        (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define sonde_family_counter(fam, ...) sonde_family_counter_n((fam), SONDE__VALUES(__VA_ARGS__))
#define sonde_family_gauge(fam, ...) sonde_family_gauge_n((fam), SONDE__VALUES(__VA_ARGS__))
#define sonde_family_histogram(fam, ...) sonde_family_histogram_n((fam), SONDE__VALUES(__VA_ARGS__))
#define sonde_family_summary(fam, ...) sonde_family_summary_n((fam), SONDE__VALUES(__VA_ARGS__))
#endif

/**
 * Remove the series with these label values. Handles to it become invalid;
 * a later lookup creates a fresh series starting from zero. Returns
 * SONDE_OK, SONDE_ENOTFOUND or SONDE_ELABELCOUNT. Any thread.
 */
SONDE_API int sonde_family_remove(sonde_family *fam, const char *const *values, size_t n);

/** Remove every series of a labelled family. Any thread. */
SONDE_API void sonde_family_clear(sonde_family *fam);

/* ------------------------------------------------------------------------ */
/* Label-less shortcuts: register and return the single series.             */

/** Register a counter without labels in reg (NULL: default). Same rules and
 * return codes as sonde_family_create; *out is owned by the registry. */
SONDE_API int sonde_counter_create(sonde_registry *reg, const char *name, const char *help,
                                   sonde_counter **out);
SONDE_API int sonde_gauge_create(sonde_registry *reg, const char *name, const char *help,
                                 sonde_gauge **out);
/** buckets NULL: Prometheus default buckets. */
SONDE_API int sonde_histogram_create(sonde_registry *reg, const char *name, const char *help,
                                     const double *buckets, size_t bucket_count,
                                     sonde_histogram **out);

/** The single series of a label-less family (NULL if the family has labels
 * or another type). Any thread, lock-free. */
SONDE_API sonde_counter *sonde_family_as_counter(sonde_family *fam);
SONDE_API sonde_gauge *sonde_family_as_gauge(sonde_family *fam);
SONDE_API sonde_histogram *sonde_family_as_histogram(sonde_family *fam);
SONDE_API sonde_summary *sonde_family_as_summary(sonde_family *fam);

/* ------------------------------------------------------------------------ */
/* Hot path. All: any thread, lock-free, no allocation, cannot fail.        */

/** Add 1. */
SONDE_API void sonde_counter_inc(sonde_counter *c);
/** Add v; negative and NaN values are ignored (counters never go down). */
SONDE_API void sonde_counter_add(sonde_counter *c, double v);
/** Current total (sums every thread's cells). Any thread, lock-free. */
SONDE_API double sonde_counter_get(const sonde_counter *c);

SONDE_API void sonde_gauge_set(sonde_gauge *g, double v);
SONDE_API void sonde_gauge_inc(sonde_gauge *g);
SONDE_API void sonde_gauge_dec(sonde_gauge *g);
SONDE_API void sonde_gauge_add(sonde_gauge *g, double v);
SONDE_API void sonde_gauge_sub(sonde_gauge *g, double v);
/** Set to the current wall-clock time in seconds since the epoch. Makes a
 * vDSO clock call (no syscall on Linux). */
SONDE_API void sonde_gauge_set_to_current_time(sonde_gauge *g);
SONDE_API double sonde_gauge_get(const sonde_gauge *g);

/** Count v in the first bucket whose bound is >= v (NaN: +Inf bucket) and
 * add it to the sum. */
SONDE_API void sonde_histogram_observe(sonde_histogram *h, double v);
/** Totals of a histogram series: count and sum. Any thread, lock-free. */
SONDE_API uint64_t sonde_histogram_get_count(const sonde_histogram *h);
SONDE_API double sonde_histogram_get_sum(const sonde_histogram *h);

/**
 * Update with an exemplar: label pairs kv[2i] = name, kv[2i+1] = value
 * (npairs of them; typically {"trace_id", id}), copied. The exemplar
 * replaces the counter's (or the bucket's) previous one, stamped with the
 * current time (coarse clock). An invalid label name, a NULL value or more
 * than SONDE_EXEMPLAR_MAX_RUNES characters drops the exemplar (the update
 * still happens), counted in sonde_metrics_exemplars_dropped_total; so is
 * losing a race with another thread writing the same exemplar at that
 * instant. Without exemplars enabled on the family, only the update
 * happens. Any thread, lock-free, no allocation.
 */
SONDE_API void sonde_counter_add_exemplar(sonde_counter *c, double v, const char *const *kv,
                                          size_t npairs);
SONDE_API void sonde_histogram_observe_exemplar(sonde_histogram *h, double v, const char *const *kv,
                                                size_t npairs);

/** Observe v. Summaries keep a sliding-window quantile sketch per series:
 * this call takes a per-series spinlock (no allocation). */
SONDE_API void sonde_summary_observe(sonde_summary *s, double v);
SONDE_API uint64_t sonde_summary_get_count(const sonde_summary *s);
SONDE_API double sonde_summary_get_sum(const sonde_summary *s);
/** Current estimate of quantile q over the window (NaN when empty). */
SONDE_API double sonde_summary_get_quantile(const sonde_summary *s, double q);

/* ------------------------------------------------------------------------ */
/* Bucket helpers                                                           */

/** The Prometheus default buckets: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. */
SONDE_API extern const double sonde_default_buckets[11];
#define SONDE_DEFAULT_BUCKET_COUNT 11

/** Fill out[0..count) with start, start+width, ... Returns SONDE_OK or
 * SONDE_EINVAL (count 0, width <= 0, non-finite). */
SONDE_API int sonde_buckets_linear(double start, double width, size_t count, double *out);
/** Fill out[0..count) with start, start*factor, ... Returns SONDE_OK or
 * SONDE_EINVAL (count 0, start <= 0, factor <= 1, non-finite). */
SONDE_API int sonde_buckets_exponential(double start, double factor, size_t count, double *out);

/* ------------------------------------------------------------------------ */
/* Callback metrics and collectors                                          */

/** Computes a value at scrape time; runs on the scraping thread. */
typedef double (*sonde_value_fn)(void *userdata);

/**
 * Register a label-less counter or gauge (type) whose value fn(userdata)
 * computes at every scrape. opts->label_names must be empty; constant labels
 * are allowed. fn must be thread-safe with respect to the application and
 * must not call into the registry; concurrent scrapes may call it at the same
 * time from two threads. userdata is borrowed. Returns as
 * sonde_family_create.
 */
SONDE_API int sonde_callback_create(sonde_registry *reg, sonde_metric_type type,
                                    const sonde_metric_opts *opts, sonde_value_fn fn,
                                    void *userdata, sonde_family **out);

/** Handed to collectors during a scrape; valid only inside the callback. */
typedef struct sonde_emitter sonde_emitter;

/**
 * A collector emits any number of families at scrape time (database tables,
 * host figures). Runs on the scraping thread with the registry's read lock
 * held: keep it fast, never call back into the registry, and make it safe to
 * run on two scraping threads at once (concurrent scrapes are allowed).
 */
typedef void (*sonde_collect_fn)(sonde_emitter *em, void *userdata);

/**
 * Add a collector under a unique name. userdata is borrowed until
 * sonde_registry_remove_collector or registry destruction. Returns SONDE_OK,
 * SONDE_EINVAL, SONDE_ECONFLICT (name taken), SONDE_ENOMEM. Any thread.
 */
SONDE_API int sonde_registry_add_collector(sonde_registry *reg, const char *name,
                                           sonde_collect_fn fn, void *userdata);
/** Remove a collector; returns SONDE_OK or SONDE_ENOTFOUND. Any thread; waits
 * for a scrape in progress to finish with it. */
SONDE_API int sonde_registry_remove_collector(sonde_registry *reg, const char *name);

/**
 * Start a family inside a collector. type is COUNTER, GAUGE, UNTYPED, INFO
 * or HISTOGRAM; name, help and unit follow sonde_metric_opts rules. An
 * invalid family is refused (SONDE_EBADNAME...), and its samples are
 * dropped and counted in sonde_metrics_collector_errors_total.
 */
SONDE_API int sonde_emit_family(sonde_emitter *em, sonde_metric_type type, const char *name,
                                const char *help, const char *unit);
/**
 * Emit one sample of the current family: label pairs kv[2i]=name,
 * kv[2i+1]=value (npairs of them; kv may be NULL when npairs is 0) and the
 * value. For counters the value is the total. Returns SONDE_OK, SONDE_ESTATE
 * (no family started), SONDE_EBADLABEL, SONDE_ETYPE (histogram family).
 */
SONDE_API int sonde_emit_sample(sonde_emitter *em, const char *const *kv, size_t npairs,
                                double value);
/**
 * Emit one histogram sample: bounds[0..nb) finite increasing, cumulative
 * counts cum[0..nb] (the last is the +Inf bucket, i.e. the count), sum.
 */
SONDE_API int sonde_emit_histogram(sonde_emitter *em, const char *const *kv, size_t npairs,
                                   const double *bounds, const uint64_t *cum, size_t nb,
                                   double sum);

/* ------------------------------------------------------------------------ */
/* State sets and info metrics                                              */

/**
 * Register a state set (OpenMetrics stateset; a gauge per state in the
 * Prometheus text format): opts->states names the states, the label named
 * after the metric carries the state. Label-less (constant labels allowed).
 * Starts in state 0. Returns as sonde_family_create.
 */
SONDE_API int sonde_stateset_create(sonde_registry *reg, const sonde_metric_opts *opts,
                                    sonde_stateset **out);
/** Make state index the current one (others 0). Out-of-range is ignored.
 * Any thread, lock-free. */
SONDE_API void sonde_stateset_set(sonde_stateset *s, size_t index);
/** The current state index. */
SONDE_API size_t sonde_stateset_get(const sonde_stateset *s);

/**
 * Register an info metric: name (without the _info suffix, which is added),
 * help, and label pairs kv (npairs). Exposed as name_info{...} 1. Returns as
 * sonde_family_create.
 */
SONDE_API int sonde_info_create(sonde_registry *reg, const char *name, const char *help,
                                const char *const *kv, size_t npairs);

/* ------------------------------------------------------------------------ */
/* Exposition                                                               */

/** Exposition formats. */
typedef enum sonde_format {
    SONDE_FORMAT_PROMETHEUS = 0,  /* text/plain; version=0.0.4 */
    SONDE_FORMAT_OPENMETRICS = 1, /* application/openmetrics-text; version=1.0.0 */
    SONDE_FORMAT_JSON = 2,        /* application/json, see docs/json-format.md */
    /* application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
     * encoding=delimited: varint-length-prefixed MetricFamily messages
     * (the only format that carries native histograms). */
    SONDE_FORMAT_PROTOBUF = 3,
    SONDE_FORMAT_PROMETHEUS_1_0_0 = 4, /* text/plain; version=1.0.0 */
    SONDE_FORMAT_OPENMETRICS_0_0_1 = 5 /* application/openmetrics-text; version=0.0.1 */
} sonde_format;

/**
 * Name escaping schemes of the Accept header's escaping= parameter: how
 * metric and label names outside [a-zA-Z_:][a-zA-Z0-9_:]* are written for a
 * scraper that does not accept UTF-8 names. Values are ABI.
 */
typedef enum sonde_escaping {
    SONDE_ESCAPING_UNDERSCORES = 0, /* default: each invalid character becomes _ */
    SONDE_ESCAPING_DOTS = 1,        /* _ -> __, . -> _dot_, other invalid -> __ */
    SONDE_ESCAPING_VALUES = 2,      /* U__ prefix, _ -> __, invalid -> _<hex code point>_ */
    SONDE_ESCAPING_ALLOW_UTF8 = 3   /* names as they are (quoted where needed) */
} sonde_escaping;

/** Options for writing an exposition; zero means default. */
typedef struct sonde_write_opts {
    /** Only families whose name is in names[0..name_count) (for counters the
     * name with or without _total matches). 0: all families. */
    const char *const *names;
    size_t name_count;
    /** How names outside the legacy character set are written (see
     * sonde_escaping). Default (0): underscores. */
    sonde_escaping escaping;
} sonde_write_opts;

/**
 * Choose the exposition for an HTTP Accept header value (n bytes, need not
 * be NUL-terminated; NULL or empty means absent), the way Prometheus'
 * official clients do: among the media ranges sonde supports (protobuf
 * delimited MetricFamily, OpenMetrics 1.0.0 and 0.0.1, text 1.0.0 and
 * 0.0.4, text/\* and \*\/\* as text 0.0.4), the one with the highest q-value
 * wins (q=0 means "not acceptable"); ties go to the range listed first.
 * Nothing acceptable (or a malformed header) gives text 0.0.4, which every
 * scraper reads. *esc receives the range's escaping= parameter (underscores
 * when absent or unknown; allow-utf-8 only for the 1.0.0 text formats and
 * protobuf). Either output may be NULL. Pure function, any thread; never
 * reads past n bytes.
 */
SONDE_API sonde_format sonde_format_negotiate(const char *accept, size_t n, sonde_escaping *esc);

/**
 * The HTTP Content-Type naming the format, its version and (for the text
 * 1.0.0 formats and protobuf) the escaping scheme. Static text.
 */
SONDE_API const char *sonde_format_content_type_escaped(sonde_format fmt, sonde_escaping esc);

/** The HTTP Content-Type for a format (static text). */
SONDE_API const char *sonde_format_content_type(sonde_format fmt);

/**
 * Append the registry's exposition in fmt to out (reg NULL: default
 * registry). opts may be NULL. Returns SONDE_OK, SONDE_ENOMEM or
 * SONDE_ETOOBIG (out->max reached; out then holds a truncated exposition and
 * must not be served). Any thread; concurrent writers are allowed. Runs
 * callbacks and collectors on the calling thread.
 */
SONDE_API int sonde_registry_write(sonde_registry *reg, sonde_format fmt,
                                   const sonde_write_opts *opts, sonde_buf *out);
SONDE_API int sonde_registry_write_prometheus(sonde_registry *reg, sonde_buf *out);
SONDE_API int sonde_registry_write_openmetrics(sonde_registry *reg, sonde_buf *out);
SONDE_API int sonde_registry_write_json(sonde_registry *reg, sonde_buf *out);

/**
 * Render to a new NUL-terminated string (reg NULL: default). *len_out (may
 * be NULL) receives its length. Returns NULL on failure. The caller frees
 * the result with sonde_free.
 */
SONDE_API char *sonde_registry_render(sonde_registry *reg, sonde_format fmt, size_t *len_out);

#ifdef __cplusplus
}
#endif
#endif
