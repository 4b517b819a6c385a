/*
 * The one JSON reader of the project (RFC 8259), used by the library (the
 * body of POST /alerts/silences, silences read back from a store) and by
 * the sonde command (server answers). Parses into a tree; input size and
 * nesting depth are bounded, strings must be valid UTF-8, and any input is
 * accepted without crashing (fuzz/fuzz_json.c). A failure always says why
 * and where: "expected ':' at byte 17".
 */
#ifndef SONDE_CORE_JSON_H
#define SONDE_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting of arrays and objects accepted. */
#define SONDE__JSON_MAX_DEPTH 64
/* Largest input accepted, in bytes. */
#define SONDE__JSON_MAX_SIZE ((size_t)64 << 20)

typedef enum {
    SONDE__JSON_NULL,
    SONDE__JSON_BOOL,
    SONDE__JSON_NUMBER,
    SONDE__JSON_STRING,
    SONDE__JSON_ARRAY,
    SONDE__JSON_OBJECT
} sonde__json_type;

typedef struct sonde__json {
    sonde__json_type type;
    bool boolean;
    double number;
    char *string;              /* STRING: decoded, NUL-terminated (never holds NUL) */
    size_t len;                /* STRING: bytes before the NUL */
    size_t count;              /* items of an array or members of an object */
    struct sonde__json *items; /* array items or object values */
    char **keys;               /* object keys, parallel to items */
} sonde__json;

/* Parse text[0..n). Returns a tree to free with sonde__json_free, or NULL
 * with the reason and byte offset in err (also when out of memory). */
sonde__json *sonde__json_parse(const char *text, size_t n, char *err, size_t errlen);
void sonde__json_free(sonde__json *v);

/* The first member of an object by key, or NULL (also when obj is not an
 * object or NULL). */
const sonde__json *sonde__json_get(const sonde__json *obj, const char *key);
/* The string of a member, or def when absent or not a string. */
const char *sonde__json_get_str(const sonde__json *obj, const char *key, const char *def);
/* The number of a member, or def when absent or not a number. */
double sonde__json_get_num(const sonde__json *obj, const char *key, double def);
/* The boolean of a member, or def when absent or not a boolean. */
bool sonde__json_get_bool(const sonde__json *obj, const char *key, bool def);

/* The name of a type ("null", "boolean", "number", "string", "array",
 * "object"), for error messages. */
const char *sonde__json_type_name(sonde__json_type t);

#endif
