"""sipp_tools.py — sipp for the integration tests: run_sipp (foreground) and start_sipp /
SippProc (background), each under `timeout -s INT` with traces kept; the caller and callee
of one call (sipp_uac, sipp_uas, finish_call); and reading the -trace_msg log back as SIP
messages (sipp_messages, sipp_first, sipp_summary, call_report).
"""

import os
import re
import signal
import subprocess
import threading
import time

from free_ports import free_media_port, free_port, udp_port_bound
from harness_core import SCENARIOS, log, make_tempdir, popen, require_tool
from sip_uac import DOMAIN, fail, parse_message


# ----------------------------------------------------------------------------------------------
# Running sipp


class SippResult:
    def __init__(self, rc, stdout, stderr, workdir, files):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.workdir = workdir
        self.files = files  # {name: text}

    def text(self, suffix):
        return "\n".join(v for k, v in self.files.items() if k.endswith(suffix))

    def report(self):
        out = ["sipp exit code %s (workdir %s)" % (self.rc, self.workdir)]
        if self.stderr.strip():
            out.append("stderr: " + self.stderr.strip()[-1500:])
        for k, v in self.files.items():
            if k.endswith(("_errors.log", "_messages.log", "_screen.log", "_screens.log")):
                out.append("== %s\n%s" % (k, v[-3000:]))
        return "\n".join(out)


def _trace_files(workdir):
    """{name: text} of every file sipp left in its workdir (traces, screens, stats)."""
    files = {}
    for name in sorted(os.listdir(workdir)):
        p = os.path.join(workdir, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                files[name] = f.read().decode("utf-8", "replace")
    return files


def run_sipp(target, scenario=None, args=(), timeout=20, workdir=None):
    """Run sipp against target ("host:port"). scenario: path to an XML file or a builtin name
    ("-sn uac"); always under `timeout -s INT`, with error/message/screen traces kept."""
    require_tool("sipp")
    require_tool("timeout")
    workdir = workdir or make_tempdir("sipp")
    argv = ["timeout", "-s", "INT", "-k", "5", str(timeout), "sipp", target]
    if scenario:
        if scenario.startswith("-sn"):
            argv += scenario.split()
        else:
            argv += ["-sf", scenario]
    argv += ["-nostdin", "-trace_err", "-trace_msg", "-trace_screen", "-trace_stat",
             "-timeout", "%ds" % max(1, timeout - 3), "-timeout_error"]
    argv += list(args)
    log("run: " + " ".join(argv))
    proc = popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=5)
    return SippResult(proc.returncode, out.decode("utf-8", "replace"),
                      err.decode("utf-8", "replace"), workdir, _trace_files(workdir))


class SippProc:
    """A sipp started in the background (a UAS, or a UAC run beside another); wait() gives the
    SippResult like run_sipp."""

    def __init__(self, argv, workdir, timeout, port=None):
        self.argv, self.workdir, self.timeout, self.port = argv, workdir, timeout, port
        log("start: " + " ".join(argv))
        self.proc = popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
        self._out = {}
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()
        self.result = None

    def _collect(self):
        try:
            out, err = self.proc.communicate(timeout=self.timeout + 15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate(timeout=5)
        self._out = {"out": out, "err": err}

    def wait_ready(self, timeout=5.0):
        """Wait until sipp listens on its UDP port (a UAS must, before the call is placed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port and udp_port_bound(self.port):
                time.sleep(0.1)
                return self
            if self.proc.poll() is not None:
                fail("sipp exited with %s before listening on %s:\n%s" % (
                    self.proc.returncode, self.port, self.wait().report()))
            time.sleep(0.05)
        fail("sipp did not bind UDP port %s within %ss" % (self.port, timeout))

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout=None):
        """Wait for the exit (bounded by the sipp timeout) and return its SippResult."""
        if self.result is not None:
            return self.result
        self._thread.join(timeout if timeout is not None else self.timeout + 25)
        if self._thread.is_alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self._thread.join(10)
        self.result = SippResult(self.proc.returncode,
                                 self._out.get("out", b"").decode("utf-8", "replace"),
                                 self._out.get("err", b"").decode("utf-8", "replace"),
                                 self.workdir, _trace_files(self.workdir))
        return self.result

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except OSError:
                pass
        return self.wait()


def start_sipp(target, scenario, args=(), timeout=20, workdir=None, port=None):
    """Start sipp in the background: target "host:port" (None for a UAS), scenario an XML path;
    always under `timeout -s INT`, with error/message/screen traces kept. port: the -p port, used
    by wait_ready()."""
    require_tool("sipp")
    require_tool("timeout")
    workdir = workdir or make_tempdir("sipp")
    argv = ["timeout", "-s", "INT", "-k", "5", str(timeout), "sipp"]
    if target:
        argv.append(target)
    argv += ["-sf", scenario, "-nostdin", "-trace_err", "-trace_msg", "-trace_screen",
             "-trace_stat", "-timeout", "%ds" % max(1, timeout - 3), "-timeout_error"]
    argv += list(args)
    return SippProc(argv, workdir, timeout, port=port)


# ----------------------------------------------------------------------------------------------
# One call: a sipp caller through relais to sipp callees


def sipp_uas(scenario, port=None, timeout=20, args=()):
    """A sipp callee on 127.0.0.1:port (free when not given) running scenarios/<scenario> for
    one call; returns the SippProc once it listens."""
    port = port or free_port()
    argv = ["-i", "127.0.0.1", "-p", str(port), "-mp", str(free_media_port()), "-m", "1"]
    proc = start_sipp(None, os.path.join(SCENARIOS, scenario), argv + list(args),
                      timeout=timeout, port=port)
    return proc.wait_ready()


def sipp_uac(relais, scenario, service, caller="100", timeout=20, args=(), port=None):
    """A sipp caller placing one call to relais: Request-URI sip:<service>@relais, From
    <caller>@DOMAIN (keys [caller], [domain] of the call_uac_*.xml scenarios)."""
    port = port or free_port()
    argv = ["-i", "127.0.0.1", "-p", str(port), "-mp", str(free_media_port()), "-m", "1",
            "-l", "1", "-s", service, "-key", "caller", caller, "-key", "domain", DOMAIN]
    return start_sipp("%s:%d" % relais.addr(), os.path.join(SCENARIOS, scenario),
                      argv + list(args), timeout=timeout, port=port)


def finish_call(uac, uases=(), grace=3.0):
    """Wait for the caller sipp, then the callees. When the caller failed, callees still waiting
    get `grace` seconds and are then stopped, so a broken call does not cost their whole
    timeout. Returns (uac result, [uas results])."""
    ru = uac.wait()
    results = []
    deadline = time.monotonic() + grace
    for p in uases:
        if ru.rc != 0:
            while p.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            results.append(p.stop())
        else:
            results.append(p.wait())
    return ru, results


# ----------------------------------------------------------------------------------------------
# sipp message traces


def sipp_messages(result, direction=None):
    """The SIP messages of a sipp -trace_msg log as [(direction, SipMessage)], direction "sent"
    or "received"; filtered to one direction when asked."""
    out = []
    text = result.text("_messages.log")
    for chunk in re.split(r"(?m)^-{20,}.*$", text):
        m = re.search(r"(?m)^\s*(?:UDP|TCP)\s+message\s+(sent|received)\b.*$", chunk)
        if not m:
            continue
        raw = chunk[m.end():].lstrip("\r\n")
        raw = raw.replace("\r\n", "\n").rstrip("\n")
        if not raw.strip():
            continue
        if "\n\n" not in raw:
            raw += "\n\n"
        try:
            msg = parse_message(raw.replace("\n", "\r\n").encode())
        except ValueError:
            continue
        if direction is None or m.group(1) == direction:
            out.append((m.group(1), msg))
    return out


def sipp_first(result, direction, method=None, status=None, cseq_method=None):
    """First message of a sipp trace in direction matching a method or a status (and the CSeq
    method for responses), or None."""
    for _, msg in sipp_messages(result, direction):
        if method and msg.method != method:
            continue
        if status is not None and msg.status != status:
            continue
        if cseq_method and not (msg.get("cseq") or "").upper().endswith(cseq_method.upper()):
            continue
        if method is None and status is None and msg.status is None:
            continue
        return msg
    return None


def sipp_summary(result, direction=None):
    """One line per traced message: '> INVITE' / '< SIP/2.0 200 OK (CSeq)' for reports."""
    lines = []
    for d, msg in sipp_messages(result, direction):
        lines.append("%s %s  [CSeq: %s]" % (">" if d == "sent" else "<", msg.first_line,
                                            msg.get("cseq", "")))
    return "\n".join(lines) or "(no traced messages)"


def call_report(uac_result, uas_results=(), names=None):
    """Readable evidence of one call: each sipp's exit code and message flow, then its errors."""
    out = ["caller sipp exit %s:\n%s" % (uac_result.rc, sipp_summary(uac_result))]
    for i, r in enumerate(uas_results):
        name = names[i] if names else "callee %d" % (i + 1)
        out.append("%s sipp exit %s:\n%s" % (name, r.rc, sipp_summary(r)))
    for r in [uac_result] + list(uas_results):
        if r.rc != 0:
            out.append(r.report())
    return "\n".join(out)
