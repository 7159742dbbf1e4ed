"""test_call_reinvite_fork.py — a re-INVITE (hold, a=sendonly) is relayed through a bridged
call in the same dialogs; an AoR with two registered contacts rings both in parallel, one
answers and the other gets a CANCEL; a serial dial tries the next target after a busy one."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

CALLS = {"authenticate": False, "unknown_sources": "allow", "no_answer_timeout": 30}

SCRIPT = r"""
-- test_call_reinvite_fork.py dialplan
function on_invite(call)
  local u = call.ruri.user
  if u == "serial" then
    local r = call:dial({ serial = { "sip:busy@127.0.0.1:@BUSY_PORT@",
                                     "sip:answer@127.0.0.1:@ANSWER_PORT@" } }, { timeout = 5 })
    relais.log(string.format("dial-result serial answered=%s code=%s target=%s",
                             tostring(r.answered), tostring(r.code), tostring(r.target)))
    return
  end
  local contacts = registrar.lookup(u)
  relais.log(string.format("lookup %s %d %s", u, #contacts, table.concat(contacts, ",")))
  local r = call:dial(u, { timeout = 10 })
  relais.log(string.format("dial-result %s answered=%s code=%s target=%s", u,
                           tostring(r.answered), tostring(r.code), tostring(r.target)))
end
"""


def invites(result):
    return [m for d, m in h.sipp_messages(result, "received") if m.method == "INVITE"]


def script_line(relais, mark, prefix, timeout=5):
    return h.wait_until(lambda: [l for l in h.script_logs(relais, mark) if l.startswith(prefix)],
                        timeout=timeout, what="script log line %r" % prefix)[0]


def test(checks):
    h.require_tool("sipp")
    busy_port, answer_port = h.free_port(), h.free_port()
    script = SCRIPT.replace("@BUSY_PORT@", str(busy_port)).replace("@ANSWER_PORT@",
                                                                    str(answer_port))
    relais = h.Relais(name="call-fork", config={"calls": CALLS}, script=script)
    with relais:
        def hold_reinvite():
            uas_port = h.free_port()
            h.register_from_port(relais, "113", uas_port)
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_hold.xml", "113", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs])
            h.log(report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("hold call failed\n%s" % report)
            got = invites(rs)
            if len(got) != 2:
                h.fail("callee expected the INVITE and the re-INVITE, got %d INVITEs\n%s" % (
                    len(got), report))
            first, again = got
            in_dialog = ";tag=" in (again.get("to") or "")
            if again.get("call-id") != first.get("call-id") or not in_dialog:
                h.fail("the re-INVITE is not in the callee's dialog: Call-ID %s vs %s, To %s" % (
                    again.get("call-id"), first.get("call-id"), again.get("to")))
            body = again.body.decode("utf-8", "replace")
            if "a=sendonly" not in body:
                h.fail("the callee's re-INVITE does not carry the hold offer (a=sendonly):\n%s"
                       % body)
            ok2 = [m for _, m in h.sipp_messages(ru, "received")
                   if m.status == 200 and (m.get("cseq") or "").split()[:1] == ["2"]]
            if not ok2 or "a=recvonly" not in ok2[0].body.decode("utf-8", "replace"):
                h.fail("the caller's re-INVITE 200 lacks the callee's answer (a=recvonly): %s"
                       % (ok2[0].raw.decode("utf-8", "replace") if ok2 else "no 200"))

        def forked():
            ring_port, pick_port = h.free_port(), h.free_port()
            c1 = h.register_from_port(relais, "112", pick_port)
            c2 = h.register_from_port(relais, "112", ring_port)
            h.log("112 registered as %s and %s" % (c1, c2))
            mark = relais.log_mark()
            ringing = h.sipp_uas("call_uas_ring_forever.xml", port=ring_port, timeout=15)
            answering = h.sipp_uas("call_uas_answer.xml", port=pick_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_basic.xml", "112", timeout=15)
            ru, (ra, rr) = h.finish_call(uac, [answering, ringing])
            report = h.call_report(ru, [ra, rr], names=["answering callee", "ringing callee"])
            h.log(report)
            lookup = script_line(relais, mark, "lookup 112")
            h.log("script: %s" % lookup)
            if not lookup.startswith("lookup 112 2 "):
                h.fail("registrar.lookup('112') should list the two contacts: %r" % lookup)
            if not invites(ra) or not invites(rr):
                h.fail("both contacts of 112 should ring (answering got %d INVITE, ringing got %d)"
                       "\n%s" % (len(invites(ra)), len(invites(rr)), report))
            if not h.sipp_first(rr, "received", method="CANCEL"):
                h.fail("the contact still ringing got no CANCEL after the other answered\n%s"
                       % report)
            if ru.rc != 0 or ra.rc != 0 or rr.rc != 0:
                h.fail("a sipp failed in the forked call\n%s" % report)
            b1, b2 = invites(ra)[0], invites(rr)[0]
            a = h.sipp_first(ru, "sent", method="INVITE")
            if a.get("call-id") in (b1.get("call-id"), b2.get("call-id")):
                h.fail("a forked leg reuses the caller's Call-ID %s" % a.get("call-id"))
            line = script_line(relais, mark, "dial-result 112")
            h.log("script: %s" % line)
            if "answered=true" not in line:
                h.fail("call:dial of a forked AoR answered by one contact: %r" % line)

        def serial():
            mark = relais.log_mark()
            busy = h.sipp_uas("call_uas_busy.xml", port=busy_port, timeout=15)
            answer = h.sipp_uas("call_uas_answer.xml", port=answer_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_basic.xml", "serial", timeout=15)
            ru, (rb, ra) = h.finish_call(uac, [busy, answer])
            report = h.call_report(ru, [rb, ra], names=["busy target", "answering target"])
            h.log(report)
            if not invites(rb):
                h.fail("the first serial target was never tried\n%s" % report)
            if ru.rc != 0 or rb.rc != 0 or ra.rc != 0:
                h.fail("serial dial: a sipp failed\n%s" % report)
            line = script_line(relais, mark, "dial-result serial")
            h.log("script: %s" % line)
            if "answered=true" not in line or ":%d" % answer_port not in line:
                h.fail("serial dial answered by the second target: %r (expected answered=true, "
                       "target naming port %d)" % (line, answer_port))

        checks.run("re-INVITE (hold) relayed in the bridged dialogs, both ends complete",
                   hold_reinvite)
        checks.run("forked registration: both contacts ring, one answers, the other is "
                   "CANCELled", forked)
        checks.run("serial dial: a busy first target, the second answers", serial)
        if not relais.alive():
            h.fail("relais died during the calls")


if __name__ == "__main__":
    h.main(test)
