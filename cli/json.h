/*
 * A small JSON reader for the CLI (it reads the server's /health answers).
 * Parses into a tree; depth and size are bounded; any input is accepted
 * without crashing (fuzz/fuzz_cli_json.c).
 */
#ifndef SONDE_CLI_JSON_H
#define SONDE_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    bool boolean;
    double number;
    char *string;             /* JSON_STRING: decoded, NUL-terminated */
    size_t count;             /* items of an array or members of an object */
    struct json_value *items; /* array items or object values */
    char **keys;              /* object keys, parallel to items */
} json_value;

/* Parse text[0..n). Returns a tree to free with json_free, or NULL with a
 * reason in err. */
json_value *json_parse(const char *text, size_t n, char *err, size_t errlen);
void json_free(json_value *v);

/* Member of an object by key, or NULL. */
const json_value *json_get(const json_value *obj, const char *key);
/* The string of a member, or def. */
const char *json_get_str(const json_value *obj, const char *key, const char *def);
/* The number of a member, or def. */
double json_get_num(const json_value *obj, const char *key, double def);

#endif
