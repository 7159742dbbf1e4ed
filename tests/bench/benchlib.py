"""Helpers shared by the benchmarks in tests/bench (register.py, cps.py, relay_pps.py).

Python standard library only. Every address is IP (127.0.0.1) unless a caller passes another.
CPU figures are utime+stime in clock ticks (CLK_TCK per second), read per process from
/proc/PID/stat: /proc/stat's per-core counters are tick-sampled and miss most short wake-ups
on this VM.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

IP = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes

CHILDREN = []       # processes started with spawn() and not yet stopped (see stop_all)


def spawn(argv, **kw):
    """Popen in a session of its own (so stop() may signal its whole group, and nothing else)"""
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def stop(p, grace=5.0, group=True, sig=signal.SIGTERM):
    """Send sig to p, or with group=True to p's whole process group (p must come from spawn());
    wait up to `grace` s, then SIGKILL the group. Returns the exit code (None without p)."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            if group:
                os.killpg(p.pid, sig)
            else:
                p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)       # our own session only
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in CHILDREN:
        CHILDREN.remove(p)
    return p.returncode


def stop_all(grace=2.0):
    for p in list(CHILDREN):
        stop(p, grace)


def sleep_until(t, procs=()):
    """sleep until time.time() >= t, or, when procs are given, until every one has exited"""
    while time.time() < t and (not procs or any(p.poll() is None for p in procs)):
        time.sleep(min(0.05, max(0.0, t - time.time())))


# ---------------------------------------------------------------------------- /proc

def stat_fields(pid):
    """/proc/PID/stat after the command name: [state, ppid, ...] (field 3 of proc(5) first)"""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def cpu_ticks(pid):
    """utime + stime of one process (fields 14 and 15 of /proc/PID/stat), 0 if gone"""
    try:
        f = stat_fields(pid)
    except OSError:
        return 0
    return int(f[11]) + int(f[12])


def all_ticks():
    """{pid: utime+stime} of every process on the machine"""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            out[int(d)] = cpu_ticks(d)
    return out


def tick_deltas(before, after, exclude=()):
    """{pid: ticks used} between two all_ticks() snapshots, for the processes that used any and
    are not in exclude (a process gone at the second reading counts 0, not negative)"""
    out = {}
    for pid, v in after.items():
        d = v - before.get(pid, 0)
        if d > 0 and pid not in exclude:
            out[pid] = d
    return out


def machine_busy_pct(seconds, exclude=(), per_process=True):
    """CPU (% of one core) used by the whole machine over `seconds`. per_process: summed over
    the processes' own utime+stime (except those in exclude); otherwise from /proc/stat's
    busy ticks of all cores (everything, exclude ignored)."""
    if not per_process:
        def busy():
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return sum(v) - v[3] - v[4]         # all but idle and iowait
        a = busy()
        time.sleep(seconds)
        return 100.0 * (busy() - a) / CLK_TCK / seconds
    a = all_ticks()
    time.sleep(seconds)
    b = all_ticks()
    return 100.0 * sum(tick_deltas(a, b, exclude).values()) / CLK_TCK / seconds


def wait_quiet(seconds, say=log, prog="", pause=3.0, threshold=15.0, per_process=True):
    """wait up to `seconds` until the machine uses <= threshold % of a core (measured over 1 s,
    then `pause` s between tries); returns the last reading"""
    deadline = time.time() + seconds
    while True:
        bg = machine_busy_pct(1.0, per_process=per_process)
        if bg <= threshold or time.time() >= deadline:
            break
        say(f"{prog}: other processes use {bg:.0f}% of a core; waiting for a quiet machine")
        time.sleep(pause)
    if bg > threshold:
        say(f"{prog}: machine still busy ({bg:.0f}% of a core); measuring anyway")
    return bg


def descendants(pid):
    """pid and every process below it (one scan of /proc)"""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(stat_fields(d)[1]), []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def vm_rss_kib(pid, default=None):
    """VmRSS of pid in KiB (0 for a kernel thread); a process that is gone raises OSError, or
    gives `default` when one is given"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        if default is None:
            raise
        return default
    return 0


# ---------------------------------------------------------------------------- UDP sockets

def free_udp_port(taken=None, ip=IP):
    """a UDP port above 10000 free on ip just now; with a set `taken`, also not in it (and
    added to it)"""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 0))
        port = s.getsockname()[1]
        s.close()
        if port > 10000 and (taken is None or port not in taken):
            if taken is not None:
                taken.add(port)
            return port


def udp_drops(port_lo, port_hi=None, ip=IP):
    """sum of the kernel drop counters of the UDP sockets bound to ip with
    port_lo <= port <= port_hi (port_hi defaults to port_lo), from /proc/net/udp"""
    if port_hi is None:
        port_hi = port_lo
    want = "%08X" % int.from_bytes(socket.inet_aton(ip), "little")
    total = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                parts = line.split()
                addr, _, port = parts[1].partition(":")
                if addr == want and port_lo <= int(port, 16) <= port_hi:
                    total += int(parts[-1])
    except OSError:
        pass
    return total


def udp_rcvbuf(port):
    """receive buffer (bytes, as the kernel accounts it) of the UDP socket on :port, via ss;
    None if unknown"""
    try:
        out = subprocess.run(["ss", "-uamnH", "sport", "=", f":{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\brb(\d+)", out)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------- SIP servers

class OptionsProbe:
    """Sends OPTIONS to ip:port from one socket until any response comes back."""

    def __init__(self, port, ip=IP):
        self.port, self.ip = port, ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
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
        ip, lport = self.ip, self.sock.getsockname()[1]
        msg = (f"OPTIONS sip:{ip}:{self.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {ip}:{lport};branch=z9hG4bK-probe{self.n}{secrets.token_hex(4)}\r\n"
               "Max-Forwards: 70\r\n"
               f"From: <sip:probe@{ip}>;tag={secrets.token_hex(4)}\r\n"
               f"To: <sip:{ip}:{self.port}>\r\n"
               f"Call-ID: probe-{self.n}-{secrets.token_hex(8)}@{ip}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        try:
            self.sock.sendto(msg.encode(), (ip, self.port))
        except OSError:
            pass
        return False

    def close(self):
        time.sleep(0.2)            # let late answers to earlier probes arrive before closing
        self.sock.close()


class SipServer:
    """A SIP server under test, on IP:port: start() (in the subclass) writes its config and
    calls _spawn() then wait_ready(); is_problem(line) (in the subclass) picks the warning and
    error lines of its log."""
    name = "?"

    def __init__(self, tmp, port, label=None):
        self.tmp, self.port = tmp, port
        self.label = label or self.name
        self.proc, self.pids = None, []
        self.logpath = os.path.join(tmp, f"{self.label}.log")
        self.logfile = None
        self.failed = None          # reason the server could not be measured
        self.rcvbuf = None          # receive buffer of its UDP socket (udp_rcvbuf)

    def _spawn(self, cmd):
        # stdout and stderr straight into a file, not a pipe this script drains: under load a
        # server that logs a lot must never block on a full pipe (readiness is probed with
        # OPTIONS). Own session: stop() may kill the whole group, and nothing else.
        self.logfile = open(self.logpath, "w")
        self.proc = spawn(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL, stdout=self.logfile,
                          stderr=self.logfile)

    def wait_ready(self, timeout=20.0):
        """True once the server answers OPTIONS (then self.pids lists its processes)"""
        end = time.time() + timeout
        prober = OptionsProbe(self.port)
        try:
            while time.time() < end:
                if self.proc.poll() is not None:
                    return False
                if prober.poke():
                    time.sleep(0.5)       # let forked workers settle before listing them
                    self.pids = descendants(self.proc.pid)
                    return True
                time.sleep(0.2)
            return False
        finally:
            prober.close()

    def ticks(self):
        """utime+stime of the server's processes"""
        return sum(cpu_ticks(p) for p in self.pids)

    def rss_kib(self):
        """VmRSS summed over the server's processes"""
        return sum(vm_rss_kib(p, default=0) for p in self.pids)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if not self.proc:
            return
        # SIGTERM to the main process only: it stops its own workers
        stop(self.proc, grace=10.0, group=False)
        self.logfile.close()

    @staticmethod
    def is_problem(line):
        raise NotImplementedError

    def problems(self):
        """(count, [(n, first line)] grouped by kind, the 8 largest) of warning/error lines in
        the log"""
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


# ---------------------------------------------------------------------------- sipp statistics

def read_sipp_stats(path, fields):
    """[(epoch, {field: value})] from a sipp -trace_stat file (one line per -fd period);
    a partly written last line is left out"""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    if len(lines) < 2:
        return []
    head = lines[0].rstrip(";").split(";")
    idx = {k: head.index(k) for k in fields}
    t_col = head.index("CurrentTime")
    rows = []
    for line in lines[1:]:
        parts = line.rstrip(";").split(";")
        if len(parts) < len(head):
            continue
        t = float(parts[t_col].split()[-1])
        rows.append((t, {k: int(parts[i]) for k, i in idx.items()}))
    return rows


def interpolate(rows, t, field):
    """field of read_sipp_stats() rows, interpolated linearly at time t (clamped at the ends)"""
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
