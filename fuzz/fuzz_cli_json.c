/*
 * Fuzz target: the JSON reader of the sonde command (it parses server
 * answers, which may come from anything listening on the port).
 */
#include "../cli/json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    json_value *v = json_parse((const char *)data, size, err, sizeof err);
    if (v) {
        (void)json_get_str(v, "status", NULL);
        (void)json_get_num(v, "health_percentage", 0);
        const json_value *c = json_get(v, "checks");
        for (size_t i = 0; c && c->type == JSON_OBJECT && i < c->count; i++)
            (void)json_get_str(&c->items[i], "message", "");
    } else if (err[0] == '\0') {
        abort(); /* a failure always says why */
    }
    json_free(v);
    return 0;
}
