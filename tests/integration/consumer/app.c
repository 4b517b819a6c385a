/* A consumer of an installed sonde: counts, renders, checks. */
#include <sonde.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    sonde_counter *c;
    if (sonde_counter_create(NULL, "consumer_runs_total", "Runs.", &c) != SONDE_OK)
        return 1;
    sonde_counter_inc(c);
    char *txt = sonde_registry_render(NULL, SONDE_FORMAT_PROMETHEUS, NULL);
    int ok = txt && strstr(txt, "consumer_runs_total 1\n") != NULL;
    printf("%s: sonde %s\n", ok ? "ok" : "FAIL", sonde_version());
    sonde_free(txt);
    return ok ? 0 : 1;
}
