"""test_media_call.py — media anchored for every call: a sipp caller plays RTP (g711a.pcap)
through relais to a sipp callee that echoes it, with media.mode = "relay" driving (1)
relais-media and (2) a real rtpengine (userspace). A capture on loopback proves every RTP
packet of both phones went to or came from the relay's ports, never phone to phone, in both
directions. The relay is then restarted and a new call flows again; with relais-media an idle
call (no RTP) is torn down with a BYE to both legs."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
from media_tools import Capture, Relay  # noqa: E402

MIN_PACKETS = 50  # the call lasts 3 s of a 20 ms stream: ~100-150 each way seen on these ports


def media_call(relais, relay, uas_port):
    """One call with audio both ways; returns (caller media port, callee media port, flows)."""
    caller_mp, callee_mp = h.free_media_port(), h.free_media_port()
    cap = Capture([caller_mp, callee_mp])
    uas = h.start_sipp(None, os.path.join(h.SCENARIOS, "call_uas_answer.xml"),
                       ["-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(callee_mp), "-rtp_echo", "-m", "1"],
                       timeout=20, port=uas_port).wait_ready()
    uac_port = h.free_port()
    uac = h.start_sipp("%s:%d" % relais.addr(), os.path.join(h.SCENARIOS, "call_uac_rtp.xml"),
                       ["-i", "127.0.0.1", "-p", str(uac_port), "-mp", str(caller_mp), "-m", "1", "-s", "echo",
                        "-key", "caller", "100", "-key", "domain", h.DOMAIN], timeout=20, port=uac_port)
    ru, (rs,) = h.finish_call(uac, [uas])
    flows = cap.flows()
    if ru.rc != 0 or rs.rc != 0:
        h.fail("call through relais with %s failed:\n%s" % (relay.kind, h.call_report(ru, [rs])))
    return caller_mp, callee_mp, flows


def check_anchored(caller_mp, callee_mp, flows, ports):
    lo, hi = ports
    h.log("flows (src port -> dst port: packets): %s" % sorted(flows.items()))
    for (src, dst), n in flows.items():
        for phone in (caller_mp, callee_mp):
            other = dst if src == phone else src if dst == phone else None
            if other is not None and not lo <= other <= hi + 1:
                h.fail("%d packets between phone port %d and %d, outside the relay's ports %d-%d" % (n, phone, other, lo, hi))
    if flows.get((caller_mp, callee_mp)) or flows.get((callee_mp, caller_mp)):
        h.fail("RTP went directly between the phones")

    def total(src=None, dst=None):
        return sum(n for (s, d), n in flows.items() if (src is None or s == src) and (dst is None or d == dst))

    for what, n in (("caller -> relay", total(src=caller_mp)), ("relay -> caller", total(dst=caller_mp)),
                    ("relay -> callee", total(dst=callee_mp)), ("callee -> relay", total(src=callee_mp))):
        h.log("%s: %d packets" % (what, n))
        if n < MIN_PACKETS:
            h.fail("%s: only %d RTP packets (expected >= %d)" % (what, n, MIN_PACKETS))


SCRIPT = '''
function on_invite(call)
  local r = call:dial("sip:echo@127.0.0.1:%d", { timeout = 5 })
  relais.log("dial-result", r.answered, r.code, r.ended_by)
end
'''


def run_with(checks, kind):
    ng_port = h.free_port(tcp=False)
    # Below the ephemeral range, where the sipps' free_media_port() ports come from.
    ports = h.free_port_range(41)
    relay = Relay(kind, ng_port, ports).start()
    uas_port = h.free_port()
    relais = h.Relais(name="media-" + kind, script=SCRIPT % uas_port, config={
        "calls": {"authenticate": False, "unknown_sources": "allow"},
        "media": {"mode": "relay", "ng": "127.0.0.1:%d" % ng_port, "timeout_ms": 500},
    })
    try:
        with relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")

            def anchored():
                check_anchored(*media_call(relais, relay, uas_port), ports)

            def after_relay_restart():
                relay.stop()
                time.sleep(0.5)
                relay.start()
                check_anchored(*media_call(relais, relay, uas_port), ports)

            checks.run("%s: RTP of both phones flows only through the relay" % kind, anchored)
            checks.run("%s: after the relay restarts, a new call flows again" % kind, after_relay_restart)

            if kind == "relais-media":
                def idle_call_torn_down():
                    # No RTP at all: the relay's idle timeout (2 s) reports the call dead and
                    # relais sends BYE to both legs.
                    mark = relais.log_mark()
                    uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=25)
                    uac = h.sipp_uac(relais, "call_uac_wait_bye.xml", "echo", timeout=25)
                    ru, (rs,) = h.finish_call(uac, [uas])
                    if ru.rc != 0 or rs.rc != 0:
                        h.fail("idle call was not torn down on both legs:\n%s" % h.call_report(ru, [rs]))
                    if not any("media_timeout" in l for l in relais.log_since(mark)):
                        h.fail("relais did not log the media timeout")

                checks.run("relais-media: an idle call is torn down with BYE to both legs", idle_call_torn_down)
    finally:
        relay.stop()


def test(checks):
    h.require_tool("sipp")
    run_with(checks, "rtpengine")
    run_with(checks, "relais-media")


if __name__ == "__main__":
    h.main(test)
