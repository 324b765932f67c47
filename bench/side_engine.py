#!/usr/bin/env python3
"""A second Docker Engine beside the system's, for the benchmarks: the same flags, bridge
naming and cleanup as the tests' harness (tests/common/engine.rs). Everything it uses is its
own: a bridge made first (edtbN, 10.199.X.1/24), `"bridge"` set to it (never `--bridge none`),
iptables and ip6tables off (published ports then go through docker-proxy on loopback), its
own data root, exec root, pidfile, socket, address pool and config file. No Swarm on it.
On stop: its containers, then the daemon (SIGTERM, then SIGKILL after 20 s), its mounts,
bridge and directory. `docker0` and the system Engine's default network are checked before
and after; it fails loudly when they are gone.

    with SideEngine("docker28", "containerd") as e:
        e.docker("run", ...)          # or DOCKER_HOST=e.docker_host with e.cli

Engines: docker28 (sid's docker.io 28.x, containerd 2.x), docker26 (trixie's docker.io 26.x,
containerd 1.7), both fetched into .tools/ by scripts/fetch-tools.sh.
"""
import itertools
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

TOOLS = pathlib.Path(__file__).resolve().parent.parent / ".tools"
SUITES = {"docker28": "sid", "docker26": "trixie"}
# --engine names of the bench -> (release, store)
ENGINES = {
    "docker28": ("docker28", "classic"),
    "docker28-containerd": ("docker28", "containerd"),
    "docker26": ("docker26", "classic"),
}
_nth = itertools.count()


def check_system_bridge(when):
    """Raises when the system's docker0 or its Engine's default network is gone."""
    if subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode != 0:
        raise SystemExit(
            f"docker0 IS GONE {when} a side Engine: the system Engine cannot attach containers to its "
            "default network. Put it back: ip link add docker0 type bridge; ip addr add 172.17.0.1/16 "
            "dev docker0; ip link set docker0 mtu 1400 up")
    net = subprocess.run(["docker", "network", "inspect", "--format", "{{.Driver}}", "bridge"],
                         capture_output=True, text=True)
    if net.returncode != 0 or net.stdout.strip() != "bridge":
        raise SystemExit(f"the system Engine's default network is not usable {when} a side Engine: {net.stderr}")


def _ip(*args):
    out = subprocess.run(["ip", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")


class SideEngine:
    def __init__(self, release="docker28", store="classic"):
        suite = SUITES[release]
        self.release, self.store = release, store
        self.dockerd = TOOLS / suite / "docker.io/usr/sbin/dockerd"
        containerd = TOOLS / suite / "containerd/usr/bin"
        if not self.dockerd.exists() or not (containerd / "containerd").exists():
            raise SystemExit(f"{self.dockerd} not found: run ./scripts/setup.sh "
                             f"(scripts/fetch-tools.sh fetches {suite}'s docker.io and containerd)")
        own_cli = TOOLS / suite / "docker-cli/usr/bin/docker"
        self.cli = str(own_cli) if own_cli.exists() else "docker"
        self.path = f"{self.dockerd.parent}:{containerd}:{os.environ.get('PATH', '')}"
        self.proc = None
        self.root = None
        self.bridge = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        check_system_bridge("before starting")
        # The tests' naming (edtbN, /tmp/edt-engine-N, 10.199.N%250.1/24), but never a name, a
        # directory or a subnet that is already there: that one is someone else's.
        addrs = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
        for tries in range(4000):
            n = os.getpid() % 1000 * 4 + next(_nth) % 4 + tries * 4
            octet = n % 250
            bridge, root = f"edtb{n}", pathlib.Path(f"/tmp/edt-engine-{n}")
            taken = (subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
                     or root.exists() or f" 10.199.{octet}." in addrs)
            if not taken:
                break
        else:
            raise SystemExit("no free side Engine name")
        (root / "data").mkdir(parents=True)
        self.root = root
        _ip("link", "add", bridge, "type", "bridge")
        self.bridge = bridge
        _ip("addr", "add", f"10.199.{octet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "mtu", "1400", "up")
        config = {
            "bridge": bridge,
            "iptables": False,
            "ip6tables": False,
            "mtu": 1400,
            "default-address-pools": [{"base": f"10.{200 + octet % 50}.0.0/16", "size": 24}],
            "log-driver": "json-file",
        }
        if self.store == "containerd":
            config["features"] = {"containerd-snapshotter": True}
        (root / "daemon.json").write_text(json.dumps(config))
        self.docker_host = f"unix://{root}/docker.sock"
        log = open(root / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.dockerd), "--config-file", str(root / "daemon.json"), "--data-root", str(root / "data"),
             "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"), "-H", self.docker_host],
            env={**os.environ, "PATH": self.path}, stdout=subprocess.DEVNULL, stderr=log)
        started = time.time()
        while True:
            out = self.try_docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
            if out.returncode == 0:
                self.version = out.stdout.strip()
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.proc.returncode}):\n{self.log()}")
            if time.time() - started > 60:
                raise RuntimeError(f"dockerd did not answer on {self.docker_host}:\n{self.log()}")
            time.sleep(0.2)
        driver = self.docker("info", "--format", "{{.Driver}} {{json .DriverStatus}}")
        if ("io.containerd.snapshotter" in driver) != (self.store == "containerd"):
            raise RuntimeError(f"store {self.store}: {driver}")
        self.driver = driver
        return self

    def stop(self):
        """Removes its containers, stops the daemon, unmounts and removes all it made, checks docker0."""
        if self.root is None:
            return
        try:
            if self.proc is not None and self.proc.poll() is None:
                # Everything on it is the bench's (it is the bench's alone): containers first.
                ids = self.try_docker("ps", "-aq").stdout.split()
                if ids:
                    self.try_docker("rm", "-fv", *ids)
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            # Mounts it may have left (overlay, netns, shm), deepest first.
            root = str(self.root)
            mine = [l.split()[1] for l in open("/proc/self/mounts") if len(l.split()) > 1
                    and l.split()[1].startswith(root)]
            for m in sorted(mine, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], capture_output=True)
            if self.bridge:
                subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
        finally:
            self.root = None
            check_system_bridge("after stopping")

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # --- use -------------------------------------------------------------------------------

    def log(self):
        try:
            return (self.root / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""

    def env(self):
        """Environment for the docker CLI (and the agent) on this Engine."""
        return {**os.environ, "DOCKER_HOST": self.docker_host}

    def try_docker(self, *args):
        return subprocess.run([self.cli, "-H", self.docker_host, *args], capture_output=True, text=True)

    def docker(self, *args):
        out = self.try_docker(*args)
        if out.returncode != 0:
            raise RuntimeError(f"docker -H {self.docker_host} {list(args)} failed: {out.stderr}")
        return out.stdout.strip()
