/* The JSON reader (core/json.c): values, escapes, the strict number
 * grammar, UTF-8 checks, bounds, and errors that name a byte offset. */
#include "test.h"

#include "core/json.h"

#include <stdlib.h>
#include <string.h>

TEST_MAIN()

static sonde__json *parse(const char *s, char *err, size_t errlen)
{
    return sonde__json_parse(s, strlen(s), err, errlen);
}

/* The error text for s, which must fail. */
static const char *error_of(const char *s)
{
    static char err[160];
    sonde__json *v = parse(s, err, sizeof err);
    if (v) {
        sonde__json_free(v);
        return "(parsed)";
    }
    return err;
}

TEST(test_json_parses_every_type)
{
    char err[128];
    sonde__json *v =
        parse(" {\"a\": [1, -2.5e3, 0], \"b\": true, \"c\": false, \"d\": null, \"e\": \"x\"} ",
              err, sizeof err);
    ASSERT(v != NULL);
    ASSERT_EQ(v->type, SONDE__JSON_OBJECT);
    ASSERT_EQ(v->count, 5);
    const sonde__json *a = sonde__json_get(v, "a");
    ASSERT(a && a->type == SONDE__JSON_ARRAY && a->count == 3);
    ASSERT_DBL_EQ(a->items[0].number, 1);
    ASSERT_DBL_EQ(a->items[1].number, -2500);
    ASSERT_DBL_EQ(a->items[2].number, 0);
    ASSERT(sonde__json_get_bool(v, "b", false));
    ASSERT(!sonde__json_get_bool(v, "c", true));
    ASSERT_EQ(sonde__json_get(v, "d")->type, SONDE__JSON_NULL);
    ASSERT_STR_EQ(sonde__json_get_str(v, "e", NULL), "x");
    ASSERT_STR_EQ(sonde__json_get_str(v, "a", "def"), "def");
    ASSERT_DBL_EQ(sonde__json_get_num(v, "zz", 7), 7);
    ASSERT(sonde__json_get(v, "missing") == NULL);
    ASSERT(sonde__json_get(&a->items[0], "a") == NULL);
    sonde__json_free(v);
}

TEST(test_json_decodes_escapes_and_surrogate_pairs)
{
    char err[128];
    sonde__json *v = parse("\"q\\\"b\\\\s\\/n\\nt\\tu\\u00e9\\ud83d\\ude00\"", err, sizeof err);
    ASSERT(v != NULL);
    ASSERT_STR_EQ(v->string, "q\"b\\s/n\nt\tu\xc3\xa9\xf0\x9f\x98\x80");
    ASSERT_EQ(v->len, strlen(v->string));
    sonde__json_free(v);
    /* Raw UTF-8 passes through. */
    v = parse("\"h\xc3\xa9llo\"", err, sizeof err);
    ASSERT(v != NULL);
    ASSERT_STR_EQ(v->string, "h\xc3\xa9llo");
    sonde__json_free(v);
}

TEST(test_json_errors_name_the_problem_and_the_byte)
{
    ASSERT_STR_EQ(error_of("{\"a\" 1}"), "expected ':' at byte 5");
    ASSERT_STR_EQ(error_of("[1, 2"), "unexpected end: expected ',' or ']' at byte 5");
    ASSERT_STR_EQ(error_of("{\"a\":1,}"), "expected a key at byte 7");
    ASSERT_STR_EQ(error_of("[1] x"), "trailing characters after the value at byte 4");
    ASSERT_STR_EQ(error_of("\"abc"), "unterminated string at byte 0");
    ASSERT_STR_EQ(error_of("[\"a\x01\"]"), "control character in string at byte 3");
    ASSERT_STR_EQ(error_of("\"\\x\""), "bad escape at byte 1");
    ASSERT_STR_EQ(error_of("\"\\u12\""), "bad \\u escape at byte 1");
    ASSERT_STR_EQ(error_of("\"ab\\ud800\""), "unpaired surrogate in \\u escape at byte 3");
    ASSERT_STR_EQ(error_of("\"\\udc00\""), "unpaired surrogate in \\u escape at byte 1");
    ASSERT_STR_EQ(error_of("\"a\\u0000\""), "NUL character (\\u0000) in string at byte 2");
    ASSERT_STR_EQ(error_of("nul"), "unexpected character: expected a value at byte 0");
    ASSERT_STR_EQ(error_of(""), "unexpected end: expected a value at byte 0");
}

TEST(test_json_numbers_follow_the_grammar)
{
    char err[128];
    const char *good[] = {"0", "-0", "12", "1.5", "1e3", "1E+3", "-1.25e-2", "123456789012"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        sonde__json *v = parse(good[i], err, sizeof err);
        ASSERT(v != NULL);
        ASSERT_EQ(v->type, SONDE__JSON_NUMBER);
        ASSERT_DBL_EQ(v->number, strtod(good[i], NULL));
        sonde__json_free(v);
    }
    ASSERT_STR_EQ(error_of("01"), "trailing characters after the value at byte 1");
    ASSERT_STR_EQ(error_of("1."), "bad number: expected a digit after '.' at byte 2");
    ASSERT_STR_EQ(error_of(".5"), "unexpected character: expected a value at byte 0");
    ASSERT_STR_EQ(error_of("-"), "bad number: expected a digit at byte 1");
    ASSERT_STR_EQ(error_of("1e"), "bad number: expected a digit in the exponent at byte 2");
    ASSERT_STR_EQ(error_of("+1"), "unexpected character: expected a value at byte 0");
    ASSERT_STR_EQ(error_of("0x10"), "trailing characters after the value at byte 1");
}

TEST(test_json_rejects_invalid_utf8_at_its_byte)
{
    ASSERT_STR_EQ(error_of("\"ab\xff\""), "invalid UTF-8 in string at byte 3");
    ASSERT_STR_EQ(error_of("{\"k\xc0\xaf\":1}"), "invalid UTF-8 in string at byte 3");
    /* Encoded surrogate and a truncated sequence. */
    ASSERT_STR_EQ(error_of("\"\xed\xa0\x80\""), "invalid UTF-8 in string at byte 1");
    ASSERT_STR_EQ(error_of("[\"x\xe2\x82\"]"), "invalid UTF-8 in string at byte 3");
}

TEST(test_json_bounds_depth)
{
    char deep[2 * (SONDE__JSON_MAX_DEPTH + 2) + 1];
    size_t d = SONDE__JSON_MAX_DEPTH + 1; /* 65 opening brackets: 64 levels below the root */
    memset(deep, '[', d);
    memset(deep + d, ']', d);
    deep[2 * d] = '\0';
    char err[128];
    sonde__json *v = parse(deep, err, sizeof err);
    ASSERT(v != NULL);
    sonde__json_free(v);
    d++;
    memset(deep, '[', d);
    memset(deep + d, ']', d);
    deep[2 * d] = '\0';
    ASSERT_STR_EQ(error_of(deep), "nesting deeper than 64 at byte 65");
}

TEST(test_json_bounds_size_and_takes_no_input)
{
    char err[160];
    static const char one[] = "1";
    ASSERT(sonde__json_parse(one, SONDE__JSON_MAX_SIZE + 1, err, sizeof err) == NULL);
    ASSERT_CONTAINS(err, "larger than the limit");
    ASSERT(sonde__json_parse(NULL, 0, err, sizeof err) == NULL);
    ASSERT_STR_EQ(err, "no input at byte 0");
    sonde__json_free(NULL);
}

TEST(test_json_large_arrays_and_duplicate_keys)
{
    size_t n = 10000;
    char *s = malloc(n * 2 + 3);
    ASSERT(s != NULL);
    size_t k = 0;
    s[k++] = '[';
    for (size_t i = 0; i < n; i++) {
        s[k++] = '7';
        s[k++] = i + 1 < n ? ',' : ']';
    }
    s[k] = '\0';
    char err[128];
    sonde__json *v = parse(s, err, sizeof err);
    free(s);
    ASSERT(v != NULL);
    ASSERT_EQ(v->count, n);
    ASSERT_DBL_EQ(v->items[n - 1].number, 7);
    sonde__json_free(v);
    /* The first of duplicated keys wins. */
    v = parse("{\"a\":1,\"a\":2}", err, sizeof err);
    ASSERT(v != NULL);
    ASSERT_DBL_EQ(sonde__json_get_num(v, "a", 0), 1);
    sonde__json_free(v);
}
