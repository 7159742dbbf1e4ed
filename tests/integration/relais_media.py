"""relais_media.py — the relais-media relay under test: bencode, an ng control client, the
relais-media process on free ports, and RTP/SDP helpers for the test_media_*.py files.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time

from free_ports import free_port, free_port_range
from harness_core import LogBuffer, _relais_instances, log, make_tempdir, popen, source_dir, wait_until
from sip_uac import fail


# ----------------------------------------------------------------------------------------------
# ng control: bencode and a client


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
                self._other(raw)
        fail("no ng reply to %s from %s:%d" % (msg.get("command"), self.addr[0], self.addr[1]))

    def _other(self, raw):
        """A datagram that is not the awaited reply (a late duplicate, a notification): dropped."""

    def close(self):
        self.sock.close()


# ----------------------------------------------------------------------------------------------
# relais-media process


def relais_media_bin():
    path = os.environ.get("RELAIS_MEDIA_BIN")
    if not path:
        rb = os.environ.get("RELAIS_BIN")
        path = os.path.join(os.path.dirname(rb), "relais-media") if rb else \
            os.path.join(source_dir(), "build", "relais-media")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        fail("relais-media binary not found at %s (set RELAIS_MEDIA_BIN or RELAIS_BIN)" % path)
    return os.path.abspath(path)


class RelaisMedia(LogBuffer):
    """A relais-media process on free ports; its stderr is kept (log_lines, wait_log).

    RELAIS_MEDIA_EXTRA_ARGS (shell words, e.g. "--io xdp") is added to every instance's command
    line, before `extra`: a whole test file runs against another configuration unchanged
    (test_media_xdp.py runs test_media_relay.py's checks with --io xdp that way)."""

    def __init__(self, workers=1, timeout=60, ports=64, extra=(), name="relais-media"):
        self.name = name
        self.workdir = make_tempdir(name)
        self.ng_port = free_port(tcp=False)
        self.port_min, self.port_max = free_port_range(ports)
        self.args = [relais_media_bin(), "--ng", "127.0.0.1:%d" % self.ng_port, "--address", "127.0.0.1",
                     "--ports", "%d-%d" % (self.port_min, self.port_max), "--workers", str(workers),
                     "--timeout", str(timeout), "--log-level", "debug"] + \
            shlex.split(os.environ.get("RELAIS_MEDIA_EXTRA_ARGS", "")) + list(extra)
        self.proc = None
        self._lines = []
        self._lock = threading.Lock()
        self._reader_thread = None
        self.log_path = os.path.join(self.workdir, "relais-media.log")
        _relais_instances.append(self)

    def start(self, ready_timeout=10):
        mark = self.log_mark()
        self._append("### start: " + " ".join(self.args))
        self.proc = popen(self.args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader_thread.start()
        wait_until(lambda: self.grep("event=ready", mark) or self.proc.poll() is not None,
                   timeout=ready_timeout, what="relais-media event=ready")
        if self.proc.poll() is not None:
            time.sleep(0.2)
            fail("relais-media exited with %s at startup:\n%s" % (self.proc.returncode, self.log_tail()))
        return self

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

    # -- logs (log_lines, log_mark, log_since, log_tail, grep: LogBuffer)

    def wait_log(self, needle, timeout=10, since=0):
        return wait_until(lambda: self.grep(needle, since), timeout=timeout,
                          what="relais-media logging %r" % needle)[0]


# ----------------------------------------------------------------------------------------------
# RTP and SDP


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


# ----------------------------------------------------------------------------------------------
# Media services: notifications, RTP fields, G.711 µ-law, audio facts


class NgEventClient(NgClient):
    """An ng client that is also a call's controller: datagrams that are not the reply being
    waited for (playback-done, dtmf, silence, timeout notifications) are kept in self.notes as
    decoded dicts instead of being dropped."""

    def __init__(self, host, port, timeout=2.0):
        super().__init__(host, port, timeout)
        self.notes = []

    def _other(self, raw):
        self._keep(raw)

    def _keep(self, raw):
        _, _, body = raw.partition(b" ")
        try:
            msg = bdecode(body)
        except (ValueError, IndexError):
            return
        if isinstance(msg, dict) and "command" in msg:
            self.notes.append(msg)

    def poll_notes(self, timeout=0.0):
        """Reads notifications for up to `timeout` seconds (at least whatever is queued)."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.recv_raw(timeout=max(0.001, deadline - time.monotonic()))
            if raw is not None:
                self._keep(raw)
            elif time.monotonic() >= deadline:
                return

    def wait_note(self, pred, timeout=5.0, what="notification"):
        """The first kept notification matching pred (removed from notes); fails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, n in enumerate(self.notes):
                if pred(n):
                    return self.notes.pop(i)
            if time.monotonic() >= deadline:
                fail("no %s within %.1fs; got %r" % (what, timeout, self.notes))
            self.poll_notes(0.05)


def rtp_fields(data):
    """(marker, pt, seq, timestamp, ssrc, payload) of a plain RTP packet."""
    import struct
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    off = 12 + 4 * (b0 & 0x0f)
    return bool(b1 & 0x80), b1 & 0x7f, seq, ts, ssrc, data[off:]


def ulaw_decode(payload):
    """G.711 µ-law bytes → list of 16-bit linear samples."""
    out = []
    for code in payload:
        u = ~code & 0xff
        exp, mant = (u >> 4) & 7, u & 0x0f
        mag = (((mant << 3) + 0x84) << exp) - 0x84
        out.append(-mag if u & 0x80 else mag)
    return out


def ulaw_encode(samples):
    """16-bit linear samples → G.711 µ-law bytes."""
    out = bytearray()
    for s in samples:
        sign = 0x80 if s < 0 else 0
        mag = min(abs(int(s)), 32635) + 0x84
        exp = mag.bit_length() - 8
        mant = (mag >> (exp + 3)) & 0x0f
        out.append(~(sign | (exp << 4) | mant) & 0xff)
    return bytes(out)


def sine(freq, seconds, rate=8000, amplitude=8000, phase_samples=0):
    import math
    n = int(round(seconds * rate))
    return [int(amplitude * math.sin(2 * math.pi * freq * (i + phase_samples) / rate)) for i in range(n)]


def zero_crossing_frequency(samples, rate=8000):
    """Frequency of a pure tone from its sign changes (2 per period); 0 for silence."""
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings * rate / 2.0 / max(1, len(samples))


def rfc4733_packet(seq, ts, ssrc, event, end, duration, pt=101, marker=False, volume=10):
    import struct
    return struct.pack("!BBHIIBBH", 0x80, (0x80 if marker else 0) | pt, seq & 0xffff, ts & 0xffffffff, ssrc,
                       event, (0x80 if end else 0) | (volume & 0x3f), duration)
