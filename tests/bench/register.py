#!/usr/bin/env python3
"""REGISTER-with-digest throughput: relais vs Kamailio, measured in the same run.

One "registration" is the full exchange  REGISTER -> 401 -> REGISTER+Authorization -> 200,
driven by several sipp processes (scenarios/register-digest.xml), each with its own local
port and its own block of users. The server under test is pinned to one core, every sipp to
the other (see /work/shared/BENCH-NOTES.md for why).

For each server, three times (the servers alternate so slow drifts hit both alike):
  * saturation: every sipp keeps at most --limit registrations in flight (-l) and is offered
    far more than that (-r), for --duration seconds; the achieved rate is the number of
    completed registrations per second in a steady window (the first 1.5 s and the last
    0.5 s are left out). A run is clean with <= 0.1 % failed registrations; an unclean run
    is retried with half the in-flight limit, and so (once) is a run with more than 0.5 %
    retransmissions (the server's socket overflowed). The best clean run gives the max clean
    rate of the repetition.
  * fixed rate: one offered rate for all servers (--fixed-rate, default half the lower median
    max clean rate), open loop (-r), for a few seconds, to compare the CPU the server needs
    per 1000 registrations at the same load (clean only with <= 0.1 % failed and >= 95 % of
    the offered rate achieved).
CPU time is utime+stime from /proc/PID/stat, summed over the server's processes (Kamailio
forks; relais threads are already included in its /proc/PID/stat).

Usage: python3 tests/bench/register.py [--only relais|kamailio] [--duration 10] ...
Python standard library only; needs sipp, kamailio, taskset, timeout.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SCENARIO = os.path.join(HERE, "scenarios", "register-digest.xml")
KAMAILIO_CFG = os.path.join(HERE, "kamailio-registrar.cfg")
CLK_TCK = os.sysconf("SC_CLK_TCK")
IP = "127.0.0.1"
MAX_FAILED = 0.001          # a run is clean with at most 0.1 % failed registrations
MIN_ACHIEVED = 0.95         # ... and, at a fixed offered rate, at least 95 % of it achieved
MAX_RETRANS = 0.005         # saturation runs with more retransmissions are tried again, -l halved


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- helpers

def free_udp_port(taken):
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((IP, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken and port > 10000:
            taken.add(port)
            return port


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return 0
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])          # utime + stime (fields 14 and 15)


def descendants(pid):
    """pid and every process below it (scanned once, after the server is ready)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def udp_socket_drops(port):
    """kernel drop counter of the UDP socket bound to IP:port (/proc/net/udp)."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(IP), "little"), port)
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] == want:
                return int(parts[-1])
    return 0


def udp_socket_rcvbuf(port):
    """receive buffer size (bytes, as the kernel accounts it) of the socket on IP:port, via ss"""
    try:
        out = subprocess.run(["ss", "-uamnH", "sport", "=", f":{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\brb(\d+)", out)
    return int(m.group(1)) if m else None


def udp_rcvbuf_errors():
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


class OptionsProbe:
    """Sends OPTIONS to the server from one socket until any response comes back."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((IP, 0))
        self.sock.setblocking(False)
        self.n = 0

    def poke(self):
        """send one OPTIONS; True if a response (to this or an earlier one) has arrived"""
        try:
            self.sock.recvfrom(65535)
            return True
        except BlockingIOError:
            pass
        except OSError:            # ICMP port unreachable: not listening yet
            pass
        self.n += 1
        lport = self.sock.getsockname()[1]
        msg = (f"OPTIONS sip:{IP}:{self.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {IP}:{lport};branch=z9hG4bK-probe{self.n}{secrets.token_hex(4)}\r\n"
               "Max-Forwards: 70\r\n"
               f"From: <sip:probe@{IP}>;tag={secrets.token_hex(4)}\r\n"
               f"To: <sip:{IP}:{self.port}>\r\n"
               f"Call-ID: probe-{self.n}-{secrets.token_hex(8)}@{IP}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        try:
            self.sock.sendto(msg.encode(), (IP, self.port))
        except OSError:
            pass
        return False

    def close(self):
        time.sleep(0.2)            # let late answers to earlier probes arrive before closing
        self.sock.close()


def all_process_ticks():
    """{pid: utime+stime} of every process on the machine"""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            out[int(d)] = proc_cpu_ticks(d)
    return out


def others_ticks(before, after, exclude):
    """CPU used between two all_process_ticks() snapshots by processes not in exclude"""
    return sum(t - before.get(pid, 0) for pid, t in after.items() if pid not in exclude)


def background_cpu(seconds=0.5):
    """CPU% (of one core) used by the whole machine while no sipp runs (the idle servers and
    this script included)"""
    def busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]
    a = busy()
    time.sleep(seconds)
    return 100.0 * (busy() - a) / CLK_TCK / seconds


# ---------------------------------------------------------------------------- servers

class Server:
    name = "?"

    def __init__(self, args, tmp, port, users):
        self.args, self.tmp, self.port, self.users = args, tmp, port, users
        self.proc = None
        self.pids = []
        self.logpath = os.path.join(tmp, f"{self.name}.log")
        self.ready = threading.Event()
        self.failed = None          # reason the server could not be measured
        self.rcvbuf = None          # SO_RCVBUF of its UDP socket

    def _spawn(self, cmd, ready_pattern=None):
        self.logfile = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=subprocess.PIPE,
                                     start_new_session=True, text=True, errors="replace")

        def pump():
            for line in self.proc.stderr:
                self.logfile.write(line)
                self.logfile.flush()
                if ready_pattern and ready_pattern in line:
                    self.ready.set()
        threading.Thread(target=pump, daemon=True).start()

    def wait_ready(self, timeout=20.0, probe=True):
        end = time.time() + timeout
        prober = OptionsProbe(self.port) if probe else None
        try:
            while time.time() < end:
                if self.proc.poll() is not None:
                    return False
                if self.ready.is_set() or (prober and prober.poke()):
                    time.sleep(0.5)       # let forked workers settle before listing them
                    self.pids = descendants(self.proc.pid)
                    self.rcvbuf = udp_socket_rcvbuf(self.port)
                    return True
                time.sleep(0.2)
            return False
        finally:
            if prober:
                prober.close()

    def rss_mb(self):
        total = 0
        for p in self.pids:
            try:
                with open(f"/proc/{p}/status") as f:
                    m = re.search(r"VmRSS:\s+(\d+)", f.read())
                total += int(m.group(1)) if m else 0
            except OSError:
                pass
        return total / 1024.0

    def cpu_ticks(self):
        return sum(proc_cpu_ticks(p) for p in self.pids)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)   # our own session only
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.logfile.close()

    def log_problems(self):
        """(count, [(n, example line)] grouped by kind) of warning/error lines in the log."""
        groups = {}
        try:
            with open(self.logpath, errors="replace") as f:
                for line in f:
                    if not self.is_problem(line):
                        continue
                    line = line.rstrip("\n")
                    key = re.sub(r"^\S+Z |^\s*\d+\(\d+\) ", "", line)     # timestamp / pid
                    key = re.sub(r"\d+", "N", key)[:160]
                    n, first = groups.get(key, (0, line))
                    groups[key] = (n + 1, first)
        except OSError:
            return 0, []
        kinds = sorted(groups.values(), key=lambda g: -g[0])
        return sum(n for n, _ in kinds), kinds[:8]


class Kamailio(Server):
    name = "kamailio"

    def start(self):
        text = open(KAMAILIO_CFG).read()
        users = "\n".join(f'\t$sht(users=>{u}) = "{p}";' for u, p in self.users)
        text = (text.replace("@LISTEN_IP@", IP).replace("@LISTEN_PORT@", str(self.port))
                .replace("@AUTH_SECRET@", secrets.token_hex(20)).replace("@USERS@", users))
        cfg = os.path.join(self.tmp, "kamailio.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        cmd = ["taskset", "-c", str(self.args.server_cpu), "kamailio", "-f", cfg, "-DD", "-E",
               "-m", "512", "-M", "32", "-w", self.tmp, "-Y", self.tmp]
        self._spawn(cmd)
        return self.wait_ready(probe=True)

    @staticmethod
    def is_problem(line):
        if "load_tm_api" in line:          # sl without tm: expected, replies are stateless
            return False
        return bool(re.search(r"\b(ERROR|CRITICAL|ALERT|BUG)\b", line))


class Relais(Server):
    name = "relais"

    def start(self):
        db = os.path.join(self.tmp, "b.db")
        users = "\n".join(f'    ["{u}"] = {{ password = "{p}" }},' for u, p in self.users)
        lua = f"""-- generated by tests/bench/register.py
return {{
  node_id = "bench-1",
  log_level = "warn",
  domain = "{IP}",
  sip = {{ listen = {{ "udp:{IP}:{self.port}" }} }},
  registrar = {{ min_expires = 60, max_expires = 3600, default_expires = 3600,
                max_contacts = 1000 }},
  auth = {{ algorithms = {{ "MD5" }}, nonce_ttl = 300, secret = "{secrets.token_hex(20)}" }},
  store = {{ backend = "sqlite", path = "{db}" }},
  users = {{
{users}
  }},
}}
"""
        cfg = os.path.join(self.tmp, "relais.lua")
        with open(cfg, "w") as f:
            f.write(lua)
        cmd = ["taskset", "-c", str(self.args.server_cpu), self.args.relais, "--config", cfg]
        self._spawn(cmd, ready_pattern="event=ready")
        # event=ready is logged at info level, hidden by log_level=warn: also probe with OPTIONS
        return self.wait_ready(probe=True)

    @staticmethod
    def is_problem(line):
        return bool(re.search(r"level=(warn|error|fatal)|\b(WARN|ERROR|FATAL)\b", line))


# ---------------------------------------------------------------------------- sipp

STAT_FIELDS = ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)",
               "FailedTimeoutOnRecv(C)", "FailedUnexpectedMessage(C)", "DeadCallMsgs(C)",
               "OutOfCallMsgs(C)", "TotalCallCreated")


def read_sipp_stats(path):
    """[(epoch, {field: value})] from a sipp -trace_stat file (one line per -fd period)."""
    rows = []
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return rows
    if not lines:
        return rows
    head = lines[0].rstrip(";").split(";")
    idx = {k: head.index(k) for k in STAT_FIELDS}
    for line in lines[1:]:
        parts = line.rstrip(";").split(";")
        if len(parts) < len(head):
            continue
        t = float(parts[head.index("CurrentTime")].split()[-1])
        rows.append((t, {k: int(parts[i]) for k, i in idx.items()}))
    return rows


def interpolate(rows, t, field):
    if not rows:
        return 0.0
    if t <= rows[0][0]:
        return float(rows[0][1][field])
    for (t0, a), (t1, b) in zip(rows, rows[1:]):
        if t0 <= t <= t1:
            if t1 == t0:
                return float(b[field])
            return a[field] + (b[field] - a[field]) * (t - t0) / (t1 - t0)
    return float(rows[-1][1][field])


def sleep_until(t, procs):
    """sleep until time t, or until every process in procs has exited"""
    while time.time() < t and any(p.poll() is None for p in procs):
        time.sleep(min(0.05, max(0.0, t - time.time())))


class Clients:
    def __init__(self, args, tmp, taken_ports):
        self.args, self.tmp = args, tmp
        self.n = args.clients
        self.users = []           # per client: [(user, password)]
        self.csv = []
        base = 1000
        for c in range(self.n):
            block = [(f"u{base + c * args.users + i}", f"p{base + c * args.users + i}")
                     for i in range(args.users)]
            self.users.append(block)
            path = os.path.join(tmp, f"users{c}.csv")
            with open(path, "w") as f:
                f.write("SEQUENTIAL\n")
                for u, p in block:
                    f.write(f"{u};[authentication username={u} password={p}]\n")
            self.csv.append(path)
        self.ports = [free_udp_port(taken_ports) for _ in range(self.n)]
        self.seq = 0

    def all_users(self):
        return [up for block in self.users for up in block]

    def run(self, server, *, rate_per_client, limit, duration, calls=None,
            window=(1.5, 0.5)):
        """Run all sipps in parallel; return measurements over the steady window."""
        self.seq += 1
        tag = f"{server.name}-{self.seq}"
        procs, stats, errs = [], [], []
        for c in range(self.n):
            stat = os.path.join(self.tmp, f"{tag}-c{c}-stat.csv")
            err = os.path.join(self.tmp, f"{tag}-c{c}-errors.log")
            stats.append(stat)
            errs.append(err)
            cmd = ["timeout", "-s", "INT", "-k", "5", str(duration),
                   "taskset", "-c", str(self.args.client_cpu),
                   "sipp", f"{IP}:{server.port}", "-sf", SCENARIO, "-inf", self.csv[c],
                   "-i", IP, "-p", str(self.ports[c]), "-t", "u1",
                   "-r", str(rate_per_client), "-rp", "1000", "-l", str(limit),
                   "-buff_size", "4194304", "-nostdin",
                   "-trace_stat", "-stf", stat, "-fd", "1",
                   "-trace_err", "-error_file", err,
                   "-ringbuffer_files", "1", "-ringbuffer_size", "2000000"]
            if calls:
                cmd += ["-m", str(calls)]
            procs.append(subprocess.Popen(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(err + ".stderr", "w")))
        t0 = time.time()
        ta, tb = t0 + window[0], t0 + duration - window[1]
        drops0 = udp_socket_drops(server.port)
        rcvbuf0 = udp_rcvbuf_errors()
        sleep_until(ta, procs)
        clients = [d for p in procs for d in descendants(p.pid)]      # timeout + sipp
        ours = [os.getpid()] + clients

        def sample():
            # per-process CPU, not /proc/stat per-core figures (tick-sampled, unreliable here)
            return (server.cpu_ticks(), sum(proc_cpu_ticks(p) for p in clients),
                    all_process_ticks(), time.time())
        cpu_a, core_a, all_a, ta = sample()
        sleep_until(tb, procs)
        cpu_b, core_b, all_b, tb = sample()
        rss = server.rss_mb()
        other = others_ticks(all_a, all_b, set(ours) | set(server.pids))
        rcs = [p.wait() for p in procs]
        drops = udp_socket_drops(server.port) - drops0
        rcvbuf = udp_rcvbuf_errors() - rcvbuf0

        res = {"ok": True, "notes": []}
        rows = [read_sipp_stats(s) for s in stats]
        for c, (rc, r) in enumerate(zip(rcs, rows)):
            if not r or rc not in (0, 1, 124, 130):     # 1: some calls failed; 124: timeout
                res["ok"] = False
                try:
                    msg = open(errs[c] + ".stderr", errors="replace").read().strip()[-300:]
                except OSError:
                    msg = ""
                res["notes"].append(f"sipp client {c} exit {rc}: {msg}")
        if not res["ok"]:
            return res
        succ = sum(interpolate(r, tb, "SuccessfulCall(C)") - interpolate(r, ta, "SuccessfulCall(C)")
                   for r in rows)
        final = {k: sum(r[-1][1][k] for r in rows) for k in STAT_FIELDS}
        span = tb - ta
        res.update(
            rate=succ / span,
            success=final["SuccessfulCall(C)"],
            failed=final["FailedCall(C)"],
            timeouts=final["FailedTimeoutOnRecv(C)"],
            unexpected=final["FailedUnexpectedMessage(C)"],
            retrans=final["Retransmissions(C)"],
            created=final["TotalCallCreated"],
            server_cpu_pct=100.0 * (cpu_b - cpu_a) / CLK_TCK / span,
            cpu_ms_per_1000=(1000.0 * (cpu_b - cpu_a) / CLK_TCK) / (succ / 1000.0) if succ else float("nan"),
            client_core_pct=100.0 * (core_b - core_a) / CLK_TCK / span,
            # CPU of everything else on the machine during the window (should be ~0)
            other_cpu_pct=100.0 * other / CLK_TCK / span,
            socket_drops=drops, rcvbuf_errors=rcvbuf, errs=errs, rss_mb=rss)
        done = res["success"] + res["failed"]
        res["failed_frac"] = res["failed"] / done if done else 1.0
        res["clean"] = done > 0 and res["failed_frac"] <= MAX_FAILED
        return res


# ---------------------------------------------------------------------------- bench

def best_clean(sat):
    """per repetition: the highest clean saturation rate (0 if none was clean)"""
    out = []
    for tries in sat:
        clean = [r["rate"] for r in tries if r.get("ok") and r["clean"]]
        out.append(max(clean) if clean else 0.0)
    return out


def bg_note(r):
    bg = r.get("background", 0)
    return f" (machine {bg:.0f}% busy just before)" if bg > 25 else ""


def fmt_rate(v):
    return f"{v:,.0f}"


def sipp_error_sample(res, n=6):
    out = []
    for e in res.get("errs", []):
        try:
            with open(e, errors="replace") as f:
                out += [l.rstrip() for l in f if l.strip()][:n]
        except OSError:
            pass
        if len(out) >= n:
            break
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relais", default=os.environ.get("RELAIS", os.path.join(ROOT, "build", "relais")))
    ap.add_argument("--only", choices=("relais", "kamailio"))
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per saturation run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4, help="parallel sipp processes")
    ap.add_argument("--users", type=int, default=1000, help="users per sipp process")
    ap.add_argument("--limit", type=int, default=50,
                    help="registrations in flight per sipp at saturation (-l)")
    ap.add_argument("--fixed-rate", type=int, default=0,
                    help="offered registrations/s (all clients) for the CPU comparison "
                         "(default: half the lower median max clean rate)")
    ap.add_argument("--fixed-duration", type=float, default=6.0)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--wait-idle", type=float, default=60.0,
                    help="seconds to wait at most for other processes to go quiet")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, sipp stats)")
    args = ap.parse_args()

    for tool in ("sipp", "taskset", "timeout") + (() if args.only == "relais" else ("kamailio",)):
        if not shutil.which(tool):
            sys.exit(f"register.py: {tool} not found (make deps)")
    names = ["kamailio", "relais"] if not args.only else [args.only]
    if "relais" in names and not os.access(args.relais, os.X_OK):
        if args.only == "relais":
            sys.exit(f"register.py: {args.relais} not found (make build)")
        log(f"register.py: {args.relais} not found — measuring Kamailio only")
        names = ["kamailio"]
    if os.cpu_count() < 2:
        log("register.py: fewer than 2 CPUs; server and clients share a core")
        args.client_cpu = args.server_cpu
    try:
        os.sched_setaffinity(0, {args.client_cpu})    # keep this script off the server core
    except OSError:
        pass

    # the servers and the clients need the two cores to themselves: wait a little for a quiet machine
    deadline = time.time() + args.wait_idle
    while True:
        bg = background_cpu(1.0)
        if bg <= 15 or time.time() >= deadline:
            break
        log(f"register.py: other processes use {bg:.0f}% of a core; waiting for a quiet machine")
        time.sleep(5)
    if bg > 15:
        log(f"register.py: machine still busy ({bg:.0f}% of a core); measuring anyway")

    tmp = tempfile.mkdtemp(prefix="relais-bench-")
    taken = set()
    clients = Clients(args, tmp, taken)
    servers = []
    for n in names:
        cls = Kamailio if n == "kamailio" else Relais
        servers.append(cls(args, tmp, free_udp_port(taken), clients.all_users()))

    results = {s.name: {"sat": [], "fixed": []} for s in servers}
    t_start = time.time()
    try:
        for s in servers:
            if not s.start():
                s.failed = "did not start / become ready"
                continue
            # warm-up: register every user once, low rate; every registration must succeed
            w = clients.run(s, rate_per_client=max(1, 2000 // args.clients), limit=50,
                            duration=args.users / max(1, 2000 // args.clients) + 4,
                            calls=args.users, window=(0.2, 0.2))
            if not w["ok"] or w["success"] != args.users * args.clients:
                s.failed = (f"warm-up: {w.get('success', 0)} of {args.users * args.clients} "
                            f"registrations succeeded, {w.get('failed', '?')} failed; "
                            + "; ".join(w["notes"] + sipp_error_sample(w, 3)))
        live = [s for s in servers if not s.failed]

        def usable(s):
            if not s.alive() and not s.failed:
                s.failed = f"process exited (status {s.proc.poll()}) during the bench"
            return not s.failed

        def stamp(msg):
            log(f"[{time.time() - t_start:5.0f}s] {msg}")

        # 1. saturation: closed loop, -l in flight per client; halve -l when a run is unclean
        for rep in range(args.repeats):
            for s in live:
                if not usable(s):
                    continue
                limit, tries = args.limit, []
                while True:
                    bg = background_cpu()
                    stamp(f"{s.name} run {rep + 1}: saturation, -l {limit} x {args.clients} clients")
                    r = clients.run(s, rate_per_client=30000, limit=limit, duration=args.duration)
                    r.update(limit=limit, background=bg)
                    tries.append(r)
                    if not r["ok"] or limit <= 5 or len(tries) >= 3:
                        break
                    # retry with half as many in flight when the run failed registrations, or
                    # (once) when many requests had to be retransmitted: queue overflow at the
                    # server then costs 500 ms stalls and hides what it can process
                    lossy = r["retrans"] > MAX_RETRANS * max(1, r["success"])
                    if r["clean"] and not (lossy and len(tries) == 1):
                        break
                    limit //= 2
                results[s.name]["sat"].append(tries)

        # 2. CPU per registration at one offered rate that every server handles: by default
        #    half the lower median max clean rate, in steps of 500/s
        if args.fixed_rate:
            fixed = args.fixed_rate
        else:
            meds = [statistics.median(best_clean(results[s.name]["sat"])) for s in live
                    if results[s.name]["sat"]]
            fixed = max(500, int(0.5 * min(meds) / 500) * 500) if meds and min(meds) > 0 else 1000
        args.fixed_rate_used = fixed
        for rep in range(args.repeats):
            for s in live:
                if not usable(s):
                    continue
                bg = background_cpu()
                stamp(f"{s.name} run {rep + 1}: fixed rate {fixed}/s")
                r = clients.run(s, rate_per_client=fixed / args.clients, limit=5000,
                                duration=args.fixed_duration)
                r["background"] = bg
                if r["ok"]:
                    r["clean"] = r["clean"] and r["rate"] >= MIN_ACHIEVED * fixed
                results[s.name]["fixed"].append(r)
        for s in live:
            usable(s)
    finally:
        for s in servers:
            s.stop()

    report(args, servers, results, time.time() - t_start)
    if args.keep:
        print(f"\nlogs and sipp statistics kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    bad = [s for s in servers if s.failed] or len(servers) < 2 and not args.only
    return 1 if bad else 0


def report(args, servers, results, elapsed):
    fixed = getattr(args, "fixed_rate_used", args.fixed_rate)
    print()
    print("REGISTER with MD5 digest (REGISTER -> 401 -> REGISTER+Authorization -> 200), UDP, loopback")
    print(f"server pinned to CPU {args.server_cpu}; {args.clients} sipp clients x {args.users} users "
          f"pinned to CPU {args.client_cpu}; {args.repeats} runs each; {elapsed:.0f} s in all")
    print("kamailio 5.6.3: children=1 (one UDP worker), sl + auth (pv_auth_check, htable users) + "
          "registrar/usrloc db_mode=0, -m 512 -M 32")
    print("relais: log_level=warn, store sqlite, auth MD5")
    print("clean = <= 0.1% failed (a registration fails after 4 s without an answer), and at a fixed")
    print("rate >= 95% of the offered rate achieved; CPU = utime+stime of the server's processes")
    print()
    summary = {}
    busy = []
    for s in servers:
        name = s.name
        print(f"== {name}")
        if not results[name]["sat"]:
            print(f"   NOT MEASURED: {s.failed}")
            print(f"   log: {s.logpath}")
            for n, l in s.log_problems()[1]:
                print(f"   | {n} x {l[:200]}")
            print()
            continue
        print(f"   saturation: -r 30000 -l N per client, {args.duration:.0f} s, rate over the steady window")
        for i, tries in enumerate(results[name]["sat"]):
            for r in tries:
                busy.append(max(r.get("background", 0), r.get("other_cpu_pct", 0)))
                if not r["ok"]:
                    print(f"     run {i + 1}: sipp failed: {'; '.join(r['notes'])}")
                    continue
                print(f"     run {i + 1}: {fmt_rate(r['rate']):>7} reg/s {'clean' if r['clean'] else 'UNCLEAN':7} "
                      f"-l {r['limit']:<3} failed {r['failed']} ({100 * r['failed_frac']:.3f}%) "
                      f"retrans {r['retrans']} server-socket drops {r['socket_drops']} | "
                      f"server CPU {r['server_cpu_pct']:.0f}% sipps {r['client_core_pct']:.0f}% "
                      f"others {r['other_cpu_pct']:.0f}%{bg_note(r)} | "
                      f"{r['cpu_ms_per_1000']:.1f} ms CPU/1000 | RSS {r['rss_mb']:,.0f} MB")
        best = best_clean(results[name]["sat"])
        print(f"   fixed rate {fixed:,}/s offered open loop ({args.fixed_duration:.0f} s): CPU per 1000 registrations")
        cpu = []
        for i, r in enumerate(results[name]["fixed"]):
            busy.append(max(r.get("background", 0), r.get("other_cpu_pct", 0)))
            if not r["ok"]:
                print(f"     run {i + 1}: sipp failed: {'; '.join(r['notes'])}")
                continue
            cpu.append((r["cpu_ms_per_1000"], r["clean"]))
            print(f"     run {i + 1}: {r['cpu_ms_per_1000']:6.1f} ms  {'clean' if r['clean'] else 'UNCLEAN':7} "
                  f"{fmt_rate(r['rate'])} reg/s achieved, failed {r['failed']}, retrans {r['retrans']}, "
                  f"server-socket drops {r['socket_drops']}, server CPU {r['server_cpu_pct']:.0f}%, "
                  f"others {r['other_cpu_pct']:.0f}%{bg_note(r)}, RSS {r['rss_mb']:,.0f} MB")
        if s.failed:
            print(f"   PROBLEM: {s.failed}")
        cnt, sample = s.log_problems()
        if s.rcvbuf:
            print(f"   server UDP socket receive buffer: {s.rcvbuf:,} bytes (ss -uam rb)")
        print(f"   server log: {cnt} warning/error lines" + (", by kind:" if sample else ""))
        for n, l in sample:
            print(f"   | {n:5} x {l[:220]}")
        if any("Connection refused" in l for _, l in sample):
            print("     ('Connection refused': answers sent after a sipp client had exited, e.g. to\n"
                  "      requests still queued when the run stopped)")
        good_cpu = [c for c, clean in cpu if clean]
        summary[name] = (best, statistics.median(best) if best else 0.0, cpu,
                         statistics.median(good_cpu) if good_cpu else float("nan"))
        print()

    print("== summary")
    for name, (best, med_rate, cpu, med_cpu) in summary.items():
        runs = " / ".join(fmt_rate(b) for b in best)
        cpus = " / ".join(f"{c:.1f}" + ("" if clean else " (unclean)") for c, clean in cpu)
        print(f"   {name:9} max clean rate {runs} reg/s (median {fmt_rate(med_rate)}); "
              f"CPU per 1000 at {fixed:,}/s: {cpus} ms (median of clean runs {med_cpu:.1f})")
    if "relais" in summary and "kamailio" in summary:
        k, r = summary["kamailio"], summary["relais"]
        ratio = r[1] / k[1] if k[1] else float("nan")
        cratio = r[3] / k[3] if k[3] == k[3] and k[3] else float("nan")
        print(f"   ratio relais/kamailio: max clean rate {ratio:.2f}, CPU per registration {cratio:.2f} "
              f"(medians; rate > 1 and CPU < 1 favour relais)")
    sat = [t for n in results for tries in results[n]["sat"] for t in tries if t.get("ok")]
    if sat and max(t["client_core_pct"] for t in sat) > 90:
        print("   note: the sipps used > 90% of their core in some saturation runs: those rates may be "
              "client-bound")
    if busy and max(busy) > 25:
        print(f"   WARNING: other processes used up to {max(busy):.0f}% of a core during or between "
              "runs: the machine was not idle, results are unreliable")


if __name__ == "__main__":
    sys.exit(main())
