/*
 * sonde push: send a Prometheus text file (or stdin) to a Pushgateway under
 * a job and grouping key; --add keeps the group's other metrics, --delete
 * removes the group.
 */
#include "cli.h"

#include <sonde.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char push_usage[] =
    "usage: sonde push --url URL --job NAME [--label k=v]... [--add | --delete]\n"
    "                  [--bearer-token TOKEN | --basic-auth USER:PASS] [--timeout SECONDS]\n"
    "                  FILE|-\n"
    "\n"
    "Send metrics in Prometheus text format to a Pushgateway. Without --add the\n"
    "group (job and labels) is replaced (PUT); --add replaces only the metric\n"
    "names pushed (POST); --delete removes the group (no FILE). Values with '/'\n"
    "are base64-encoded in the path. The bearer token and password may also come\n"
    "from SONDE_PUSH_BEARER_TOKEN / SONDE_PUSH_PASSWORD.\n";

#define MAX_LABELS 32

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            char *nb = cap < (256u << 20) ? realloc(b, cap * 2) : NULL;
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
            cap *= 2;
        }
    }
    *len = n;
    return b;
}

int cmd_push(int argc, char **argv)
{
    sonde_push_opts o;
    sonde_push_opts_init(&o);
    const char *labels[2 * MAX_LABELS];
    char *owned[MAX_LABELS];
    size_t nl = 0;
    const char *file = NULL, *basic = NULL, *timeout = NULL;
    int rc = EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(push_usage, stdout);
            rc = 0;
            goto out;
        } else if ((m = cli_opt(argc, argv, &i, "--url", &v)) != 0) {
            if (m < 0)
                goto missing;
            o.url = v;
        } else if ((m = cli_opt(argc, argv, &i, "--job", &v)) != 0) {
            if (m < 0)
                goto missing;
            o.job = v;
        } else if ((m = cli_opt(argc, argv, &i, "--label", &v)) != 0) {
            if (m < 0)
                goto missing;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || nl == MAX_LABELS) {
                fprintf(stderr, "sonde push: --label wants name=value (at most %d), got \"%s\"\n",
                        MAX_LABELS, v);
                goto out;
            }
            owned[nl] = strndup(v, (size_t)(eq - v));
            if (!owned[nl])
                goto out;
            labels[2 * nl] = owned[nl];
            labels[2 * nl + 1] = eq + 1;
            nl++;
        } else if ((m = cli_opt(argc, argv, &i, "--bearer-token", &v)) != 0) {
            if (m < 0)
                goto missing;
            o.bearer_token = v;
        } else if ((m = cli_opt(argc, argv, &i, "--basic-auth", &v)) != 0) {
            if (m < 0)
                goto missing;
            basic = v;
        } else if ((m = cli_opt(argc, argv, &i, "--timeout", &v)) != 0) {
            if (m < 0)
                goto missing;
            timeout = v;
        } else if (strcmp(argv[i], "--add") == 0) {
            o.method = SONDE_PUSH_ADD;
        } else if (strcmp(argv[i], "--delete") == 0) {
            o.method = SONDE_PUSH_DELETE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "sonde push: unknown option \"%s\"\n\n%s", argv[i], push_usage);
            goto out;
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "sonde push: one FILE only\n");
            goto out;
        }
    }
    if (!o.url || !o.job) {
        fprintf(stderr, "sonde push: --url and --job are required\n\n%s", push_usage);
        goto out;
    }
    if ((o.method == SONDE_PUSH_DELETE) == (file != NULL)) {
        fprintf(stderr, "sonde push: %s\n",
                file ? "--delete takes no FILE" : "FILE (or - for stdin) is required");
        goto out;
    }
    if (!o.bearer_token)
        o.bearer_token = getenv("SONDE_PUSH_BEARER_TOKEN");
    char user[256];
    if (basic) {
        const char *colon = strchr(basic, ':');
        size_t ul = colon ? (size_t)(colon - basic) : strlen(basic);
        if (ul == 0 || ul >= sizeof user) {
            fprintf(stderr, "sonde push: --basic-auth wants USER:PASS\n");
            goto out;
        }
        memcpy(user, basic, ul);
        user[ul] = '\0';
        o.basic_auth_user = user;
        o.basic_auth_password = colon ? colon + 1 : getenv("SONDE_PUSH_PASSWORD");
    }
    if (timeout) {
        char *end = NULL;
        o.timeout_seconds = strtod(timeout, &end);
        if (!end || *end || !(o.timeout_seconds > 0)) {
            fprintf(stderr, "sonde push: --timeout wants seconds, got \"%s\"\n", timeout);
            goto out;
        }
    }
    o.grouping = labels;
    o.grouping_count = nl;
    char *body = NULL;
    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "sonde push: cannot open %s\n", file);
            rc = 1;
            goto out;
        }
        size_t len = 0;
        body = read_all(f, &len);
        if (f != stdin)
            fclose(f);
        if (!body) {
            fprintf(stderr, "sonde push: cannot read %s\n", file);
            rc = 1;
            goto out;
        }
        o.body = len ? body : "\n";
        o.body_len = len ? len : 1;
    }
    int status = 0;
    int prc = sonde_push(&o, &status);
    free(body);
    if (prc != SONDE_OK) {
        fprintf(stderr, "sonde push: %s\n",
                sonde_last_error()[0] ? sonde_last_error() : sonde_strerror(prc));
        rc = 1;
        goto out;
    }
    rc = 0;
    goto out;
missing:
    fprintf(stderr, "sonde push: %s needs a value\n", argv[argc - 1]);
out:
    for (size_t i = 0; i < nl; i++)
        free(owned[i]);
    return rc;
}
