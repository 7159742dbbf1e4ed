"""relais_harness.py — shared pieces of the integration tests: free ports, a relais process, a
redis-server process, sub-check reporting and a sipp runner; it re-exports the SIP client of
sip_uac.py (UDP/TCP, Digest MD5/SHA-256, the REGISTER 401 flow).

Every test imports it from its own directory. Every external process started here is
registered, bounded by a timeout and killed when the test ends, even on failure.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")

# Whole-file budget: ctest allows 300 s; the suite must stay near 3 minutes in total.
TEST_BUDGET_S = 150

_children = []          # every Popen we started, killed at exit
_tempdirs = []          # removed at exit unless RELAIS_KEEP_TMP is set
_relais_instances = []  # for log dumps on failure


sys.path.insert(0, HERE)
from sip_uac import *  # noqa: F401,F403,E402 - the SIP client is part of the harness API
from sip_uac import DOMAIN, SipClient, expect_status, fail  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Environment and process bookkeeping


def relais_bin():
    path = os.environ.get("RELAIS_BIN")
    if not path:
        guess = os.path.join(source_dir(), "build", "relais")
        fail("RELAIS_BIN is not set (expected the relais binary, e.g. %s)" % guess)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        fail("RELAIS_BIN=%s is not an executable file" % path)
    return path


def source_dir():
    return os.environ.get("RELAIS_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))


def require_tool(name):
    """A test that needs a tool fails (never skips) when it is missing."""
    path = shutil.which(name)
    if not path:
        fail("required tool '%s' is not installed (see Makefile DEPS / `make deps`)" % name)
    return path


def make_tempdir(tag):
    d = tempfile.mkdtemp(prefix="relais-it-%s-" % tag)
    _tempdirs.append(d)
    return d


def _register_child(proc):
    _children.append(proc)
    return proc


def _kill_children():
    for proc in _children:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                try:
                    proc.kill()
                except OSError:
                    pass
    for proc in _children:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _cleanup():
    _kill_children()
    if not os.environ.get("RELAIS_KEEP_TMP"):
        for d in _tempdirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def popen(args, **kw):
    """Popen in its own process group (so a whole tree can be killed), registered for cleanup."""
    kw.setdefault("start_new_session", True)
    return _register_child(subprocess.Popen(args, **kw))


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# Sub-checks: a test file runs many independent checks and reports every failing one.

class Checks:
    def __init__(self):
        self.results = []  # (name, ok, detail)

    def run(self, name, fn, *args, **kw):
        log("--- check: %s" % name)
        t0 = time.monotonic()
        try:
            fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the test goes on
            detail = "%s: %s" % (type(e).__name__, e)
            log("FAIL %s (%.1fs)\n%s" % (name, time.monotonic() - t0, traceback.format_exc()))
            self.results.append((name, False, detail))
            return False
        log("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
        self.results.append((name, True, ""))
        return True

    def failed(self):
        return [r for r in self.results if not r[1]]

    def summary(self):
        log("=== summary")
        for name, ok, detail in self.results:
            log("%s %s%s" % ("PASS" if ok else "FAIL", name, ("  -- " + detail) if detail else ""))
        return not self.failed()


def main(test_fn):
    """Run test_fn(checks) with a watchdog; exit 0 only if no check failed and nothing raised."""
    def watchdog():
        log("WATCHDOG: test exceeded %d s, killing children" % TEST_BUDGET_S)
        dump_relais_logs()
        _kill_children()
        os._exit(3)

    timer = threading.Timer(TEST_BUDGET_S, watchdog)
    timer.daemon = True
    timer.start()
    checks = Checks()
    ok = False
    try:
        test_fn(checks)
        ok = checks.summary()
        if not checks.results:
            log("FAIL: the test ran no checks")
            ok = False
    except Exception:  # noqa: BLE001
        log("FAIL: test aborted\n" + traceback.format_exc())
        checks.summary()
        ok = False
    finally:
        timer.cancel()
    if not ok:
        dump_relais_logs()
    _cleanup()
    sys.exit(0 if ok else 1)


def dump_relais_logs(tail=200):
    for r in _relais_instances:
        lines = r.log_lines()
        log("=== relais log (%s, %s, last %d of %d lines)" % (r.name, r.workdir, min(tail, len(lines)),
                                                               len(lines)))
        for line in lines[-tail:]:
            log("  | " + line)


# ----------------------------------------------------------------------------------------------
# Ports

def _bindable(family, kind, host, port):
    s = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ipv6_available():
    """True when a UDP socket can bind [::1]; the reason is printed when it cannot."""
    if not socket.has_ipv6:
        log("ipv6 unavailable: python built without IPv6")
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError as e:
        log("ipv6 unavailable: cannot bind [::1]: %s" % e)
        return False


def free_port(host="127.0.0.1", udp=True, tcp=True, also_ipv6=False):
    """A port free for both UDP and TCP on host (and on ::1 when asked). Bounded retries."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        if udp and not _bindable(socket.AF_INET, socket.SOCK_DGRAM, host, port):
            ok = False
        if tcp and not _bindable(socket.AF_INET, socket.SOCK_STREAM, host, port):
            ok = False
        if ok and also_ipv6:
            ok = _bindable(socket.AF_INET6, socket.SOCK_DGRAM, "::1", port) and \
                 _bindable(socket.AF_INET6, socket.SOCK_STREAM, "::1", port)
        if ok:
            return port
    fail("no free port found after 200 tries")


# ----------------------------------------------------------------------------------------------
# Lua config writer

_LUA_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_lua(value, indent=0):
    pad = "  " * indent
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(to_lua(v, indent + 1) for v in value) + " }"
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = k if _LUA_IDENT.match(k) else "[%s]" % to_lua(str(k))
            items.append("%s  %s = %s," % (pad, key, to_lua(v, indent + 1)))
        return "{\n" + "\n".join(items) + "\n" + pad + "}"
    fail("cannot write %r as Lua" % (value,))


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


SECRET = "integration-secret-0123456789"


def user_password(user):
    return "pw-%s-secret" % user


def default_users():
    users = {str(u): {"password": user_password(u)} for u in range(100, 121)}
    users["200"] = {"password": user_password(200)}
    return users


# ----------------------------------------------------------------------------------------------
# relais process

class Relais:
    """A relais process on free ports with a temp config.

    config: dict merged over a default config (or a full Lua text); sets: extra --set args;
    script: Lua text of the hook script (written next to the config).
    """

    def __init__(self, config=None, sets=(), script=None, name="relais", port=None,
                 transports=("udp", "tcp"), ipv6=False, workdir=None, ready_timeout=15,
                 expect_exit=0):
        self.name = name
        self.workdir = workdir or make_tempdir(name)
        self.host = "127.0.0.1"
        self.auto_port = port is None and not isinstance(config, str)
        self.port = port or free_port(also_ipv6=ipv6)
        self._transports, self._ipv6 = transports, ipv6
        self.sets = list(sets)
        self.ready_timeout = ready_timeout
        self.expect_exit = expect_exit
        self.proc = None
        self._lines = []
        self._lock = threading.Lock()
        self._readers = []
        self.config_path = os.path.join(self.workdir, "relais.lua")
        self.db_path = os.path.join(self.workdir, "relais.db")
        self.log_path = os.path.join(self.workdir, "relais.log")
        if script is not None:
            with open(os.path.join(self.workdir, "dialplan.lua"), "w") as f:
                f.write(script)
        if isinstance(config, str):
            text = config
            self.config = None
        else:
            base = {
                "node_id": name,
                "log_level": "info",
                "domain": DOMAIN,
                "sip": {"listen": self._listen(), "max_message_size": 65536},
                "registrar": {"min_expires": 60, "max_expires": 3600, "default_expires": 3600,
                              "max_contacts": 3},
                "auth": {"algorithms": ["SHA-256", "MD5"], "nonce_ttl": 300, "secret": SECRET},
                "store": {"backend": "sqlite", "path": self.db_path},
                # Tests of signalling run without a media relay; media tests set "relay".
                "media": {"mode": "passthrough"},
                "users": default_users(),
            }
            if script is not None:
                base["script"] = "dialplan.lua"
            self.config = deep_merge(base, config or {})
            text = "-- generated by relais_harness.py\nreturn " + to_lua(self.config) + "\n"
        self.write_config(text)
        _relais_instances.append(self)

    def _listen(self):
        listen = ["%s:%s:%d" % (t, self.host, self.port) for t in self._transports]
        if self._ipv6:
            listen.append("udp:[::1]:%d" % self.port)
        return listen

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def update_config(self, over):
        self.config = deep_merge(self.config, over)
        self.write_config("-- generated by relais_harness.py\nreturn " + to_lua(self.config) + "\n")

    # -- lifecycle

    def argv(self):
        args = [relais_bin(), "--config", self.config_path]
        for s in self.sets:
            args += ["--set", s]
        return args

    def start(self):
        """Start and wait for event=ready. A port taken meanwhile by a parallel test (free_port
        races) is retried on a new port, at most 3 times, when the harness chose the port."""
        for attempt in range(3):
            try:
                return self._start_once()
            except AssertionError:
                lost_race = self.auto_port and self.proc.poll() is not None and any(
                    "in use" in l.lower() for l in self.log_since(self._start_mark))
                if not lost_race or attempt == 2:
                    raise
                self.port = free_port(also_ipv6=self._ipv6)
                self._append("### port in use, retrying on %d" % self.port)
                self.update_config({"sip": {"listen": self._listen()}})

    def _start_once(self):
        if self.proc and self.proc.poll() is None:
            fail("relais %s already running" % self.name)
        mark = self._start_mark = len(self._lines)
        self._append("### start: " + " ".join(self.argv()))
        self.proc = popen(self.argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._readers = []
        for stream, tag in ((self.proc.stderr, ""), (self.proc.stdout, "[stdout] ")):
            t = threading.Thread(target=self._reader, args=(stream, tag), daemon=True)
            t.start()
            self._readers.append(t)
        self.wait_log("event=ready", timeout=self.ready_timeout, since=mark, what="startup")
        return self

    def _append(self, line):
        with self._lock:
            self._lines.append(line)
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def _reader(self, stream, tag):
        for raw in iter(stream.readline, b""):
            self._append(tag + raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def wait_log(self, needle, timeout=10, since=0, what=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self._lines[since:]:
                    if needle in line:
                        return line
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers drain
                with self._lock:
                    for line in self._lines[since:]:
                        if needle in line:
                            return line
                fail("relais %s exited with %s before logging %r (%s); log tail:\n%s" % (
                    self.name, self.proc.returncode, needle, what or "", self.log_tail()))
            time.sleep(0.05)
        fail("relais %s did not log %r within %ss (%s); log tail:\n%s" % (
            self.name, needle, timeout, what or "", self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.alive():
            fail("relais %s is not running (exit %s)" % (self.name, self.proc and self.proc.returncode))
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, wait, and check the exit code. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._append("### SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
                for t in self._readers:
                    t.join(timeout=2)
                fail("relais %s did not exit within %ss of SIGTERM (killed)" % (self.name, timeout))
        for t in self._readers:
            t.join(timeout=2)
        rc = self.proc.returncode
        if not self._lines or not self._lines[-1].startswith("### exit code"):
            self._append("### exit code %s" % rc)
        if self.expect_exit is not None and rc != self.expect_exit:
            fail("relais %s exited with %s at SIGTERM, expected %s; log tail:\n%s" % (
                self.name, rc, self.expect_exit, self.log_tail()))
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            try:
                self.stop()
            except Exception as e:  # noqa: BLE001 - do not hide the original failure
                log("(while unwinding) %s" % e)
                self.kill()
        return False

    # -- logs

    def log_lines(self):
        with self._lock:
            return list(self._lines)

    def log_text(self):
        return "\n".join(self.log_lines())

    def log_tail(self, n=40):
        return "\n".join("  | " + l for l in self.log_lines()[-n:])

    def log_mark(self):
        with self._lock:
            return len(self._lines)

    def log_since(self, mark):
        with self._lock:
            return self._lines[mark:]

    # -- addressing

    def addr(self):
        return (self.host, self.port)

    def client(self, transport="udp", **kw):
        return SipClient(self.host, self.port, transport=transport, **kw)


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
# sipp

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
    files = {}
    for name in sorted(os.listdir(workdir)):
        p = os.path.join(workdir, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                files[name] = f.read().decode("utf-8", "replace")
    return SippResult(proc.returncode, out.decode("utf-8", "replace"),
                      err.decode("utf-8", "replace"), workdir, files)


# ----------------------------------------------------------------------------------------------
# Small assertion helpers





def sqlite_search(path, needle):
    """Rows (table, row text) of any table of the sqlite file whose text contains needle."""
    import sqlite3
    if not os.path.exists(path):
        return []
    hits = []
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=2)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            for row in con.execute('SELECT * FROM "%s"' % t.replace('"', '""')):
                text = " | ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                  for v in row)
                if needle.lower() in text.lower():
                    hits.append((t, text))
    finally:
        con.close()
    return hits


def bindings_of(client, user, password=None, **kw):
    """Query the AoR and return {contact uri: expires} (fails unless the answer is 200)."""
    r = client.query(user, password or user_password(user), **kw)
    expect_status(r, 200, "query of %s" % user)
    return r.contact_expires()


def wait_until(fn, timeout=5.0, interval=0.2, what="condition"):
    """Poll fn() until truthy; bounded. Returns the value; fails on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    fail("timed out after %.1fs waiting for %s (last value %r)" % (timeout, what, last))


# ----------------------------------------------------------------------------------------------
# Calls: sipp in the background, sipp message traces, contacts registered from a given port


def udp_port_bound(port, host="127.0.0.1"):
    """True when some process has a UDP socket bound to host:port (read from /proc, no bind
    race with the process that is about to take it)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                local = line.split()[1]
                if local == want or local == "00000000:%04X" % port:
                    return True
    except OSError:
        pass
    return False


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
        files = {}
        for name in sorted(os.listdir(self.workdir)):
            p = os.path.join(self.workdir, name)
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    files[name] = f.read().decode("utf-8", "replace")
        self.result = SippResult(self.proc.returncode,
                                 self._out.get("out", b"").decode("utf-8", "replace"),
                                 self._out.get("err", b"").decode("utf-8", "replace"),
                                 self.workdir, files)
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


def register_from_port(relais, user, port, password=None, expires=300, contact_user=None):
    """REGISTER user with Contact sip:user@127.0.0.1:port, sent from that same UDP port (so a
    registrar that records the source address, NAT-style, still points at it). The socket is
    closed afterwards so a sipp can take the port."""
    c = relais.client("udp")
    try:
        c.sock.close()
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.sock.bind(("127.0.0.1", port))
        c.local_port = port
        contact = "sip:%s@127.0.0.1:%d" % (contact_user or user, port)
        r, _ = c.register(user, password or user_password(user), contacts=["<%s>" % contact],
                          expires=expires)
        expect_status(r, 200, "REGISTER %s with contact %s" % (user, contact))
        return contact
    finally:
        c.close()


def script_logs(relais, since=0):
    """The msg texts of the event=script.log lines (relais.log from a script) since a mark."""
    out = []
    for line in relais.log_since(since):
        if "event=script.log" not in line:
            continue
        m = re.search(r'msg="((?:[^"\\]|\\.)*)"', line) or re.search(r"msg=(\S+)", line)
        out.append(m.group(1) if m else line)
    return out


def free_media_port():
    """A UDP port p with p and p+2 free (sipp -mp binds the audio port and the one two above)."""
    for _ in range(100):
        p = free_port(tcp=False)
        if p < 65530 and _bindable(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", p + 2):
            return p
    fail("no free media port pair found")


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


# ----------------------------------------------------------------------------------------------
# Kamailio as a test peer (an operator, a proxy): a .cfg template with @NAME@ placeholders


class Kamailio:
    """A kamailio process in the foreground (-DD -E) on host:port (UDP), from a .cfg template.

    values: {NAME: value} replacing @NAME@ in the template; KAMAILIO_IP, KAMAILIO_PORT and
    CTL_SOCKET (a unix socket for kamcmd, if the cfg loads ctl) are provided. Every placeholder
    must be filled. Its stderr is kept (log_lines, wait_log) and written to kamailio.log."""

    def __init__(self, template, values=None, name="kamailio", host="127.0.0.1", port=None,
                 shm_mb=64, ready_timeout=10):
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
                "-m", str(self.shm_mb), "-M", "8"]

    def start(self):
        check = subprocess.run(["kamailio", "-c", "-f", self.cfg_path, "-Y", self.workdir],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        if check.returncode != 0:
            fail("kamailio -c refused %s:\n%s" % (self.cfg_path, check.stderr.decode(
                "utf-8", "replace")[-3000:]))
        self._append("### start: " + " ".join(self.argv()))
        self.proc = popen(self.argv(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader_thread = threading.Thread(target=self._reader, daemon=True)
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

    def _append(self, line):
        with self._lock:
            self._lines.append(line)
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def _reader(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self._append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.proc.stderr.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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

    # -- logs

    def log_lines(self):
        with self._lock:
            return list(self._lines)

    def log_mark(self):
        with self._lock:
            return len(self._lines)

    def log_since(self, mark):
        with self._lock:
            return self._lines[mark:]

    def log_tail(self, n=40):
        return "\n".join("  | " + l for l in self.log_lines()[-n:])

    def grep(self, needle, since=0):
        return [l for l in self.log_since(since) if needle in l]

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


# ----------------------------------------------------------------------------------------------
# relais-media: bencode, an ng client and the relay process (appended for test_media_*.py)


def bencode(value):
    """Encode str/bytes/int/list/dict (keys sorted, as bencoding requires)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError("cannot bencode %r" % (value,))


def bdecode(data):
    """Decode one bencoded value (strings come back as str, utf-8 with replacement)."""
    def parse(i):
        c = data[i:i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if c == b"l":
            i, out = i + 1, []
            while data[i:i + 1] != b"e":
                v, i = parse(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i, out = i + 1, {}
            while data[i:i + 1] != b"e":
                k, i = parse(i)
                v, i = parse(i)
                out[k] = v
            return out, i + 1
        colon = data.index(b":", i)
        n = int(data[i:colon])
        return data[colon + 1:colon + 1 + n].decode("utf-8", "replace"), colon + 1 + n
    value, end = parse(0)
    if end != len(data):
        raise ValueError("trailing bytes after bencoded value")
    return value


class NgClient:
    """An ng control client on its own UDP socket: request(dict) -> reply dict."""

    def __init__(self, host, port, timeout=2.0):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self._n = 0

    def local_addr(self):
        return self.sock.getsockname()

    def send_raw(self, data):
        self.sock.sendto(data, self.addr)

    def recv_raw(self, timeout=None):
        old = self.sock.gettimeout()
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
            return data
        except socket.timeout:
            return None
        finally:
            self.sock.settimeout(old)

    def request(self, msg, cookie=None, retries=2):
        self._n += 1
        cookie = cookie or "c%d_%d" % (os.getpid(), self._n)
        data = cookie.encode() + b" " + bencode(msg)
        for _ in range(retries + 1):
            self.sock.sendto(data, self.addr)
            deadline = time.monotonic() + self.sock.gettimeout()
            while time.monotonic() < deadline:
                raw = self.recv_raw(timeout=max(0.01, deadline - time.monotonic()))
                if raw is None:
                    break
                c, _, body = raw.partition(b" ")
                if c.decode("utf-8", "replace") == cookie:
                    return bdecode(body)
        fail("no ng reply to %s from %s:%d" % (msg.get("command"), self.addr[0], self.addr[1]))

    def close(self):
        self.sock.close()


def relais_media_bin():
    path = os.environ.get("RELAIS_MEDIA_BIN")
    if not path:
        rb = os.environ.get("RELAIS_BIN")
        path = os.path.join(os.path.dirname(rb), "relais-media") if rb else \
            os.path.join(source_dir(), "build", "relais-media")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        fail("relais-media binary not found at %s (set RELAIS_MEDIA_BIN or RELAIS_BIN)" % path)
    return os.path.abspath(path)


def free_port_range(count, host="127.0.0.1"):
    """A run of `count` consecutive UDP ports (even start) that are free now, in 20000-59999."""
    import random
    for _ in range(200):
        start = random.randrange(20000, 60000 - count) & ~1
        if all(_bindable(socket.AF_INET, socket.SOCK_DGRAM, host, p) for p in range(start, start + count)):
            return start, start + count - 1
    fail("no free UDP port range of %d found" % count)


class RelaisMedia:
    """A relais-media process on free ports; its stderr is kept (log_lines, wait_log)."""

    def __init__(self, workers=1, timeout=60, ports=64, extra=(), name="relais-media"):
        self.name = name
        self.workdir = make_tempdir(name)
        self.ng_port = free_port(tcp=False)
        self.port_min, self.port_max = free_port_range(ports)
        self.args = [relais_media_bin(), "--ng", "127.0.0.1:%d" % self.ng_port, "--address", "127.0.0.1",
                     "--ports", "%d-%d" % (self.port_min, self.port_max), "--workers", str(workers),
                     "--timeout", str(timeout), "--log-level", "debug"] + list(extra)
        self.proc = None
        self._lines = []
        self._lock = threading.Lock()
        self._reader_thread = None
        self.log_path = os.path.join(self.workdir, "relais-media.log")
        _relais_instances.append(self)

    def start(self, ready_timeout=10):
        self._append("### start: " + " ".join(self.args))
        self.proc = popen(self.args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader_thread = threading.Thread(target=self._reader, daemon=True)
        self._reader_thread.start()
        wait_until(lambda: self.grep("event=ready") or self.proc.poll() is not None,
                   timeout=ready_timeout, what="relais-media event=ready")
        if self.proc.poll() is not None:
            time.sleep(0.2)
            fail("relais-media exited with %s at startup:\n%s" % (self.proc.returncode, self.log_tail()))
        return self

    def _append(self, line):
        with self._lock:
            self._lines.append(line)
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def _reader(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self._append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.proc.stderr.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def client(self, timeout=2.0):
        return NgClient("127.0.0.1", self.ng_port, timeout=timeout)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code (fails when it does not exit in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc and self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            fail("relais-media did not exit within %ss of SIGTERM" % timeout)
        if self._reader_thread:
            self._reader_thread.join(timeout=2)
        self._append("### exit code %s" % self.proc.returncode)
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        if self.alive():
            try:
                self.stop()
            except Exception as e:  # noqa: BLE001 - do not hide the original failure
                log("(while unwinding) %s" % e)
        return False

    def log_lines(self):
        with self._lock:
            return list(self._lines)

    def log_mark(self):
        with self._lock:
            return len(self._lines)

    def log_since(self, mark):
        with self._lock:
            return self._lines[mark:]

    def log_tail(self, n=40):
        return "\n".join("  | " + l for l in self.log_lines()[-n:])

    def grep(self, needle, since=0):
        return [l for l in self.log_since(since) if needle in l]

    def wait_log(self, needle, timeout=10, since=0):
        return wait_until(lambda: self.grep(needle, since), timeout=timeout,
                          what="relais-media logging %r" % needle)[0]


def rtp_packet(seq, ts, ssrc, pt=8, payload_len=160, fill=0xd5):
    """A 12-byte RTP header (version 2) + payload: 172 bytes for 20 ms of G.711."""
    import struct
    return struct.pack("!BBHII", 0x80, pt & 0x7f, seq & 0xffff, ts & 0xffffffff, ssrc) + \
        bytes([fill]) * payload_len


def sdp_media_ports(sdp):
    """[(media type, port)] of the m= lines of an SDP body."""
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"(?m)^m=(\S+) (\d+) ", sdp)]


def sdp_connection(sdp):
    m = re.search(r"(?m)^c=IN IP4 (\S+)", sdp)
    return m.group(1) if m else None
