"""harness_core.py — the process bookkeeping of the integration tests: binaries and tools,
temp dirs, child processes (each in its own process group, killed at exit with atexit), a
captured-log mixin for the processes we run, sub-check reporting and main() with its watchdog.

Every other harness module builds on this one; tests reach it through relais_harness.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from sip_uac import fail

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")

# Whole-file budget: ctest allows 300 s; the suite must stay near 3 minutes in total.
TEST_BUDGET_S = 150

_children = []          # every Popen we started, killed at exit
_tempdirs = []          # removed at exit unless RELAIS_KEEP_TMP is set
_relais_instances = []  # for log dumps on failure


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


class LogBuffer:
    """The lines a process wrote: kept in memory (log_lines, log_since, grep) and appended to
    log_path. The owner sets self._lines = [], self._lock, self.log_path and self.proc; a
    process logging to stderr only runs _read_stderr in its reader thread."""

    def _append(self, line):
        with self._lock:
            self._lines.append(line)
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self._append(raw.decode("utf-8", "replace").rstrip("\n"))
        self.proc.stderr.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

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
