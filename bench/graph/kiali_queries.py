#!/usr/bin/env python3
"""Times the PromQL queries Kiali issues for one workload graph against a Prometheus.

The query set is the one Kiali (graph/telemetry/istio/istio.go and the responseTime and
throughput appenders) sends for a namespace graph with its default options (Istio sidecars,
`ambientTraffic=total`, HTTP rate `requests`, TCP rate `sent`), the response-time appender at
p95 and the throughput appender (`request`): per namespace, 3 request-rate queries, 3 TCP
queries, 2 `histogram_quantile` queries and 2 throughput queries. Kiali runs one goroutine per
namespace; here `--parallel` queries run at once. Prints the wall time of each full set.
"""
import argparse
import concurrent.futures
import json
import statistics
import time
import urllib.parse
import urllib.request

GB = ("source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
      "source_canonical_revision,destination_cluster,destination_service_namespace,"
      "destination_service,destination_service_name,destination_workload_namespace,"
      "destination_workload,destination_canonical_service,destination_canonical_revision")
GB_HTTP = GB + ",request_protocol,response_code,grpc_response_status,response_flags"
GB_TCP = "app," + GB + ",response_flags"
GB_RT = "le," + GB + ",request_protocol"


def reporter(r):
    # util.GetReporter with the default ambientTraffic=total.
    return f'reporter=~"waypoint|{r}"'


def namespace_queries(ns, secs):
    q = []
    m = "istio_requests_total"
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace!="{ns}",'
             f'destination_workload_namespace="unknown",destination_workload="unknown",'
             f'destination_service=~"^.+\\\\.{ns}\\\\..+$"}} [{secs}s])) by ({GB_HTTP}) > 0')
    q.append(f'sum(rate({m}{{{reporter("destination")},destination_workload_namespace="{ns}"}} '
             f'[{secs}s])) by ({GB_HTTP}) > 0')
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace="{ns}"}} [{secs}s])) '
             f'by ({GB_HTTP}) > 0')
    m = "istio_tcp_sent_bytes_total"  # TCP rate "sent" reads the received metric's twin
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace!="{ns}",'
             f'destination_workload_namespace="unknown",destination_workload="unknown",'
             f'destination_service=~"^.+\\\\.{ns}\\\\..+$"}} [{secs}s])) by ({GB_TCP}) > 0')
    q.append(f'sum(rate({m}{{{reporter("destination")},destination_workload_namespace="{ns}"}} '
             f'[{secs}s])) by ({GB_TCP}) > 0')
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace="{ns}"}} [{secs}s])) '
             f'by ({GB_TCP}) > 0')
    m = "istio_request_duration_milliseconds_bucket"
    q.append(f'histogram_quantile(0.95, sum(rate({m}{{{reporter("destination")},'
             f'destination_service_namespace="{ns}"}}[{secs}s])) by ({GB_RT})) > 0')
    q.append(f'histogram_quantile(0.95, sum(rate({m}{{{reporter("source")},'
             f'source_workload_namespace="{ns}"}}[{secs}s])) by ({GB_RT})) > 0')
    m = "istio_request_bytes_sum"
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace!="{ns}",'
             f'destination_service_namespace="{ns}"}}[{secs}s])) by ({GB}) > 0')
    q.append(f'sum(rate({m}{{{reporter("source")},source_workload_namespace="{ns}"}}[{secs}s])) '
             f'by ({GB}) > 0')
    return q


def run(url, query, at):
    data = urllib.parse.urlencode({"query": query, "time": str(at)}).encode()
    with urllib.request.urlopen(url + "/api/v1/query", data=data, timeout=600) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {body}")
    return len(body["data"]["result"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--time", type=float, required=True)
    p.add_argument("--namespaces", type=int, default=50)
    p.add_argument("--window-secs", type=int, default=60)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    queries = [q for i in range(a.namespaces) for q in namespace_queries(f"ns-{i}", a.window_secs)]
    walls = []
    for r in range(a.rounds + 1):
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(a.parallel) as pool:
            rows = sum(pool.map(lambda q: run(a.url, q, a.time), queries))
        wall = time.perf_counter() - t
        if r > 0:  # the first round warms the page cache
            walls.append(wall)
        print(f"round {r}: {len(queries)} queries, {rows} result rows, {wall * 1e3:.0f} ms"
              + (" (warm-up)" if r == 0 else ""))
    print(f"kiali query set: median {statistics.median(walls) * 1e3:.0f} ms, "
          f"min {min(walls) * 1e3:.0f} ms over {len(walls)} rounds, {len(queries)} queries, "
          f"parallel {a.parallel}")


if __name__ == "__main__":
    main()
