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


