#!/usr/bin/env python3
"""tls_options.py — OPTIONS round trips per core over TLS through relais's edge vs Sofia's own TLS
tport, in the same run (plain TCP both ways too).

Servers, each pinned to CPU 0 (--server-cpu), the load to CPU 1 (--client-cpu):
  * relais: build/relais with tls.listen and a tcp: listener (the edge in tls/), answering
    OPTIONS statelessly in its SIP core; log_level warn.
  * sofia: sofia_options_server.cpp, Debian's Sofia 1.12.11 with a TLS and a TCP tport answering
    OPTIONS with nta_msg_treply (what relais's core does), nothing else: the cost relais's edge
    replaces.
Load: tls_options_load.cpp, one thread, --conns connections each keeping --window OPTIONS in
flight. Per case and repetition: warm-up, then --seconds measured; rate = answers / s, CPU =
server utime+stime over the same window (/proc/PID/stat), per core = answers / CPU second.
Ratios are relais / sofia (> 1 favours relais). Both helpers are compiled into the temp dir.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import benchlib as b  # noqa: E402


def free_tcp_port():
    import socket
    s = socket.socket()
    s.bind((b.IP, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def compile_helpers(tmp):
    cc = ["g++", "-O2", "-std=c++20", "-Wall"]
    load = os.path.join(tmp, "tls_options_load")
    srv = os.path.join(tmp, "sofia_options_server")
    subprocess.run(cc + ["-o", load, os.path.join(HERE, "tls_options_load.cpp"), "-lssl", "-lcrypto"], check=True)
    sofia = subprocess.run(["pkg-config", "--cflags", "--libs", "sofia-sip-ua"], capture_output=True, text=True,
                           check=True).stdout.split()
    subprocess.run(cc + ["-o", srv, os.path.join(HERE, "sofia_options_server.cpp")] + sofia, check=True)
    return load, srv


def wait_port(port, timeout=10.0):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((b.IP, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def start_relais(args, tmp, certs):
    udp = b.free_udp_port()
    tcp, tls = free_tcp_port(), free_tcp_port()
    conf = os.path.join(tmp, "relais.lua")
    with open(conf, "w") as f:
        f.write("""return {
  log_level = "warn", domain = "bench.example",
  sip = { listen = { "udp:127.0.0.1:%d", "tcp:127.0.0.1:%d" } },
  tls = { listen = { "tls:127.0.0.1:%d" }, certificate = "%s/server.pem", private_key = "%s/server.key" },
  store = { backend = "sqlite", path = "%s/relais.db", kv_path = "%s/kv.db" },
  media = { mode = "passthrough" },
}
""" % (udp, tcp, tls, certs, certs, tmp, tmp))
    log = open(os.path.join(tmp, "relais.log"), "w")
    p = b.spawn(["taskset", "-c", str(args.server_cpu), args.relais, "--config", conf], cwd=tmp,
                stdout=log, stderr=subprocess.STDOUT)
    wait_port(tls)
    return p, {"tls": tls, "tcp": tcp}


def start_sofia(args, tmp, certs, srv):
    certdir = os.path.join(tmp, "sofia-certs")
    os.makedirs(certdir, exist_ok=True)
    with open(os.path.join(certdir, "agent.pem"), "w") as f:
        for name in ("server.pem", "server.key"):
            f.write(open(os.path.join(certs, name)).read())
    shutil.copy(os.path.join(certs, "ca.pem"), os.path.join(certdir, "cafile.pem"))
    tls, tcp = free_tcp_port(), free_tcp_port()
    log = open(os.path.join(tmp, "sofia.log"), "w")
    p = b.spawn(["taskset", "-c", str(args.server_cpu), srv, certdir, str(tls), str(tcp)], stdout=log,
                stderr=subprocess.STDOUT)
    wait_port(tls)
    return p, {"tls": tls, "tcp": tcp}


def measure(args, load, server, port, transport):
    """(answers per second, server CPU %, answers per server CPU second)"""
    server_pid = server.pid  # taskset execs the server: same pid, all its threads
    cmd = ["taskset", "-c", str(args.client_cpu), load, b.IP, str(port), transport, str(args.conns),
           str(args.window), str(args.warmup), str(args.seconds)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "start":
        p.kill()
        raise RuntimeError("load generator: %r" % line)
    t0, c0 = time.time(), b.cpu_ticks(server_pid)
    out = p.stdout.read()
    t1, c1 = time.time(), b.cpu_ticks(server_pid)
    p.wait(timeout=10)
    fields = dict(l.split(" ", 1) for l in out.strip().splitlines())
    answers, seconds = fields["end"].split()
    answers, seconds = int(answers), float(seconds)
    if int(fields["errors"]) and answers:
        b.log("  %d answers were not 200" % int(fields["errors"]))
    cpu_s = (c1 - c0) / b.CLK_TCK
    wall = t1 - t0
    return answers / seconds, 100.0 * cpu_s / wall, answers / cpu_s if cpu_s else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relais", default=os.environ.get("RELAIS", os.path.join(ROOT, "build", "relais")))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--window", type=int, default=16, help="OPTIONS in flight per connection")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--wait-idle", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.relais = os.path.abspath(args.relais)  # relais runs in the temp dir
    tmp = tempfile.mkdtemp(prefix="relais-bench-tls-")
    try:
        load, srv = compile_helpers(tmp)
        certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", os.path.join(ROOT, "tls", "make-dev-certs.sh"), certs], check=True,
                       stdout=subprocess.DEVNULL)
        b.wait_quiet(args.wait_idle, prog="tls_options")
        results = {}
        for rep in range(args.repeats):
            order = ("relais", "sofia") if rep % 2 == 0 else ("sofia", "relais")
            for name in order:
                server, ports = start_relais(args, tmp, certs) if name == "relais" else start_sofia(args, tmp, certs, srv)
                try:
                    for transport in ("tls", "tcp"):
                        rate, cpu, per_core = measure(args, load, server, ports[transport], transport)
                        results.setdefault((name, transport), []).append((rate, cpu, per_core))
                        b.log("run %d %-6s %-3s %8.0f OPTIONS/s  server CPU %5.1f%%  %8.0f per core" % (
                            rep + 1, name, transport, rate, cpu, per_core))
                finally:
                    b.stop(server)
        print("\n=== summary (median of %d; %d connections x %d in flight)" % (args.repeats, args.conns, args.window))
        med = {}
        for key, rows in sorted(results.items()):
            per_core = sorted(r[2] for r in rows)
            rate = sorted(r[0] for r in rows)
            med[key] = per_core[len(per_core) // 2]
            print("%-6s %-3s per core %8.0f/s (runs: %s)  rate %8.0f/s  CPU per OPTIONS %.1f us" % (
                key[0], key[1], med[key], ", ".join("%.0f" % v for v in per_core), rate[len(rate) // 2],
                1e6 / med[key]))
        for transport in ("tls", "tcp"):
            print("ratio relais edge / sofia tport over %s: %.2f" % (
                transport.upper(), med[("relais", transport)] / med[("sofia", transport)]))
    finally:
        b.stop_all()
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
