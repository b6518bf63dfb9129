#!/usr/bin/env python3
"""prom_parse.py: reads libratelimit's exports with real parsers, for
tests/test_metrics.c.

    prom_parse.py FILE          Prometheus text exposition format, parsed by
                                prometheus_client.parser (the reference
                                Python client); prints one line per family,
                                "family NAME TYPE", and per sample,
                                "sample NAME LABELS VALUE", LABELS being
                                k=v,k=v sorted by key, or "-".
    prom_parse.py --json FILE   JSON, parsed by the json module; prints one
                                line per leaf, "PATH VALUE", PATH joining
                                keys and list indexes with dots.

It also checks what the parser lets pass: every family typed and
documented, named ratelimit_*, declared once; counters ending _total;
histogram buckets cumulative, up to +Inf equal to _count.  Any problem
goes to stderr with exit status 1.
"""
import json
import math
import sys


def fail(msg):
    sys.stderr.write("prom_parse.py: %s\n" % msg)
    sys.exit(1)


def fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            fail("non-finite value %r" % v)
        return repr(v)
    return str(v)


def check_histogram(fam):
    series = {}
    for s in fam.samples:
        if not s.name.endswith("_bucket"):
            continue
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, []).append((float(s.labels["le"]), s.value))
    counts = {tuple(sorted(s.labels.items())): s.value
              for s in fam.samples if s.name.endswith("_count")}
    if not series:
        fail("histogram %s has no buckets" % fam.name)
    for key, buckets in series.items():
        les = [le for le, _ in buckets]
        if les != sorted(les) or les[-1] != math.inf:
            fail("%s%r: le not increasing up to +Inf" % (fam.name, key))
        vals = [v for _, v in buckets]
        if any(b < a for a, b in zip(vals, vals[1:])):
            fail("%s%r: buckets not cumulative" % (fam.name, key))
        if counts.get(key) != vals[-1]:
            fail("%s%r: +Inf bucket != _count" % (fam.name, key))


def prometheus(path):
    from prometheus_client.parser import text_string_to_metric_families

    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen = set()
    out = []
    for fam in text_string_to_metric_families(text):
        if fam.name in seen:
            fail("family %s declared twice" % fam.name)
        seen.add(fam.name)
        if not fam.name.startswith("ratelimit_"):
            fail("family %s lacks the prefix" % fam.name)
        if fam.type in ("unknown", "untyped") or not fam.documentation:
            fail("family %s has no TYPE or HELP" % fam.name)
        if fam.type == "histogram":
            check_histogram(fam)
        out.append("family %s %s" % (fam.name, fam.type))
        for s in fam.samples:
            if fam.type == "counter" and not s.name.endswith("_total"):
                fail("counter sample %s lacks _total" % s.name)
            labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
            out.append("sample %s %s %s" % (s.name, labels or "-",
                                            fmt(s.value)))
    print("\n".join(out))


def flatten(prefix, v, out):
    if isinstance(v, dict):
        for k, x in v.items():
            flatten(prefix + [str(k)], x, out)
    elif isinstance(v, list):
        out.append("%s.length %d" % (".".join(prefix), len(v)))
        for i, x in enumerate(v):
            flatten(prefix + [str(i)], x, out)
    else:
        out.append("%s %s" % (".".join(prefix), fmt(v)))


def main(argv):
    if len(argv) == 3 and argv[1] == "--json":
        with open(argv[2], encoding="utf-8") as f:
            doc = json.load(f)
        out = []
        flatten([], doc, out)
        print("\n".join(out))
    elif len(argv) == 2:
        prometheus(argv[1])
    else:
        fail("usage: prom_parse.py [--json] FILE")


if __name__ == "__main__":
    main(sys.argv)
