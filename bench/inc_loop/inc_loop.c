/*
 * sonde-bench-inc N: create a counter, increment it once (which attaches
 * the thread's cells), then N more times, and check the total. Run under
 * callgrind by bench/callgrind_counter.sh with N and with 0: the difference
 * of the two instruction counts divided by N is the cost of one
 * sonde_counter_inc as the caller sees it (argument move, call and the
 * function body; the loop is unrolled 10x so its own overhead is small).
 */
#include <sonde/metrics.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    char *end = NULL;
    unsigned long long n = argc > 1 ? strtoull(argv[1], &end, 10) : 1000000ull;
    if (argc > 1 && (!end || *end != '\0')) {
        fprintf(stderr, "usage: sonde-bench-inc [N]\n");
        return 2;
    }
    sonde_registry *reg;
    sonde_counter *c;
    if (sonde_registry_create(NULL, &reg) != SONDE_OK ||
        sonde_counter_create(reg, "inc_loop_total", "Increments.", &c) != SONDE_OK) {
        fprintf(stderr, "sonde-bench-inc: setup failed: %s\n", sonde_last_error());
        return 1;
    }
    sonde_counter_inc(c);
    unsigned long long i = 0;
    for (; i + 10 <= n; i += 10) {
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
        sonde_counter_inc(c);
    }
    for (; i < n; i++)
        sonde_counter_inc(c);
    int ok = sonde_counter_get(c) == (double)(n + 1);
    sonde_registry_destroy(reg);
    if (!ok) {
        fprintf(stderr, "sonde-bench-inc: wrong total\n");
        return 1;
    }
    return 0;
}
