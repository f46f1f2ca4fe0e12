#!/usr/bin/env python3
"""Times Grafana-style range queries against Prometheus and meshfed (bench/query-vs-prometheus).

Usage: queries.py PROM_URL MESHFED_URL START END STEP REPS

Every query is sent as Grafana's Prometheus data source sends it: POST /api/v1/query_range with a
form body (query, start, end, step), over one kept-alive HTTP/1.1 connection per system (as Go's
http.Transport in Grafana reuses its connections; a new connection per request added the same
~0.5 ms of client-side setup to both systems). One untimed warm-up per system, then REPS timed rounds that
alternate between the systems. Each pair of answers is checked: same series, same number of
points, values equal within 1e-6 (relative). Prints a Markdown table: p50 and p99 (nearest rank)
per system and the p50 and p99 ratios meshfed / Prometheus.
"""
import http.client
import json
import math
import sys
import time
import urllib.parse

SVC = 'destination_service=~"reviews.ns-0.svc.cluster.local"'
WL = 'destination_workload_namespace=~"ns-0", destination_workload=~"reviews-v1"'
# (class, query): the panels of Istio's Mesh, Service and Workload dashboards over this data set.
QUERIES = [
    ("mesh: total rate", 'round(sum(irate(istio_requests_total{reporter="destination"}[1m])), 0.001)'),
    ("mesh: success ratio",
     'sum(rate(istio_requests_total{reporter="destination",response_code!~"5.*"}[1m]))'
     ' / sum(rate(istio_requests_total{reporter="destination"}[1m]))'),
    ("mesh: rate by workload",
     'sum(rate(istio_requests_total{reporter="source", response_code="200"}[1m]))'
     ' by (destination_workload, destination_workload_namespace)'),
    ("mesh: p90 by workload",
     'histogram_quantile(0.90, sum(rate(istio_request_duration_milliseconds_bucket{reporter="source"}[1m]))'
     ' by (le, destination_workload, destination_workload_namespace))'),
    ("service: rate", f'round(sum(irate(istio_requests_total{{reporter="destination",{SVC}}}[5m])), 0.001)'),
    ("service: p50/p90/p99",
     f'histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{{reporter="destination",{SVC}}}[1m])) by (le))'),
    ("service: by source and code",
     f'sum(irate(istio_requests_total{{reporter="destination",{SVC}}}[5m]))'
     ' by (source_workload, source_workload_namespace, response_code)'),
    ("workload: inbound p99 by source",
     f'histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{{reporter="destination",{WL}}}[1m]))'
     ' by (source_workload, source_workload_namespace, le))'),
    ("workload: topk outbound",
     f'topk(5, sum(rate(istio_requests_total{{reporter="source",source_workload_namespace=~"ns-0",source_workload=~"reviews-v1"}}[5m]))'
     ' by (destination_service))'),
]


CONNS = {}


def post(url, body):
    """POSTs a form to url + /api/v1/query_range on the kept-alive connection; returns the body."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for attempt in (0, 1):
        conn = CONNS.get(url)
        if conn is None:
            u = urllib.parse.urlsplit(url)
            conn = CONNS[url] = http.client.HTTPConnection(u.hostname, u.port, timeout=900)
        try:
            conn.request("POST", "/api/v1/query_range", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            del CONNS[url]
            if attempt:
                raise
    raise AssertionError("unreachable")


def run(url, query, start, end, step):
    body = urllib.parse.urlencode({"query": query, "start": start, "end": end, "step": step}).encode()
    t0 = time.perf_counter()
    data = post(url, body)
    elapsed = time.perf_counter() - t0
    doc = json.loads(data)
    if doc.get("status") != "success":
        raise SystemExit(f"{url}: {query}: {doc}")
    return elapsed, doc["data"]["result"]


def key(series):
    return tuple(sorted(series["metric"].items()))


def same(a, b):
    """Same series, points and values (relative 1e-6); returns a reason when not."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} series"
    bb = {key(s): s for s in b}
    for s in a:
        t = bb.get(key(s))
        if t is None:
            return f"series {key(s)} missing"
        if len(s["values"]) != len(t["values"]):
            return f"{len(s['values'])} vs {len(t['values'])} points in {key(s)}"
        for (ta, va), (tb, vb) in zip(s["values"], t["values"]):
            x, y = float(va), float(vb)
            if ta != tb or not (x == y or (math.isnan(x) and math.isnan(y))
                                or abs(x - y) <= 1e-6 * max(abs(x), abs(y))):
                return f"point {ta}: {va} vs {tb}: {vb} in {key(s)}"
    return None


def rank(xs, q):
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def main():
    prom, meshfed, start, end, step, reps = sys.argv[1:7]
    reps = int(reps)
    print("| query class | series out | points | Prometheus p50 | p99 | meshfed p50 | p99 | ratio p50 | ratio p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for name, q in QUERIES:
        _, pr = run(prom, q, start, end, step)
        _, mr = run(meshfed, q, start, end, step)
        diff = same(pr, mr)
        if diff:
            print(f"WARNING {name}: results differ: {diff}", file=sys.stderr)
        pt, mt = [], []
        for _ in range(reps):
            pt.append(run(prom, q, start, end, step)[0])
            mt.append(run(meshfed, q, start, end, step)[0])
        p50, p99, m50, m99 = rank(pt, 0.5), rank(pt, 0.99), rank(mt, 0.5), rank(mt, 0.99)
        worst = max(worst, m50 / p50)
        points = sum(len(s["values"]) for s in pr)
        flag = "" if not diff else " (results differ)"
        print(f"| {name}{flag} | {len(pr)} | {points} | {p50 * 1e3:.1f} ms | {p99 * 1e3:.1f} ms "
              f"| {m50 * 1e3:.1f} ms | {m99 * 1e3:.1f} ms | **{m50 / p50:.2f}** | {m99 / p99:.2f} |",
              flush=True)
    print(f"\nworst p50 ratio: {worst:.2f} (target <= 0.50)")


if __name__ == "__main__":
    main()
