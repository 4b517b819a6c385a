/*
 * Operation windows for the failure-rate, no-success and anomaly rules,
 * read from tracing (sonde/trace.h). Tracing windows are whole calendar
 * minutes: a window of W seconds reads the last ceil(W / 60) minutes (the
 * current minute so far and the ones before it). Tracing keeps its own
 * clock; the `now` of the rule evaluation is not used here.
 */
#include "errors/errors_int.h"

#include <sonde/trace.h>

#include <math.h>

int sonde__errors_op_window(const char *op, double window_seconds, double now,
                            sonde__op_window *out)
{
    SONDE_UNUSED(now);
    *out = (sonde__op_window){0};
    double m = ceil(window_seconds / 60.0);
    unsigned minutes = m < 1 ? 1 : m > 43200 ? 43200 : (unsigned)m;
    sonde_op_stats st;
    if (sonde_trace_get_stats(op, minutes, &st) != SONDE_OK)
        return SONDE_ENOTFOUND;
    out->count = st.count;
    out->errors = st.errors;
    out->anomaly = st.anomaly != 0;
    return SONDE_OK;
}
