/* Private parts of the health component shared with the HTTP server and the
 * built-in checks. */
#ifndef SONDE_HEALTH_INTERNAL_H
#define SONDE_HEALTH_INTERNAL_H

#include <sonde/health.h>

#include "core/internal.h"
#include "core/text.h"

#define SONDE__HEALTH_MAX_DETAILS 32
#define SONDE__HEALTH_DETAIL_LEN 256
#define SONDE__HEALTH_MESSAGE_LEN 1024

struct sonde_health_result {
    char message[SONDE__HEALTH_MESSAGE_LEN];
    size_t ndetails;
    struct {
        char key[SONDE__HEALTH_DETAIL_LEN];
        char value[SONDE__HEALTH_DETAIL_LEN];
        bool number;
    } details[SONDE__HEALTH_MAX_DETAILS];
};

/* Add a check with an identity string: two checks with the same name and
 * identity are the same definition for sonde_health_replace. ident is
 * copied. Same return codes as sonde_health_add. */
int sonde__health_add_ident(sonde_health *h, const sonde_health_check_opts *opts,
                            sonde_health_fn fn, void *ud, const char *ident);

/* Append the members of the set's JSON object (no surrounding braces) to
 * out: "status":...,"health_percentage":...,"checks":{...}. */
int sonde__health_write_members(sonde_health *h, int detailed, sonde_buf *out);

#endif
