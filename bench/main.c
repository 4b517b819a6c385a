/*
 * sonde-bench: runs the benchmark groups, all of them or those named on the
 * command line, and prints one `name value unit` line per figure.
 *
 *   sonde-bench                   every group
 *   sonde-bench metrics log       only these groups, in this order
 *   sonde-bench --quick [...]     fewer runs and iterations (smoke tests)
 *   sonde-bench --list            the group names
 *
 * Adding a group: define `void sonde_bench_<name>(void)` in bench/bench_<name>.c
 * (CMake links every C file of bench/ into this program), declare it in bench.h and
 * add a row to the table below. Groups whose file may not exist yet are
 * declared weak here, so this file links without them; they are then
 * skipped.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* Defined in bench_log.c, which the logging work adds; NULL until then. */
void sonde_bench_log(void) __attribute__((weak));
/* Defined in bench_trace.c (performance tracing). */
void sonde_bench_trace(void) __attribute__((weak));

struct group {
    const char *name;
    void (*run)(void);
};

static const struct group groups[] = {
    {"metrics", sonde_bench_metrics}, {"log", sonde_bench_log},       {"trace", sonde_bench_trace},
    {"errors", sonde_bench_errors},   {"app", sonde_bench_app},       {"sql", sonde_bench_sql},
    {"export", sonde_bench_export},   {"expose", sonde_bench_expose}, {"rules", sonde_bench_rules},
};

#define NGROUPS (sizeof groups / sizeof groups[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: sonde-bench [--quick] [--list] [group...]\ngroups:");
    for (size_t i = 0; i < NGROUPS; i++)
        fprintf(out, " %s%s", groups[i].name, groups[i].run ? "" : " (not built)");
    fprintf(out, "\n");
}

static const struct group *find_group(const char *name)
{
    for (size_t i = 0; i < NGROUPS; i++)
        if (strcmp(groups[i].name, name) == 0)
            return &groups[i];
    return NULL;
}

int main(int argc, char **argv)
{
    int named = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            bench_quick = 1;
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t g = 0; g < NGROUPS; g++)
                if (groups[g].run)
                    printf("%s\n", groups[g].name);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "sonde-bench: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            const struct group *g = find_group(argv[i]);
            if (!g) {
                fprintf(stderr, "sonde-bench: unknown group %s\n", argv[i]);
                usage(stderr);
                return 2;
            }
            if (!g->run) {
                fprintf(stderr, "sonde-bench: group %s is not built into this program\n", argv[i]);
                return 2;
            }
            named++;
        }
    }
    /* Validate every name before running anything, then run in the order
     * given (or table order). */
    if (named) {
        for (int i = 1; i < argc; i++)
            if (argv[i][0] != '-')
                find_group(argv[i])->run();
    } else {
        for (size_t g = 0; g < NGROUPS; g++)
            if (groups[g].run)
                groups[g].run();
    }
    return 0;
}
