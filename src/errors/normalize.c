/*
 * Fingerprints: message normalisation and hashing. Both are pure, bounded
 * and allocation-free; they run on the capturing thread and are fuzzed
 * (fuzz/fuzz_fingerprint.c).
 */
#include "errors/errors_int.h"

#include <string.h>

/* Character classes, one table lookup per byte. */
enum { C_ALPHA = 1, C_DIGIT = 2, C_HEX = 4 };
static const uint8_t cls[256] = {
    ['0'] = C_DIGIT | C_HEX, ['1'] = C_DIGIT | C_HEX, ['2'] = C_DIGIT | C_HEX,
    ['3'] = C_DIGIT | C_HEX, ['4'] = C_DIGIT | C_HEX, ['5'] = C_DIGIT | C_HEX,
    ['6'] = C_DIGIT | C_HEX, ['7'] = C_DIGIT | C_HEX, ['8'] = C_DIGIT | C_HEX,
    ['9'] = C_DIGIT | C_HEX, ['a'] = C_ALPHA | C_HEX, ['b'] = C_ALPHA | C_HEX,
    ['c'] = C_ALPHA | C_HEX, ['d'] = C_ALPHA | C_HEX, ['e'] = C_ALPHA | C_HEX,
    ['f'] = C_ALPHA | C_HEX, ['A'] = C_ALPHA | C_HEX, ['B'] = C_ALPHA | C_HEX,
    ['C'] = C_ALPHA | C_HEX, ['D'] = C_ALPHA | C_HEX, ['E'] = C_ALPHA | C_HEX,
    ['F'] = C_ALPHA | C_HEX, ['g'] = C_ALPHA,         ['h'] = C_ALPHA,
    ['i'] = C_ALPHA,         ['j'] = C_ALPHA,         ['k'] = C_ALPHA,
    ['l'] = C_ALPHA,         ['m'] = C_ALPHA,         ['n'] = C_ALPHA,
    ['o'] = C_ALPHA,         ['p'] = C_ALPHA,         ['q'] = C_ALPHA,
    ['r'] = C_ALPHA,         ['s'] = C_ALPHA,         ['t'] = C_ALPHA,
    ['u'] = C_ALPHA,         ['v'] = C_ALPHA,         ['w'] = C_ALPHA,
    ['x'] = C_ALPHA,         ['y'] = C_ALPHA,         ['z'] = C_ALPHA,
    ['G'] = C_ALPHA,         ['H'] = C_ALPHA,         ['I'] = C_ALPHA,
    ['J'] = C_ALPHA,         ['K'] = C_ALPHA,         ['L'] = C_ALPHA,
    ['M'] = C_ALPHA,         ['N'] = C_ALPHA,         ['O'] = C_ALPHA,
    ['P'] = C_ALPHA,         ['Q'] = C_ALPHA,         ['R'] = C_ALPHA,
    ['S'] = C_ALPHA,         ['T'] = C_ALPHA,         ['U'] = C_ALPHA,
    ['V'] = C_ALPHA,         ['W'] = C_ALPHA,         ['X'] = C_ALPHA,
    ['Y'] = C_ALPHA,         ['Z'] = C_ALPHA,
};
#define IS_WORD(c) (cls[(uint8_t)(c)] & (C_ALPHA | C_DIGIT))
#define IS_HEX(c) (cls[(uint8_t)(c)] & C_HEX)

/* Whether s[0..n) starts with a UUID (8-4-4-4-12 hex digits) that is not
 * followed by another word character. */
static bool uuid_at(const char *s, size_t n)
{
    static const uint8_t groups[5] = {8, 4, 4, 4, 12};
    if (n < 36)
        return false;
    size_t p = 0;
    for (int g = 0; g < 5; g++) {
        for (int k = 0; k < groups[g]; k++, p++)
            if (!IS_HEX(s[p]))
                return false;
        if (g < 4) {
            if (s[p] != '-')
                return false;
            p++;
        }
    }
    return n == 36 || !IS_WORD(s[36]);
}

/* Append src[0..n) to out if it fits entirely; returns the new length (the
 * old one when it does not fit, so the output is cut at a token edge). */
static size_t put(char *out, size_t len, size_t cap, const char *src, size_t n)
{
    if (len + n > cap)
        return len;
    memcpy(out + len, src, n);
    return len + n;
}

size_t sonde__err_normalize(const char *s, size_t n, char *out, size_t cap)
{
    size_t len = 0, i = 0;
    if (!s)
        return 0;
    while (i < n && len < cap) {
        char c = s[i];
        uint8_t k = cls[(uint8_t)c];
        if (!(k & (C_ALPHA | C_DIGIT))) {
            out[len++] = c;
            i++;
            continue;
        }
        /* A word starts here (the previous byte, if any, is not a word
         * character). */
        if ((k & C_HEX) && uuid_at(s + i, n - i)) {
            size_t nl = put(out, len, cap, "<uuid>", 6);
            if (nl == len)
                break;
            len = nl;
            i += 36;
            continue;
        }
        /* One pass: copy the word while classifying it, then replace what
         * was copied when it is a number or an id. */
        size_t start = len, j = i;
        unsigned digits = 0, hex = 0;
        for (; j < n; j++) {
            uint8_t kk = cls[(uint8_t)s[j]];
            if (!(kk & (C_ALPHA | C_DIGIT)))
                break;
            if (len < cap)
                out[len++] = s[j];
            digits += (kk >> 1) & 1;
            hex += (kk >> 2) & 1;
        }
        size_t w = j - i;
        const char *rep = NULL;
        size_t rl = 0;
        if (w > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X') && hex == w - 1)
            rep = "<hex>", rl = 5;
        else if (digits == w)
            rep = "<n>", rl = 3;
        else if (digits > 0 && hex == w && w >= 8)
            rep = "<hex>", rl = 5;
        else if (digits > 0)
            rep = "<id>", rl = 4;
        if (rep) {
            len = start;
            if (start + rl > cap)
                break; /* the output is cut at a token edge */
            memcpy(out + len, rep, rl);
            len += rl;
        } else if (w > cap - start) {
            break; /* a plain word longer than the room: its prefix stays */
        }
        i = j;
    }
    return len;
}

const char *sonde__path_base(const char *file)
{
    if (!file)
        return "";
    const char *slash = strrchr(file, '/');
    return slash ? slash + 1 : file;
}

uint64_t sonde__err_fingerprint(const char *type, size_t type_len, const char *norm,
                                size_t norm_len, const char *file, size_t file_len,
                                const char *func, size_t func_len, int line)
{
    uint64_t h = sonde__hash64(type, type_len, 0x736f6e6465ULL);
    h = sonde__hash64(norm, norm_len, h);
    /* The location: the file's base name, so that the same source built in
     * another directory keeps its groups. */
    size_t skip = 0;
    for (size_t k = 0; k < file_len; k++)
        if (file[k] == '/')
            skip = k + 1;
    h = sonde__hash64(file + skip, file_len - skip, h);
    h = sonde__hash64(func, func_len, h);
    return sonde__hash64_mix(h ^ (uint64_t)(uint32_t)line);
}
