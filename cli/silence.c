/*
 * sonde silence add|list|expire: silences of a running service over its
 * /alerts/silences endpoint (POST, GET, DELETE .../ID), as amtool does for
 * Alertmanager.
 */
#include "cli.h"
#include "core/json.h"

#include <sonde.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char silence_usage[] =
    "usage: sonde silence add --matcher NAME=VALUE [--matcher ...] (--duration D | --end TIME)\n"
    "                         [--start TIME] [--comment TEXT] [--author NAME] [options]\n"
    "       sonde silence list [--json] [options]\n"
    "       sonde silence expire ID [ID...] [options]\n"
    "\n"
    "Silence a service's alerts during maintenance: a silenced alert is still\n"
    "evaluated and shown, but no notification is sent while the silence lasts.\n"
    "\n"
    "add options:\n"
    "  --matcher M        a label matcher: name=value, name!=value, name=~regex or\n"
    "                     name!~regex (regexes are anchored); repeat for more (all\n"
    "                     must match); alertname is the rule's name\n"
    "  --duration D       how long from the start (90m, 2h, 1d)\n"
    "  --end TIME         or an end time (RFC 3339, 2026-01-02T15:04:05Z)\n"
    "  --start TIME       start later than now (RFC 3339)\n"
    "  --comment TEXT     why (shown in the list)\n"
    "  --author NAME      who (default $USER)\n"
    "add prints the new silence's ID.\n"
    "\n"
    "options:\n"
    "  --url URL          server base URL including any route prefix\n"
    "                     (default $SONDE_URL, else http://127.0.0.1:9464)\n"
    "  --api-key KEY      bearer key (default $SONDE_API_KEY)\n"
    "  --timeout SECONDS  give up after this long (default 10)\n"
    "  --json             list: print the JSON answer as is\n"
    "\n"
    "exit status: 0 success, 1 the server answered an error, 3 unreachable, 64 usage.\n";

#define MAX_MATCHERS 32

typedef struct sopts {
    const char *url, *key;
    double timeout;
    bool as_json;
    const char *matchers[MAX_MATCHERS];
    size_t nmatchers;
    const char *duration, *start, *end, *comment, *author;
    const char *args[64]; /* positional arguments */
    size_t nargs;
} sopts;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "sonde silence: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", silence_usage);
    return EXIT_USAGE;
}

static int parse_opts(int argc, char **argv, sopts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--json") == 0) {
            o->as_json = true;
            continue;
        }
        if ((m = cli_opt(argc, argv, &i, "--url", &v)) > 0)
            o->url = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--api-key", &v)) > 0)
            o->key = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--timeout", &v)) > 0) {
            if (!cli_parse_seconds(v, &o->timeout))
                return usage_error("--timeout must be seconds in (0, 3600], not \"%s\"", v);
        } else if (m == 0 && (m = cli_opt(argc, argv, &i, "--matcher", &v)) > 0) {
            if (o->nmatchers == MAX_MATCHERS)
                return usage_error("at most %s matchers", "32");
            o->matchers[o->nmatchers++] = v;
        } else if (m == 0 && (m = cli_opt(argc, argv, &i, "--duration", &v)) > 0)
            o->duration = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--start", &v)) > 0)
            o->start = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--end", &v)) > 0)
            o->end = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--comment", &v)) > 0)
            o->comment = v;
        else if (m == 0 && (m = cli_opt(argc, argv, &i, "--author", &v)) > 0)
            o->author = v;
        else if (m < 0)
            return usage_error("%s needs a value", argv[i]);
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("unknown option %s", argv[i]);
        else if (o->nargs < sizeof o->args / sizeof *o->args)
            o->args[o->nargs++] = argv[i];
        else
            return usage_error("too many arguments (%s)", argv[i]);
    }
    return 0;
}

static int add(const sopts *o)
{
    if (o->nmatchers == 0)
        return usage_error("add needs at least one %s", "--matcher (alertname=NAME)");
    if (!o->duration == !o->end)
        return usage_error("add needs %s", "--duration or --end (one of them)");
    if (o->nargs)
        return usage_error("unexpected argument %s", o->args[0]);
    sonde_buf b = {0};
    int rc = sonde_buf_printf(&b, "{\"matchers\":[");
    for (size_t i = 0; i < o->nmatchers && !rc; i++) {
        rc = i ? sonde_buf_printf(&b, ",") : 0;
        rc = rc ? rc : sonde_buf_json_string(&b, o->matchers[i]);
    }
    rc = rc ? rc : sonde_buf_printf(&b, "]");
    const char *names[4] = {"duration", "endsAt", "startsAt", "comment"};
    const char *vals[4] = {o->duration, o->end, o->start, o->comment};
    for (int k = 0; k < 4 && !rc; k++) {
        if (!vals[k])
            continue;
        rc = sonde_buf_printf(&b, ",\"%s\":", names[k]);
        rc = rc ? rc : sonde_buf_json_string(&b, vals[k]);
    }
    const char *author = o->author ? o->author : getenv("USER");
    if (author && !rc) {
        rc = sonde_buf_printf(&b, ",\"createdBy\":");
        rc = rc ? rc : sonde_buf_json_string(&b, author);
    }
    rc = rc ? rc : sonde_buf_printf(&b, "}");
    if (rc) {
        sonde_buf_free(&b);
        fprintf(stderr, "sonde silence: out of memory\n");
        return 1;
    }
    char *body;
    size_t len;
    rc = cli_send_json("silence add", o->url, "/alerts/silences", "POST", b.data, o->key,
                       o->timeout, 201, &body, &len);
    sonde_buf_free(&b);
    if (rc)
        return rc;
    char err[128];
    sonde__json *root = sonde__json_parse(body, len, err, sizeof err);
    const char *id = sonde__json_get_str(root, "silenceID", NULL);
    if (id) {
        printf("%s\n", id);
    } else {
        fprintf(stderr, "sonde silence add: the answer has no silenceID (%s)\n",
                root ? "not in the object" : err);
        rc = 1;
    }
    sonde__json_free(root);
    free(body);
    return rc;
}

/* "name=value" for a matcher object. */
static void matcher_text(char *out, size_t n, const sonde__json *m)
{
    bool re = sonde__json_get_bool(m, "isRegex", false);
    bool eq = sonde__json_get_bool(m, "isEqual", true);
    snprintf(out, n, "%s%s%s", sonde__json_get_str(m, "name", "?"),
             eq ? (re ? "=~" : "=") : (re ? "!~" : "!="), sonde__json_get_str(m, "value", ""));
}

/* "2026-01-02T15:04:05.250Z" as "2026-01-02 15:04:05" (UTC). */
static void time_cell(char *out, size_t n, const char *t)
{
    cli_cell(out, n, t ? t : "", 19);
    char *T = strchr(out, 'T');
    if (T)
        *T = ' ';
}

static void print_list(const sonde__json *root)
{
    printf("%-16s  %-8s  %-19s  %-19s  %-12s  %-30s  %s\n", "ID", "STATE", "STARTS (UTC)",
           "ENDS (UTC)", "CREATED BY", "MATCHERS", "COMMENT");
    for (size_t i = 0; i < root->count; i++) {
        const sonde__json *s = &root->items[i];
        char matchers[512] = "", one[256], cell[4][64], comment[128];
        const sonde__json *ms = sonde__json_get(s, "matchers");
        size_t used = 0;
        for (size_t k = 0; ms && ms->type == SONDE__JSON_ARRAY && k < ms->count; k++) {
            matcher_text(one, sizeof one, &ms->items[k]);
            int w = snprintf(matchers + used, sizeof matchers - used, "%s%s", k ? " " : "", one);
            if (w < 0 || (size_t)w >= sizeof matchers - used)
                break;
            used += (size_t)w;
        }
        char mcell[256];
        cli_cell(mcell, sizeof mcell, matchers, 200);
        cli_cell(cell[0], sizeof cell[0], sonde__json_get_str(s, "id", "?"), 16);
        cli_cell(cell[1], sizeof cell[1],
                 sonde__json_get_str(sonde__json_get(s, "status"), "state", "?"), 8);
        time_cell(cell[2], sizeof cell[2], sonde__json_get_str(s, "startsAt", ""));
        time_cell(cell[3], sizeof cell[3], sonde__json_get_str(s, "endsAt", ""));
        char author[64];
        cli_cell(author, sizeof author, sonde__json_get_str(s, "createdBy", ""), 12);
        cli_cell(comment, sizeof comment, sonde__json_get_str(s, "comment", ""), 80);
        printf("%-16s  %-8s  %-19s  %-19s  %-12s  %-30s  %s\n", cell[0], cell[1], cell[2], cell[3],
               author, mcell, comment);
    }
    if (root->count == 0)
        printf("(no silences)\n");
}

static int list(const sopts *o)
{
    if (o->nargs)
        return usage_error("unexpected argument %s", o->args[0]);
    char *body;
    size_t len;
    int rc =
        cli_get_json("silence list", o->url, "/alerts/silences", o->key, o->timeout, &body, &len);
    if (rc)
        return rc;
    char err[128];
    sonde__json *root = sonde__json_parse(body, len, err, sizeof err);
    if (!root || root->type != SONDE__JSON_ARRAY) {
        fprintf(stderr, "sonde silence list: the answer is not a list of silences (%s)\n",
                root ? "not an array" : err);
        rc = 1;
    } else if (o->as_json) {
        fwrite(body, 1, len, stdout);
        if (len && body[len - 1] != '\n')
            printf("\n");
    } else {
        print_list(root);
    }
    sonde__json_free(root);
    free(body);
    return rc;
}

static int expire(const sopts *o)
{
    if (o->nargs == 0)
        return usage_error("expire needs %s", "the ID of a silence (see sonde silence list)");
    int worst = 0;
    for (size_t i = 0; i < o->nargs; i++) {
        const char *id = o->args[i];
        if (strlen(id) != 16 || strspn(id, "0123456789abcdefABCDEF") != 16) {
            fprintf(stderr, "sonde silence expire: \"%s\" is not a silence ID (16 hex digits)\n",
                    id);
            worst = worst ? worst : 1;
            continue;
        }
        char path[64];
        snprintf(path, sizeof path, "/alerts/silences/%s", id);
        char *body;
        size_t len;
        int rc = cli_send_json("silence expire", o->url, path, "DELETE", NULL, o->key, o->timeout,
                               200, &body, &len);
        if (rc) {
            worst = rc > worst ? rc : worst;
            continue;
        }
        free(body);
        printf("expired %s\n", id);
    }
    return worst;
}

int cmd_silence(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(silence_usage, stdout);
            return 0;
        }
    if (argc < 2)
        return usage_error("%s", "add, list or expire?");
    const char *sub = argv[1];
    sopts o;
    memset(&o, 0, sizeof o);
    o.url = cli_default_url();
    o.key = getenv("SONDE_API_KEY");
    o.timeout = 10;
    int rc = parse_opts(argc - 1, argv + 1, &o);
    if (rc)
        return rc;
    if (strcmp(sub, "add") == 0)
        return add(&o);
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
        return list(&o);
    if (strcmp(sub, "expire") == 0)
        return expire(&o);
    return usage_error("unknown subcommand \"%s\" (add, list or expire)", sub);
}
