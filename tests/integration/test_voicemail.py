"""test_voicemail.py — relais.voicemail end to end with real parts: relais-media records, a
sipp caller plays a known tone (a pcap the test writes) after the callee did not answer, a
phone of box 101 is subscribed to its message-summary, and an SMTP sink receives the mail.

1. Deposit: a caller rings 101 (a sipp callee that never answers), lands in voicemail, plays
   4.0 s of 600 Hz after the beep and hangs up. The stored WAV exists, lasts 4.0 s ± 10 %, no
   partial file is left, the subscribed phone gets NOTIFY Messages-Waiting: yes (1/0), and the
   mail sink gets a mail whose WAV attachment is the stored message.
2. Restart relais: the message is still there (a new SUBSCRIBE is told yes), and the retrieval
   menu — dialled by 101 itself, so no PIN (auto-login) — plays it: the caller's received audio
   contains the 600 Hz tone. Pressing 7 deletes it: WAV gone, NOTIFY Messages-Waiting: no.
"""

import email
import glob
import math
import os
import sqlite3
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import media_tools as mt  # noqa: E402
import mwi_phone  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

TONE_HZ, TONE_SECONDS = 600, 4.0

SCRIPT = '''
local voicemail = require("relais.voicemail")
local vm = voicemail.new{
  dir = "%(vmdir)s", min_seconds = 1,
  boxes = { ["101"] = { pin = "4321", email = "dr.martin@clinic.example", name = "Dr Martin" } },
}
function on_invite(call)
  if call.to.user == "vm" then return vm:access(call) end
  local r = call:dial("sip:%(box)s@127.0.0.1:%(uas)d", { timeout = 2 })
  if not r.answered then
    local m, err = vm:deposit(call, call.to.user, { busy = (r.code == 486) })
    relais.log("deposit-result", m and m.id or "none", err or "")
  end
end
'''


def tone_ratio(samples, freq, rate=8000):
    """Share of the signal's power at `freq` (Goertzel against Parseval): ~1 for a pure tone."""
    n = len(samples)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    total = sum(x * x for x in samples) * n / 2.0
    return power / total if total else 0.0


def call_with_pcap(relais, work, name, pcap, service, caller, hold_ms, uas_port=None):
    pcap_path = pcap.write(os.path.join(work, name + ".pcap"))
    scenario = mt.pcap_call_scenario(os.path.join(work, name + ".xml"), pcap_path, hold_ms=hold_ms, auth=True)
    caller_mp = h.free_media_port()
    cap = mt.Capture([caller_mp])
    uas = []
    if uas_port:
        uas.append(h.start_sipp(None, os.path.join(h.SCENARIOS, "call_uas_ring_forever.xml"),
                                ["-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(h.free_media_port()), "-m", "1"],
                                timeout=40, port=uas_port).wait_ready())
    uac_port = h.free_port()
    host, port = relais.addr()
    uac = h.start_sipp("%s:%d" % (host, port), scenario,
                       ["-i", "127.0.0.1", "-p", str(uac_port), "-mp", str(caller_mp), "-m", "1", "-s", service,
                        "-key", "caller", caller, "-key", "domain", h.DOMAIN, "-au", caller,
                        "-ap", h.user_password(caller), "-auth_uri", "%s@%s:%d" % (service, host, port)],
                       timeout=40, port=uac_port)
    ru, rs = h.finish_call(uac, uas)
    packets = cap.packets()
    if ru.rc != 0 or any(r.rc != 0 for r in rs):
        h.fail("the %s call failed:\n%s" % (name, h.call_report(ru, rs)))
    sent = [t for t, src, _, _ in packets if src == caller_mp]
    got = [t for t, _, dst, _ in packets if dst == caller_mp]
    if sent and got:
        h.log("%s: caller sent %d packets from +%.2f s to +%.2f s; received %d from +%.2f s to +%.2f s"
              % (name, len(sent), sent[0] - got[0], sent[-1] - got[0], len(got), 0, got[-1] - got[0]))
    return mt.rtp_payloads_to(packets, caller_mp, pt=0)


def expect_summary(phone, waiting, counts, what, timeout=8.0):
    """Waits for a NOTIFY with these counts in the current subscription (the old one's
    "terminated" NOTIFY may still be queued after a restart; listening to a message sends 0/1
    before deleting it sends 0/0)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        n = phone.wait_notify(timeout=max(0.1, deadline - time.monotonic()),
                              call_id=phone.dialog["call_id"] if phone.dialog else None)
        if n is None:
            break
        s = mwi_phone.summary_of(n)
        h.log("%s: NOTIFY %s" % (what, s))
        seen.append(s)
        if s.get("messages-waiting") == waiting and s.get("voice-message", "").startswith(counts):
            return
    h.fail("%s: expected Messages-Waiting: %s (%s), got %s" % (what, waiting, counts, seen or "no NOTIFY"))


def test(checks):
    h.require_tool("sipp")
    prompts = os.path.join(h.source_dir(), "var", "prompts")
    if not os.path.exists(os.path.join(prompts, "en", "vm_unavailable.wav")):
        h.fail("prompts missing in %s (the build generates them)" % prompts)
    work = h.make_tempdir("voicemail")
    vmdir = os.path.join(work, "vm")
    ng_port = h.free_port(tcp=False)
    relay = mt.Relay("relais-media", ng_port, mt.relay_port_range(1)).start(timeout=60)
    sink = SmtpSink(outdir=os.path.join(work, "mail")).start()
    uas_port = h.free_port()
    http_port = h.free_port(udp=False)

    def metric(name):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        h.fail("/metrics has no %s" % name)

    relais = h.Relais(name="voicemail", script=SCRIPT % {"vmdir": vmdir, "box": "101", "uas": uas_port}, config={
        "calls": {"authenticate": True, "unknown_sources": "allow"},
        "auth": {"algorithms": ["MD5"]},  # sipp answers only MD5 challenges
        "media": {"mode": "relay", "ng": "127.0.0.1:%d" % ng_port, "timeout_ms": 500},
        "prompts": {"dir": prompts, "language": "en"},
        "store": {"kv_path": os.path.join(work, "kv.db")},
        "http": {"listen": "127.0.0.1:%d" % http_port},
        "mail": {"smtp": "smtp://127.0.0.1:%d" % sink.port, "from": "Voicemail <vm@clinic.example>",
                 "starttls": False},
    })
    greeting = mt.wav_seconds(os.path.join(prompts, "en", "vm_unavailable.wav"))
    try:
        with relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")
            phone = mwi_phone.MwiPhone(relais, "101", h.user_password("101"))
            phone.register()
            r = phone.subscribe()
            if r is None or r.status != 200:
                h.fail("SUBSCRIBE: %s" % (r.summary() if r else "no answer"))
            expect_summary(phone, "no", "0/0", "initial")

            def deposit():
                pcap = mt.RtpPcap()
                # Silence while the greeting and the beep play (sipp starts the pcap at the answer,
                # once the 2 s dial timed out; it replays a pcap without its gaps), the tone just
                # after the recording starts.
                pcap.silence(greeting + 0.4 + 0.05)
                pcap.audio(mt.sine(TONE_HZ, TONE_SECONDS))
                hold = int((pcap.t + 0.3) * 1000)
                call_with_pcap(relais, work, "deposit", pcap, "101", "100", hold, uas_port=uas_port)
                wavs = glob.glob(os.path.join(vmdir, "101", "*.wav"))
                leftovers = [p for p in glob.glob(os.path.join(vmdir, "101", "*")) if not p.endswith(".wav")]
                if len(wavs) != 1:
                    h.fail("expected one stored message, found %s" % wavs)
                if leftovers:
                    h.fail("files left beside the message: %s" % leftovers)
                seconds = mt.wav_seconds(wavs[0])
                samples, rate = mt.read_wav(wavs[0])
                h.log("stored %s: %.2f s at %d Hz, 600 Hz share %.2f" % (wavs[0], seconds, rate,
                                                                        tone_ratio(samples[8000:16000], TONE_HZ)))
                if abs(seconds - TONE_SECONDS) > 0.1 * TONE_SECONDS:
                    h.fail("message lasts %.2f s, sent %.1f s" % (seconds, TONE_SECONDS))
                if tone_ratio(samples[8000:16000], TONE_HZ) < 0.8:
                    h.fail("the stored message is not the 600 Hz tone that was sent")
                with sqlite3.connect(os.path.join(work, "kv.db")) as db:
                    keys = [k for (k,) in db.execute("SELECT key FROM kv WHERE key LIKE 'vm/101/msg/%'")]
                if len(keys) != 1:
                    h.fail("expected one message record in the store, found %s" % keys)
                expect_summary(phone, "yes", "1/0", "after the deposit")
                if not sink.wait_for(1, timeout=15):
                    h.fail("no voicemail e-mail reached the SMTP sink")
                mail = email.message_from_bytes(sink.messages[0])
                h.log("mail: To=%s Subject=%s" % (mail["To"], mail["Subject"]))
                if "dr.martin@clinic.example" not in (mail["To"] or ""):
                    h.fail("mail sent to %r" % mail["To"])
                parts = [p for p in mail.walk() if p.get_content_type() == "audio/wav"]
                if len(parts) != 1:
                    h.fail("mail has %d audio/wav attachments" % len(parts))
                with open(wavs[0], "rb") as f:
                    if parts[0].get_payload(decode=True) != f.read():
                        h.fail("the attached WAV differs from the stored message")
                h.wait_until(lambda: metric('relais_mail_total{result="sent"}') == 1, timeout=5,
                             what="/metrics counting the mail")
                if metric("relais_calls_answered_locally_total") < 1 or metric('relais_mwi_notifies_total{kind="subscription"}') < 2:
                    h.fail("/metrics does not count the local answer and the MWI NOTIFYs")

            def retrieval_after_restart():
                relais.restart()
                relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")
                phone.dialog = None
                phone.pump(0.5)
                phone.notifies = []
                r = phone.subscribe()
                if r is None or r.status != 200:
                    h.fail("SUBSCRIBE after restart: %s" % (r.summary() if r else "no answer"))
                expect_summary(phone, "yes", "1/0", "after the restart")
                pcap = mt.RtpPcap()
                pcap.silence(1.0)
                pcap.digit("1")      # interrupts "you have one new message": listen
                pcap.silence(9.0)
                pcap.digit("7")      # in the message menu: delete
                pcap.silence(5.0)
                frames = call_with_pcap(relais, work, "retrieval", pcap, "vm", "101", 16500)
                windows = [sum((f for _, f in frames[i:i + 25]), []) for i in range(0, len(frames) - 24, 25)]
                toned = sum(1 for w in windows if tone_ratio(w, TONE_HZ) > 0.8)
                h.log("%d frames to the caller, %d half-second windows carry the 600 Hz message" % (len(frames), toned))
                if toned < 4:
                    h.fail("the retrieval menu did not play the stored message to the caller")
                if glob.glob(os.path.join(vmdir, "101", "*.wav")):
                    h.fail("pressing 7 did not delete the message file")
                expect_summary(phone, "no", "0/0", "after the deletion")
                if metric("relais_dtmf_digits_total") < 2:
                    h.fail("/metrics does not count the caller's digits")

            def pin_login_and_change():
                # Caller 100 opens box 101: box number, a wrong PIN (refused), the right one, then
                # 8 to change the PIN — all typed ahead, which the menus must keep in order.
                mark = relais.log_mark()
                pcap = mt.RtpPcap()
                pcap.silence(1.0)
                for d in "101#" "9999#" "4321#" "8" "5678#":
                    pcap.digit(d)
                    pcap.silence(0.25)
                pcap.silence(8.0)
                call_with_pcap(relais, work, "pin", pcap, "vm", "100", 12000)
                text = "\n".join(relais.log_since(mark))
                if "login box=101" not in text or "pin changed box=101" not in text:
                    h.fail("PIN login / change not logged:\n%s" % text[-2000:])
                with sqlite3.connect(os.path.join(work, "kv.db")) as db:
                    row = db.execute("SELECT value FROM kv WHERE key = 'vm/101/pin'").fetchone()
                if not row or bytes(row[0]) != b"5678":
                    h.fail("the new PIN was not stored: %r" % (row,))

            checks.run("deposit after no answer: WAV length, store record, MWI yes, e-mail with the WAV", deposit)
            checks.run("after a restart the retrieval menu plays the message; 7 deletes it, MWI no",
                       retrieval_after_restart)
            checks.run("another phone logs in with box number and PIN (a wrong one refused) and changes the PIN",
                       pin_login_and_change)
            phone.close()
    finally:
        relay.stop()
        sink.stop()


if __name__ == "__main__":
    h.main(test)
