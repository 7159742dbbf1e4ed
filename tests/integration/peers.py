"""peers.py — third-party servers the integration tests run beside relais: redis-server (with
a minimal RESP client) and kamailio from a .cfg template (an operator, a proxy), each on free
ports, bounded in time and killed at exit.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

from free_ports import free_port, udp_port_bound
from harness_core import LogBuffer, make_tempdir, popen, require_tool, wait_until
from sip_uac import fail


# ----------------------------------------------------------------------------------------------
# redis-server


class RedisServer:
    def __init__(self, name="redis"):
        require_tool("redis-server")
        self.workdir = make_tempdir(name)
        self.port = free_port(udp=False)
        self.proc = None
        self.log_path = os.path.join(self.workdir, "redis.log")

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.workdir, "--save", "", "--appendonly", "no",
                "--logfile", self.log_path, "--daemonize", "no", "--protected-mode", "no"]
        self.proc = popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail("redis-server exited with %s: %s" % (self.proc.returncode, self._logtail()))
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        fail("redis-server did not answer PING within 10 s: %s" % self._logtail())

    def _logtail(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def command(self, *args, timeout=3):
        """One RESP command over a fresh connection; returns str, int, list or None."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(out)
            f = s.makefile("rb")
            return _resp_read(f)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False


def _resp_read(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError("redis error: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_resp_read(f) for _ in range(n)]
    raise OSError("bad RESP line %r" % line)


# ----------------------------------------------------------------------------------------------
# Kamailio as a test peer (an operator, a proxy): a .cfg template with @NAME@ placeholders


class Kamailio(LogBuffer):
    """A kamailio process in the foreground (-DD -E) on host:port (UDP), from a .cfg template.

    values: {NAME: value} replacing @NAME@ in the template; KAMAILIO_IP, KAMAILIO_PORT and
    CTL_SOCKET (a unix socket for kamcmd, if the cfg loads ctl) are provided. Every placeholder
    must be filled. Its stderr is kept (log_lines, wait_log) and written to kamailio.log."""

    def __init__(self, template, values=None, name="kamailio", host="127.0.0.1", port=None,
                 shm_mb=64, ready_timeout=10, defines=()):
        require_tool("kamailio")
        self.name = name
        self.host = host
        self.port = port or free_port(host=host, tcp=False)
        self.workdir = make_tempdir(name)
        self.ctl_socket = os.path.join(self.workdir, "kamailio_ctl")
        self.cfg_path = os.path.join(self.workdir, "kamailio.cfg")
        self.log_path = os.path.join(self.workdir, "kamailio.log")
        self.shm_mb = shm_mb
        self.ready_timeout = ready_timeout
        # Preprocessor symbols (-A NAME) for the template's #!ifdef blocks.
        self.defines = [a for d in defines for a in ("-A", d)]
        self.proc = None
        self._lines = []
        self._lock = threading.Lock()
        self._reader_thread = None
        vals = {"KAMAILIO_IP": host, "KAMAILIO_PORT": self.port, "CTL_SOCKET": self.ctl_socket}
        vals.update(values or {})
        with open(template) as f:
            text = f.read()
        for k, v in vals.items():
            text = text.replace("@%s@" % k, str(v))
        left = sorted(set(re.findall(r"@[A-Z][A-Z0-9_]*@", text)))
        if left:
            fail("%s: placeholders without a value: %s" % (template, ", ".join(left)))
        with open(self.cfg_path, "w") as f:
            f.write(text)

    def argv(self):
        return ["kamailio", "-f", self.cfg_path, "-DD", "-E", "-Y", self.workdir,
                "-w", self.workdir, "-P", os.path.join(self.workdir, "kamailio.pid"),
                "-m", str(self.shm_mb), "-M", "8"] + self.defines

    def start(self):
        check = subprocess.run(["kamailio", "-c", "-f", self.cfg_path, "-Y", self.workdir] + self.defines,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        if check.returncode != 0:
            fail("kamailio -c refused %s:\n%s" % (self.cfg_path, check.stderr.decode(
                "utf-8", "replace")[-3000:]))
        self._append("### start: " + " ".join(self.argv()))
        self.proc = popen(self.argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader_thread.start()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.2)
                fail("kamailio exited with %s at startup; log tail:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if udp_port_bound(self.port, self.host) and (
                    "unix:" not in open(self.cfg_path).read() or os.path.exists(self.ctl_socket)):
                time.sleep(0.2)  # the SIP workers start after the socket is bound
                return self
            time.sleep(0.05)
        fail("kamailio did not listen on %s:%d within %ss; log tail:\n%s" % (
            self.host, self.port, self.ready_timeout, self.log_tail()))

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc and self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        if self._reader_thread:
            self._reader_thread.join(timeout=2)
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False

    # -- logs (log_lines, log_mark, log_since, log_tail, grep: LogBuffer)

    def wait_log(self, needle, timeout=10, since=0):
        return wait_until(lambda: self.grep(needle, since), timeout=timeout,
                          what="kamailio %s logging %r" % (self.name, needle))[0]

    # -- control

    def rpc(self, *command, timeout=5):
        """kamcmd over the ctl socket; returns its stdout (fails on a non-zero exit)."""
        require_tool("kamcmd")
        r = subprocess.run(["kamcmd", "-s", "unix:" + self.ctl_socket] + [str(c) for c in command],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            fail("kamcmd %s failed (%s): %s" % (" ".join(map(str, command)), r.returncode,
                                               (r.stdout + r.stderr).decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace")

    def contacts_of(self, aor, table="location"):
        """{contact uri: seconds left} of an AoR in usrloc (ul.lookup); {} when it has none."""
        r = subprocess.run(["kamcmd", "-s", "unix:" + self.ctl_socket, "ul.lookup", table, aor],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=5)
        out = r.stdout.decode("utf-8", "replace")
        if r.returncode != 0:
            if re.search(r"404|not found", out + r.stderr.decode("utf-8", "replace"), re.I):
                return {}
            fail("kamcmd ul.lookup %s %s failed: %s" % (table, aor, out))
        found, uri = {}, None
        for line in out.splitlines():
            m = re.match(r"\s*Address:\s*(\S+)", line)
            if m:
                uri = m.group(1)
                continue
            m = re.match(r"\s*Expires:\s*(-?\d+)", line)
            if m and uri is not None:
                found[uri] = int(m.group(1))
                uri = None
        return found
