"""test_sbc.py — the SBC protections against real attack tools, each attacker on its own loopback
address (127.0.0.x are all local on Linux) so its ban does not touch the legitimate clients on
127.0.0.1, and with the loopback exemption off: sipvicious svcrack (wrong passwords) is banned
after at most 5 failures and then gets no answer at all; svwar (extension scan, User-Agent
friendly-scanner) is dropped and banned at its first request; a deny-listed source gets nothing,
an allow-listed one is never limited or banned; a source over its rate is cut to burst + rate
(then answered 503 after a reload to action "503"); a script bans (relais.sbc.ban, a honeypot
account) and unbans; a user with one call up gets 503 on a second one; a sipp REGISTER flood at
ten times relais's measured capacity (digest registrations it completes a second, measured
first with sipp as in tests/bench/register.py) leaves it up with bounded memory, and a
legitimate call placed right after connects. The Server header names no version."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

CRACKER = "127.0.0.2"   # svcrack
SCANNER = "127.0.0.3"   # svwar
LIMITED = "127.0.0.4"   # a source over its rate
FLOOD = ("127.0.0.5", "127.0.0.7")  # the sipp flood
HONEYPOT = "127.0.0.6"  # banned and unbanned by the script
ALLOWED = "127.0.0.8"   # sbc.allow
DENIED = "127.0.0.9"    # sbc.deny

SCRIPT = r"""
-- test_sbc.py dialplan: user 119 is a honeypot account (whoever registers it is banned by the
-- script); registering 118 lifts the ban of the honeypot source.
function on_register(req)
  if req.user == "119" then
    local ok = relais.sbc.ban(req.source_ip, 120)
    local banned, left = relais.sbc.is_banned(req.source_ip)
    relais.log(string.format("honeypot %s ban=%s banned=%s left=%d", req.source_ip, tostring(ok),
                             tostring(banned), left or -1))
    return 403, "Forbidden"
  end
  if req.user == "118" then
    relais.log("unban " .. tostring(relais.sbc.unban("@HONEYPOT@")))
  end
end
"""

SDP = ("v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def silent(relais, source, what, timeout=1.5):
    """An OPTIONS from `source` must get no answer at all."""
    with h.SipClient(relais.host, relais.port, local_host=source) as c:
        r = c.options(timeout=timeout)
        if r is not None:
            h.fail("%s: %s got %s, expected no answer" % (what, source, r.first_line))


def answered(relais, source, what):
    with h.SipClient(relais.host, relais.port, local_host=source) as c:
        return h.expect_status(c.options(), 200, "%s: OPTIONS from %s" % (what, source))


def blast_options(relais, source, count):
    """Sends `count` OPTIONS back to back from one socket, then collects answers for 2 s.
    Returns {status: n}."""
    statuses = {}
    with h.SipClient(relais.host, relais.port, local_host=source) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        uri = "sip:%s" % c.server_uri_host()
        for _ in range(count):
            c.send_raw(c.build_request("OPTIONS", uri, "sip:probe@%s" % h.DOMAIN, uri,
                                       h.new_call_id(), 1))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            m = c.recv_message(timeout=max(0.05, deadline - time.monotonic()))
            if m is None:
                break
            if m.status:
                statuses[m.status] = statuses.get(m.status, 0) + 1
                if m.status == 503 and not m.get("retry-after"):
                    h.fail("503 for a rate-limited source without Retry-After: %s" % m.summary())
    return statuses


class Call:
    """An INVITE from a SipClient through relais, answering the 407 with the user's password."""

    def __init__(self, c, relais, caller, callee):
        self.c, self.caller = c, caller
        self.ruri = "sip:%s@%s:%d" % (callee, relais.host, relais.port)
        self.from_uri, self.to_uri = "sip:%s@%s" % (caller, h.DOMAIN), "sip:%s@%s" % (callee, h.DOMAIN)
        self.call_id, self.tag, self.to = h.new_call_id(), h.new_tag(), None

    def _send(self, method, cseq, extra=(), body=b"", uri=None, to=None, branch=None):
        data = self.c.build_request(method, uri or self.ruri, self.from_uri, self.to_uri, self.call_id,
                                    cseq, headers=list(extra), body=body, from_tag=self.tag,
                                    branch=branch)
        if to:  # the To with the far end's tag, for ACK and BYE
            data = re.sub(rb"\r\nTo: [^\r]*", b"\r\nTo: " + to.encode(), data, count=1)
        return data

    def _ack_failure(self, response, branch, cseq):
        # RFC 3261 §17.1.1.3: the ACK of a non-2xx shares the INVITE's branch and the To tag.
        self.c.send_raw(self._send("ACK", cseq, branch=branch, to=response.get("to")))

    def invite(self, password):
        contact = ["Contact: <sip:%s@%s>" % (self.caller, self.c.local_hostport()),
                   "Content-Type: application/sdp"]
        branch = h.new_branch()
        r = self.c.transaction(self._send("INVITE", 1, contact, SDP, branch=branch), self.call_id, 1)
        h.expect_status(r, 407, "INVITE from %s without credentials" % self.caller)
        self._ack_failure(r, branch, 1)
        chal = r.challenges("proxy-authenticate")[0]
        auth = h.digest_response(chal, "INVITE", self.ruri, self.caller, password, nc=1)
        branch = h.new_branch()
        final = self.c.transaction(self._send("INVITE", 2, contact + ["Proxy-Authorization: %s" % auth],
                                              SDP, branch=branch), self.call_id, 2, timeout=10)
        if final is None:
            h.fail("no final answer to the authenticated INVITE from %s" % self.caller)
        if final.status >= 300:
            self._ack_failure(final, branch, 2)
        else:
            self.to = final.get("to")
            self.c.send_raw(self._send("ACK", 2, to=self.to))
        return final

    def bye(self):
        r = self.c.transaction(self._send("BYE", 3, to=self.to), self.call_id, 3)
        h.expect_status(r, 200, "BYE of the first call")


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        return resp.read().decode()


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


# The flood: FLOOD_FACTOR times relais's measured capacity for FLOOD_SECONDS; the achieved rate
# (sipp's start-up and exit included) must be at least 9.5x, and is ~11.5x on a quiet machine.
FLOOD_FACTOR = 12
FLOOD_SECONDS = 5
FLOOD_PROCESSES = 2  # sipp flood processes per flooding address (one sends ~300k/s at most here)
FLOOD_BATCH = 20     # REGISTERs per sipp call: sipp opens calls far slower than it sends messages
MEASURE_CLIENTS = 2  # sipp clients measuring the capacity, each with
MEASURE_IN_FLIGHT = 500  # registrations in flight


def udp_drops(port):
    """Datagrams the kernel dropped at the UDP socket(s) bound to `port` (receive buffer full)."""
    total = 0
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":%04X" % port):
                total += int(fields[-1])
    return total


def quiet_sipp(target, scenario, args, timeout):
    """A background sipp without message traces: at these rates the harness's -trace_msg would
    write hundreds of MB and cost sipp more than the sending."""
    h.require_tool("sipp")
    argv = ["timeout", "-s", "INT", "-k", "5", str(timeout), "sipp", target, "-sf", scenario, "-nostdin",
            "-timeout", "%ds" % max(1, timeout - 3)] + list(args)
    return h.SippProc(argv, h.make_tempdir("sipp-flood"), timeout)


def flood_scenario(batch):
    """sbc_flood_register.xml with its REGISTER sent `batch` times per sipp call, each with its
    own Call-ID, CSeq and branch (sipp's [branch] includes the message index)."""
    with open(os.path.join(h.SCENARIOS, "sbc_flood_register.xml")) as f:
        text = f.read()
    start, end = text.index("  <send>"), text.index("</send>") + len("</send>\n")
    one = text[start:end]
    sends = "".join(one.replace("Call-ID: [call_id]", "Call-ID: %d-[call_id]" % i)
                       .replace("CSeq: 1 REGISTER", "CSeq: %d REGISTER" % (i + 1)) for i in range(batch))
    path = os.path.join(h.make_tempdir("sbc-flood"), "flood_x%d.xml" % batch)
    with open(path, "w") as f:
        f.write(text[:start] + sends + text[end:])
    return path


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_capacity(relais, target, http_port):
    """relais's capacity: digest registrations it completes a second (REGISTER → 401 → REGISTER
    with Authorization → 200, the unit of tests/bench/register.py) from the allow-listed source,
    with MEASURE_CLIENTS sipp processes each keeping MEASURE_IN_FLIGHT registrations in flight,
    i.e. as fast as relais answers. Counted by relais itself over a 3 s window in the middle of
    the run; relais's and the clients' CPU over the same window say who the bottleneck was."""
    def sample():
        t0 = time.monotonic()
        text = metrics(http_port)
        return (time.monotonic() + t0) / 2, metric(text, 'relais_register_total{result="ok"}') or 0

    _, base = sample()
    user = "110"
    clients = [quiet_sipp(target, os.path.join(h.SCENARIOS, "register_digest.xml"),
                          ["-i", ALLOWED, "-p", str(h.free_port()), "-t", "u1", "-r", "60000", "-rp", "1000",
                           "-l", str(MEASURE_IN_FLIGHT), "-m", "2000000", "-s", user, "-au", user,
                           "-ap", h.user_password(user), "-auth_uri", h.DOMAIN, "-key", "domain", h.DOMAIN],
                          timeout=25) for _ in range(MEASURE_CLIENTS)]
    try:
        h.wait_until(lambda: sample()[1] > base + 2000, timeout=5, interval=0.1,
                     what="the measuring sipps' registrations")
        time.sleep(0.5)
        pids = [relais.proc.pid] + [sipp_pid(c) for c in clients]
        t0, c0 = sample()
        cpu0 = [cpu_seconds(p) for p in pids]
        d0 = udp_drops(relais.port)
        time.sleep(3)
        t1, c1 = sample()
        cpu1 = [cpu_seconds(p) for p in pids]
        d1 = udp_drops(relais.port)
    finally:
        for c in clients:
            c.stop()
    window = t1 - t0
    capacity = (c1 - c0) / window
    shares = [(b - a) / window for a, b in zip(cpu0, cpu1)]
    h.log("capacity: relais completed %d digest registrations in %.2f s = %.0f/s, using %.0f %% of a core "
          "(the %d sipp clients: %s; kernel drops at relais's socket: %d)" % (
              c1 - c0, window, capacity, 100 * shares[0], MEASURE_CLIENTS,
              ", ".join("%.0f %%" % (100 * x) for x in shares[1:]), d1 - d0))
    if capacity < 500:
        h.fail("relais completed only ~%.0f registrations/s from the allow-listed source" % capacity)
    if max(shares[1:]) > 0.9 and shares[0] < 0.9:
        h.fail("a measuring sipp used %.0f %% of a core while relais used %.0f %%: the clients, not relais, "
               "set the rate, so relais's capacity is not measured" % (100 * max(shares[1:]), 100 * shares[0]))
    return capacity


def sipp_pid(proc):
    """The sipp under `timeout` of a SippProc."""
    with open("/proc/%d/task/%d/children" % (proc.proc.pid, proc.proc.pid)) as f:
        children = f.read().split()
    if not children:
        h.fail("sipp under timeout pid %d has exited" % proc.proc.pid)
    return int(children[0])


# sipvicious 0.3.3 ignores its -b (binding address) option: its sockets bind to any address and
# so send from 127.0.0.1. The tool runs unchanged, with bind() moved to the attacker's address,
# as if it ran on another machine.
FROM_SOURCE = r"""
import importlib, socket, sys
sys.path.append("/usr/share/sipvicious")  # where Debian's package keeps the modules
source, tool = sys.argv[1], sys.argv[2]
plain_bind = socket.socket.bind
def bind(self, address):
    if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
        address = (source,) + tuple(address[1:])
    return plain_bind(self, address)
socket.socket.bind = bind
sys.argv = [tool] + sys.argv[3:]
sys.exit(importlib.import_module("sipvicious." + tool).main())
"""


def run_tool(source, argv, timeout=60):
    h.require_tool(argv[0])
    h.log("run from %s: %s" % (source, " ".join(argv)))
    # The interpreter the tool is installed for (Debian's python3, where its package metadata is).
    with open(shutil.which(argv[0])) as f:
        interpreter = f.readline()[2:].split()[0]
    p = subprocess.run([interpreter, "-c", FROM_SOURCE, source] + argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, cwd=h.make_tempdir("sipvicious"))
    out = p.stdout.decode("utf-8", "replace")
    h.log(out[-3000:])
    return out


def test(checks):
    h.require_tool("sipp")
    http_port = h.free_port()
    config = {
        "auth": {"algorithms": ["MD5"]},  # sipp and svcrack answer MD5 only
        "calls": {"authenticate": True, "unknown_sources": "reject", "no_answer_timeout": 30},
        "sbc": {"exempt_loopback": False, "allow": [ALLOWED], "deny": [DENIED],
                "rate": {"requests_per_second": 50, "burst": 100, "action": "drop"},
                "ban": {"failed_auth": 5, "window": 60, "seconds": 600},
                "max_calls_per_user": 1},
        "http": {"listen": "127.0.0.1:%d" % http_port},
    }
    relais = h.Relais(name="sbc", config=config, script=SCRIPT.replace("@HONEYPOT@", HONEYPOT))
    target = None
    with relais:
        target = "%s:%d" % relais.addr()

        def server_header():
            r = answered(relais, "127.0.0.1", "baseline")
            server = r.get("server")
            h.log("Server: %s" % server)
            if server != "relais":
                h.fail("Server header %r: expected \"relais\" (no version, sbc.server_header)" % server)

        def deny_and_allow():
            silent(relais, DENIED, "deny-listed source")
            statuses = blast_options(relais, ALLOWED, 300)
            if statuses.get(200, 0) != 300:
                h.fail("allow-listed source sent 300 OPTIONS at once, got %s (none may be limited)" % statuses)
            with h.SipClient(relais.host, relais.port, local_host=ALLOWED) as c:
                for _ in range(7):
                    r, _ = c.register("101", "wrong-password", contacts=["<%s>" % c.contact_uri("101")])
                    h.expect_status(r, 403, "wrong password from the allow-listed source")
            answered(relais, ALLOWED, "allow-listed source after 7 failures (never banned)")

        def rate_limit():
            statuses = blast_options(relais, LIMITED, 400)
            h.log("400 OPTIONS at once from %s: %s" % (LIMITED, statuses))
            ok = statuses.get(200, 0)
            # burst 100, then 50/s for the second or so the blast and the answers take
            if not 100 <= ok <= 200 or len(statuses) != 1:
                h.fail("rate 50/s, burst 100: %d of 400 answered 200 (%s), expected 100..200 and "
                       "the rest dropped unanswered" % (ok, statuses))
            mark = relais.log_mark()
            relais.update_config({"sbc": {"rate": {"action": "503"}}})
            relais.signal(signal.SIGHUP)
            relais.wait_log("event=reload", since=mark)
            statuses = blast_options(relais, LIMITED, 400)
            h.log("after reload to action 503: %s" % statuses)
            if statuses.get(503, 0) < 150 or statuses.get(200, 0) > 250:
                h.fail("action \"503\": expected most of 400 OPTIONS answered 503, got %s" % statuses)
            mark = relais.log_mark()
            relais.update_config({"sbc": {"rate": {"action": "drop"}}})
            relais.signal(signal.SIGHUP)
            relais.wait_log("event=reload", since=mark)

        def svcrack_banned():
            mark = relais.log_mark()
            words = os.path.join(h.make_tempdir("svcrack"), "words.txt")
            with open(words, "w") as f:
                f.write("\n".join("guess%d" % i for i in range(12)) + "\n")
            # -c: compact headers and no User-Agent, so the ban comes from the failed passwords,
            # not from the scanner User-Agent.
            run_tool(CRACKER, ["svcrack", "-u", "101", "-d", words, "-c", "-P", str(h.free_port()),
                      "-p", str(relais.port), "--maximumtime", "4", relais.host])
            ban = relais.wait_log("event=sbc.ban src=%s reason=failed_auth" % CRACKER, since=mark, timeout=5)
            h.log(ban)
            failures = [l for l in relais.log_since(mark)
                        if "event=register.auth_failed" in l and "src=udp:%s:" % CRACKER in l]
            if not 1 <= len(failures) <= 5:
                h.fail("svcrack: %d failed authentications logged before the ban, expected at most 5:\n%s"
                       % (len(failures), "\n".join(failures)))
            with h.SipClient(relais.host, relais.port, local_host=CRACKER) as c:
                r = c.send_register("101", contacts=["<%s>" % c.contact_uri("101")], expires=60, timeout=2)
                if r is not None:
                    h.fail("banned svcrack source got %s to a REGISTER, expected no answer" % r.first_line)
            answered(relais, "127.0.0.1", "others after the svcrack ban")

        def svwar_dropped():
            mark = relais.log_mark()
            out = run_tool(SCANNER, ["svwar", "-e", "100-140", "-P", str(h.free_port()),
                            "-p", str(relais.port), "--maximumtime", "3", relais.host])
            relais.wait_log("event=sbc.ban src=%s reason=scanner" % SCANNER, since=mark, timeout=5)
            found = re.findall(r"^\|\s*(\d+)\s*\|", out, re.M)
            if found:
                h.fail("svwar found extensions %s: the scanner learnt something" % found)
            if relais.grep("event=register", mark) and any("src=udp:%s:" % SCANNER in l for l in relais.grep("event=register", mark)):
                h.fail("a scanner REGISTER reached the registrar")
            silent(relais, SCANNER, "scanner source after its ban")

        def script_bans():
            mark = relais.log_mark()
            with h.SipClient(relais.host, relais.port, local_host=HONEYPOT) as c:
                r, _ = c.register("119", h.user_password("119"), contacts=["<%s>" % c.contact_uri("119")])
                h.expect_status(r, 403, "REGISTER of the honeypot account")
            relais.wait_log("honeypot", since=mark)
            line = [l for l in h.script_logs(relais, mark) if l.startswith("honeypot")]
            if not line or "ban=true banned=true" not in line[0]:
                h.fail("on_register: relais.sbc.ban/is_banned said %s" % line)
            silent(relais, HONEYPOT, "source banned by the script")
            with relais.client("udp") as c:
                r, _ = c.register("118", h.user_password("118"), contacts=["<%s>" % c.contact_uri("118")])
                h.expect_status(r, 200, "REGISTER 118 (the script unbans the honeypot source)")
            # the script's own line, not event=sbc.unban which relais logs just before it
            relais.wait_log('msg="unban ', since=mark)
            if "unban true" not in h.script_logs(relais, mark):
                h.fail("relais.sbc.unban did not report the lifted ban: %s" % h.script_logs(relais, mark))
            relais.wait_log("event=sbc.unban src=%s reason=script" % HONEYPOT, since=mark)
            answered(relais, HONEYPOT, "source unbanned by the script")

        uas_port = h.free_port()

        def call_limit():
            h.register_from_port(relais, "105", uas_port)
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=30)
            mark = relais.log_mark()
            with relais.client("udp") as c:
                first = Call(c, relais, "100", "105")
                h.expect_status(first.invite(h.user_password("100")), 200, "first call of 100")
                second = Call(c, relais, "100", "105")
                r = second.invite(h.user_password("100"))
                h.expect_status(r, 503, "second simultaneous call of 100 (max_calls_per_user = 1)")
                relais.wait_log("event=call.limit user=100", since=mark)
                first.bye()
            rs = uas.wait()
            if rs.rc != 0:
                h.fail("the callee of the first call failed:\n%s" % rs.report())

        state = {}

        def flood():
            capacity = measure_capacity(relais, target, http_port)
            state["capacity"] = capacity
            time.sleep(1)
            before = metrics(http_port)
            drops_before = udp_drops(relais.port)
            rss_before = vm_rss_kib(relais.proc.pid)
            # FLOOD_FACTOR times that in REGISTERs a second, from two sources (neither allow-listed,
            # so rate limited), FLOOD_PROCESSES sipp processes each.
            procs = [(ip, i) for ip in FLOOD for i in range(FLOOD_PROCESSES)]
            calls_per_s = capacity * FLOOD_FACTOR / FLOOD_BATCH / len(procs)
            scenario = flood_scenario(FLOOD_BATCH)
            started = time.monotonic()
            floods = [quiet_sipp(target, scenario,
                                 ["-i", ip, "-p", str(h.free_port()), "-t", "u1", "-r", "%.0f" % calls_per_s,
                                  "-rp", "1000", "-l", "100000", "-max_sched_loops", "20000",
                                  "-m", "%.0f" % (calls_per_s * FLOOD_SECONDS), "-key", "domain", h.DOMAIN],
                                 timeout=30) for ip, _ in procs]
            peak = rss_before
            while any(f.running() for f in floods):
                peak = max(peak, vm_rss_kib(relais.proc.pid))
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            total = 0
            for f in floods:
                r = f.wait()
                m = re.search(r"Outgoing calls created\s*\|\s*\d+\s*\|\s*(\d+)", r.stdout)
                if not m:
                    h.fail("a flood sipp printed no statistics (exit %s):\n%s" % (r.rc, r.report()))
                total += int(m.group(1)) * FLOOD_BATCH
            time.sleep(0.5)  # relais drains its socket
            after = metrics(http_port)
            # Sent from the start of the first sipp to the exit of the last (their start-up and
            # exit included, so the rate is if anything underestimated).
            achieved = total / max(elapsed, 0.001)
            ratio = achieved / capacity
            limited = (metric(after, "relais_sbc_rate_limited_total") or 0) - (metric(before, "relais_sbc_rate_limited_total") or 0)
            kernel = udp_drops(relais.port) - drops_before
            rss_after = vm_rss_kib(relais.proc.pid)
            h.log("flood: %d sipp processes sent %d REGISTERs in %.2f s = %.0f/s = %.1fx the measured capacity "
                  "(%.0f/s); at relais: %d dropped by the rate limit, %d by the kernel (socket full); "
                  "VmRSS %d -> peak %d -> %d KiB" % (len(procs), total, elapsed, achieved, ratio, capacity,
                                                     limited, kernel, rss_before, peak, rss_after))
            state["flood"] = (achieved, capacity)
            if not relais.alive():
                h.fail("relais died under the flood (exit %s)" % relais.proc.returncode)
            if ratio < 9.5:
                h.fail("the flood reached only %.1fx relais's capacity, want ~10x (sipp starved of CPU here?)" % ratio)
            # What sipp claims to have sent did reach relais: its rate limit or its full socket
            # dropped it.
            if limited + kernel < 0.9 * total:
                h.fail("only %d of %d flood REGISTERs arrived at relais (rate limited %d, kernel drops %d)" % (
                    limited + kernel, total, limited, kernel))
            if limited < total // 10:
                h.fail("relais_sbc_rate_limited_total grew by %d in a flood of %d" % (limited, total))
            # AddressSanitizer keeps freed memory in its quarantine (256 MiB by default) instead
            # of reusing it, so every dropped message grows RSS until the quarantine is full.
            with open("/proc/%d/maps" % relais.proc.pid) as f:
                sanitized = "libasan" in f.read()
            bound = (64 + (256 if sanitized else 0)) * 1024
            if peak - rss_before > bound:
                h.fail("VmRSS grew by %d KiB under the flood (bound: %d MiB%s)" % (
                    peak - rss_before, bound // 1024, ", AddressSanitizer quarantine included" if sanitized else ""))
            if (metric(after, "relais_sbc_sources") or 0) > 1000:
                h.fail("relais_sbc_sources=%s: the source table grew" % metric(after, "relais_sbc_sources"))

        def call_after_flood():
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=20)
            uac = h.sipp_uac(relais, "call_uac_auth.xml", "105", timeout=20,
                             args=["-au", "100", "-ap", h.user_password("100"),
                                   "-auth_uri", "105@%s:%d" % (relais.host, relais.port)])
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs], names=["callee"])
            h.log(report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("the legitimate call right after the flood failed\n%s" % report)

        def counted():
            text = metrics(http_port)
            want = {"relais_sbc_bans_total": 3, 'relais_sbc_dropped_total{reason="denied"}': 1,
                    'relais_sbc_dropped_total{reason="banned"}': 1, 'relais_sbc_dropped_total{reason="scanner"}': 1,
                    'relais_sbc_calls_limited_total{scope="user"}': 1, "relais_sbc_auth_failures_total": 5}
            low = {k: metric(text, k) for k, v in want.items() if (metric(text, k) or 0) < v}
            if low:
                h.fail("metrics below what the test caused: %s\n%s" % (
                    low, "\n".join(l for l in text.splitlines() if "sbc" in l)))

        def clean_log():
            bad = [l for l in relais.log_lines() if any(s in l for s in (
                "AddressSanitizer", "LeakSanitizer", "runtime error:", "Assertion", "Segmentation"))]
            if bad:
                h.fail("relais log shows a crash/sanitizer report:\n" + "\n".join(bad[:20]))

        checks.run("Server header names no version", server_header)
        checks.run("deny-listed source gets nothing; allow-listed is never limited or banned", deny_and_allow)
        checks.run("a source over its rate gets burst + rate, then 503 after a reload", rate_limit)
        checks.run("svcrack is banned after at most 5 wrong passwords, then gets no answer", svcrack_banned)
        checks.run("svwar's scanner User-Agent is dropped and banned, it finds nothing", svwar_dropped)
        checks.run("relais.sbc.ban / is_banned / unban from on_register", script_bans)
        checks.run("a second simultaneous call of a user with max 1 call gets 503", call_limit)
        checks.run("a REGISTER flood at >= 10x the measured capacity: relais up, memory bounded", flood)
        checks.run("a legitimate call right after the flood connects", call_after_flood)
        checks.run("metrics count drops, bans and refused calls", counted)
        checks.run("no sanitizer/assert output in the log", clean_log)
        checks.run("SIGTERM exits 0", relais.stop)


if __name__ == "__main__":
    h.main(test)
