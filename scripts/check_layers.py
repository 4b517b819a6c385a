#!/usr/bin/env python3
"""Check that sonde's components only call down (docs/architecture.md).

    check_layers.py SOURCE_DIR [OBJECT_DIR]

Every folder src/X is a component. A file of X may include a header of
component Y (src/Y/*.h or Y's public header include/sonde/*.h) only when Y is
in ALLOWED[X]. Headers of a folder are private to it unless listed in
INTERFACES. With OBJECT_DIR (the object files of the static library, laid out
as OBJECT_DIR/X/file.c.o) the same table is checked on the symbols each object
file uses from another component's objects, which catches calls made without
an include. Anything that breaks a rule today and needs a bigger change is in
EXCEPTIONS with the reason; the list is meant to shrink.

Exit status 0 when everything holds, 1 with one line per violation.
"""
import os
import re
import subprocess
import sys

# component -> the components it may use (its own folder is always allowed).
# Ordered bottom to top; a component only lists components above it in this
# list (lower floors).
ALLOWED = {
    "core": set(),
    "metrics": {"core"},
    "expose": {"core", "metrics"},
    "log": {"core", "metrics"},
    "store": {"core", "metrics", "log"},
    "host": {"core", "metrics", "expose"},
    "trace": {"core", "metrics", "log", "store"},
    "health": {"core", "metrics", "expose", "log", "host"},
    "errors": {"core", "metrics", "expose", "log", "store", "trace", "health"},
    "sql": {"core", "metrics", "expose", "log", "errors"},
    "export": {"core", "metrics", "expose", "log"},
    "gen": {"core", "metrics"},
    "http": {"core", "metrics", "expose", "log", "host", "health", "trace", "errors"},
    # sonde/start.c: sonde_start, the composition root that wires components
    # and registers the HTTP routes.
    "sonde": {"core", "metrics", "expose", "log", "store", "host", "trace", "health", "errors",
              "sql", "export", "gen", "http"},
    # The agent's YAML configuration: builds sonde_start_opts and the checks,
    # rules, notifiers and SQL queries of a file, so it sits on top.
    "config": {"core", "metrics", "expose", "log", "store", "host", "trace", "health", "errors",
               "sql", "export", "gen", "http", "sonde"},
}

# Public headers (include/sonde/NAME) -> the component that implements them.
PUBLIC = {
    "common.h": "core",
    "metrics.h": "metrics",
    "log.h": "log",
    "host.h": "host",
    "health.h": "health",
    "trace.h": "trace",
    "errors.h": "errors",
    "sql.h": "sql",
    "export.h": "export",
    "gen.h": "gen",
    "app.h": "http",
    "mhd.h": "http",
    "runtime.h": "sonde",
    "config.h": "config",
}

# Internal headers other components may include: a component's internal
# face. Every other header under src/X/ is private to X.
INTERFACES = {
    "core/internal.h", "core/text.h", "core/worker.h", "core/sketch.h",
    "core/json.h",  # the one JSON reader (silence bodies, stored silences, the command)
    "metrics/metrics_int.h",  # cells, snapshots: read by expose, export, sql, http
    "expose/visit.h",  # walking a registry's families (export)
    "store/store.h",  # the store's backend table and queue
    "host/host.h",  # /proc readers
    "health/health.h",
    "errors/errors_query.h",  # error and alert queries (http routes)
    "errors/silences.h",  # silence request parsing (the /alerts/silences route)
    "http/server.h", "http/views.h", "http/dashboard.h", "http/history.h",  # for sonde/start.c
}

# Known exceptions: (file, what it uses, why). "what" is a header path as
# written in the #include, or "sym:NAME" for a symbol used from another
# component's object. Remove a line when its reason is gone.
EXCEPTIONS = [
    ("src/core/text.c", "sonde/metrics.h",
     "name escaping uses the sonde_escaping enum of metrics.h; move the enum to common.h"),
    ("src/metrics/process.c", "sym:sonde_emit_family",
     "the process collector emits through expose's emitter; it belongs with host/"),
    ("src/metrics/process.c", "sym:sonde_emit_sample", "as above"),
    ("src/http/http.h", "sonde/runtime.h",
     "the server is configured by sonde_start_opts; give it its own options struct"),
    ("src/http/route_performance.c", "trace/trace_int.h",
     "sonde__trace_peek tells whether tracing runs; make it a trace function"),
    ("src/errors/context.c", "log/log_int.h",
     "errors copy the logging context's fields (sonde__ctx_current, sonde__fb_next); "
     "give log a public or interface call to read them"),
    ("src/sonde/start.c", "errors/errors_int.h",
     "sonde__errors_set_served/_service; move them to an errors interface header"),
]

# Persistence belongs to src/store: no SQLite or Redis call elsewhere. The
# SQL collector (src/sql) and the health checks (src/health/builtin.c) talk
# to the user's own databases, which is not sonde's persistence.
STORAGE_RE = re.compile(r"\b(sqlite3_\w+|redis(Command|AppendCommand|GetReply|Connect)\w*)\s*\(")
STORAGE_ALLOWED = ("src/store/", "src/sql/", "src/health/builtin.c")

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)


def component_of_header(inc, here):
    """Component of an included path, or None for system/third-party headers."""
    if inc.startswith("sonde/"):
        name = inc[len("sonde/"):]
        return PUBLIC.get(name, "?" + name)
    first = inc.split("/")[0]
    if "/" in inc and first in ALLOWED:
        return first
    if "/" not in inc and here is not None:
        return here  # "foo.h" next to the file
    return None


def check_includes(root, problems, used):
    files = []
    for d in sorted(os.listdir(os.path.join(root, "src"))):
        p = os.path.join(root, "src", d)
        if os.path.isdir(p):
            for f in sorted(os.listdir(p)):
                if f.endswith((".c", ".h")):
                    files.append(("src/%s/%s" % (d, f), d))
    inc_dir = os.path.join(root, "include", "sonde")
    for f in sorted(os.listdir(inc_dir)):
        if f.endswith(".h"):
            files.append(("include/sonde/" + f, PUBLIC.get(f, "?" + f)))
    for rel, comp in files:
        if comp not in ALLOWED:
            problems.append("%s: component %s is not in the layer table" % (rel, comp))
            continue
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for quote, inc in INCLUDE_RE.findall(text):
            if rel.startswith("include/") and quote == '"' and "/" not in inc:
                inc = "sonde/" + inc  # public headers include each other by bare name
            target = component_of_header(inc, comp if rel.startswith("src/") else None)
            if target is None:
                continue
            if target.startswith("?"):
                problems.append("%s: includes %s, a header of no known component" % (rel, inc))
                continue
            if target == comp:
                continue
            if (rel, inc) in used:
                used[(rel, inc)] = True
                continue
            if target not in ALLOWED[comp]:
                problems.append("%s: includes %s: %s may not use %s" % (rel, inc, comp, target))
            elif not inc.startswith("sonde/") and inc not in INTERFACES:
                problems.append("%s: includes %s, private to src/%s/" % (rel, inc, target))


def check_storage(root, problems):
    src = os.path.join(root, "src")
    for d in sorted(os.listdir(src)):
        p = os.path.join(src, d)
        if not os.path.isdir(p):
            continue
        for f in sorted(os.listdir(p)):
            rel = "src/%s/%s" % (d, f)
            if not f.endswith((".c", ".h")) or rel.startswith(STORAGE_ALLOWED):
                continue
            with open(os.path.join(p, f), encoding="utf-8", errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    m = STORAGE_RE.search(line)
                    if m:
                        problems.append("%s:%d: %s outside src/store/: persistence is an "
                                        "operation of the store's backend table" % (rel, n,
                                                                                     m.group(1)))


def check_symbols(objdir, problems, used):
    paths = []
    for d, _, names in os.walk(objdir):
        paths += [os.path.join(d, f) for f in names if f.endswith(".o")]
    defined = {}
    undefined = {}
    if paths:
        # One nm for all objects: "path: name kind [value size]" per line.
        out = subprocess.run(["nm", "-P", "-A", "--no-sort"] + sorted(paths), capture_output=True,
                             text=True, check=True).stdout
        for line in out.splitlines():
            path, _, rest = line.partition(": ")
            parts = rest.split()
            if len(parts) < 2:
                continue
            rel = "src/" + os.path.relpath(path, objdir)[:-2]  # src/X/file.c
            names = undefined.setdefault(rel, set())
            if parts[1] == "U":
                names.add(parts[0])
            elif parts[1] in "TDBRVWC":
                defined[parts[0]] = rel
    if not undefined:
        problems.append("%s: no object files (build the library first)" % objdir)
    for rel, names in sorted(undefined.items()):
        comp = rel.split("/")[1]
        for name in sorted(names):
            where = defined.get(name)
            if not where:
                continue
            target = where.split("/")[1]
            if target == comp or comp not in ALLOWED:
                continue
            key = (rel, "sym:" + name)
            if key in used:
                used[key] = True
                continue
            if target not in ALLOWED[comp]:
                problems.append("%s: calls %s (%s): %s may not use %s" % (rel, name, where, comp,
                                                                         target))


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = sys.argv[1]
    problems = []
    used = {(f, w): False for f, w, _ in EXCEPTIONS}
    check_includes(root, problems, used)
    check_storage(root, problems)
    if len(sys.argv) == 3:
        check_symbols(sys.argv[2], problems, used)
    for (f, w), hit in sorted(used.items()):
        if not hit and (len(sys.argv) == 3 or not w.startswith("sym:")):
            problems.append("%s: exception for %s no longer needed: remove it from EXCEPTIONS" %
                            (f, w))
    for p in problems:
        print(p)
    if problems:
        print("check_layers: %d problem(s); the table is in scripts/check_layers.py and "
              "docs/architecture.md" % len(problems))
        return 1
    print("check_layers: %d components, every include and cross-component call goes down "
          "(%d known exceptions)" % (len(ALLOWED), len(EXCEPTIONS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
