/*
 * Fuzz target: the JSON reader (core/json.c). It reads request bodies of
 * the HTTP server and the server's answers in the sonde command, so any
 * input must either parse into a tree whose strings are valid UTF-8 or fail
 * with a reason naming a byte offset within the input.
 */
#include "core/json.h"
#include "core/text.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const sonde__json *v, int depth)
{
    if (depth > SONDE__JSON_MAX_DEPTH + 1)
        abort();
    if (v->type == SONDE__JSON_STRING &&
        (strlen(v->string) != v->len || !sonde__utf8_ok(v->string, v->len)))
        abort();
    for (size_t i = 0; i < v->count; i++) {
        if (v->type == SONDE__JSON_OBJECT && !sonde__utf8_ok(v->keys[i], strlen(v->keys[i])))
            abort();
        walk(&v->items[i], depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    sonde__json *v = sonde__json_parse((const char *)data, size, err, sizeof err);
    if (v) {
        walk(v, 0);
        (void)sonde__json_get_str(v, "status", NULL);
        (void)sonde__json_get_num(v, "health_percentage", 0);
        (void)sonde__json_get_bool(v, "isRegex", false);
    } else {
        /* A failure always says why and where, within the input. */
        const char *at = strstr(err, " at byte ");
        if (!at || strtoull(at + 9, NULL, 10) > size)
            abort();
    }
    sonde__json_free(v);
    return 0;
}
