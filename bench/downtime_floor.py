#!/usr/bin/env python3
"""The Engine's floor for a container swap's downtime, without the agent: create the successor,
stop the old container, two renames, start — as the agent does — with a client hitting the
published port every 3 ms, and the host's neighbour entry for the container's IP watched.

    downtime_floor.py [SWAPS] [-- EXTRA docker create/run options, e.g. --sysctl ...]

Prints one JSON line per swap: the longest time without an answer, stop+renames+start as the
CLI saw them, the new container's IP, and whether the neighbour entry went INCOMPLETE. Uses
the system Engine (DOCKER_HOST); everything it creates carries the test labels and goes.
"""
import json, os, shutil, socket, subprocess, sys, tempfile, threading, time

LABEL = "ecr-deployd.test=downtime-floor"
IMAGE = "edt-downtime-floor:v1"


def d(*a):
    return subprocess.run(["docker", *a], capture_output=True, text=True, check=True).stdout.strip()


def build():
    with tempfile.TemporaryDirectory() as ctx:
        shutil.copy("/bin/busybox", ctx)
        os.makedirs(f"{ctx}/www")
        open(f"{ctx}/www/index.html", "w").write("v1")
        open(f"{ctx}/Dockerfile", "w").write(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n"
            'LABEL ecr-deployd.test.image="downtime-floor"\n'
            'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n')
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, ctx], env={**os.environ, "DOCKER_BUILDKIT": "0"},
                       capture_output=True, check=True)


def main():
    args = sys.argv[1:]
    extra = args[args.index("--") + 1:] if "--" in args else []
    swaps = int(args[0]) if args and args[0] != "--" else 5
    build()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    publish = ["-p", f"127.0.0.1:{port}:8080"]
    names = ["edt-floor-old", "edt-floor-gone", "edt-floor-new"]
    samples, neigh, stop = [], [], [False]

    def probe():
        while not stop[0]:
            ok = False
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=0.2)
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
            out = subprocess.run(["ip", "neigh", "show", "dev", "docker0"], capture_output=True, text=True).stdout
            neigh.append((time.time(), out))
            time.sleep(0.05)

    try:
        d("run", "-d", "--init", "--label", LABEL, "--name", names[0], *extra, *publish, IMAGE)
        time.sleep(1)
        for t in (threading.Thread(target=probe), threading.Thread(target=watch)):
            t.start()
        time.sleep(0.5)
        for _ in range(swaps):
            ip_old = d("inspect", "-f", "{{.NetworkSettings.IPAddress}}", names[0])
            d("create", "--init", "--label", LABEL, "--name", names[2], *extra, *publish, IMAGE)
            a = time.time()
            d("stop", names[0]); d("rename", names[0], names[1]); d("rename", names[2], names[0]); d("start", names[0])
            b = time.time()
            time.sleep(1.5)
            ip = d("inspect", "-f", "{{.NetworkSettings.IPAddress}}", names[0])
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
            print(json.dumps({"outage_ms": round(longest * 1000), "stop_renames_start_ms": round((b - a) * 1000),
                              "ip_old": ip_old, "ip": ip, "neighbour_incomplete": incomplete}), flush=True)
            time.sleep(1)
    finally:
        stop[0] = True
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        subprocess.run(["docker", "rmi", IMAGE], capture_output=True)


if __name__ == "__main__":
    main()
