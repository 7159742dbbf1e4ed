#!/usr/bin/env python3
"""Calls per second: relais (B2BUA, Lua routing) vs Kamailio (stateful proxy), same run.

One call is INVITE -> 180 -> 200 -> ACK, a short hold (--hold-ms), BYE -> 200, driven by
--clients pairs of sipp processes: caller i (scenarios/cps-uac.xml) calls user 100i, and
the server routes that user to callee i (scenarios/cps-uas.xml, 180 then 200).

  * relais: build/relais with a generated config (log_level warn, sqlite store, no auth,
    unknown sources allowed, media.mode passthrough) and a route.lua whose on_invite() dials the callee
    (call:dial). relais answers the caller itself and places a new INVITE to the callee.
  * Kamailio 5.6.3: kamailio-proxy.cfg (tm + sl + rr + maxfwd + textops + siputils,
    record_route + t_relay, children=1: one UDP worker, like relais's one event loop; one
    worker also keeps the 180 ahead of the 200). The callers honour Record-Route, so ACK
    and BYE cross Kamailio as well.

The server is pinned to --server-cpu (1), every sipp and this script to --client-cpu (0).

Max rate: open-loop steps (-r) of --step-seconds each, up a ladder of rates; a step is clean
with <= 0.1 % failed calls and >= 95 % of the offered rate completed (calls completed per
second over the steady part of the step). The first repetition climbs the coarse ladder
(500, 1000, 2000, 3000, ...) to the first unclean step, then tries the rate between; later
repetitions start one step below the previous best and climb again.
CPU per call: the first step (500 calls/s) of the first repetition; utime+stime of the
server's processes (/proc/PID/stat) divided by the calls completed. Two values: over the
steady window only, and "full": from the start of the step until the server's deferred work
for those calls is done (nta keeps finished transactions ~32 s, Kamailio's tm ~5 s).
RSS per held call: a second relais (same config), warmed up, idle RSS read ~35 s later;
then --hold-calls calls at --hold-rate, held (no BYE) until all are established and
--settle seconds more (nta's finished transactions gone); (VmRSS held - VmRSS idle) / calls.

Usage: python3 tests/bench/cps.py [--only relais|kamailio] [--repeats 3] [--keep] ...
Python standard library only; needs sipp, kamailio, taskset, timeout.
"""

import argparse
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
UAC_SCENARIO = os.path.join(HERE, "scenarios", "cps-uac.xml")
UAS_SCENARIO = os.path.join(HERE, "scenarios", "cps-uas.xml")
KAMAILIO_CFG = os.path.join(HERE, "kamailio-proxy.cfg")
CLK_TCK = os.sysconf("SC_CLK_TCK")
IP = "127.0.0.1"
MAX_FAILED = 0.001          # clean: at most 0.1 % failed calls ...
MIN_ACHIEVED = 0.95         # ... and at least 95 % of the offered rate completed
LADDER = [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000,
          9000, 10000, 12000, 14000, 16000]
COARSE = [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000]
USER_BASE = 1000            # caller i dials user 1000+i, routed to callee i


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- /proc helpers

def free_udp_port(taken):
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((IP, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken and port > 10000:
            taken.add(port)
            return port


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def cpu_ticks(pid):
    """utime + stime of one process (fields 14 and 15 of /proc/PID/stat), 0 if gone"""
    try:
        f = _stat_fields(pid)
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


def tree(pid):
    """pid and all its descendants"""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(_stat_fields(d)[1]), []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def machine_busy_pct(seconds):
    """CPU (% of one core) used by all processes over `seconds`; summed per process because
    /proc/stat's tick-sampled counters undercount short wake-ups on this VM"""
    a = all_ticks()
    time.sleep(seconds)
    b = all_ticks()
    return 100.0 * sum(max(0, v - a.get(p, 0)) for p, v in b.items()) / CLK_TCK / seconds


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def udp_rcvbuf(port):
    """receive buffer of the socket on IP:port (bytes, as the kernel accounts it), via ss"""
    try:
        out = subprocess.run(["ss", "-uamnH", "sport", "=", f":{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\brb(\d+)", out)
    return int(m.group(1)) if m else None


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def udp_drops(port):
    """kernel drop counter of the UDP socket bound to IP:port (/proc/net/udp)"""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(IP), "little"), port)
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1] == want:
                    return int(parts[-1])
    except OSError:
        pass
    return 0


def options_answered(port, timeout=0.3):
    """True when something answers an OPTIONS sent to IP:port"""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((IP, 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        tag = secrets.token_hex(6)
        msg = (f"OPTIONS sip:{IP}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {IP}:{lport};branch=z9hG4bK-{tag};rport\r\n"
               "Max-Forwards: 70\r\n"
               f"From: <sip:probe@{IP}>;tag={tag}\r\n"
               f"To: <sip:{IP}:{port}>\r\n"
               f"Call-ID: probe-{tag}@{IP}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), (IP, port))
        s.recvfrom(65535)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------- servers

class Server:
    name = "?"

    def __init__(self, args, tmp, port, callee_ports, label=None):
        self.args, self.tmp, self.port, self.callee_ports = args, tmp, port, callee_ports
        self.label = label or self.name
        self.proc, self.pids = None, []
        self.logpath = os.path.join(tmp, f"{self.label}.log")
        self.failed = None

    def _spawn(self, cmd):
        # stderr straight into a file, not a pipe this script drains: under load a server that
        # logs a lot must never block on a full pipe (readiness is probed with OPTIONS)
        self.logfile = open(self.logpath, "w")
        # own session: stop() may kill the whole group, and nothing else
        self.proc = subprocess.Popen(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=self.logfile, stderr=self.logfile,
                                     start_new_session=True)

    def wait_ready(self, timeout=20.0):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            if options_answered(self.port):
                time.sleep(0.5)                  # forked workers settle before listing them
                self.pids = tree(self.proc.pid)
                return True
            time.sleep(0.2)
        return False

    def ticks(self):
        return sum(cpu_ticks(p) for p in self.pids)

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
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.logfile.close()

    def problems(self):
        """(total, [(count, first line)]) of warning/error lines in the log, grouped by kind"""
        groups = {}
        try:
            with open(self.logpath, errors="replace") as f:
                for line in f:
                    if not self.is_problem(line):
                        continue
                    line = line.rstrip("\n")
                    key = re.sub(r"^\S+Z |^\s*\d+\(\d+\) ", "", line)
                    key = re.sub(r"\d+", "N", key)[:160]
                    n, first = groups.get(key, (0, line))
                    groups[key] = (n + 1, first)
        except OSError:
            return 0, []
        kinds = sorted(groups.values(), key=lambda g: -g[0])
        return sum(n for n, _ in kinds), kinds[:8]


class Relais(Server):
    name = "relais"

    def start(self):
        d = os.path.join(self.tmp, self.label)
        os.makedirs(d, exist_ok=True)
        routes = ", ".join(f'["{USER_BASE + i}"] = {p}' for i, p in enumerate(self.callee_ports))
        with open(os.path.join(d, "route.lua"), "w") as f:
            f.write(f"""-- generated by tests/bench/cps.py: user 100i -> callee sipp i
local callee_port = {{ {routes} }}

function on_invite(call)
  local port = callee_port[call.ruri.user] or {self.callee_ports[0]}
  call:dial("sip:" .. call.ruri.user .. "@{IP}:" .. port, {{ timeout = 10 }})
end
""")
        cfg = os.path.join(d, "relais.lua")
        with open(cfg, "w") as f:
            f.write(f"""-- generated by tests/bench/cps.py
return {{
  node_id = "bench-cps",
  log_level = "warn",
  domain = "{IP}",
  sip = {{ listen = {{ "udp:{IP}:{self.port}" }} }},
  store = {{ backend = "sqlite", path = "{os.path.join(d, 'b.db')}" }},
  calls = {{ authenticate = false, unknown_sources = "allow", no_answer_timeout = 30 }},
  -- signalling only, like the Kamailio proxy: SDP passes untouched, no media relay to ask
  media = {{ mode = "passthrough" }},
  script = "route.lua",
}}
""")
        self._spawn(["taskset", "-c", str(self.args.server_cpu), self.args.relais, "--config", cfg])
        return self.wait_ready()

    @staticmethod
    def is_problem(line):
        return bool(re.search(r"level=(warn|error|fatal)|\b(WARN|ERROR|FATAL)\b", line))


class Kamailio(Server):
    name = "kamailio"

    def start(self):
        routing = "\n\t".join(
            f'{"if" if i == 0 else "} else if"} ($rU == "{USER_BASE + i}") {{\n\t\t'
            f'rewritehostport("{IP}:{p}");' for i, p in enumerate(self.callee_ports))
        routing += f'\n\t}} else {{\n\t\trewritehostport("{IP}:{self.callee_ports[0]}");\n\t}}'
        text = open(KAMAILIO_CFG).read()
        text = (text.replace("@LISTEN_IP@", IP).replace("@LISTEN_PORT@", str(self.port))
                .replace('rewritehostport("@UAS_HOSTPORT@");', routing))
        cfg = os.path.join(self.tmp, "kamailio.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        self._spawn(["taskset", "-c", str(self.args.server_cpu), "kamailio", "-f", cfg, "-DD",
                     "-E", "-m", "512", "-M", "32", "-w", self.tmp, "-Y", self.tmp])
        return self.wait_ready()

    @staticmethod
    def is_problem(line):
        return bool(re.search(r"\b(WARNING|ERROR|CRITICAL|ALERT|BUG)\b", line))


# ---------------------------------------------------------------------------- sipp

def sipp_base(args):
    return ["taskset", "-c", str(args.client_cpu), "sipp"]


class Callees:
    """--clients sipp UAS processes, shared by every server, running for the whole bench"""

    def __init__(self, args, tmp, taken):
        self.args, self.tmp = args, tmp
        self.ports = [free_udp_port(taken) for _ in range(args.clients)]
        self.procs, self.errs = [], []

    def start(self):
        for i, port in enumerate(self.ports):
            err = os.path.join(self.tmp, f"callee{i}-errors.log")
            self.errs.append(err)
            cmd = sipp_base(self.args) + [
                "-sf", UAS_SCENARIO, "-i", IP, "-p", str(port), "-nostdin",
                "-buff_size", "4194304", "-trace_err", "-error_file", err,
                "-ringbuffer_files", "1", "-ringbuffer_size", "2000000"]
            self.procs.append(subprocess.Popen(cmd, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL,
                                               stderr=open(err + ".stderr", "w"),
                                               start_new_session=True))
        time.sleep(0.5)
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)      # sipp exits on SIGINT
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


STAT = ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)", "FailedTimeoutOnRecv(C)",
        "FailedUnexpectedMessage(C)", "FailedMaxUDPRetrans(C)", "DeadCallMsgs(C)",
        "OutOfCallMsgs(C)", "TotalCallCreated", "CurrentCall")


def read_stats(path):
    """[(epoch, {field: value})] from a sipp -trace_stat file"""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    if len(lines) < 2:
        return []
    head = lines[0].rstrip(";").split(";")
    idx = {k: head.index(k) for k in STAT}
    rows = []
    for line in lines[1:]:
        parts = line.rstrip(";").split(";")
        if len(parts) < len(head):
            continue
        t = float(parts[head.index("CurrentTime")].split()[-1])
        rows.append((t, {k: int(parts[i]) for k, i in idx.items()}))
    return rows


def at(rows, t, field):
    """field interpolated at time t"""
    if not rows:
        return 0.0
    if t <= rows[0][0]:
        return float(rows[0][1][field])
    for (t0, a), (t1, b) in zip(rows, rows[1:]):
        if t0 <= t <= t1:
            return a[field] + (b[field] - a[field]) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return float(rows[-1][1][field])


def sleep_until(t, procs=()):
    while time.time() < t and (not procs or any(p.poll() is None for p in procs)):
        time.sleep(min(0.05, max(0.0, t - time.time())))


class Callers:
    def __init__(self, args, tmp, taken):
        self.args, self.tmp = args, tmp
        self.ports = [free_udp_port(taken) for _ in range(args.clients)]
        self.seq = 0

    def _cmd(self, server, i, rate, calls, hold_ms, stat, err, extra=()):
        limit = max(200, int(rate * (hold_ms / 1000.0 + 6)))
        return ["timeout", "-s", "INT", "-k", "5",
                str(int(calls / max(rate, 1) + hold_ms / 1000.0 + 15))] + sipp_base(self.args) + [
            f"{IP}:{server.port}", "-sf", UAC_SCENARIO, "-s", str(USER_BASE + i),
            "-i", IP, "-p", str(self.ports[i]), "-d", str(hold_ms),
            "-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-l", str(limit),
            "-recv_timeout", "5000", "-buff_size", "4194304", "-nostdin",
            "-trace_stat", "-stf", stat, "-fd", "1",
            "-trace_err", "-error_file", err,
            "-ringbuffer_files", "1", "-ringbuffer_size", "2000000", *extra]

    def run(self, server, rate, seconds, hold_ms):
        """Offer `rate` calls/s for `seconds` (open loop, split over the callers) and wait for
        every call to end. Returns the measurements over the steady window."""
        self.seq += 1
        n = self.args.clients
        tag = f"{server.label}-{self.seq}-{rate}"
        per = rate / n
        calls = max(1, int(round(per * seconds)))
        procs, stats, errs = [], [], []
        for i in range(n):
            stat = os.path.join(self.tmp, f"{tag}-c{i}-stat.csv")
            err = os.path.join(self.tmp, f"{tag}-c{i}-errors.log")
            stats.append(stat)
            errs.append(err)
            procs.append(subprocess.Popen(self._cmd(server, i, per, calls, hold_ms, stat, err),
                                          cwd=self.tmp, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(err + ".stderr", "w")))
        hold = hold_ms / 1000.0
        t0 = time.time()
        drops0 = udp_drops(server.port)
        cpu0 = server.ticks()
        # steady window: calls complete `hold` after they start; skip the first second
        ta = t0 + hold + 1.0
        tb = t0 + max(seconds - 0.5, hold + 2.0)
        sleep_until(ta, procs)
        callers = {d for p in procs for d in tree(p.pid)}
        ours = {os.getpid()} | callers | set(server.pids)
        sipps = callers | self.args.callee_pids
        # /proc/stat's per-core counters are tick-sampled and miss most of sipp's short
        # wake-ups on this VM (2-8 % shown for a core whose processes used 25 %): sum the
        # processes' own utime+stime instead
        cpu_a, all_a, ta = server.ticks(), all_ticks(), time.time()
        sleep_until(tb, procs)
        cpu_b, all_b, tb = server.ticks(), all_ticks(), time.time()
        rcs = [p.wait() for p in procs]
        t_end = time.time()
        cpu_end = server.ticks()
        others = {pid: v - all_a.get(pid, 0) for pid, v in all_b.items()
                  if pid not in ours and pid not in self.args.ignore_pids
                  and v - all_a.get(pid, 0) > 0}
        other = sum(others.values())
        top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
        sipp_ticks = sum(all_b.get(p, 0) - all_a.get(p, 0) for p in sipps)
        res = {"rate_offered": rate, "ok": True, "notes": [], "errs": errs, "t_end": t_end,
               "cpu_start": cpu0, "cpu_end": cpu_end}
        rows = [read_stats(s) for s in stats]
        for i, (rc, r) in enumerate(zip(rcs, rows)):
            if not r or rc not in (0, 1):          # 1: some calls failed
                res["ok"] = False
                try:
                    msg = open(errs[i] + ".stderr", errors="replace").read().strip()[-300:]
                except OSError:
                    msg = ""
                res["notes"].append(f"sipp caller {i} exit {rc}: {msg}")
        if not res["ok"]:
            res["clean"] = False
            return res
        done = sum(at(r, tb, "SuccessfulCall(C)") - at(r, ta, "SuccessfulCall(C)") for r in rows)
        fin = {k: sum(r[-1][1][k] for r in rows) for k in STAT}
        span = tb - ta
        res.update(
            achieved=done / span, span=span, success=fin["SuccessfulCall(C)"],
            failed=fin["FailedCall(C)"], created=fin["TotalCallCreated"],
            retrans=fin["Retransmissions(C)"], timeouts=fin["FailedTimeoutOnRecv(C)"],
            unexpected=fin["FailedUnexpectedMessage(C)"], maxretrans=fin["FailedMaxUDPRetrans(C)"],
            dead=fin["DeadCallMsgs(C)"], outofcall=fin["OutOfCallMsgs(C)"],
            server_pct=100.0 * (cpu_b - cpu_a) / CLK_TCK / span,
            us_per_call=1e6 * (cpu_b - cpu_a) / CLK_TCK / done if done else float("nan"),
            sipp_pct=100.0 * sipp_ticks / CLK_TCK / span,
            others_pct=100.0 * other / CLK_TCK / span,
            others_top=", ".join(f"{proc_name(p)} {100.0 * t / CLK_TCK / span:.0f}%" for p, t in top),
            drops=udp_drops(server.port) - drops0)
        total = res["success"] + res["failed"]
        res["failed_frac"] = res["failed"] / total if total else 1.0
        res["clean"] = (total > 0 and res["failed_frac"] <= MAX_FAILED
                        and res["achieved"] >= MIN_ACHIEVED * rate)
        return res

    def hold(self, server, calls, rate, settle, deadline_s=40.0):
        """Place `calls` calls at `rate` and hold them; measure RSS at established and settled"""
        self.seq += 1
        d = os.path.join(self.tmp, f"hold-{self.seq}")
        os.makedirs(d)
        setup = calls / rate
        hold_ms = int((setup + settle + 10) * 1000)    # BYEs start after the measurement
        stat, err = os.path.join(d, "stat.csv"), os.path.join(d, "errors.log")
        cmd = self._cmd(server, 0, rate, calls, hold_ms, stat, err,
                        extra=("-trace_counts",))
        p = subprocess.Popen(cmd, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(err + ".stderr", "w"))
        t0 = time.time()
        res = {"calls": calls, "rate": rate, "hold_ms": hold_ms, "errs": [err]}

        def established():
            files = glob.glob(os.path.join(d, "*_counts.csv"))
            if not files:
                return 0, 0
            with open(files[0], errors="replace") as f:
                lines = f.read().splitlines()
            if len(lines) < 2:
                return 0, 0
            head = lines[0].rstrip(";").split(";")
            last = lines[-1].rstrip(";").split(";")
            if len(last) < len(head):
                last = lines[-2].rstrip(";").split(";") if len(lines) > 2 else last
            col = {h: i for i, h in enumerate(head)}
            ack = next(i for h, i in col.items() if h.endswith("_ACK_Sent"))
            bye = next(i for h, i in col.items() if h.endswith("_BYE_Sent"))
            return int(last[ack]), int(last[bye])
        ack = bye = 0
        while time.time() < t0 + setup + deadline_s and p.poll() is None:
            ack, bye = established()
            if ack >= calls:
                break
            time.sleep(0.25)
        t_est = time.time()
        res["established"] = ack
        res["setup_s"] = t_est - t0
        res["rss_established"] = vm_rss_kib(server.proc.pid)
        if ack < calls:
            res["notes"] = [f"only {ack} of {calls} calls established after {t_est - t0:.0f} s"]
        sleep_until(t_est + settle, [p])
        ack2, bye2 = established()
        res["rss_settled"] = vm_rss_kib(server.proc.pid)
        res["settle_s"] = time.time() - t_est
        res["established_settled"] = ack2
        res["bye_before_measure"] = bye2
        res["server_alive"] = server.alive()
        rc = p.wait()                              # the callers hang up; every call must end well
        rows = read_stats(stat)
        fin = rows[-1][1] if rows else {}
        res.update(rc=rc, success=fin.get("SuccessfulCall(C)", 0), failed=fin.get("FailedCall(C)", 0),
                   retrans=fin.get("Retransmissions(C)", 0))
        time.sleep(1.0)
        res["rss_after_hangup"] = vm_rss_kib(server.proc.pid)
        return res


# ---------------------------------------------------------------------------- bench

def wait_quiet(args, seconds, say):
    """wait up to `seconds` until the machine (idle servers included) uses <= 15 % of a core"""
    deadline = time.time() + seconds
    while True:
        bg = machine_busy_pct(1.0)
        if bg <= 15 or time.time() >= deadline:
            break
        say(f"cps.py: other processes use {bg:.0f}% of a core; waiting for a quiet machine")
        time.sleep(3)
    if bg > 15:
        say(f"cps.py: machine still busy ({bg:.0f}% of a core); measuring anyway")


def fmt(v):
    return f"{v:,.0f}"


def step_line(r):
    if not r["ok"]:
        return f"{fmt(r['rate_offered']):>6}/s offered: sipp failed: {'; '.join(r['notes'])}"
    hint = ""
    if not r["clean"] and r["sipp_pct"] > 90 and r["server_pct"] < 85:
        hint = "  (sipp core saturated: client-bound)"
    if r["others_pct"] > 20:
        hint += f"  (NOISY: {r['others_top']})"
    return (f"{fmt(r['rate_offered']):>6}/s offered: {fmt(r['achieved']):>6}/s done  "
            f"{'clean' if r['clean'] else 'UNCLEAN':7} failed {r['failed']} "
            f"({100 * r['failed_frac']:.2f}%) [timeout {r['timeouts']}, unexpected {r['unexpected']}, "
            f"max-retrans {r['maxretrans']}] retrans {r['retrans']} socket-drops {r['drops']} | "
            f"server CPU {r['server_pct']:.0f}% ({r['us_per_call']:.0f} us/call) "
            f"sipps {r['sipp_pct']:.0f}% others {r['others_pct']:.0f}%{hint}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relais", default=os.environ.get("RELAIS", os.path.join(ROOT, "build", "relais")))
    ap.add_argument("--only", choices=("relais", "kamailio"))
    ap.add_argument("--repeats", type=int, default=3, help="max-rate searches per server")
    ap.add_argument("--step-seconds", type=float, default=8.0)
    ap.add_argument("--hold-ms", type=int, default=1000, help="call duration in the rate steps")
    ap.add_argument("--clients", type=int, default=2, help="sipp caller/callee pairs")
    ap.add_argument("--fixed-rate", type=int, default=500, help="calls/s for the CPU per call")
    ap.add_argument("--hold-calls", type=int, default=5000)
    ap.add_argument("--hold-rate", type=int, default=500)
    ap.add_argument("--settle", type=float, default=35.0,
                    help="seconds between the last call established and the RSS reading")
    ap.add_argument("--budget", type=float, default=360.0,
                    help="seconds; repetitions that would not fit are skipped")
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--wait-idle", type=float, default=30.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, stats)")
    args = ap.parse_args()
    # SIGTERM, and SIGINT even when started in the background (where it is ignored), unwind
    # through the finally below, which stops the servers and the callees
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.ignore_pids = set()
    args.callee_pids = set()

    for tool in ("sipp", "taskset", "timeout") + (() if args.only == "relais" else ("kamailio",)):
        if not shutil.which(tool):
            sys.exit(f"cps.py: {tool} not found")
    names = [args.only] if args.only else ["relais", "kamailio"]
    if "relais" in names and not os.access(args.relais, os.X_OK):
        sys.exit(f"cps.py: {args.relais} not found (make build)")
    if os.cpu_count() < 2:
        log("cps.py: fewer than 2 CPUs; server and clients share a core")
        args.server_cpu = args.client_cpu
    try:
        os.sched_setaffinity(0, {args.client_cpu})
    except OSError:
        pass

    wait_quiet(args, args.wait_idle, log)

    tmp = tempfile.mkdtemp(prefix="relais-cps-")
    taken = set()
    callees = Callees(args, tmp, taken)
    callers = Callers(args, tmp, taken)
    servers = {}
    for n in names:
        cls = Relais if n == "relais" else Kamailio
        servers[n] = cls(args, tmp, free_udp_port(taken), callees.ports)
    holder = Relais(args, tmp, free_udp_port(taken), callees.ports, label="relais-hold") \
        if "relais" in names and args.hold_calls > 0 else None
    everyone = list(servers.values()) + ([holder] if holder else [])

    t_start = time.time()

    def stamp(msg):
        log(f"[{time.time() - t_start:5.0f}s] {msg}")

    noisy = []                         # steps repeated because other processes took CPU
    reps = {n: [] for n in servers}        # per repetition: [step results in order]
    fixed = {}
    hold = None
    rss_idle = None
    try:
        if not callees.start():
            sys.exit("cps.py: a sipp callee did not start: " + open(callees.errs[0] + ".stderr").read())
        for s in everyone:
            if not s.start():
                s.failed = "did not start / answer OPTIONS"
                stamp(f"{s.label}: {s.failed}")
        for s in everyone:
            if s.failed:
                continue
            stamp(f"{s.label}: warm-up")
            # few calls for the RSS instance: memory freed after warm-up is reused later and
            # would hide part of the per-call cost
            w = callers.run(s, rate=10 if s is holder else 100, seconds=2, hold_ms=0)
            if not w["ok"] or w["failed"] or w["success"] != w["created"]:
                s.failed = f"warm-up failed: {w}"
                stamp(f"{s.label}: {s.failed}")
        # the idle servers' pids are never "other processes"; the callees count as sipp
        args.callee_pids = {p for c in callees.procs for p in tree(c.pid)}
        args.ignore_pids = {p for s in everyone for p in s.pids} | args.callee_pids
        for s in everyone:
            s.rcvbuf = udp_rcvbuf(s.port)
        t_warm_hold = time.time()
        live = [n for n in names if not servers[n].failed]

        def step(n, rate):
            s = servers[n]
            if not s.alive():
                s.failed = s.failed or f"exited with status {s.proc.poll()}"
                return None
            for attempt in (1, 2):
                stamp(f"{n}: {rate} calls/s for {args.step_seconds:.0f} s")
                r = callers.run(s, rate=rate, seconds=args.step_seconds, hold_ms=args.hold_ms)
                stamp(f"{n}:   {step_line(r)}")
                time.sleep(0.5)
                if not r.get("ok") or r["others_pct"] <= 20 or attempt == 2:
                    break
                # another process took CPU during the step: wait for quiet, then once more
                noisy.append(f"{n} {rate}/s: {r['others_top']}")
                wait_quiet(args, args.wait_idle, stamp)
            return r

        def climb(n, start_idx, coarse):
            """steps up from ladder index start_idx to the first unclean step"""
            out = []
            ladder = COARSE if coarse else LADDER
            i = start_idx
            # going down first when the start step is unclean (later repetitions)
            while True:
                r = step(n, ladder[i])
                if r is None:
                    return out
                out.append(r)
                if r["clean"] or i == 0 or coarse:
                    break
                i -= 1
            if not r["clean"]:
                return out
            while i + 1 < len(ladder):
                i += 1
                r = step(n, ladder[i])
                if r is None:
                    return out
                out.append(r)
                if not r["clean"]:
                    break
            if coarse and not r["clean"] and i > 0:
                lo, hi = ladder[i - 1], ladder[i]
                between = [x for x in LADDER if lo < x < hi]
                for x in between:          # refine between the last clean and the first unclean
                    r = step(n, x)
                    if r is None:
                        return out
                    out.append(r)
                    if not r["clean"]:
                        break
            return out

        # first repetition: each server's first step (--fixed-rate) doubles as the CPU-per-call
        # measurement, deferred work included: Kamailio's read 6 s after the step (tm's wait
        # timer is 5 s), relais's 35 s after (nta keeps finished transactions ~32 s). Kamailio
        # climbs first, so relais's wait passes while Kamailio runs.
        for n in live:
            r = step(n, args.fixed_rate)
            if r is not None:
                fixed[n] = {"run": r}
                reps[n].append([r])
        start = COARSE.index(args.fixed_rate) + 1 if args.fixed_rate in COARSE else 1
        for n in sorted(fixed, key=lambda n: n != "kamailio"):
            r0, s = fixed[n]["run"], servers[n]
            sleep_until(r0["t_end"] + (35.0 if n == "relais" else 6.0))
            fixed[n]["full_us"] = (1e6 * (s.ticks() - r0["cpu_start"]) / CLK_TCK
                                   / max(1, r0.get("success", 0)))
            fixed[n]["full_after_s"] = time.time() - r0["t_end"]
            if r0["clean"]:
                reps[n][0] += climb(n, start, coarse=True)

        hold_cost = (args.hold_calls / args.hold_rate + args.settle + 20) if holder else 0
        for rep in range(1, args.repeats):
            est = sum(3.5 * (args.step_seconds + args.hold_ms / 1000 + 1.0) for _ in live)
            if time.time() - t_start + est + hold_cost > args.budget:
                stamp(f"repetition {rep + 1} skipped: would not fit in --budget {args.budget:.0f} s")
                break
            for n in (live if rep % 2 else list(reversed(live))):
                if servers[n].failed:
                    continue
                prev = best_of(reps[n][-1])
                i = LADDER.index(prev) - 1 if prev in LADDER else 0
                reps[n].append(climb(n, max(0, i), coarse=False))

        # RSS per held call on the second relais (idle since its warm-up long ago)
        if holder and not holder.failed and holder.alive():
            sleep_until(t_warm_hold + args.settle)
            rss_idle = vm_rss_kib(holder.proc.pid)
            stamp(f"relais-hold: idle VmRSS {rss_idle} KiB; placing {args.hold_calls} calls "
                  f"at {args.hold_rate}/s and holding them")
            hold = callers.hold(holder, args.hold_calls, args.hold_rate, args.settle)
            stamp(f"relais-hold: {hold}")
    finally:
        for s in everyone:
            s.stop()
        callees.stop()

    elapsed = time.time() - t_start
    report(args, servers, holder, reps, fixed, hold, rss_idle, elapsed, noisy)
    if args.keep:
        print(f"\nconfigs, logs and sipp statistics kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any(s.failed for s in everyone) else 0


def best_of(steps):
    clean = [r["rate_offered"] for r in steps if r.get("clean")]
    unclean = [r["rate_offered"] for r in steps if not r.get("clean")]
    lim = min(unclean) if unclean else float("inf")
    ok = [x for x in clean if x < lim]
    return max(ok) if ok else 0


def sipp_errors(res, n=4):
    out = []
    for e in res.get("errs", []):
        try:
            with open(e, errors="replace") as f:
                out += [l.rstrip() for l in f if l.strip() and "occurred" not in l][:n]
        except OSError:
            pass
    return out[:n]


def report(args, servers, holder, reps, fixed, hold, rss_idle, elapsed, noisy):
    print()
    print("Calls per second: INVITE -> 180 -> 200 -> ACK, hold, BYE -> 200; UDP on loopback")
    print(f"server pinned to CPU {args.server_cpu}; {args.clients} sipp callers + {args.clients} sipp "
          f"callees pinned to CPU {args.client_cpu}; steps of {args.step_seconds:.0f} s, "
          f"call hold {args.hold_ms} ms; {elapsed:.0f} s in all")
    print("relais: B2BUA, route.lua on_invite -> call:dial(callee), log_level=warn, sqlite store, "
          "no auth")
    print("kamailio 5.6.3: stateful proxy, tm + rr (record_route, t_relay, loose_route), "
          "children=1 (one UDP worker), -m 512 -M 32; ACK and BYE routed through it")
    print("clean step = <= 0.1% failed calls and >= 95% of the offered rate completed; "
          "CPU = utime+stime of the server's processes")
    print()
    summary = {}
    for n, s in servers.items():
        print(f"== {n}")
        if s.failed and not reps[n]:
            print(f"   NOT MEASURED: {s.failed}")
        bests = []
        for i, steps in enumerate(reps[n]):
            b = best_of(steps)
            bests.append(b)
            print(f"   run {i + 1}: max clean {fmt(b)} calls/s")
            for r in steps:
                print(f"     {step_line(r)}")
                if r.get("ok") and not r["clean"]:
                    for l in sipp_errors(r, 2):
                        print(f"       sipp: {l[:200]}")
        f = fixed.get(n)
        if f:
            r = f["run"]
            print(f"   CPU per call at {args.fixed_rate} calls/s: {r['us_per_call']:.0f} us over the "
                  f"steady window; {f.get('full_us', float('nan')):.0f} us including deferred work "
                  f"(CPU from the step's start to {f.get('full_after_s', 0):.0f} s after its end, "
                  f"/ {r['success']} calls){'' if r['clean'] else '  (step UNCLEAN)'}")
        if s.failed:
            print(f"   PROBLEM: {s.failed}")
        if getattr(s, "rcvbuf", None):
            print(f"   server UDP socket receive buffer: {s.rcvbuf:,} bytes (ss -uam rb)")
        cnt, kinds = s.problems()
        print(f"   server log: {cnt} warning/error lines" + (", by kind:" if kinds else ""))
        for c, l in kinds:
            print(f"   | {c:6} x {l[:220]}")
        if any("Connection refused" in l for _, l in kinds):
            print("     ('Connection refused': ICMP port unreachable for messages sent to a sipp that\n"
                  "      had exited, e.g. retransmitted 200s of calls it had aborted)")
        summary[n] = bests
        print()

    if holder:
        print("== relais, RSS per held call")
        cnt, kinds = holder.problems()
        if hold is None:
            print(f"   NOT MEASURED: {holder.failed or 'relais-hold not alive'}")
        else:
            per = (hold["rss_settled"] - rss_idle) / hold["calls"]
            per_est = (hold["rss_established"] - rss_idle) / hold["calls"]
            hold["per_call"] = per
            print(f"   {hold['calls']} calls at {hold['rate']}/s, held {hold['hold_ms'] / 1000:.0f} s; "
                  f"{hold['established']} established after {hold['setup_s']:.1f} s")
            print(f"   VmRSS idle (after warm-up) {fmt(rss_idle)} KiB; all established "
                  f"{fmt(hold['rss_established'])} KiB ({per_est:.2f} KiB/call, setup transactions "
                  f"still lingering); {hold['settle_s']:.0f} s later {fmt(hold['rss_settled'])} KiB "
                  f"({per:.2f} KiB/call); after hang-up {fmt(hold['rss_after_hangup'])} KiB")
            print(f"   still held at the reading: {hold['established_settled'] - hold['bye_before_measure']}"
                  f"; hang-up: {hold['success']} calls ended well, {hold['failed']} failed, "
                  f"{hold['retrans']} retransmissions (sipp exit {hold['rc']})")
            for l in sipp_errors(hold, 3):
                print(f"       sipp: {l[:200]}")
        print(f"   server log: {cnt} warning/error lines" + (", by kind:" if kinds else ""))
        for c, l in kinds:
            print(f"   | {c:6} x {l[:220]}")
        print("   (Kamailio not measured: as a tm proxy without the dialog module it keeps no state"
              " for an established call, only for transactions in progress)")
        print()

    print("== summary")
    rl, km = summary.get("relais", []), summary.get("kamailio", [])
    rmax, kmax = (max(rl) if rl else 0), (max(km) if km else 0)
    runs = "; ".join(f"relais {'/'.join(fmt(x) for x in rl)}" if n == "relais" else
                     f"kamailio {'/'.join(fmt(x) for x in km)}" for n in summary)
    ratio = f"{rmax / kmax:.2f}" if kmax else "n/a"
    print(f"cps: relais max clean = {fmt(rmax)} cps, kamailio max clean = {fmt(kmax)} cps, "
          f"ratio = N/M = {ratio} (runs: {runs}; max over runs)")
    fr, fk = fixed.get("relais", {}), fixed.get("kamailio", {})
    a, b = fr.get("full_us", float("nan")), fk.get("full_us", float("nan"))
    wa = fr["run"]["us_per_call"] if fr else float("nan")
    wb = fk["run"]["us_per_call"] if fk else float("nan")
    print(f"cpu per call at {args.fixed_rate} cps: relais = {a:.0f} µs, kamailio = {b:.0f} µs, "
          f"ratio = B/A = {b / a if a == a and a else float('nan'):.2f} (incl. deferred transaction "
          f"cleanup; steady window only: relais {wa:.0f} µs, kamailio {wb:.0f} µs, "
          f"ratio {wb / wa if wa == wa and wa else float('nan'):.2f})")
    if hold:
        print(f"rss per held call ({hold['calls']} calls): relais = {hold['per_call']:.2f} KiB")
    allsteps = [r for n in reps for steps in reps[n] for r in steps if r.get("ok")]
    if noisy:
        print(f"note: {len(noisy)} step(s) repeated because other processes used CPU: "
              + "; ".join(noisy))
    if allsteps and max(r["others_pct"] for r in allsteps) > 20:
        print(f"WARNING: other processes used up to {max(r['others_pct'] for r in allsteps):.0f}% "
              "of a core during counted steps: the machine was not idle")


if __name__ == "__main__":
    sys.exit(main())
