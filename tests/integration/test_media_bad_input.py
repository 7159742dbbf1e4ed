"""test_media_bad_input.py — media services facing bad input: unknown prompt names, missing
files and path tricks make call:play report an error while the call goes on; a DTMF flood
(hundreds of RFC 4733 digits) is absorbed (bounded type-ahead, rate-limited events) and the
menu still reads the first digits; a caller hanging up right after the voicemail beep leaves
no file and no store record behind; relais and relais-media keep serving (a normal call right
after succeeds). Run under -DRELAIS_SANITIZE=ON for leaks."""

import glob
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import media_tools as mt  # noqa: E402

SCRIPT = '''
local voicemail = require("relais.voicemail")
local vm = voicemail.new{ dir = "%(vmdir)s", min_seconds = 2, boxes = { ["101"] = { pin = "1" } } }
function on_invite(call)
  local u = call.to.user
  if u == "bad" then
    assert(call:answer())
    local _, s1, e1 = call:play("no_such_prompt")
    local _, s2, e2 = call:play("/nonexistent/dir/file.wav")
    local _, s3 = call:play("../../../etc/passwd")
    local _, s4 = call:play({ "no_such_prompt", "goodbye" })
    relais.log("bad-prompts", s1, s2, s3, s4, e1)
    local got = call:gather{ max = 4, timeout = 10, terminator = false }
    relais.log("gathered", got)
    while call:ready() do call:wait_digit(1) end
    relais.log("flood-call-ended")
  elseif u == "short" then
    local m, err = vm:deposit(call, "101")
    relais.log("short-deposit", m and m.id or "none", err)
  else
    assert(call:answer())
    call:play("goodbye")
    relais.log("normal-call-done")
    call:hangup()
  end
end
'''


def test(checks):
    h.require_tool("sipp")
    prompts = os.path.join(h.source_dir(), "var", "prompts")
    work = h.make_tempdir("media-bad")
    vmdir = os.path.join(work, "vm")
    ng_port = h.free_port(tcp=False)
    relay = mt.Relay("relais-media", ng_port, mt.relay_port_range(2)).start(timeout=60)
    relais = h.Relais(name="media-bad", script=SCRIPT % {"vmdir": vmdir}, config={
        "calls": {"authenticate": False, "unknown_sources": "allow"},
        "media": {"mode": "relay", "ng": "127.0.0.1:%d" % ng_port, "timeout_ms": 500},
        "prompts": {"dir": prompts, "language": "en"},
        "store": {"kv_path": os.path.join(work, "kv.db")},
    })

    def call(name, pcap, service, hold_ms):
        path = pcap.write(os.path.join(work, name + ".pcap"))
        scenario = mt.pcap_call_scenario(os.path.join(work, name + ".xml"), path, hold_ms=hold_ms)
        port = h.free_port()
        uac = h.start_sipp("%s:%d" % relais.addr(), scenario,
                           ["-i", "127.0.0.1", "-p", str(port), "-mp", str(h.free_media_port()), "-m", "1",
                            "-s", service, "-key", "caller", "100", "-key", "domain", h.DOMAIN],
                           timeout=40, port=port)
        ru, _ = h.finish_call(uac, [])
        if ru.rc != 0:
            h.fail("the %s call failed:\n%s" % (name, h.call_report(ru, [])))

    try:
        with relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")

            def bad_prompts_and_flood():
                mark = relais.log_mark()
                pcap = mt.RtpPcap()
                pcap.silence(2.0)
                for i in range(400):   # ~8 s of back-to-back digits
                    pcap.digit("1234"[i % 4], ms=20)
                pcap.silence(1.0)
                call("flood", pcap, "bad", hold_ms=13000)
                lines = relais.log_since(mark)
                text = "\n".join(lines)
                if 'bad-prompts error error error done' not in text:
                    h.fail("play of unknown prompts / missing files / a path trick did not report errors "
                           "(or the valid one did not play):\n%s" % text[-2000:])
                if "unknown prompt" not in text:
                    h.fail("the error text does not name the problem")
                if 'msg="gathered 1234"' not in text:
                    h.fail("gather during the flood did not read the first four digits 1234")
                if "flood-call-ended" not in text:
                    h.fail("the flooded call did not end normally")
                dtmf = sum(1 for l in lines if "event=call.dtmf" in l)
                h.log("digits relais was told about: %d of 400 sent" % dtmf)
                if dtmf > 250:
                    h.fail("the relay did not rate-limit the DTMF flood (%d events)" % dtmf)
                if relay.proc.poll() is not None or not relais.alive():
                    h.fail("a process died during the flood")

            def short_deposit():
                mark = relais.log_mark()
                greeting = mt.wav_seconds(os.path.join(prompts, "en", "vm_unavailable.wav"))
                pcap = mt.RtpPcap()
                pcap.silence(greeting + 0.8)   # hang up ~0.4 s into the recording
                call("short", pcap, "short", hold_ms=int((greeting + 0.8) * 1000))
                h.wait_until(lambda: any("short-deposit" in l for l in relais.log_since(mark)), timeout=10,
                             what="the deposit to end")
                text = "\n".join(relais.log_since(mark))
                if "short-deposit none" not in text:
                    h.fail("a deposit hung up right after the beep was kept:\n%s" % text[-1500:])
                left = glob.glob(os.path.join(vmdir, "**", "*"), recursive=True)
                if [p for p in left if os.path.isfile(p)]:
                    h.fail("files left after a too-short deposit: %s" % left)
                with sqlite3.connect(os.path.join(work, "kv.db")) as db:
                    rows = list(db.execute("SELECT key FROM kv WHERE key LIKE 'vm/%'"))
                if rows:
                    h.fail("store records left after a too-short deposit: %s" % rows)

            def still_serving():
                mark = relais.log_mark()
                pcap = mt.RtpPcap()
                pcap.silence(3.0)
                call("normal", pcap, "normal", hold_ms=8000)
                if not any("normal-call-done" in l for l in relais.log_since(mark)):
                    h.fail("a normal call after the bad input did not complete")

            checks.run("unknown prompts, missing files, path tricks and a DTMF flood", bad_prompts_and_flood)
            checks.run("a caller hanging up right after the beep leaves no file and no record", short_deposit)
            checks.run("relais and relais-media still serve a normal call", still_serving)
    finally:
        relay.stop()


if __name__ == "__main__":
    h.main(test)
