#!/usr/bin/env python3
"""The Engine's floor for a container swap's downtime, without the agent: create the successor,
stop the old container, two renames, start — as the agent does — with a client hitting the
published port every 3 ms, the host's neighbour entry for the container's IP watched, and the
ARP frames on the Engine's bridge captured (does the Engine announce the new endpoint?).

    downtime_floor.py [SWAPS] [--engine system|docker28|docker28-containerd|docker26]
                      [--target port|ip] [--bystander] [--bridge-retrans-ms MS] [--out FILE]
                      [-- EXTRA docker create/run options]

--engine: the system Engine (DOCKER_HOST, the default), or a side Engine started for the run
  (bench/side_engine.py: own bridge edtbN, socket, data and exec roots, address pool, iptables
  off) and stopped with everything it made afterwards.
--target: port (default) = the published port on 127.0.0.1 (docker-proxy, the userland proxy,
  forwards it: side Engines have iptables off); ip = the container's IP:8080 from the host.
--bystander: one more (idle, labelled) container on the same network for the whole run, as on
  a host that runs other containers: the bridge keeps its carrier while the old container's
  interface goes (a bridge whose last port goes loses carrier, and the kernel then drops its
  neighbour entries).
--bridge-retrans-ms: side Engines only: sets the host's ARP retransmit time on the side
  Engine's own bridge (net.ipv4.neigh.edtbN.retrans_time_ms; an operator's knob, not the
  agent's; the system's docker0 is never touched).
--out: merges this engine's summary into FILE (a JSON object keyed by engine).

Prints one JSON line per swap, then a summary line. Everything it creates carries the test
labels and goes; docker0 and the system Engine's default network are checked after a side
Engine.
"""
import datetime, json, os, platform, shutil, socket, statistics, struct, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_engine import ENGINES, SideEngine, check_system_bridge  # noqa: E402

LABEL = "ecr-deployd.test=downtime-floor"
IMAGE = "edt-downtime-floor:v1"
ETH_P_ARP = 0x0806


class Cli:
    def __init__(self, argv0="docker", host=None):
        self.base = [argv0] + (["-H", host] if host else [])

    def __call__(self, *a):
        return subprocess.run([*self.base, *a], capture_output=True, text=True, check=True).stdout.strip()

    def quiet(self, *a):
        return subprocess.run([*self.base, *a], capture_output=True, text=True)


def build(d):
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy("/bin/busybox", ctx)
        os.makedirs(f"{ctx}/www")
        open(f"{ctx}/www/index.html", "w").write("v1")
        open(f"{ctx}/Dockerfile", "w").write(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n"
            'LABEL ecr-deployd.test.image="downtime-floor"\n'
            'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n')
        subprocess.run([*d.base, "build", "-q", "-t", IMAGE, ctx], env={**os.environ, "DOCKER_BUILDKIT": "0"},
                       capture_output=True, check=True)


def endpoint(d, name):
    """(IP, MAC) of the container's one network endpoint."""
    out = d("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.MacAddress}}{{end}}", name)
    ip, _, mac = out.partition(" ")
    return ip, mac.strip()


def arp_sniffer(dev, frames, stop):
    """Every ARP frame on the bridge: (time, op, sender MAC, sender IP, target IP)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    s.bind((dev, ETH_P_ARP))
    s.settimeout(0.1)
    while not stop[0]:
        try:
            pkt = s.recv(128)
        except socket.timeout:
            continue
        if len(pkt) < 42:
            continue
        op = struct.unpack("!H", pkt[20:22])[0]
        sha = ":".join(f"{b:02x}" for b in pkt[22:28])
        spa, tpa = socket.inet_ntoa(pkt[28:32]), socket.inet_ntoa(pkt[38:42])
        frames.append((time.time(), op, sha, spa, tpa))
    s.close()


def main():
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    opts = {"--engine": "system", "--target": "port", "--out": None, "--bridge-retrans-ms": None, "--bystander": False}
    swaps, i = 5, 0
    while i < len(args):
        if args[i] == "--bystander":
            opts["--bystander"] = True
            i += 1
        elif args[i] in opts:
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            swaps = int(args[i])
            i += 1
    engine_name, target = opts["--engine"], opts["--target"]
    if engine_name != "system" and engine_name not in ENGINES:
        sys.exit(f"--engine: one of system, {', '.join(ENGINES)}")
    if target not in ("port", "ip"):
        sys.exit("--target: port or ip")
    if opts["--bridge-retrans-ms"] and engine_name == "system":
        sys.exit("--bridge-retrans-ms: side Engines only (docker0 is not the bench's)")

    side = None
    if engine_name == "system":
        d, bridge = Cli(), "docker0"
        version = d("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
        engine_desc = f"system Docker Engine {version}, default bridge docker0, iptables on"
    else:
        side = SideEngine(*ENGINES[engine_name])
    try:
        if side:
            side.start()
            d, bridge, version = Cli(side.cli, side.docker_host), side.bridge, side.version
            engine_desc = (f"side Docker Engine {version}, {ENGINES[engine_name][1]} store, own bridge, "
                           "iptables off (bench/side_engine.py)")
            if opts["--bridge-retrans-ms"]:
                with open(f"/proc/sys/net/ipv4/neigh/{bridge}/retrans_time_ms", "w") as f:
                    f.write(str(int(opts["--bridge-retrans-ms"])))
                engine_desc += f", host ARP retrans_time_ms {int(opts['--bridge-retrans-ms'])} on its bridge"
        summary = measure(d, bridge, swaps, target, extra, opts["--bystander"])
    finally:
        if side:
            side.stop()
        else:
            d.quiet("rm", "-f", "edt-floor-old", "edt-floor-gone", "edt-floor-new", "edt-floor-bystander")
            d.quiet("rmi", IMAGE)
            check_system_bridge("after the bench on")
    summary = {
        "engine": engine_desc,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "measured": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                              text=True).stdout.strip()},
        **summary,
    }
    print(json.dumps({"engine": engine_name, "summary": summary}), flush=True)
    if opts["--out"]:
        try:
            merged = json.load(open(opts["--out"]))
        except (OSError, ValueError):
            merged = {}
        key = engine_name + ("+bystander" if opts["--bystander"] else "") + (f"+retrans_{int(opts['--bridge-retrans-ms'])}ms" if opts["--bridge-retrans-ms"] else "")
        merged.setdefault("engines", {})[key] = summary
        with open(opts["--out"], "w") as f:
            json.dump(merged, f, indent=2)
            f.write("\n")


def measure(d, bridge, swaps, target, extra, bystander):
    build(d)
    retrans = int(open(f"/proc/sys/net/ipv4/neigh/{bridge}/retrans_time_ms").read())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    publish = ["-p", f"127.0.0.1:{port}:8080"]
    names = ["edt-floor-old", "edt-floor-gone", "edt-floor-new"] + (["edt-floor-bystander"] if bystander else [])
    samples, neigh, frames, stop = [], [], [], [False]
    dest = [("127.0.0.1", port)]

    def probe():
        while not stop[0]:
            ok = False
            try:
                c = socket.create_connection(dest[0], timeout=0.2)
                c.settimeout(0.2)
                c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                ok = c.recv(64)[:12].endswith(b"200")
                c.close()
            except OSError:
                pass
            samples.append((time.time(), ok))
            time.sleep(0.003)

    def watch():
        while not stop[0]:
            out = subprocess.run(["ip", "neigh", "show", "dev", bridge], capture_output=True, text=True).stdout
            neigh.append((time.time(), out))
            time.sleep(0.05)

    threads = [threading.Thread(target=probe), threading.Thread(target=watch),
               threading.Thread(target=arp_sniffer, args=(bridge, frames, stop))]
    rows = []
    try:
        if bystander:
            d("run", "-d", "--init", "--label", LABEL, "--name", names[3], IMAGE)
        d("run", "-d", "--init", "--label", LABEL, "--name", names[0], *extra, *publish, IMAGE)
        ip0, _ = endpoint(d, names[0])
        if target == "ip":
            dest[0] = (ip0, 8080)
        # The target must answer before anything is measured (side Engines: docker-proxy).
        deadline = time.time() + 10
        while True:
            try:
                c = socket.create_connection(dest[0], timeout=0.5)
                c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                if c.recv(64)[:12].endswith(b"200"):
                    c.close()
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"{dest[0]} does not answer before the first swap (target {target})")
            time.sleep(0.1)
        for t in threads:
            t.start()
        time.sleep(0.5)
        for _ in range(swaps):
            ip_old, mac_old = endpoint(d, names[0])
            d("create", "--init", "--label", LABEL, "--name", names[2], *extra, *publish, IMAGE)
            a = time.time()
            d("stop", names[0])
            stopped = time.time()
            d("rename", names[0], names[1]); d("rename", names[2], names[0])
            s0 = time.time()
            d("start", names[0])
            b = time.time()
            time.sleep(1.5)
            ip, mac = endpoint(d, names[0])
            d("rm", "-f", names[1])
            last_ok, failed, longest = None, False, 0.0
            for t, ok in samples:
                if not a - 0.05 <= t <= b + 1.5:
                    continue
                if ok:
                    if last_ok is not None and failed:
                        longest = max(longest, t - last_ok)
                    last_ok, failed = t, False
                else:
                    failed = True
            incomplete = any(a <= t <= b + 1.5 and f"{ip} INCOMPLETE" in n for t, n in neigh)
            # Announcements: ARP from the new endpoint's MAC for its own IP (gratuitous: sender IP
            # = target IP), from the start command on.
            garp = [round((t - s0) * 1000) for t, op, sha, spa, tpa in frames
                    if s0 <= t <= b + 1.5 and spa == ip and tpa == ip and sha == mac.lower()]
            row = {"outage_ms": round(longest * 1000), "stop_renames_start_ms": round((b - a) * 1000),
                   "stop_ms": round((stopped - a) * 1000),
                   "answered_ms_after_start_returned": round((next((t for t, ok in samples if ok and t >= b), b) - b) * 1000),
                   "ip_old": ip_old, "ip": ip, "mac_old": mac_old, "mac": mac, "neighbour_incomplete": incomplete,
                   "gratuitous_arp_ms_after_start_cmd": garp}
            rows.append(row)
            print(json.dumps(row), flush=True)
            time.sleep(1)
    finally:
        stop[0] = True
        for t in threads:
            if t.is_alive():
                t.join()
        d.quiet("rm", "-f", *names)
        d.quiet("rmi", IMAGE)
    outages = [r["outage_ms"] for r in rows]
    gaps = [r["stop_renames_start_ms"] for r in rows]
    return {
        "target": (f"published port 127.0.0.1 (docker-proxy, the userland proxy)" if target == "port"
                   else "the container's IP:8080 from the host"),
        "host_arp_retrans_time_ms_on_bridge": retrans,
        "bystander_on_the_bridge": bystander,
        "swaps": len(rows),
        "outage_ms": {"each": outages, "median": statistics.median(outages), "max": max(outages)},
        "stop_renames_start_ms": {"each": gaps, "median": statistics.median(gaps)},
        "stop_ms": {"each": [r["stop_ms"] for r in rows], "median": statistics.median(r["stop_ms"] for r in rows)},
        "outage_minus_stop_ms_median": statistics.median(r["outage_ms"] - r["stop_ms"] for r in rows),
        "answered_ms_after_start_returned": [r["answered_ms_after_start_returned"] for r in rows],
        "outage_minus_stop_renames_start_ms_median": statistics.median(o - g for o, g in zip(outages, gaps)),
        "neighbour_entry_went_incomplete": f"{sum(r['neighbour_incomplete'] for r in rows)} of {len(rows)} swaps",
        "gratuitous_arp_from_new_endpoint": f"{sum(bool(r['gratuitous_arp_ms_after_start_cmd']) for r in rows)} of {len(rows)} swaps",
        "gratuitous_arp_ms_after_start_cmd": [r["gratuitous_arp_ms_after_start_cmd"] for r in rows],
        "same_ip_every_time": all(r["ip"] == r["ip_old"] for r in rows),
        "same_mac_every_time": all(r["mac"] == r["mac_old"] for r in rows),
        "extra_options": extra,
    }


if __name__ == "__main__":
    main()
