"""media_tools.py — media evidence for the integration tests: a tshark capture on loopback
(Capture), a media relay process (Relay: relais-media or rtpengine), RTP pcaps written by the
test for sipp's play_pcap_audio (PCMU audio from a WAV or silence, RFC 4733 digits), and reading
a capture back as decoded audio to prove which prompt a phone heard (prompt_heard) or which tone
(dominant_frequency).
"""

import audioop
import math
import os
import random
import signal
import struct
import subprocess
import time
import wave

import harness_core as core
from free_ports import free_port, udp_port_bound
from sip_uac import fail


# ----------------------------------------------------------------------------------------------
# Processes


class Capture:
    """tshark on loopback for the given UDP ports; flows() counts packets per (src, dst) port,
    packets() returns (time, src port, dst port, payload) for every UDP packet."""

    def __init__(self, ports, seconds=60):
        core.require_tool("tshark")
        self.path = os.path.join(core.make_tempdir("capture"), "media.pcap")
        flt = " or ".join("udp port %d" % p for p in ports)
        self.proc = core.popen(["timeout", "-s", "INT", str(seconds), "tshark", "-q", "-i", "lo", "-f", flt, "-F", "pcap", "-w", self.path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                time.sleep(0.3)
                return
            if self.proc.poll() is not None:
                fail("tshark exited: %s" % self.proc.stderr.read().decode("utf-8", "replace"))
            time.sleep(0.05)
        fail("tshark did not start capturing")

    def stop(self):
        if self.proc.poll() is None:
            time.sleep(0.3)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def packets(self):
        self.stop()
        return read_pcap_udp(self.path)

    def flows(self):
        counts = {}
        for _, src, dst, _ in self.packets():
            counts[(src, dst)] = counts.get((src, dst), 0) + 1
        return counts


class Relay:
    """relais-media or rtpengine on a free ng port and a private RTP port range."""

    def __init__(self, kind, ng_port, ports):
        self.kind, self.ng_port, self.ports = kind, ng_port, ports
        self.workdir = core.make_tempdir("relay-" + kind)
        self.proc = None

    def start(self, timeout=2):
        lo, hi = self.ports
        if self.kind == "rtpengine":
            core.require_tool("rtpengine")
            argv = ["rtpengine", "--table=-1", "-f", "-E", "--listen-ng=127.0.0.1:%d" % self.ng_port,
                    "--interface=127.0.0.1", "--port-min=%d" % lo, "--port-max=%d" % hi, "--num-threads=1",
                    # Its CLI port defaults to 2224: another rtpengine on the machine would clash.
                    "--listen-cli=127.0.0.1:%d" % free_port(udp=False),
                    "--log-level=6", "--delete-delay=0"]
        else:
            binary = os.environ.get("RELAIS_MEDIA_BIN") or os.path.join(os.path.dirname(core.relais_bin()), "relais-media")
            if not os.path.exists(binary):
                fail("relais-media binary not found at %s" % binary)
            argv = [binary, "--ng", "127.0.0.1:%d" % self.ng_port, "--address", "127.0.0.1", "--ports",
                    "%d-%d" % (lo, hi), "--workers", "1", "--timeout", str(timeout)]
        self.log_path = os.path.join(self.workdir, "relay.log")
        self.log = open(self.log_path, "ab")
        self.proc = core.popen(argv, cwd=self.workdir, stdout=self.log, stderr=self.log)
        core.wait_until(lambda: udp_port_bound(self.ng_port), timeout=10, what="%s listening" % self.kind)
        return self

    def stop(self):
        """SIGTERM and wait. relais-media must exit 0: under -DRELAIS_SANITIZE=ON a leak or
        sanitizer error makes the exit code non-zero, and the test fails on it."""
        proc, self.proc = self.proc, None
        if not proc:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                fail("%s did not exit within 10 s of SIGTERM" % self.kind)
        if self.kind == "relais-media" and proc.returncode != 0:
            fail("relais-media exited with %s; log tail:\n%s" % (proc.returncode, self.log_text()[-3000:]))
        return proc.returncode

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def relay_port_range(slot):
    """A private RTP port range per test process and slot, away from other tests' ranges."""
    base = 20000 + (os.getpid() % 300) * 30 + slot * 10
    return (base, base + 9)


# ----------------------------------------------------------------------------------------------
# pcap files


def read_pcap_udp(path):
    """[(time, src port, dst port, payload)] of the IPv4/UDP packets of a pcap (Ethernet or
    Linux cooked link types, as tshark writes them for lo)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        fail("capture is pcapng; start tshark with -F pcap")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20}.get(linktype)
    if link_len is None:
        fail("unsupported pcap link type %d" % linktype)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        ip = pkt[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        src, dst, ulen = struct.unpack("!HHH", udp[:6])
        out.append((sec + usec / 1e6, src, dst, udp[8:ulen]))
    return out


class RtpPcap:
    """An RTP stream for sipp's play_pcap_audio: 20 ms PCMU frames of audio or silence, and
    RFC 4733 digits in place of audio while they last. sipp replays the packets from its own
    media port (addresses here are placeholders it rewrites) back to back at 20 ms — it does
    not keep gaps between packets, so a late start needs silence frames before it."""

    def __init__(self, pt=0, event_pt=101):
        self.pt, self.event_pt = pt, event_pt
        self.frames = []  # (time, rtp bytes)
        self.seq = random.randint(0, 30000)
        self.ts = random.randint(0, 1 << 30)
        self.ssrc = random.randint(1, 1 << 31)
        self.t = 0.0

    def _rtp(self, pt, ts, payload, marker=False):
        b1 = (0x80 if marker else 0) | pt
        pkt = struct.pack("!BBHII", 0x80, b1, self.seq & 0xFFFF, ts & 0xFFFFFFFF, self.ssrc) + payload
        self.seq += 1
        return pkt

    def audio(self, samples):
        """PCMU frames of 16-bit mono 8 kHz samples (a list of ints)."""
        for i in range(0, len(samples) - 159, 160):
            frame = struct.pack("<160h", *samples[i:i + 160])
            self.frames.append((self.t, self._rtp(self.pt, self.ts, audioop.lin2ulaw(frame, 2))))
            self.ts += 160
            self.t += 0.02

    def silence(self, seconds):
        self.audio([0] * int(seconds * 8000))

    def digit(self, d, ms=120):
        """One RFC 4733 event: packets every 20 ms with growing duration, then 3 end packets."""
        code = "0123456789*#ABCD".index(d)
        steps = max(1, ms // 20)
        start = self.ts
        for k in range(1, steps + 1):
            payload = struct.pack("!BBH", code, 10, k * 160)
            self.frames.append((self.t, self._rtp(self.event_pt, start, payload, marker=(k == 1))))
            self.t += 0.02
        for _ in range(3):
            payload = struct.pack("!BBH", code, 0x80 | 10, steps * 160)
            self.frames.append((self.t, self._rtp(self.event_pt, start, payload)))
        self.ts += steps * 160

    def write(self, path):
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for t, rtp in self.frames:
                udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                                 bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
                eth = b"\x00" * 12 + b"\x08\x00" + ip
                sec = int(t)
                f.write(struct.pack("<IIII", sec, int(round((t - sec) * 1e6)), len(eth), len(eth)) + eth)
        return path


# ----------------------------------------------------------------------------------------------
# Audio


def read_wav(path):
    """Mono 16-bit samples of a WAV (8 kHz expected)."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            fail("%s: expected 16-bit samples" % path)
        raw = w.readframes(w.getnframes())
        if w.getnchannels() == 2:
            raw = audioop.tomono(raw, 2, 0.5, 0.5)
        return list(struct.unpack("<%dh" % (len(raw) // 2), raw)), w.getframerate()


def wav_seconds(path):
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate())


def sine(freq, seconds, amplitude=8000, rate=8000):
    return [int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(seconds * rate))]


def rtp_payloads_to(packets, dst_port, pt=0):
    """[(time, decoded 160 samples)] of PCMU (pt 0) or PCMA (8) RTP packets sent to dst_port."""
    out = []
    for t, _, dst, payload in packets:
        if dst != dst_port or len(payload) < 12 or payload[0] >> 6 != 2 or payload[1] & 0x7F != pt:
            continue
        cc = payload[0] & 0x0F
        body = payload[12 + 4 * cc:]
        lin = audioop.ulaw2lin(body, 2) if pt == 0 else audioop.alaw2lin(body, 2)
        out.append((t, list(struct.unpack("<%dh" % (len(lin) // 2), lin))))
    return out


def prompt_heard(frames, prompt_wav, probes=10, first_seconds=None):
    """How many of `probes` loud 20 ms frames of the prompt occur among the received frames
    (each a G.711 round trip of the same samples, so nearly identical). first_seconds limits
    the probes to the prompt's beginning (a prompt cut short by a digit)."""
    samples, rate = read_wav(prompt_wav)
    if rate != 8000:
        fail("%s: expected 8 kHz" % prompt_wav)
    limit = len(samples) if first_seconds is None else min(len(samples), int(first_seconds * 8000))
    candidates = []
    for i in range(0, limit - 159, 160):
        chunk = samples[i:i + 160]
        energy = sum(abs(s) for s in chunk) / 160.0
        candidates.append((energy, chunk))
    candidates.sort(key=lambda c: -c[0])
    chosen = [c for c in candidates[:probes] if c[0] > 300]
    if not chosen:
        fail("%s has no loud frame to look for" % prompt_wav)
    found = 0
    for energy, chunk in chosen:
        for _, got in frames:
            if len(got) != 160:
                continue
            diff = sum(abs(a - b) for a, b in zip(chunk, got)) / 160.0
            if diff < 0.08 * energy:
                found += 1
                break
    return found, len(chosen)


def dominant_frequency(samples, rate=8000, lo=100, hi=2000, step=10):
    """The strongest frequency (Goertzel over a grid) of a sample list."""
    best, best_power = 0, -1.0
    n = len(samples)
    if n == 0:
        return 0
    for f in range(lo, hi + 1, step):
        w = 2 * math.pi * f / rate
        coeff = 2 * math.cos(w)
        s1 = s2 = 0.0
        for x in samples:
            s0 = x + coeff * s1 - s2
            s2, s1 = s1, s0
        power = s1 * s1 + s2 * s2 - coeff * s1 * s2
        if power > best_power:
            best, best_power = f, power
    return best


# ----------------------------------------------------------------------------------------------
# sipp caller with a pcap (sipp does not expand keywords in play_pcap_audio, so the test writes
# the scenario with the pcap's path in it)

_SDP = """v=0
o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""

_INVITE = """INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: "Caller [caller]" <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[domain]>
Call-ID: [call_id]
CSeq: %(cseq)d INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
%(auth)sUser-Agent: sipp-relais-it
Content-Type: application/sdp
Content-Length: [len]

""" + _SDP

_IN_DIALOG = """%(method)s [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
Max-Forwards: 70
From: "Caller [caller]" <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: %(cseq)d %(method)s
Contact: <sip:[caller]@[local_ip]:[local_port]>
Content-Length: 0

"""

_ACK_407 = """ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
Max-Forwards: 70
From: "Caller [caller]" <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Content-Length: 0

"""


_INFO = """INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
Max-Forwards: 70
From: "Caller [caller]" <sip:[caller]@[domain]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: %(cseq)d INFO
Contact: <sip:[caller]@[local_ip]:[local_port]>
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=%(digit)s
Duration=160
"""


def pcap_call_scenario(path, pcap, hold_ms, auth=False, infos=()):
    """A sipp caller (PCMU + telephone-event) that plays `pcap` once answered, hangs up after
    hold_ms, and accepts an early BYE from relais instead. auth: answer a 407 with -au/-ap.
    infos: [(pause ms, digit)] sent as SIP INFO (application/dtmf-relay) one after another
    (then hold_ms counts from the last one)."""
    def send(text, retrans=True):
        return '<send%s><![CDATA[\n\n%s]]></send>\n' % (' retrans="500"' if retrans else "", text)
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="pcap caller">\n']
    cseq = 1
    parts.append(send(_INVITE % {"cseq": cseq, "auth": ""}))
    parts.append('<recv response="100" optional="true"/>\n')
    if auth:
        parts.append('<recv response="407" auth="true"/>\n')
        parts.append(send(_ACK_407, retrans=False))
        cseq = 2
        parts.append(send(_INVITE % {"cseq": cseq, "auth": "[authentication]\n"}))
        parts.append('<recv response="100" optional="true"/>\n')
    parts.append('<recv response="180" optional="true"/>\n<recv response="183" optional="true"/>\n')
    parts.append('<recv response="200" rrs="true"/>\n')
    parts.append(send(_IN_DIALOG % {"method": "ACK", "cseq": cseq}, retrans=False))
    parts.append('<nop><action><exec play_pcap_audio="%s"/></action></nop>\n' % pcap)
    for pause_ms, digit in infos:
        cseq += 1
        parts.append('<pause milliseconds="%d"/>\n' % pause_ms)
        parts.append(send(_INFO % {"cseq": cseq, "digit": digit}))
        parts.append('<recv response="200"/>\n')
    # Either we hang up after hold_ms, or relais does first (its BYE is answered and we end).
    parts.append('<recv request="BYE" timeout="%d" ontimeout="hangup" optional="false"/>\n' % hold_ms)
    parts.append(send("SIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\n"
                      "Content-Length: 0\n\n", retrans=False))
    parts.append('<nop next="end"/>\n')
    parts.append('<label id="hangup"/>\n')
    parts.append(send(_IN_DIALOG % {"method": "BYE", "cseq": cseq + 1}))
    parts.append('<recv response="200" crlf="true"/>\n')
    parts.append('<label id="end"/>\n</scenario>\n')
    with open(path, "w") as f:
        f.write("".join(parts))
    return path
