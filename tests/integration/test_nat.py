"""test_nat.py — NAT traversal proven in network namespaces (netns_lab.py): two baresip phones,
each behind its own masquerading home router and both on the same private address
192.168.1.2, register to relais on a public address and call each other. Over UDP and over
TCP: the call connects, the INVITE reaches the callee through the mapping/connection it
registered from (never its private Contact), and audio flows both ways through relais-media
(each phone's received-audio dump carries the other's tone). The routers forget idle UDP
mappings after 5 s and the call comes 8 s after the registration: relais's keepalive OPTIONS
(registrar.nat_keepalive) must keep the callee's mapping open."""

import math
import os
import struct
import subprocess
import sys
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import media_tools as mt  # noqa: E402
from netns_lab import RELAIS_IP, Lab  # noqa: E402

SCRIPT = r"""
function on_invite(call)
  local r = call:dial(call.ruri.user, { timeout = 10 })
  relais.log("dial-result", r.answered, r.code)
end
"""

TONES = {"a": 440, "b": 700}


class NsRelais(h.Relais):
    """relais inside the lab's core namespace."""

    def __init__(self, lab, **kw):
        self.lab = lab
        super().__init__(**kw)

    def argv(self):
        return self.lab.prefix(self.lab.core) + super().argv()


def write_tone(path, freq, seconds=30):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / 8000)))
                               for i in range(seconds * 8000)))


class NsPhone(h.BaresipProcess):
    """baresip at 192.168.1.2 in a home's phone namespace, auto-answering, playing a tone."""

    def __init__(self, lab, home, user, transport):
        super().__init__("nat-%s-%s" % (home, transport))
        self.lab, self.home, self.user = lab, home, user
        self.tone = os.path.join(self.dir, "tone.wav")
        write_tone(self.tone, TONES[home])
        self.snd_dir = os.path.join(self.dir, "snd")
        os.makedirs(self.snd_dir)
        h.write_baresip_files(self.dir, h.audio_phone_config(
            "192.168.1.2:5060", "192.168.1.2", "10000-10020", self.tone, self.snd_dir),
            "<sip:%s@%s;transport=%s>;auth_pass=%s;answermode=auto;regint=600" % (
            user, RELAIS_IP, transport, h.user_password(user)))

    def start_in_ns(self, seconds, extra=()):
        self.logf = open(self.log_path, "wb")
        argv = self.lab.prefix(self.lab.phone_ns(self.home)) + [
            "timeout", "-s", "INT", "-k", "5", str(seconds), "baresip", "-f", self.dir] + list(extra)
        self.proc = h.popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        return self

    def dumps(self):
        return sorted(os.path.join(self.snd_dir, f) for f in os.listdir(self.snd_dir) if f.endswith("-dec.wav"))


def received_tone(phone, freq):
    files = phone.dumps()
    if not files:
        h.fail("%s wrote no received-audio dump; log:\n%s" % (phone.name, phone.log_text()[-2500:]))
    with open(files[-1], "rb") as f:
        data = f.read()
    pcm = data[44:] if data[:4] == b"RIFF" else data
    samples = list(struct.unpack("<%dh" % (len(pcm) // 2), pcm[:len(pcm) // 2 * 2]))
    middle = samples[len(samples) // 3:len(samples) // 3 + 4000]
    seconds = len(samples) / 8000.0
    rms = math.sqrt(sum(s * s for s in middle) / max(1, len(middle)))
    found = mt.dominant_frequency(middle, lo=300, hi=900, step=20) if rms > 100 else 0
    h.log("%s received %.1f s, rms %.0f, dominant %d Hz (expected %d)" % (phone.name, seconds, rms, found, freq))
    if seconds < 2 or rms < 300 or abs(found - freq) > 40:
        h.fail("%s did not receive the other phone's %d Hz tone (%.1f s, rms %.0f, %d Hz)" % (
            phone.name, freq, seconds, rms, found))


def test(checks):
    h.require_tool("baresip")
    lab = Lab()
    media_log = open(os.path.join(h.make_tempdir("nat-media"), "relais-media.log"), "wb")
    media_bin = os.environ.get("RELAIS_MEDIA_BIN") or os.path.join(os.path.dirname(h.relais_bin()), "relais-media")
    media = h.popen(lab.prefix(lab.core) + [media_bin, "--ng", "127.0.0.1:2223", "--address", RELAIS_IP,
                                             "--ports", "30000-30100", "--workers", "1", "--timeout", "30"],
                    stdout=media_log, stderr=media_log)
    relais = NsRelais(lab, name="nat", port=5060, script=SCRIPT, config={
        "sip": {"listen": ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]},
        "auth": {"algorithms": ["MD5"]},
        "calls": {"authenticate": True, "unknown_sources": "reject", "no_answer_timeout": 10},
        # The lab's routers forget idle UDP mappings after 5 s; relais pings NATed phones every 2 s.
        "registrar": {"nat_keepalive": 2},
        "media": {"mode": "relay", "ng": "127.0.0.1:2223", "timeout_ms": 500},
    })
    try:
        with relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relais-media reachable")

            def call_through_nat(transport):
                mark = relais.log_mark()
                callee = NsPhone(lab, "b", "102", transport).start_in_ns(30)
                try:
                    h.wait_until(lambda: any("event=register.ok aor=102@" in l for l in relais.log_since(mark)),
                                 timeout=10, what="the callee registered")
                    reg = [l for l in relais.log_since(mark) if "event=register.ok aor=102@" in l][-1]
                    if "src=%s:%s:" % (transport, lab.public_ip("b")) not in reg:
                        h.fail("the callee's REGISTER did not come through its NAT: %s" % reg)
                    if transport == "udp":
                        # Longer than the router keeps an idle mapping: only relais's keepalive
                        # OPTIONS keep the callee reachable.
                        time.sleep(8)
                    caller = NsPhone(lab, "a", "101", transport).start_in_ns(
                        10, ["-e", "/dial sip:102@%s;transport=%s" % (RELAIS_IP, transport)])
                    caller.proc.wait(timeout=25)
                    time.sleep(1.0)
                    lines = relais.log_since(mark)
                    text = "\n".join(lines)
                    if "dial-result true" not in text:
                        h.fail("the call did not connect:\n%s\ncaller:\n%s\ncallee:\n%s" % (
                            text[-2500:], caller.log_text()[-2000:], callee.log_text()[-2000:]))
                    dials = [l for l in lines if "event=call.dial " in l]
                    h.log("dial: %s" % dials)
                    received_tone(callee, TONES["a"])
                    received_tone(caller, TONES["b"])
                finally:
                    callee.stop()

            checks.run("UDP: phones behind two NATs, same private address, call each other with two-way audio",
                       lambda: call_through_nat("udp"))
            checks.run("TCP: the same over TCP, the INVITE on the connection the callee registered on",
                       lambda: call_through_nat("tcp"))
    finally:
        media.terminate()
        try:
            media.wait(timeout=5)
        except subprocess.TimeoutExpired:
            media.kill()
        lab.close()


if __name__ == "__main__":
    h.main(test)
