"""test_ivr.py — a sipp caller walks a relais.ivr menu with RFC 4733 digits from a pcap the
test writes, and ends at the expected destination. relais answers the call itself (media
anchored on relais-media), plays the department menu, the caller presses 2 (support submenu),
hears the support prompt, presses 1 and is bridged to the support desk (a sipp callee).

Which prompts played is proven from the media a capture saw going to the caller: loud frames
of the menu and support prompts are found among the RTP packets (decoded), those of the sales
prompt are not. The callee must get the INVITE for "support", and the caller must be bridged:
its RTP after the transfer reaches the callee's port through the relay."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import media_tools as mt  # noqa: E402

SCRIPT = '''
local ivr = require("relais.ivr")
local support = {
  prompt = "support", timeout = 6,
  options = { ["1"] = { dial = "sip:support@127.0.0.1:%(uas)d", timeout = 10 } },
}
local main = {
  prompt = "dept_menu", timeout = 8,
  options = {
    ["1"] = { prompt = "sales", dial = "sip:sales@127.0.0.1:%(uas)d" },
    ["2"] = { menu = support },
  },
}
function on_invite(call)
  local r = ivr.run(call, main)
  relais.log("ivr-result", r.action, r.key, r.result and r.result.answered)
end
'''


def prompts_dir():
    d = os.path.join(h.source_dir(), "var", "prompts")
    if not os.path.exists(os.path.join(d, "en", "dept_menu.wav")):
        h.fail("prompts missing in %s (the build generates them)" % d)
    return d


def test(checks):
    h.require_tool("sipp")
    prompts = prompts_dir()
    ng_port = h.free_port(tcp=False)
    relay = mt.Relay("relais-media", ng_port, mt.relay_port_range(0)).start(timeout=30)
    uas_port = h.free_port()
    relais = h.Relais(name="ivr", script=SCRIPT % {"uas": uas_port}, config={
        "calls": {"authenticate": False, "unknown_sources": "allow"},
        "media": {"mode": "relay", "ng": "127.0.0.1:%d" % ng_port, "timeout_ms": 500},
        "prompts": {"dir": prompts, "language": "en"},
    })
    work = h.make_tempdir("ivr-media")
    try:
        with relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")

            def walk_menu():
                pcap = mt.RtpPcap()
                pcap.silence(1.5)
                pcap.digit("2")   # during the department menu: interrupts it
                pcap.silence(2.5)
                pcap.digit("1")   # after the support prompt: transfer to support
                pcap.silence(6.0)
                pcap_path = pcap.write(os.path.join(work, "walk.pcap"))
                scenario = mt.pcap_call_scenario(os.path.join(work, "walk.xml"), pcap_path, hold_ms=11000)
                caller_mp, callee_mp = h.free_media_port(), h.free_media_port()
                cap = mt.Capture([caller_mp, callee_mp])
                uas = h.start_sipp(None, os.path.join(h.SCENARIOS, "call_uas_answer.xml"),
                                   ["-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(callee_mp), "-m", "1"],
                                   timeout=30, port=uas_port).wait_ready()
                uac_port = h.free_port()
                uac = h.start_sipp("%s:%d" % relais.addr(), scenario,
                                   ["-i", "127.0.0.1", "-p", str(uac_port), "-mp", str(caller_mp), "-m", "1",
                                    "-s", "ivr", "-key", "caller", "100", "-key", "domain", h.DOMAIN],
                                   timeout=30, port=uac_port)
                ru, (rs,) = h.finish_call(uac, [uas])
                packets = cap.packets()
                if ru.rc != 0 or rs.rc != 0:
                    h.fail("the IVR call failed:\n%s" % h.call_report(ru, [rs]))
                invite = h.sipp_first(rs, "received", method="INVITE")
                if not invite or "sip:support@" not in invite.first_line:
                    h.fail("the callee did not get the support transfer: %r" % (invite.first_line if invite else None))
                frames = mt.rtp_payloads_to(packets, caller_mp, pt=0)
                h.log("%d PCMU packets reached the caller" % len(frames))
                menu = mt.prompt_heard(frames, os.path.join(prompts, "en", "dept_menu.wav"), first_seconds=1.4)
                support = mt.prompt_heard(frames, os.path.join(prompts, "en", "support.wav"))
                sales = mt.prompt_heard(frames, os.path.join(prompts, "en", "sales.wav"))
                h.log("prompt frames found: dept_menu %d/%d, support %d/%d, sales %d/%d" % (menu + support + sales))
                if menu[0] < 0.7 * menu[1]:
                    h.fail("the caller did not hear the department menu")
                if support[0] < 0.7 * support[1]:
                    h.fail("the caller did not hear the support prompt after pressing 2")
                if sales[0] > 0.3 * sales[1]:
                    h.fail("the caller heard the sales prompt, which it never chose")
                # Bridged: the caller's audio after the transfer reaches the callee via the relay.
                to_callee = [p for p in packets if p[2] == callee_mp]
                if len(to_callee) < 50:
                    h.fail("only %d RTP packets reached the support desk after the transfer" % len(to_callee))
                log = "\n".join(relais.log_lines())
                for needle in ("key=2 action=menu", "key=1 action=dial", "source=rfc4733"):
                    if needle not in log:
                        h.fail("relais log lacks %r" % needle)

            checks.run("a sipp caller walks the menu with RFC 4733 digits to the support desk", walk_menu)

            def walk_menu_with_info():
                # The same walk with SIP INFO digits (phones without RFC 4733).
                pcap = mt.RtpPcap()
                pcap.silence(12.0)
                pcap_path = pcap.write(os.path.join(work, "silence.pcap"))
                scenario = mt.pcap_call_scenario(os.path.join(work, "info.xml"), pcap_path, hold_ms=6000,
                                                 infos=[(1500, "2"), (2500, "1")])
                mark = relais.log_mark()
                uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=30)
                uac = h.start_sipp("%s:%d" % relais.addr(), scenario,
                                   ["-i", "127.0.0.1", "-p", str(h.free_port()), "-mp", str(h.free_media_port()),
                                    "-m", "1", "-s", "ivr", "-key", "caller", "100", "-key", "domain", h.DOMAIN],
                                   timeout=30)
                ru, (rs,) = h.finish_call(uac, [uas])
                if ru.rc != 0 or rs.rc != 0:
                    h.fail("the IVR call with INFO digits failed:\n%s" % h.call_report(ru, [rs]))
                invite = h.sipp_first(rs, "received", method="INVITE")
                if not invite or "sip:support@" not in invite.first_line:
                    h.fail("INFO digits did not lead to the support desk")
                text = "\n".join(relais.log_since(mark))
                if "source=info" not in text or "key=1 action=dial" not in text:
                    h.fail("relais did not take the INFO digits:\n%s" % text[-1500:])

            checks.run("the same menu walked with SIP INFO digits", walk_menu_with_info)

    finally:
        relay.stop()


if __name__ == "__main__":
    h.main(test)
