#!/usr/bin/env python3
"""RTP forwarding rate per core: relais-media vs rtpengine 10.5 (userspace) vs a bare
recvmmsg/sendmmsg forwarder, same run, same load generator.

Load: --streams stream pairs (calls), each two flows (A->B and B->A) of 172-byte RTP packets,
sent by rtp_load (C++, compiled here) from the ports declared in each side's SDP (both relays
latch) to the relay ports from the ng replies, received back on the other side's port.
Latency = kernel receive stamp (SO_TIMESTAMPNS) - send time embedded in the packet; "added"
latency subtracts the median of the same path without a relay (generator to itself, "direct").

Relays (all pinned to --relay-cpu; generator and this script to --gen-cpu):
  * relais-media --workers 1 (build/relais-media), driven over ng like rtpengine;
  * rtpengine --table=-1 -f -E --num-threads=1 (userspace);
  * bare: bare_forwarder.cpp (compiled here): epoll + recvmmsg/sendmmsg, fixed destinations.

Per relay: steps of --step-seconds at rising offered rates (the first one, --fixed-rate, is the
common comparison point) up to the first unclean step (loss > --max-loss %), one step between
the last clean and the first unclean rate, then the best clean rate held for --hold-seconds on a
fresh relay. A relay is restarted after an unclean step (rtpengine shuts sockets that fall
behind for good). A step whose generator could not send >= 95 % of the offered rate is
"gen-limited": the relay's limit is then above what this machine can offer it.

CPU: utime+stime of the relay's process (all threads, /proc/PID/stat) between the generator's
measure_start and measure_end; pps/core = forwarded pps / (CPU seconds / wall seconds).

SRTP<->RTP (--case srtp): side A of every call speaks SRTP (SDES, AES_CM_128_HMAC_SHA1_80, its
own random key per call, offered with transport-protocol RTP/AVP for side B), side B plain RTP:
the relay decrypts A->B and encrypts B->A with the key it answered. rtp_load protects what A
sends and unprotects what A receives with libsrtp2, so the payload still carries the send time;
bare cannot do SRTP and is left out. Goal: relais-media >= 1.5x rtpengine's pps per core.

Usage: python3 tests/bench/relay_pps.py [--case plain|srtp] [--only bare,relais-media,rtpengine] [--keep] ...
Python standard library only; needs g++, taskset, timeout, rtpengine (optional: skipped if
missing) and build/relais-media.
"""

import argparse
import base64
import contextlib
import glob
import json
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
sys.path.insert(0, HERE)
from benchlib import (IP, CLK_TCK, CHILDREN, all_ticks, free_udp_port, log,  # noqa: E402
                      machine_busy_pct, proc_name, spawn, stop, stop_all, tick_deltas, udp_drops)

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
LADDER = [50000, 100000, 150000, 200000, 250000, 300000, 350000, 400000, 450000, 500000,
          600000, 700000]
MIN_ACHIEVED = 0.95


# ----------------------------------------------------------------------------- processes

def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wrapped_pid(p, name, timeout=5.0):
    """pid of the real program started under `timeout` (its child whose comm matches name)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children_of(p.pid):
            if proc_name(c).startswith(name[:15]):
                return c
        if p.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def wait_idle(max_wait, threshold=25.0):
    """wait (up to max_wait s) until other processes use < threshold % of a core"""
    deadline = time.monotonic() + max_wait
    first = True
    while True:
        busy = machine_busy_pct(2.0, exclude={os.getpid()})
        if busy < threshold:
            return busy
        if time.monotonic() > deadline:
            log(f"WARNING: machine still busy ({busy:.0f} % of a core) after {max_wait:.0f} s; going on")
            return busy
        if first:
            others = sorted({proc_name(p) for p in all_ticks() if proc_name(p) in
                             ("sipp", "kamailio", "relais", "python3", "cc1plus", "rtpengine")})
            log(f"waiting for a quiet machine ({busy:.0f} % of a core busy; {', '.join(others)})")
            first = False
        time.sleep(8)


# ----------------------------------------------------------------------------- ng protocol

def bencode(v):
    if isinstance(v, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, x) for k, x in v.items())
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in items) + b"e"
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    return b"%d:%s" % (len(v), v)


def bdecode(data, i=0):
    c = data[i:i + 1]
    if c == b"d":
        out, i = {}, i + 1
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            out[k], i = bdecode(data, i)
        return out, i + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i:i + 1] != b"e":
            x, i = bdecode(data, i)
            out.append(x)
        return out, i + 1
    if c == b"i":
        j = data.index(b"e", i)
        return int(data[i + 1:j]), j + 1
    j = data.index(b":", i)
    n = int(data[i:j])
    s = data[j + 1:j + 1 + n]
    try:
        return s.decode(), j + 1 + n
    except UnicodeDecodeError:
        return s, j + 1 + n


class Ng:
    def __init__(self, port):
        self.addr = (IP, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((IP, 0))

    def request(self, msg, timeout=1.0, tries=3):
        cookie = secrets.token_hex(8)
        data = cookie.encode() + b" " + bencode(msg)
        for _ in range(tries):
            self.sock.sendto(data, self.addr)
            self.sock.settimeout(timeout)
            try:
                while True:
                    reply = self.sock.recv(65535)
                    c, _, body = reply.partition(b" ")
                    if c.decode(errors="replace") == cookie:
                        return bdecode(body)[0]
            except socket.timeout:
                continue
        raise RuntimeError(f"no ng reply to {msg.get('command')}")

    def close(self):
        self.sock.close()


SRTP_SUITE = "AES_CM_128_HMAC_SHA1_80"


def sdp(port, key=None):
    """side A's or B's SDP; with `key` (30 bytes) RTP/SAVP and its a=crypto line"""
    proto = "RTP/SAVP" if key else "RTP/AVP"
    body = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            "m=audio %d %s 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n" % (IP, IP, port, proto))
    if key:
        body += "a=crypto:1 %s inline:%s\r\n" % (SRTP_SUITE, base64.b64encode(key).decode())
    return body


def sdp_crypto(text):
    """the key of the one a=crypto line the relay answered side A with"""
    m = re.search(r"^a=crypto:1 " + SRTP_SUITE + r" inline:([A-Za-z0-9+/=]+)", text, re.M)
    if not m or not re.search(r"^m=audio \d+ RTP/SAVP ", text, re.M):
        raise RuntimeError("the relay's answer to the SRTP side has no RTP/SAVP + a=crypto:1:\n" + text)
    return base64.b64decode(m.group(1))


def sdp_port(text):
    m = re.search(r"^m=audio (\d+) ", text, re.M)
    if not m:
        raise RuntimeError("no m=audio in reply SDP:\n" + text)
    return int(m.group(1))


def setup_calls(ng_port, endpoints, tag, srtp=False):
    """offer (side A) + answer (side B) per stream pair; [(port A sends to, port B sends to)],
    with srtp [(..., A's key, the relay's key for A)]"""
    ng = Ng(ng_port)
    out = []
    common = {"flags": ["trust-address"], "replace": ["origin", "session-connection"],
              "ICE": "remove", "transport-protocol": "RTP/AVP"}
    # The answer goes back to the offerer in its own profile (RTP/SAVP when it offered SRTP).
    answer_common = {k: v for k, v in common.items() if not (srtp and k == "transport-protocol")}
    try:
        for i, (a, b) in enumerate(endpoints):
            cid = f"pps-{tag}-{i}"
            key = secrets.token_bytes(30) if srtp else None
            r = ng.request(dict(common, command="offer", **{"call-id": cid, "from-tag": f"a{i}",
                                                            "sdp": sdp(a, key)}))
            if r.get("result") != "ok":
                raise RuntimeError(f"offer {cid}: {r}")
            if srtp and "a=crypto" in r["sdp"]:
                raise RuntimeError(f"offer {cid}: the plain side got a=crypto:\n{r['sdp']}")
            to_b = sdp_port(r["sdp"])
            r = ng.request(dict(answer_common, command="answer", **{"call-id": cid, "from-tag": f"a{i}",
                                                                    "to-tag": f"b{i}", "sdp": sdp(b)}))
            if r.get("result") != "ok":
                raise RuntimeError(f"answer {cid}: {r}")
            if srtp:
                out.append((sdp_port(r["sdp"]), to_b, key, sdp_crypto(r["sdp"])))
            else:
                out.append((sdp_port(r["sdp"]), to_b))
    finally:
        ng.close()
    return out


def ng_alive(ng_port):
    ng = Ng(ng_port)
    try:
        return ng.request({"command": "ping"}, timeout=0.2, tries=1).get("result") == "pong"
    except (RuntimeError, OSError):
        return False
    finally:
        ng.close()


# ----------------------------------------------------------------------------- relays

class Relay:
    """One relay instance: start(), pid, flows(endpoints) -> [(src, dst)], stop()."""
    name = "?"
    kind = "?"

    def __init__(self, args, tmp, port_lo, port_hi, cpus):
        self.args, self.tmp, self.port_lo, self.port_hi, self.cpus = args, tmp, port_lo, port_hi, cpus
        self.proc = None
        self.pid = None
        self.logs = []
        self.serial = 0

    def log_path(self):
        return os.path.join(self.tmp, f"{self.name}-{self.serial}.log")

    def popen(self, argv, binary_name):
        self.serial += 1
        path = self.log_path()
        self.logs.append(path)
        f = open(path, "w")
        life = int(self.args.budget) + 300
        rt = ["chrt", "-f", str(self.args.rt)] if self.args.rt else []
        self.proc = spawn(["taskset", "-c", self.cpus] + rt + ["timeout", "-k", "5", str(life)] + argv,
                          stdout=f, stderr=subprocess.STDOUT)
        f.close()
        self.pid = wrapped_pid(self.proc, binary_name)
        self.seq_next = 1000  # a fresh process has fresh SRTP sessions (run_generator)
        if self.pid is None:
            raise RuntimeError(f"{self.name} did not start; log {path}:\n" + self.log_tail())

    def wait_log(self, needle, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path(), errors="replace") as f:
                if needle in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no '{needle}' in its log:\n" + self.log_tail())

    def wait_ng(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ng_alive(port):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: ng port {port} does not answer:\n" + self.log_tail())

    def log_tail(self, n=20):
        try:
            with open(self.log_path(), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        rc = stop(self.proc)
        self.proc, self.pid = None, None
        return rc


class RelaisMedia(Relay):
    kind = "relais-media"

    def __init__(self, args, tmp, port_lo, port_hi, cpus, workers, io=None):
        super().__init__(args, tmp, port_lo, port_hi, cpus)
        self.workers, self.io = workers, io
        self.name = "relais-media" if workers == 1 else f"relais-media-w{workers}"
        if io:
            self.name += f"-{io}"

    def start(self, endpoints):
        self.ng_port = free_udp_port()
        io = ["--io", self.io] if self.io else []
        self.popen([self.args.relais_media, "--ng", f"{IP}:{self.ng_port}", "--address", IP,
                    "--ports", f"{self.port_lo}-{self.port_hi}", "--workers", str(self.workers),
                    "--timeout", "60", "--log-level", "info"] + io, "relais-media")
        self.wait_log("event=ready")
        return setup_calls(self.ng_port, endpoints, f"{self.name}{self.serial}", self.args.case == "srtp")


class Rtpengine(Relay):
    kind = name = "rtpengine"

    def start(self, endpoints):
        self.ng_port = free_udp_port()
        self.popen([self.args.rtpengine, "--table=-1", "-f", "-E", f"--listen-ng={IP}:{self.ng_port}",
                    f"--interface={IP}", f"--port-min={self.port_lo}", f"--port-max={self.port_hi}",
                    "--num-threads=1", "--log-level=5", "--timeout=60", "--delete-delay=0"],
                   "rtpengine")
        self.wait_ng(self.ng_port)
        return setup_calls(self.ng_port, endpoints, f"rtpe{self.serial}", self.args.case == "srtp")


class Bare(Relay):
    kind = name = "bare"

    def start(self, endpoints):
        pairs = [(self.port_lo + 4 * i, self.port_lo + 4 * i + 2) for i in range(len(endpoints))]
        if pairs[-1][1] > self.port_hi:
            raise RuntimeError("bare: port range too small")
        path = os.path.join(self.tmp, "bare-pairs.txt")
        with open(path, "w") as f:
            for (pa, pb), (a, b) in zip(pairs, endpoints):
                f.write(f"{pa} {pb} {a} {b}\n")
        self.popen([self.args.bare_bin, "--pairs", path, "--address", IP], "bare_forwarder")
        self.wait_log("event=ready")
        return pairs


class Direct(Relay):
    """no relay: the generator sends each flow straight to the other side's port"""
    kind = name = "direct"

    def start(self, endpoints):
        self.serial += 1
        return [(b, a) for a, b in endpoints]

    def alive(self):
        return True

    def stop(self):
        return 0


# ----------------------------------------------------------------------------- one step

class Step:
    def __init__(self, relay, rate, res, cpu_s, sched_s, other_pct, socket_drops, seconds):
        self.relay, self.rate, self.res = relay, rate, res
        self.cpu_s, self.sched_s, self.other_pct = cpu_s, sched_s, other_pct
        self.socket_drops, self.seconds = socket_drops, seconds
        w = res["window_s"] or 1.0
        self.window = w
        self.cpu_frac = cpu_s / w if cpu_s is not None else None
        self.rx_pps = res["rx_pps"]
        self.loss = res["loss_pct"]
        self.gen_limited = res["tx_pps"] < MIN_ACHIEVED * rate
        self.pps_core = self.rx_pps / self.cpu_frac if self.cpu_frac else None

    def clean(self, max_loss):
        return self.loss <= max_loss

    def p(self, key, base=0.0):
        v = self.res[key]
        return max(0.0, v - base) if v >= 0 else float("nan")


def sched_ns(pid):
    """sum of the scheduler's run time of every thread of pid (ns)"""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def run_generator(args, flows, rate, seconds, relay):
    """run rtp_load once against `flows`; it reads the relay's CPU itself at the start and the
    end of its measured window (nothing else wakes up on the generator's core meanwhile)"""
    path = os.path.join(args.tmp, "flows.txt")
    with open(path, "w") as f:
        for src, dst, *srtp in flows:
            f.write(f"{src} {dst}{(' ' + ' '.join(srtp)) if srtp else ''}\n")
    relay_pid = relay.pid
    life = args.warmup + seconds + 0.5 + 15
    argv = ["taskset", "-c", str(args.gen_cpu), "timeout", "-k", "2", str(int(life)), args.load_bin,
            "--flows", path, "--rate", str(rate), "--warmup", str(args.warmup),
            "--duration", str(seconds), "--tail", "0.2", "--drain", "0.3", "--burst", str(args.burst),
            "--cpu-pid", str(relay_pid or 0)]
    if args.case == "srtp" and relay.kind != "direct":
        # The relay's SRTP sessions outlive one generator run: start every flow ahead of where
        # the last run stopped (a forward jump < 2^15 keeps the rollover counter in step),
        # or the relay rightly drops the repeated indexes as replays.
        argv += ["--seq-start", str(relay.seq_next)]
        per_flow = int(rate * (args.warmup + seconds + 0.2) / max(1, len(flows))) + 64 * args.burst
        relay.seq_next = (relay.seq_next + per_flow + 256) % 65536
    drops0 = udp_drops(relay.port_lo, relay.port_hi) if relay.kind != "direct" else 0
    all0, t0 = all_ticks(), time.monotonic()
    p = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gen_pid = wrapped_pid(p, "rtp_load", 2.0)
    out, err = p.communicate()
    all1, t1 = all_ticks(), time.monotonic()
    CHILDREN.remove(p)
    result = None
    for line in out.splitlines():
        if line.startswith("result "):
            result = json.loads(line[7:])
    if result is None:
        raise RuntimeError(f"rtp_load failed (rc {p.returncode}): {err.strip()}")
    drops = (udp_drops(relay.port_lo, relay.port_hi) - drops0) if relay.kind != "direct" else 0
    cpu_s = sched_s = None
    if relay_pid:
        c0, c1 = result["relay_cpu_ticks"]
        s0, s1 = result["relay_sched_ns"]
        if c0 < 0 or c1 < 0:
            raise RuntimeError(f"{relay.name}: could not read its CPU time (exited?)")
        cpu_s, sched_s = (c1 - c0) / CLK_TCK, (s1 - s0) / 1e9
    # Other processes over the generator's whole run (read outside the measured window).
    skip = {os.getpid(), relay_pid, gen_pid, p.pid}
    if relay.proc is not None:
        skip.add(relay.proc.pid)
    other = softirqd = 0
    for q, d in tick_deltas(all0, all1, skip).items():
        if proc_name(q).startswith("ksoftirqd"):
            softirqd += d
        else:
            other += d
    wall = t1 - t0
    st = Step(relay.name, rate, result, cpu_s, sched_s, 100.0 * other / CLK_TCK / wall, drops, seconds)
    st.softirqd_pct = 100.0 * softirqd / CLK_TCK / wall
    return st


def fmt_rate(r):
    return f"{r / 1000:g}k"


def describe(step, base_p50):
    r = step.res
    cpu = f"cpu={100 * step.cpu_frac:5.1f}%" if step.cpu_frac is not None else "cpu=  n/a "
    ppc = f"{step.pps_core / 1000:7.1f}k pps/core" if step.pps_core else "      n/a pps/core"
    s = (f"{step.relay:<16} {fmt_rate(step.rate):>5} offered: sent {r['tx_pps'] / 1000:6.1f}k/s "
         f"fwd {step.rx_pps / 1000:6.1f}k/s {cpu} {ppc} loss={step.loss:.3f}% "
         f"added p50={step.p('p50_us', base_p50):.0f} p99={step.p('p99_us', base_p50):.0f} "
         f"p99.9={step.p('p999_us', base_p50):.0f} max={step.p('max_us', base_p50):.0f} µs "
         f"(raw p50={r['p50_us']:.0f} p99={r['p99_us']:.0f})")
    extra = []
    if step.sched_s is not None and step.cpu_s is not None:
        extra.append(f"schedstat cpu={100 * step.sched_s / step.window:.1f}%")
        w0, w1 = step.res["relay_runq_wait_ns"]
        extra.append(f"relay runnable-but-waiting {(w1 - w0) / 1e6:.1f} ms")
    if step.softirqd_pct > 2:
        extra.append(f"ksoftirqd {step.softirqd_pct:.0f}% of a core")
    if r["skipped_measured"]:
        extra.append(f"generator preempted: {r['skipped_measured']} packets not sent")
    if step.socket_drops:
        extra.append(f"relay-socket drops={step.socket_drops}")
    if r["gen_drops"]:
        extra.append(f"generator-socket drops={r['gen_drops']}")
    if r["flows_dead"] or r["flows_lossy"]:
        extra.append(f"flows dead={r['flows_dead']} lossy(>1%)={r['flows_lossy']} of {r['flows']}")
    if r["send_errors"] or r["send_eagain"]:
        extra.append(f"send errors={r['send_errors']} eagain={r['send_eagain']}")
    if r["unknown"]:
        extra.append(f"unknown packets={r['unknown']}")
    if step.gen_limited:
        extra.append("GEN-LIMITED")
    if step.other_pct > 20:
        extra.append(f"other processes {step.other_pct:.0f}% of a core")
    if step.loss > 0.05:
        per_s = []
        tl = r["timeline"]
        for i in range(0, len(tl), 10):
            tx = sum(b[0] for b in tl[i:i + 10])
            rx = sum(b[1] for b in tl[i:i + 10])
            per_s.append(f"{100.0 * (tx - rx) / tx:.1f}" if tx else "-")
        extra.append("loss% per second: " + " ".join(per_s))
    if r["p99_us"] > 100 + base_p50:
        slow = [b[2] for b in r["timeline"]]
        total = sum(slow)
        top = sorted(slow, reverse=True)[:max(1, len(slow) // 10)]
        extra.append(f"packets > 200µs: {total} ({100.0 * total / max(1, r['rx']):.2f}%), "
                     f"{100.0 * sum(top) / max(1, total):.0f}% of them in the worst 10% of 0.1-s bins")
    return s + ("\n" + " " * 19 + "; ".join(extra) if extra else "")


# ----------------------------------------------------------------------------- climbing

class Bench:
    def __init__(self, args):
        self.args = args
        self.t_start = time.monotonic()
        n = args.streams
        # endpoints (A_i, B_i): even ports, +1 left free for RTCP
        self.endpoints = [(args.gen_base + 4 * i, args.gen_base + 4 * i + 2) for i in range(n)]
        self.base_p50 = 0.0
        self.notes = []

    def elapsed(self):
        return time.monotonic() - self.t_start

    def step(self, relay, flows, rate, seconds):
        st = run_generator(self.args, flows, rate, seconds, relay)
        if st.other_pct > 20 and not self.args.no_retry_noisy:
            log(describe(st, self.base_p50))
            log(f"   (other processes used {st.other_pct:.0f} % of a core: waiting and repeating)")
            wait_idle(30)
            st = run_generator(self.args, flows, rate, seconds, relay)
        log(describe(st, self.base_p50))
        if not relay.alive():
            raise RuntimeError(f"{relay.name} exited during the step:\n" + relay.log_tail())
        return st

    def fresh(self, relay):
        relay.stop()
        return relay.start(self.endpoints)

    def flows_for(self, relay, ports):
        flows = []
        for (a, b), (to_a, to_b, *keys) in zip(self.endpoints, ports):
            if keys:  # SRTP case: A protects with its key, decrypts the relay's with the relay's
                flows.append((a, to_a, f"tx={SRTP_SUITE}:{keys[0].hex()}", f"rx={SRTP_SUITE}:{keys[1].hex()}"))
            else:
                flows.append((a, to_a))
            flows.append((b, to_b))
        return flows

    def climb(self, relay, ladder, max_loss):
        """steps up `ladder` to the first unclean step, one step in between, then a hold"""
        a = self.args
        steps = []
        ports = self.fresh(relay)
        flows = self.flows_for(relay, ports)
        best = None
        first_bad = None
        for rate in ladder:
            st = self.step(relay, flows, rate, a.step_seconds)
            steps.append(st)
            if st.clean(max_loss):
                prev = best
                best = st
                # The generator's ceiling: it fell short and got no further than the step before
                # (a single short step is more often a preempted generator: go on).
                if st.gen_limited and prev is not None and st.res["tx_pps"] <= 1.05 * prev.res["tx_pps"]:
                    break
            else:
                first_bad = rate
                break
            if self.elapsed() > a.budget:
                self.notes.append(f"{relay.name}: budget reached, climb stopped at {fmt_rate(rate)}")
                break
        if best and first_bad and first_bad - best.rate > 25000:
            mid = int(round((best.rate + first_bad) / 2 / 5000)) * 5000
            ports = self.fresh(relay)
            flows = self.flows_for(relay, ports)
            st = self.step(relay, flows, mid, a.step_seconds)
            steps.append(st)
            if st.clean(max_loss):
                best = st
            else:
                first_bad = mid
        hold = None
        if best and a.hold_seconds > 0:
            if not (steps[-1] is best):
                ports = self.fresh(relay)
                flows = self.flows_for(relay, ports)
            log(f"{relay.name}: holding {fmt_rate(best.rate)} for {a.hold_seconds:g} s")
            hold = self.step(relay, flows, best.rate, a.hold_seconds)
            if not hold.clean(max_loss):
                lower = [r for r in ladder if r < best.rate]
                if lower:
                    ports = self.fresh(relay)
                    flows = self.flows_for(relay, ports)
                    log(f"{relay.name}: hold unclean, holding {fmt_rate(lower[-1])} instead")
                    hold2 = self.step(relay, flows, lower[-1], a.hold_seconds)
                    hold = hold2
        relay.stop()
        return steps, best, hold


def summarize_log(relay):
    """count of events per kind in the relay's logs, without the per-call ones"""
    counts = {}
    routine = re.compile(r"event=(call\.offer|call\.answer|call\.delete|ready|worker\.start)\b")
    for path in relay.logs:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    line = line.rstrip()
                    if not line or routine.search(line):
                        continue
                    if relay.kind == "rtpengine":
                        # "[time] [core] ... " — keep the message without variable parts
                        key = re.sub(r"^\[[^\]]*\]\s*", "", line)
                        key = re.sub(r"\d+", "N", key)[:120]
                    else:
                        m = re.search(r"event=(\S+)", line)
                        lvl = re.search(r"level=(\S+)", line)
                        key = (lvl.group(1) + " " if lvl else "") + (m.group(1) if m else line[:100])
                    counts[key] = counts.get(key, 0) + 1
        except OSError:
            pass
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=500, help="stream pairs (two flows each), default 500")
    ap.add_argument("--fixed-rate", type=int, default=50000, help="common comparison rate (pps), default 50000")
    ap.add_argument("--ladder", default=",".join(str(r) for r in LADDER), help="offered rates (pps)")
    ap.add_argument("--step-seconds", type=float, default=5.0)
    ap.add_argument("--hold-seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--max-loss", type=float, default=0.5, help="clean step: loss <= this %% (0.5)")
    ap.add_argument("--burst", type=int, default=1, help="packets per flow per sendmmsg (1)")
    ap.add_argument("--case", choices=("plain", "srtp"), default="plain",
                    help="plain: RTP both ways; srtp: side A SRTP (SDES), side B plain RTP")
    ap.add_argument("--only", default="bare,relais-media,relais-media-xdp,rtpengine",
                    help="relays to run; relais-media-xdp (--io xdp on lo) needs root and is left "
                         "out without it")
    ap.add_argument("--workers2", choices=("yes", "no"), default="yes",
                    help="also run relais-media --workers 2 on both cores at the fixed rate and at "
                         "the --workers 1 max clean rate")
    ap.add_argument("--relay-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--gen-base", type=int, default=12000, help="generator ports (4 per stream)")
    ap.add_argument("--port-base", type=int, default=16000, help="relay port ranges start here")
    ap.add_argument("--budget", type=float, default=300.0, help="stop climbing after this many s")
    ap.add_argument("--wait-idle", type=float, default=600.0)
    ap.add_argument("--no-retry-noisy", action="store_true")
    ap.add_argument("--rt", type=int, default=0, metavar="PRIO",
                    help="run the relays SCHED_FIFO at this priority (chrt -f), so other processes "
                         "on the relay's core cannot preempt it; default 0: normal scheduling")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--relais-media", default=os.path.join(ROOT, "build", "relais-media"))
    ap.add_argument("--rtpengine", default=shutil.which("rtpengine") or "rtpengine")
    args = ap.parse_args()
    a = args
    ladder = sorted({int(x) for x in a.ladder.split(",")} | {a.fixed_rate})
    ladder = [r for r in ladder if r >= a.fixed_rate]
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    if a.case == "srtp":
        if "bare" in only:
            log("--case srtp: bare cannot do SRTP, left out")
            only.remove("bare")
        a.workers2 = "no"

    for tool in ("g++", "taskset", "timeout"):
        if not shutil.which(tool):
            sys.exit(f"relay_pps: {tool} not found")
    if "relais-media" in only and not os.access(a.relais_media, os.X_OK):
        sys.exit(f"relay_pps: {a.relais_media} not built (make)")
    if "rtpengine" in only and not shutil.which(a.rtpengine):
        log("rtpengine not installed: skipped")
        only.remove("rtpengine")
    if "relais-media-xdp" in only and os.geteuid() != 0:
        log("relais-media-xdp: AF_XDP needs root: left out")
        only.remove("relais-media-xdp")
    a.tmp = tempfile.mkdtemp(prefix="relay-pps-")
    span = 4 * a.streams + 16
    if a.gen_base + 4 * a.streams > a.port_base or a.port_base + 5 * span > 32768:
        sys.exit("relay_pps: port layout does not fit below 32768 (--streams too large?)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        os.sched_setaffinity(0, {a.gen_cpu})
        log(f"building rtp_load and bare_forwarder in {a.tmp}")
        a.load_bin = os.path.join(a.tmp, "rtp_load")
        a.bare_bin = os.path.join(a.tmp, "bare_forwarder")
        for src, out in (("rtp_load.cpp", a.load_bin), ("bare_forwarder.cpp", a.bare_bin)):
            # rtp_load protects/unprotects with relais-media's SrtpSession (see rtp_load.cpp).
            media = os.path.join(ROOT, "media-relay")
            extra = ["-I", media, os.path.join(media, "srtp_session.cpp"), os.path.join(media, "srtp_transform.cpp"),
                     "-lsrtp2", "-lcrypto"] if src == "rtp_load.cpp" else []
            subprocess.run(["g++", "-O2", "-std=c++20", "-o", out, os.path.join(HERE, src)] + extra,
                           check=True, timeout=180)
        busy = wait_idle(a.wait_idle)
        log(f"machine: {os.cpu_count()} cores, other processes {busy:.0f} % of a core; relay on CPU "
            f"{a.relay_cpu}, generator on CPU {a.gen_cpu}; {a.streams} streams = {2 * a.streams} flows "
            f"of 172-byte RTP" + (f" (side A SRTP {SRTP_SUITE}: 182 bytes)" if a.case == "srtp" else ""))
        with loopback_xdp_sysctls("relais-media-xdp" in only):
            return run(a, ladder, only)
    finally:
        stop_all()
        if a.keep:
            log(f"kept {a.tmp}")
        else:
            shutil.rmtree(a.tmp, ignore_errors=True)


@contextlib.contextmanager
def loopback_xdp_sysctls(needed):
    """Frames an AF_XDP socket sends on lo carry no route, so the kernel's input routing sees
    127.0.0.1 -> 127.0.0.1 arriving "from outside" and drops it as a martian unless lo allows
    loopback addresses (route_localnet) and local sources (accept_local). Set for the run,
    restored after. (On a real interface neither is involved.)"""
    saved = {}
    if needed:
        for key in ("route_localnet", "accept_local"):
            path = f"/proc/sys/net/ipv4/conf/lo/{key}"
            with open(path) as f:
                saved[path] = f.read().strip()
            with open(path, "w") as f:
                f.write("1")
    try:
        yield
    finally:
        for path, value in saved.items():
            with open(path, "w") as f:
                f.write(value)


def run(a, ladder, only):
    bench = Bench(a)
    relays = {}
    span = 4 * a.streams + 16
    lo = a.port_base
    for name in ("bare", "relais-media", "relais-media-xdp", "rtpengine"):
        cpus = str(a.relay_cpu)
        if name == "bare":
            relays[name] = Bare(a, a.tmp, lo, lo + span - 1, cpus)
        elif name == "relais-media":
            relays[name] = RelaisMedia(a, a.tmp, lo, lo + span - 1, cpus, 1)
        elif name == "relais-media-xdp":
            relays[name] = RelaisMedia(a, a.tmp, lo, lo + span - 1, cpus, 1, io="xdp")
        else:
            relays[name] = Rtpengine(a, a.tmp, lo, lo + span - 1, cpus)
        lo += span

    # Baseline: the generator to itself, no relay, at the fixed rate.
    direct = Direct(a, a.tmp, 0, 0, "")
    base = bench.step(direct, bench.flows_for(direct, direct.start(bench.endpoints)), a.fixed_rate,
                      a.step_seconds)
    bench.base_p50 = base.res["p50_us"]
    log(f"direct path (no relay) at {fmt_rate(a.fixed_rate)}: p50={base.res['p50_us']:.0f} "
        f"p99={base.res['p99_us']:.0f} µs; 'added' latencies below subtract {bench.base_p50:.0f} µs")

    results = {}
    ok = True
    for name in only:
        relay = relays[name]
        log(f"--- {name}")
        try:
            results[name] = bench.climb(relay, ladder, a.max_loss)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            log(f"{name}: FAILED: {e}")
            relay.stop()
            ok = False
    w2 = []
    if a.workers2 == "yes" and "relais-media" in results:
        r2 = RelaisMedia(a, a.tmp, lo, lo + span - 1, f"{a.relay_cpu},{a.gen_cpu}", 2)
        relays["relais-media-w2"] = r2
        log("--- relais-media --workers 2 (both cores; the generator shares one)")
        try:
            flows = bench.flows_for(r2, bench.fresh(r2))
            w2.append(bench.step(r2, flows, a.fixed_rate, a.step_seconds))
            best1 = results["relais-media"][1]
            if best1 and best1.rate != a.fixed_rate:
                if not w2[-1].clean(a.max_loss):
                    flows = bench.flows_for(r2, bench.fresh(r2))
                w2.append(bench.step(r2, flows, best1.rate, a.step_seconds))
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            log(f"relais-media --workers 2: FAILED: {e}")
        r2.stop()

    # Logs of the relays: anything beyond the per-call lines.
    for name, relay in relays.items():
        counts = summarize_log(relay)
        if counts:
            log(f"{name} log ({len(relay.logs)} runs), lines by kind:")
            for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:12]:
                log(f"  {v:6d}  {k}")

    print_summary(a, bench, base, results, w2)
    for n in bench.notes:
        log("note: " + n)
    log(f"total {bench.elapsed():.0f} s")
    return 0 if ok else 1


def print_summary(a, bench, base, results, w2):
    b50 = bench.base_p50
    what = "172-byte RTP" if a.case == "plain" else f"SRTP<->RTP: side A {SRTP_SUITE} 182 bytes, side B RTP 172"
    out = [f"relay_pps ({what}, {a.streams} streams = {2 * a.streams} flows; relay pinned to 1 "
           f"core, generator on the other; loss <= {a.max_loss:g}% is clean):"]
    out.append(f"  direct path, no relay, at {fmt_rate(a.fixed_rate)}pps: p50={base.res['p50_us']:.0f}µs "
               f"p99={base.res['p99_us']:.0f}µs loss={base.loss:.3f}% (added latency = latency - "
               f"{b50:.0f}µs)")
    fixed = {}
    for name, (steps, best, hold) in results.items():
        for st in steps:
            if st.rate == a.fixed_rate:
                fixed[name] = st
                break
    parts = []
    for name in results:
        st = fixed.get(name)
        if st is None:
            parts.append(f"{name} n/a")
            continue
        parts.append(f"{name} cpu={100 * st.cpu_frac:.1f}% p50={st.p('p50_us', b50):.0f}µs "
                     f"p99={st.p('p99_us', b50):.0f}µs loss={st.loss:.3f}% "
                     f"({st.pps_core / 1000:.0f}k pps/core)")
    out.append(f"  at {fmt_rate(a.fixed_rate)}pps: " + " | ".join(parts))
    best = {}
    parts = []
    for name, (steps, b, hold) in results.items():
        ref = hold if hold is not None and hold.clean(a.max_loss) else b
        if ref is None:
            parts.append(f"{name} none clean")
            continue
        best[name] = ref
        tag = " (gen-limited)" if ref.gen_limited or (b and b.gen_limited) else ""
        held = f", held {ref.seconds:g}s" if ref is hold else ", step only (hold unclean)" if hold else ""
        parts.append(f"{name} {ref.rx_pps:,.0f} pps{tag} ({ref.pps_core:,.0f} pps/core at "
                     f"{100 * ref.cpu_frac:.0f}% cpu, loss={ref.loss:.3f}% p99={ref.p('p99_us', b50):.0f}µs"
                     f"{held})")
    out.append("  max clean: " + " | ".join(parts))
    unclean = []
    for name, (steps, b, hold) in results.items():
        bad = [s for s in steps if not s.clean(a.max_loss)]
        if bad:
            s = bad[0]
            unclean.append(f"{name} {fmt_rate(s.rate)}: loss={s.loss:.2f}% fwd={s.rx_pps / 1000:.0f}k/s")
    if unclean:
        out.append("  first unclean step: " + " | ".join(unclean))
    ours = [rm for rm in ("relais-media", "relais-media-xdp") if rm in best]
    for rm in ours:
        ratios = []
        for other in ("rtpengine", "bare"):
            if other in best:
                ratios.append(f"{rm}/{other} = {best[rm].pps_core / best[other].pps_core:.2f}× pps/core at max "
                              f"({best[rm].rx_pps / best[other].rx_pps:.2f}× max rate)")
        for other in ("rtpengine", "bare"):
            if rm in fixed and other in fixed:
                ratios.append(f"{rm}/{other} at {fmt_rate(a.fixed_rate)} = "
                              f"{fixed[rm].pps_core / fixed[other].pps_core:.2f}× pps/core")
        if ratios:
            out.append("  ratios: " + ", ".join(ratios))
    if w2:
        out.append("  relais-media --workers 2 (both cores, shared with the generator): " + " | ".join(
            f"{fmt_rate(s.rate)}: fwd {s.rx_pps:,.0f} pps cpu={100 * s.cpu_frac:.0f}% "
            f"({s.pps_core:,.0f} pps/core) loss={s.loss:.3f}% p99={s.p('p99_us', b50):.0f}µs"
            for s in w2))
    for rm in ours:
        goal_lines(out, a, rm, best, fixed, b50)
    print("\n".join(out), flush=True)


def goal_lines(out, a, rm, best, fixed, b50):
    if a.case == "srtp":
        if "rtpengine" in best:
            r = best[rm].pps_core / best["rtpengine"].pps_core
            out.append(f"  goals ({rm}): SRTP<->RTP >= 1.5× rtpengine pps/core: {'PASS' if r >= 1.5 else 'FAIL'} ({r:.2f}×)")
    else:
        goals = []
        if "rtpengine" in best:
            r = best[rm].pps_core / best["rtpengine"].pps_core
            goals.append(f">= 2× rtpengine pps/core: {'PASS' if r >= 2 else 'FAIL'} ({r:.2f}×)")
        if "bare" in best:
            r = best[rm].pps_core / best["bare"].pps_core
            goals.append(f">= 0.8× bare pps/core: {'PASS' if r >= 0.8 else 'FAIL'} ({r:.2f}×)")
        if rm in fixed:
            p99 = fixed[rm].p("p99_us", b50)
            goals.append(f"p99 added < 100µs at {fmt_rate(a.fixed_rate)}: {'PASS' if p99 < 100 else 'FAIL'} "
                         f"({p99:.0f}µs)")
        out.append(f"  goals ({rm}): " + "; ".join(goals))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
