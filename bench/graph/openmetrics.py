#!/usr/bin/env python3
"""Writes the series of tests/examples/graph_bench.rs as OpenMetrics with timestamps, for
`promtool tsdb create-blocks-from openmetrics` (bench/graph/kiali.sh).

Same edges, label sets and values as the Rust bench: --edges edges between --nodes workloads over
three clusters and 50 namespaces, istio_requests_total for 200 (98%) and 503 (2%) and the
20-bucket duration histogram, --scrapes scrapes 5 s apart ending at --end (Unix seconds).
"""
import argparse
import math
import sys

LE = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
      "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"]


def node(i):
    return f"cluster-{i % 3 + 1}", f"ns-{i % 50}", f"wl-{i}"


def edge_series(src, dst):
    sc, sns, sw = node(src)
    dc, dns, dw = node(dst)
    base = [
        ("cluster", sc), ("namespace", sns), ("pod", f"{sw}-0"), ("reporter", "source"),
        ("source_cluster", sc), ("source_workload", sw), ("source_workload_namespace", sns),
        ("source_canonical_service", sw), ("source_canonical_revision", "v1"),
        ("source_principal", f"spiffe://cluster.local/ns/{sns}/sa/{sw}"),
        ("destination_cluster", dc), ("destination_workload", dw),
        ("destination_workload_namespace", dns), ("destination_canonical_service", dw),
        ("destination_canonical_revision", "v1"),
        ("destination_service", f"{dw}.{dns}.svc.cluster.local"),
        ("destination_service_name", dw), ("destination_service_namespace", dns),
        ("request_protocol", "http"), ("connection_security_policy", "unknown"),
        ("response_flags", "-"),
    ]
    out = []
    for code, share in (("200", 0.98), ("503", 0.02)):
        out.append(("istio_requests_total", base + [("response_code", code)], share))
    for i, le in enumerate(LE):
        out.append(("istio_request_duration_milliseconds_bucket",
                    base + [("response_code", "200"), ("le", le)], min((i + 1) / len(LE), 1.0)))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=2000)
    p.add_argument("--edges", type=int, default=20000)
    p.add_argument("--scrapes", type=int, default=13)
    p.add_argument("--end", type=int, required=True)
    a = p.parse_args()
    families = {"istio_requests_total": [], "istio_request_duration_milliseconds_bucket": []}
    for i in range(a.edges):
        src = i % a.nodes
        dst = (src + 1 + i // a.nodes) % a.nodes
        for name, labels, share in edge_series(src, dst):
            rate = share * (1.0 + (i % 7))
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
            families[name].append((text, rate))
    out = sys.stdout
    t0 = a.end - (a.scrapes - 1) * 5
    # OpenMetrics: a family's samples together, each series' samples in time order.
    for name, series in families.items():
        if name == "istio_requests_total":
            out.write("# TYPE istio_requests counter\n")
            sample = "istio_requests_total"
        else:
            out.write("# TYPE istio_request_duration_milliseconds_bucket gauge\n")
            sample = name
        for text, rate in series:
            for k in range(a.scrapes):
                v = math.floor(rate * 5.0 * k)
                out.write(f"{sample}{{{text}}} {v} {t0 + 5 * k}\n")
    out.write("# EOF\n")


if __name__ == "__main__":
    main()
