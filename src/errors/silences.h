/*
 * Silences (silences.c): what the HTTP view (http/route_silences.c) and the
 * fuzz target need beyond the public API of sonde/errors.h.
 */
#ifndef SONDE_ERRORS_SILENCES_H
#define SONDE_ERRORS_SILENCES_H

#include <sonde/errors.h>

#include <stddef.h>
#include <stdint.h>

/* Largest body of POST /alerts/silences. */
#define SONDE__SILENCE_MAX_BODY 65536

/* A silence request decoded from JSON; strings owned (free with
 * sonde__silence_req_free). */
typedef struct sonde__silence_req {
    sonde_silence_matcher m[32];
    size_t n;
    double starts, ends, duration; /* seconds; 0 when absent */
    char *comment, *created_by;
    /* Only in stored documents (stored != 0): */
    uint64_t id;
    double updated;
} sonde__silence_req;

/*
 * Decode a POST /alerts/silences body: {"matchers": [{"name","value",
 * "isRegex","isEqual"} or "k=v" / "k!=v" / "k=~re" / "k!~re", ...],
 * "startsAt", "endsAt" (RFC 3339) or "duration" ("2h" or seconds),
 * "comment", "createdBy"}. Returns SONDE_OK, SONDE_EINVAL with the reason
 * (naming the member, or the JSON error with its byte) in err, or
 * SONDE_ENOMEM. Pure.
 */
int sonde__silence_req_parse(const char *body, size_t len, sonde__silence_req *out, char *err,
                             size_t errlen);
/* The same for a document read back from a store (as GET lists it: id,
 * status and updatedAt too). */
int sonde__silence_doc_parse(const char *doc, size_t len, sonde__silence_req *out, char *err,
                             size_t errlen);
void sonde__silence_req_free(sonde__silence_req *r);

/* One compact matcher "name=value", "name!=value", "name=~regex",
 * "name!~regex" (the value may be double-quoted). m's strings are
 * allocated. SONDE_OK, SONDE_EINVAL (reason in err) or SONDE_ENOMEM. */
int sonde__silence_matcher_parse(const char *s, sonde_silence_matcher *m, char *err, size_t errlen);

/* Add a decoded request; the reason of SONDE_EINVAL in err. */
int sonde__silence_add_req(sonde_errors *t, const sonde__silence_req *r, uint64_t *id, char *err,
                           size_t errlen);

/* Ids as 16 lowercase hex digits, and back (SONDE_OK or SONDE_EINVAL). */
void sonde__silence_id_format(uint64_t id, char out[17]);
int sonde__silence_id_parse(const char *s, uint64_t *id);

#endif
