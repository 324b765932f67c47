#!/usr/bin/env python3
"""Merges the benchmarks' JSON parts into one results file and prints the summary table.

    report.py PARTS_DIR WALL_SECONDS OUT.json
"""
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    parts_dir, wall, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
    parts = {p.stem: json.loads(p.read_text()) for p in sorted(parts_dir.glob("*.json"))}
    missing = {"event_to_running", "backlog_drain", "sweep_scale", "footprint"} - set(parts)
    if missing:
        sys.exit(f"report.py: missing results: {sorted(missing)}")
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": sh("git", "rev-parse", "--short", "HEAD"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "docker": sh("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"),
        },
        "harness_wall_s": wall,
        **parts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    e = parts["event_to_running"]
    ph = e["phases"]
    d, s, f = parts["backlog_drain"], parts["sweep_scale"], parts["footprint"]
    rows = [("event -> running, median / p95", f'{ph["event -> new container running"]["median_ms"]:.0f} / {ph["event -> new container running"]["p95_ms"]:.0f} ms')]
    for k in ("queue wait (PutEvents -> received)", "resolve (ECR BatchGetImage)", "pull by digest + verify + tag",
              "stop old", "create + rename + start new", "agent overhead (the rest)"):
        rows.append((f"  {k}, median", f'{ph[k]["median_ms"]:.0f} ms'))
    b2b = e.get("back_to_back")
    if b2b:
        rows.append((f'back to back, {b2b["pushes"]} pushes: median / p95', f'{b2b["event_to_running_ms"]["median"]:.0f} / {b2b["event_to_running_ms"]["p95"]:.0f} ms'))
    dt = ph["downtime (port not answering)"]
    rows.append(("downtime during a deploy, median / max", f'{dt["median_ms"]:.0f} / {dt["max_ms"]:.0f} ms'))
    p = e["polling_measured"]
    rows.append((f'polling baseline (T = {p["interval_s"]} s), median / p95', f'{p["median_ms"]:.0f} / {p["p95_ms"]:.0f} ms'))
    r = e["requests_per_day_20_containers"]
    rows.append(("requests/day, 20 containers: ecr-deployd", f'{r["ecr_deployd"]["total"]:.0f}'))
    for t, v in sorted(r["polling"].items(), key=lambda kv: float(kv[0])):
        rows.append((f"  poller at T = {float(t):.0f} s (median delay {v['median_delay_s']:.0f} s)", f'{v["requests_per_day"]:.0f}'))
    rows.append(("backlog 1,000 msgs: intake vs bare loop", f'{d["intake"]["msgs_per_s"]:.1f} vs {d["bare_loop"]["msgs_per_s"]:.1f} msg/s (ratio {d["ratio"]:.2f})'))
    rows.append(("  ECR calls / hand-offs / deploys", f'{d["intake"]["ecr_calls"]} / {d["intake"]["handoffs"]} / {d["intake"]["deploys"]}'))
    nothing = s["nothing_to_deploy"][-1]
    rows.append((f'sweep {s["containers"]} containers / {s["repositories"]} repos, nothing to deploy', f'{nothing["wall_s"]:.2f} s, {nothing["ecr_calls"]} ECR calls'))
    ten = s["ten_to_deploy"]
    rows.append(("  10 to deploy", f'{ten["wall_s"]:.2f} s, {ten["ecr_calls"]} ECR calls'))
    rows.append((f'idle {f["idle_s"]} s, {f["containers"]} containers: RSS / peak', f'{f["rss_kib_after_idle"] / 1024:.1f} / {f["peak_rss_kib"] / 1024:.1f} MiB'))
    rows.append(("  CPU while idle / total", f'{f["cpu_s_idle"]:.2f} / {f["cpu_s_total"]:.2f} s'))
    if f.get("binary_stripped_bytes"):
        rows.append(("binary (release, stripped)", f'{f["binary_stripped_bytes"] / 1048576:.1f} MiB'))
    w = parts.get("window_opening")
    if w:
        o = w["opening_to_running_ms"]
        rows.append((f'window opening -> running, {w["containers"]} pending: median / last', f'{o["median"]:.0f} / {o["last"]:.0f} ms'))
    g = parts.get("gate_checks")
    if g:
        rows.append((f'gates added to a deploy, {g["runs"]} digests: signature / scan, median', f'{g["signature_ms"]["median"]:.1f} / {g["scan_ms"]["median"]:.1f} ms'))
    fw = parts.get("fleet_waves")
    if fw:
        rows.append((f'fleet, {fw["waves"]} waves / {fw["hosts"]} hosts, bake 0: push -> last wave running', f'{fw["push_to_last_wave_running_ms"]:.0f} ms'))
    a = parts.get("archive_load")
    if a:
        rows.append((f'S3 archive of {a["archive_mb"]:.0f} MB (xz): load / agent RSS growth', f'{a["load_s"]:.1f} s / {a["growth_mib"]:.1f} MiB (peak {a["rss_peak_sampled_mib"]:.1f} MiB)'))
    width = max(len(k) for k, _ in rows)
    print(f"\n== summary ({result['date']}, {result['machine']['cpus']} CPUs, Docker {result['machine']['docker']}, harness {wall} s)")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
