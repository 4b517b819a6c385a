/*
 * sonde-example-discovery: seed 000 (artifact discovery and bulk import,
 * "skillmeat") reproduced with sonde.
 *
 * Three simulated workloads run in-process, each an operation timed and
 * logged the way the seed's @log_performance decorator does (start, then
 * duration_ms, status and, on failure, error and error_type):
 *  - the discovery scanner scans a simulated artifacts directory every
 *    second (success, partial_success when some artifacts do not parse,
 *    no_artifacts_dir now and then);
 *  - the bulk importer imports batches of 1 to 80 artifacts, fetching each
 *    artifact's GitHub metadata through the metadata cache;
 *  - with SKILLMEAT_ENABLE_AUTO_POPULATION, metadata is also fetched for
 *    every artifact a scan finds.
 *
 * Metrics (registry namespace "skillmeat"): the seed's Prometheus metrics
 * on /metrics, and its simple thread-safe statistics as JSON on
 * /api/v1/artifacts/metrics/discovery and, with the feature flags and the
 * cache configuration, on /api/v1/artifacts/health/discovery (both need the
 * API key: Authorization: Bearer $SONDE_API_KEY).
 *
 *   sonde-example-discovery [--web.listen-address HOST:PORT] [--duration S]
 *                           [--simulate S]
 */
#include <sonde.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define PROG "sonde-example-discovery"

/* ---- configuration: the seed's environment variables ---- */

static struct {
    int discovery_enabled;       /* SKILLMEAT_ENABLE_AUTO_DISCOVERY (default true) */
    int auto_population_enabled; /* SKILLMEAT_ENABLE_AUTO_POPULATION (default false) */
    long cache_ttl_seconds;      /* SKILLMEAT_DISCOVERY_CACHE_TTL (default 3600) */
    int github_token_configured; /* SKILLMEAT_GITHUB_TOKEN set and not empty */
} cfg;

static void config_error(const char *var, const char *value, const char *want)
{
    fprintf(stderr, PROG ": %s=\"%s\": %s\n", var, value, want);
    exit(2);
}

static int env_bool(const char *var, int def)
{
    const char *v = getenv(var);
    if (!v || !*v)
        return def;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return 0;
    config_error(var, v, "expected true or false");
    return def;
}

static void load_config(void)
{
    cfg.discovery_enabled = env_bool("SKILLMEAT_ENABLE_AUTO_DISCOVERY", 1);
    cfg.auto_population_enabled = env_bool("SKILLMEAT_ENABLE_AUTO_POPULATION", 0);
    cfg.cache_ttl_seconds = 3600;
    const char *ttl = getenv("SKILLMEAT_DISCOVERY_CACHE_TTL");
    if (ttl && *ttl) {
        char *end;
        errno = 0;
        long v = strtol(ttl, &end, 10);
        if (errno || *end || end == ttl || v < 0 || v > 86400 * 365)
            config_error("SKILLMEAT_DISCOVERY_CACHE_TTL", ttl,
                         "expected a whole number of seconds (0 to 31536000)");
        cfg.cache_ttl_seconds = v;
    }
    const char *tok = getenv("SKILLMEAT_GITHUB_TOKEN");
    cfg.github_token_configured = tok && *tok;
}

/* ---- Prometheus metrics (names as the seed lists them) ---- */

static struct {
    sonde_family *scans;            /* discovery_scans_total{status} */
    sonde_gauge *artifacts_found;   /* discovery_artifacts_found */
    sonde_histogram *scan_dur;      /* discovery_scan_duration */
    sonde_family *errors;           /* discovery_errors_total{error_type} */
    sonde_family *import_requests;  /* bulk_import_requests_total{status} */
    sonde_family *import_artifacts; /* bulk_import_artifacts_total{result} */
    sonde_family *import_dur;       /* bulk_import_duration{batch_size} */
    sonde_family *meta_requests;    /* github_metadata_requests_total{cache_hit} */
    sonde_histogram *meta_dur;      /* github_metadata_fetch_duration */
    sonde_counter *cache_hits;      /* discovery_cache_hits_total */
    sonde_counter *cache_misses;    /* discovery_cache_misses_total */
} M;

static void die(const char *what, int rc)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, sonde_strerror(rc), sonde_last_error());
    exit(1);
}

static sonde_family *family(sonde_metric_type type, const char *name, const char *help,
                            const char *label)
{
    sonde_metric_opts o;
    sonde_metric_opts_init(&o);
    o.name = name;
    o.help = help;
    if (label) {
        o.label_names = &label;
        o.label_count = 1;
    }
    sonde_family *f;
    int rc = sonde_family_create(NULL, type, &o, &f);
    if (rc)
        die(name, rc);
    return f;
}

/* The label values every family starts with (at 0), so that a dashboard
 * sees each series from the first scrape. */
static const char *const scan_statuses[] = {"success", "partial_success", "no_artifacts_dir"};
static const char *const import_statuses[] = {"success", "partial_success", "failed"};
static const char *const batch_ranges[] = {"1-10", "11-50", "51+"};
static const char *const error_types[] = {"ValueError", "PermissionError", "HTTPError"};

static void register_metrics(void)
{
    /* Every family below is named as in the seed; the registry namespace
     * adds "skillmeat_" (the names the seed greps /metrics for). */
    int rc = sonde_registry_set_namespace(NULL, "skillmeat");
    if (rc)
        die("namespace", rc);
    M.scans =
        family(SONDE_COUNTER, "discovery_scans_total", "Discovery scans by status.", "status");
    M.artifacts_found = sonde_family_as_gauge(family(SONDE_GAUGE, "discovery_artifacts_found",
                                                     "Artifacts found by the last scan.", NULL));
    M.scan_dur = sonde_family_as_histogram(family(SONDE_HISTOGRAM, "discovery_scan_duration",
                                                  "Discovery scan duration in seconds.", NULL));
    M.errors =
        family(SONDE_COUNTER, "discovery_errors_total", "Discovery errors by type.", "error_type");
    M.import_requests = family(SONDE_COUNTER, "bulk_import_requests_total",
                               "Bulk import requests by status.", "status");
    M.import_artifacts = family(SONDE_COUNTER, "bulk_import_artifacts_total",
                                "Artifacts of bulk imports by result.", "result");
    M.import_dur = family(SONDE_HISTOGRAM, "bulk_import_duration",
                          "Bulk import duration in seconds, by batch size range.", "batch_size");
    M.meta_requests = family(SONDE_COUNTER, "github_metadata_requests_total",
                             "GitHub metadata requests by cache hit.", "cache_hit");
    M.meta_dur =
        sonde_family_as_histogram(family(SONDE_HISTOGRAM, "github_metadata_fetch_duration",
                                         "GitHub metadata fetch duration in seconds.", NULL));
    M.cache_hits = sonde_family_as_counter(
        family(SONDE_COUNTER, "discovery_cache_hits_total", "Metadata cache hits.", NULL));
    M.cache_misses = sonde_family_as_counter(
        family(SONDE_COUNTER, "discovery_cache_misses_total", "Metadata cache misses.", NULL));

    for (size_t i = 0; i < 3; i++) {
        sonde_family_counter(M.scans, scan_statuses[i]);
        sonde_family_counter(M.import_requests, import_statuses[i]);
        sonde_family_histogram(M.import_dur, batch_ranges[i]);
        sonde_family_counter(M.errors, error_types[i]);
    }
    sonde_family_counter(M.import_artifacts, "success");
    sonde_family_counter(M.import_artifacts, "failed");
    sonde_family_counter(M.meta_requests, "true");
    sonde_family_counter(M.meta_requests, "false");
}

/* ---- the simple metrics (the seed's DiscoveryMetrics dataclass) ---- */

static struct {
    pthread_mutex_t lock;
    unsigned long long total_scans, total_artifacts_discovered, total_imports;
    unsigned long long total_metadata_fetches, cache_hits, cache_misses, errors;
    int have_last_scan;
    double last_scan_wall; /* seconds since the epoch */
    double last_scan_duration_ms;
    unsigned last_scan_artifacts;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_scan(unsigned artifacts, double duration_ms)
{
    pthread_mutex_lock(&S.lock);
    S.total_scans++;
    S.total_artifacts_discovered += artifacts;
    S.have_last_scan = 1;
    S.last_scan_wall = wall_now();
    S.last_scan_duration_ms = duration_ms;
    S.last_scan_artifacts = artifacts;
    pthread_mutex_unlock(&S.lock);
}

static void record_import(void)
{
    pthread_mutex_lock(&S.lock);
    S.total_imports++;
    pthread_mutex_unlock(&S.lock);
}

static void record_metadata_fetch(int cache_hit)
{
    pthread_mutex_lock(&S.lock);
    S.total_metadata_fetches++;
    if (cache_hit)
        S.cache_hits++;
    else
        S.cache_misses++;
    pthread_mutex_unlock(&S.lock);
}

/* An error goes to both systems: the simple count and the Prometheus
 * counter by type. */
static void record_error(const char *error_type)
{
    pthread_mutex_lock(&S.lock);
    S.errors++;
    pthread_mutex_unlock(&S.lock);
    sonde_counter_inc(sonde_family_counter(M.errors, error_type));
}

/* "2025-11-30T12:00:00.000Z" */
static void iso_time(sonde_buf *b, double wall)
{
    time_t s = (time_t)wall;
    int ms = (int)((wall - (double)s) * 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char t[32];
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    sonde_buf_printf(b, "\"%s.%03dZ\"", t, ms);
}

/* get_stats(): the JSON object of /api/v1/artifacts/metrics/discovery. The
 * hit rate is derived (0 when there was no lookup) and rounded to three
 * decimals; last_scan is null before the first scan. */
static void write_stats(sonde_buf *b)
{
    pthread_mutex_lock(&S.lock);
    unsigned long long lookups = S.cache_hits + S.cache_misses;
    double rate = lookups ? round((double)S.cache_hits / (double)lookups * 1000) / 1000 : 0;
    sonde_buf_printf(b,
                     "{\"total_scans\":%llu,\"total_artifacts_discovered\":%llu,"
                     "\"total_imports\":%llu,\"total_metadata_fetches\":%llu,"
                     "\"cache_hits\":%llu,\"cache_misses\":%llu,\"cache_hit_rate\":%.3f,"
                     "\"errors\":%llu,\"last_scan\":",
                     S.total_scans, S.total_artifacts_discovered, S.total_imports,
                     S.total_metadata_fetches, S.cache_hits, S.cache_misses, rate, S.errors);
    if (S.have_last_scan) {
        sonde_buf_printf(b, "{\"timestamp\":");
        iso_time(b, S.last_scan_wall);
        sonde_buf_printf(b, ",\"duration_ms\":%.1f,\"artifact_count\":%u}", S.last_scan_duration_ms,
                         S.last_scan_artifacts);
    } else {
        sonde_buf_printf(b, "null");
    }
    sonde_buf_printf(b, "}");
    pthread_mutex_unlock(&S.lock);
}

/* GET /api/v1/artifacts/metrics/discovery */
static void route_metrics(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    (void)rq;
    write_stats(&rs->body);
    sonde_buf_printf(&rs->body, "\n");
}

/* GET /api/v1/artifacts/health/discovery */
static void route_health(void *ud, const sonde_route_request *rq, sonde_route_response *rs)
{
    (void)ud;
    (void)rq;
    sonde_buf *b = &rs->body;
    sonde_buf_printf(b, "{\"status\":\"healthy\",\"timestamp\":");
    iso_time(b, wall_now());
    sonde_buf_printf(b,
                     ",\"features\":{\"discovery_enabled\":%s,\"auto_population_enabled\":%s,"
                     "\"github_token_configured\":%s},"
                     "\"configuration\":{\"cache_ttl_seconds\":%ld},\"metrics\":",
                     cfg.discovery_enabled ? "true" : "false",
                     cfg.auto_population_enabled ? "true" : "false",
                     cfg.github_token_configured ? "true" : "false", cfg.cache_ttl_seconds);
    write_stats(b);
    sonde_buf_printf(b, "}\n");
}

static void add_routes(void)
{
    sonde_route_opts o;
    sonde_route_opts_init(&o);
    o.absolute = 1;
    /* "Requires API key": sonde's sensitive class, the Bearer key of
     * SONDE_API_KEY (loopback clients only when no key is configured). */
    o.access = SONDE_ACCESS_SENSITIVE;
    o.owner = PROG;
    o.path = "/api/v1/artifacts/metrics/discovery";
    o.metric_label = "metrics_discovery";
    int rc = sonde_route_add(&o, route_metrics, NULL);
    if (rc)
        die(o.path, rc);
    o.path = "/api/v1/artifacts/health/discovery";
    o.metric_label = "health_discovery";
    rc = sonde_route_add(&o, route_health, NULL);
    if (rc)
        die(o.path, rc);
}

/* ---- the @log_performance decorator ---- */

typedef struct perf {
    sonde_log_op op;
    double t0;
} perf;

static sonde_logger *log_discovery, *log_metadata, *log_importer;

static void perf_start(perf *p, sonde_logger *lg, const char *operation)
{
    p->t0 = mono_now();
    sonde_log_operation_start(&p->op, lg, operation, NULL, 0);
}

/* Ends the operation: logs duration_ms and status (and error, error_type on
 * failure, which is also recorded as an error); returns the duration in
 * seconds. */
static double perf_end(perf *p, const char *error_type, const char *error)
{
    double secs = mono_now() - p->t0;
    if (error_type) {
        record_error(error_type);
        SONDE_LOG_OP_END(&p->op, 0, SONDE_DOUBLE("duration_ms", secs * 1000),
                         SONDE_STR("status", "error"), SONDE_STR("error", error),
                         SONDE_STR("error_type", error_type));
    } else {
        SONDE_LOG_OP_END(&p->op, 1, SONDE_DOUBLE("duration_ms", secs * 1000),
                         SONDE_STR("status", "success"));
    }
    return secs;
}

/* ---- simulated workload ---- */

static atomic_int stop_flag, stop_work;

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Sleep up to total_us in slices, returning early when asked to stop. */
static void nap(unsigned total_us)
{
    for (unsigned t = 0; t < total_us && !atomic_load(&stop_work); t += 20000)
        sleep_us(total_us - t < 20000 ? total_us - t : 20000);
}

/* The GitHub metadata cache: source -> expiry, TTL from the configuration. */
#define N_SOURCES 64
static struct {
    pthread_mutex_t lock;
    double expires[N_SOURCES]; /* monotonic seconds; 0: absent */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* fetch_metadata(source): a cache lookup, then on a miss a simulated GitHub
 * API call (2-20 ms; 3% fail with an HTTP error). */
static void fetch_metadata(unsigned source, unsigned *seed)
{
    char src[64];
    snprintf(src, sizeof src, "anthropics/skills/skill-%02u", source);
    perf p;
    perf_start(&p, log_metadata, "metadata_fetch");
    double now = mono_now();
    pthread_mutex_lock(&cache.lock);
    int hit = cache.expires[source] > now;
    pthread_mutex_unlock(&cache.lock);
    const char *etype = NULL;
    if (hit) {
        SONDE_LOG(log_metadata, DEBUG, "metadata cache hit", SONDE_STR("source", src));
        sleep_us(50);
    } else {
        SONDE_LOG(log_metadata, DEBUG, "metadata cache miss", SONDE_STR("source", src));
        sleep_us(2000 + next_rand(seed) % 18000);
        if (next_rand(seed) % 100 < 3) {
            etype = "HTTPError";
        } else {
            pthread_mutex_lock(&cache.lock);
            cache.expires[source] = mono_now() + (double)cfg.cache_ttl_seconds;
            pthread_mutex_unlock(&cache.lock);
        }
    }
    double secs = perf_end(&p, etype, etype ? "403 Client Error: rate limit exceeded" : NULL);
    if (!etype)
        SONDE_LOG(log_metadata, INFO, "metadata fetched", SONDE_STR("source", src),
                  SONDE_BOOL("cache_hit", hit), SONDE_DOUBLE("duration_ms", secs * 1000),
                  SONDE_BOOL("has_title", 1), SONDE_BOOL("has_description", source % 4 != 0));
    sonde_counter_inc(sonde_family_counter(M.meta_requests, hit ? "true" : "false"));
    sonde_counter_inc(hit ? M.cache_hits : M.cache_misses);
    sonde_histogram_observe(M.meta_dur, secs);
    record_metadata_fetch(hit);
}

/* discover_artifacts(): every second. 5% of scans find no artifacts
 * directory; otherwise 8-14 artifacts, each failing to parse with 2%
 * probability (partial_success). */
static void *scanner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop_work)) {
        perf p;
        perf_start(&p, log_discovery, "discovery_scan");
        SONDE_LOG(log_discovery, INFO, "scanning for artifacts",
                  SONDE_STR("path", "~/.skillmeat/collection/artifacts"));
        const char *status = "success";
        unsigned found = 0, failed = 0;
        unsigned sources[16];
        if (next_rand(&seed) % 100 < 5) {
            status = "no_artifacts_dir";
            sleep_us(1000);
        } else {
            unsigned n = 8 + next_rand(&seed) % 7;
            for (unsigned i = 0; i < n; i++) {
                sleep_us(1000 + next_rand(&seed) % 4000); /* read and parse one */
                if (next_rand(&seed) % 100 < 2) {
                    failed++;
                    record_error(next_rand(&seed) % 2 ? "ValueError" : "PermissionError");
                } else {
                    sources[found++] = next_rand(&seed) % N_SOURCES;
                }
            }
            if (failed)
                status = "partial_success";
        }
        double secs = perf_end(&p, NULL, NULL);
        SONDE_LOG(log_discovery, INFO, "scan completed", SONDE_STR("status", status),
                  SONDE_INT("artifact_count", found), SONDE_INT("error_count", failed),
                  SONDE_DOUBLE("duration_ms", secs * 1000));
        sonde_counter_inc(sonde_family_counter(M.scans, status));
        sonde_gauge_set(M.artifacts_found, found);
        sonde_histogram_observe(M.scan_dur, secs);
        record_scan(found, secs * 1000);
        if (cfg.auto_population_enabled)
            for (unsigned i = 0; i < found && !atomic_load(&stop_work); i++)
                fetch_metadata(sources[i], &seed);
        nap(1000000);
    }
    return NULL;
}

/* bulk_import(): a batch every 0.5 s, 1-10 artifacts (60%), 11-50 (30%)
 * or 51-80 (10%); each artifact's metadata is fetched, then it is imported
 * (4% fail: conflict). */
static void *importer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&stop_work)) {
        unsigned r = next_rand(&seed) % 100;
        unsigned n = r < 60   ? 1 + next_rand(&seed) % 10
                     : r < 90 ? 11 + next_rand(&seed) % 40
                              : 51 + next_rand(&seed) % 30;
        const char *range = n <= 10 ? "1-10" : n <= 50 ? "11-50" : "51+";
        perf p;
        perf_start(&p, log_importer, "bulk_import");
        SONDE_LOG(log_importer, INFO, "bulk import started", SONDE_INT("artifact_count", n),
                  SONDE_STR("collection", "default"), SONDE_BOOL("auto_resolve_conflicts", 0));
        unsigned ok = 0, bad = 0;
        for (unsigned i = 0; i < n; i++) {
            fetch_metadata(next_rand(&seed) % N_SOURCES, &seed);
            sleep_us(200);
            if (next_rand(&seed) % 100 < 4)
                bad++;
            else
                ok++;
        }
        const char *status = bad == 0 ? "success" : ok == 0 ? "failed" : "partial_success";
        double secs = perf_end(&p, NULL, NULL);
        SONDE_LOG(log_importer, INFO, "bulk import completed", SONDE_INT("success_count", ok),
                  SONDE_INT("failure_count", bad), SONDE_STR("batch_size", range),
                  SONDE_DOUBLE("duration_ms", secs * 1000));
        sonde_counter_inc(sonde_family_counter(M.import_requests, status));
        sonde_counter_add(sonde_family_counter(M.import_artifacts, "success"), ok);
        sonde_counter_add(sonde_family_counter(M.import_artifacts, "failed"), bad);
        sonde_histogram_observe(sonde_family_histogram(M.import_dur, range), secs);
        record_import();
        nap(500000);
    }
    return NULL;
}

/* ---- main ---- */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [options]\n"
            "  --web.listen-address HOST:PORT  address to serve on (default :8000;\n"
            "                          port 0 picks a free port)\n"
            "  --duration SECONDS      stop after SECONDS (default: until SIGINT/SIGTERM)\n"
            "  --simulate SECONDS      stop the simulated workload after SECONDS and keep\n"
            "                          serving (the figures stay still)\n"
            "Environment: SKILLMEAT_ENABLE_AUTO_DISCOVERY (true), SKILLMEAT_ENABLE_AUTO_\n"
            "POPULATION (false), SKILLMEAT_DISCOVERY_CACHE_TTL (3600), SKILLMEAT_GITHUB_TOKEN;\n"
            "SONDE_API_KEY protects /api/v1/artifacts/*/discovery.\n"
            "The bound address is printed on stdout as \"listening on HOST:PORT\".\n");
}

static double parse_num(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || d < 0 || !isfinite(d)) {
        fprintf(stderr, PROG ": %s needs a non-negative number, got \"%s\"\n", opt, v ? v : "");
        exit(2);
    }
    return d;
}

int main(int argc, char **argv)
{
    const char *listen = ":8000";
    double duration = 0, simulate = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--web.listen-address") && v) {
            listen = v;
            i++;
        } else if (!strcmp(a, "--duration")) {
            duration = parse_num(a, v);
            i++;
        } else if (!strcmp(a, "--simulate")) {
            simulate = parse_num(a, v);
            i++;
        } else {
            fprintf(stderr, PROG ": unknown option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    load_config();

    sonde_log_opts lo;
    sonde_log_opts_init(&lo);
    lo.level = "info";
    lo.async = 1;
    int rc = sonde_log_configure(&lo);
    if (rc)
        die("logging", rc);
    log_discovery = sonde_logger_get("skillmeat.core.discovery");
    log_metadata = sonde_logger_get("skillmeat.core.github_metadata");
    log_importer = sonde_logger_get("skillmeat.core.importer");

    register_metrics();
    add_routes();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    sonde_start_opts so;
    sonde_start_opts_init(&so);
    so.listen = listen;
    so.service_name = "skillmeat";
    const char *info[] = {"discovery_enabled", cfg.discovery_enabled ? "true" : "false",
                          "auto_population_enabled",
                          cfg.auto_population_enabled ? "true" : "false"};
    so.info = info;
    so.info_count = 2;
    rc = sonde_start(&so);
    if (rc) {
        fprintf(stderr, PROG ": cannot serve on %s: %s (%s)\n", listen, sonde_strerror(rc),
                sonde_last_error());
        return 1;
    }
    char addr[96] = "";
    sonde_listen_address(addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);

    pthread_t th[2];
    int nth = 0;
    if (cfg.discovery_enabled)
        pthread_create(&th[nth++], NULL, scanner, (void *)(uintptr_t)2463534242u);
    pthread_create(&th[nth++], NULL, importer, (void *)(uintptr_t)88172645u);

    double t0 = mono_now();
    int working = 1;
    while (!atomic_load(&stop_flag)) {
        sleep_us(50000);
        double el = mono_now() - t0;
        if (working && simulate > 0 && el >= simulate) {
            atomic_store(&stop_work, 1);
            for (int i = 0; i < nth; i++)
                pthread_join(th[i], NULL);
            working = 0;
            printf("workload stopped\n");
            fflush(stdout);
        }
        if (duration > 0 && el >= duration)
            break;
    }
    atomic_store(&stop_work, 1);
    if (working)
        for (int i = 0; i < nth; i++)
            pthread_join(th[i], NULL);
    sonde_stop();
    sonde_route_remove("/api/v1/artifacts/metrics/discovery", 1);
    sonde_route_remove("/api/v1/artifacts/health/discovery", 1);
    sonde_log_shutdown(2000);
    return 0;
}
