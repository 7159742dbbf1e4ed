"""test_call_cancel_noanswer.py — a caller that CANCELs before the answer gets 487 and the ringing
callee gets the CANCEL (call:dial returns 487); a callee that never answers is CANCELled when
the dial timeout (or calls.no_answer_timeout) runs out, call:dial returns 408 and the script's
fallback decides what the caller gets."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

NO_ANSWER_TIMEOUT = 3
CALLS = {"authenticate": False, "unknown_sources": "allow", "no_answer_timeout": NO_ANSWER_TIMEOUT}

SCRIPT = r"""
-- test_call_cancel_noanswer.py dialplan
function on_invite(call)
  if call.ruri.user == "slow" then
    local r = call:dial("sip:slow@127.0.0.1:@SLOW_PORT@", { timeout = 2 })
    relais.log(string.format("dial-result slow answered=%s code=%s", tostring(r.answered),
                             tostring(r.code)))
    if not r.answered and r.code == 408 then
      relais.log("fallback-noanswer")
      return call:reject(480, "No Answer Fallback")
    end
    return call:reject(500, "unexpected dial result " .. tostring(r.code))
  end
  -- no timeout given: calls.no_answer_timeout applies; returning without an answer or a
  -- rejection gives the caller the last dial failure code
  local r = call:dial(call.ruri.user)
  relais.log(string.format("dial-result %s answered=%s code=%s", call.ruri.user,
                           tostring(r.answered), tostring(r.code)))
end
"""


def final_response(result):
    for _, m in h.sipp_messages(result, "received"):
        if m.status and m.status >= 200 and "INVITE" in (m.get("cseq") or ""):
            return m
    return None


def script_line(relais, mark, prefix, timeout=5):
    return h.wait_until(lambda: [l for l in h.script_logs(relais, mark) if l.startswith(prefix)],
                        timeout=timeout, what="script log line %r" % prefix)[0]


def test(checks):
    h.require_tool("sipp")
    slow_port = h.free_port()
    relais = h.Relais(name="call-cancel", config={"calls": CALLS},
                      script=SCRIPT.replace("@SLOW_PORT@", str(slow_port)))
    with relais:
        def caller_cancels():
            uas_port = h.free_port()
            h.register_from_port(relais, "110", uas_port)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_ring_forever.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_cancel.xml", "110", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs])
            h.log(report)
            fin = final_response(ru)
            if fin is None or fin.status != 487:
                h.fail("caller's INVITE after its CANCEL: expected 487, got %s\n%s" % (
                    fin.first_line if fin else "no final response", report))
            if not h.sipp_first(ru, "received", status=200, cseq_method="CANCEL"):
                h.fail("no 200 for the caller's CANCEL\n%s" % report)
            if not h.sipp_first(rs, "received", method="CANCEL"):
                h.fail("the ringing callee never got a CANCEL\n%s" % report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("a sipp failed\n%s" % report)
            line = script_line(relais, mark, "dial-result 110")
            h.log("script: %s" % line)
            if "answered=false" not in line or "code=487" not in line:
                h.fail("call:dial when the caller cancels: %r (expected answered=false code=487)"
                       % line)

        def no_answer_dial_timeout():
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_ring_forever.xml", port=slow_port, timeout=15)
            t0 = time.monotonic()
            uac = h.sipp_uac(relais, "call_uac_fail.xml", "slow", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            took = time.monotonic() - t0
            report = h.call_report(ru, [rs])
            h.log("%s\ncaller's call took %.1fs" % (report, took))
            fin = final_response(ru)
            if fin is None or fin.status != 480:
                h.fail("caller expected 480 from the no-answer fallback, got %s\n%s" % (
                    fin.first_line if fin else "no final response", report))
            if "No Answer Fallback" not in fin.reason:
                h.fail("480 reason %r is not the script's 'No Answer Fallback'" % fin.reason)
            if not h.sipp_first(rs, "received", method="CANCEL"):
                h.fail("the callee that never answered got no CANCEL\n%s" % report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("a sipp failed\n%s" % report)
            if not 1.5 <= took <= 10:
                h.fail("dial timeout=2 but the caller's final response came after %.1fs" % took)
            logs = h.script_logs(relais, mark)
            h.log("script lines: %s" % logs)
            if not any(l.startswith("dial-result slow") and "answered=false" in l
                       and "code=408" in l for l in logs):
                h.fail("call:dial to a callee that never answers did not return code=408: %s"
                       % logs)
            if "fallback-noanswer" not in logs:
                h.fail("the script's no-answer fallback did not run: %s" % logs)

        def no_answer_config_timeout():
            uas_port = h.free_port()
            h.register_from_port(relais, "111", uas_port)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_ring_forever.xml", port=uas_port, timeout=20)
            t0 = time.monotonic()
            uac = h.sipp_uac(relais, "call_uac_fail.xml", "111", timeout=20)
            ru, (rs,) = h.finish_call(uac, [uas])
            took = time.monotonic() - t0
            report = h.call_report(ru, [rs])
            h.log("%s\ncaller's call took %.1fs" % (report, took))
            fin = final_response(ru)
            if fin is None or fin.status != 408:
                h.fail("script returned after a dial that timed out: caller expected the last dial "
                       "failure code 408, got %s\n%s" % (
                           fin.first_line if fin else "no final response", report))
            if not h.sipp_first(rs, "received", method="CANCEL"):
                h.fail("the callee that never answered got no CANCEL\n%s" % report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("a sipp failed\n%s" % report)
            if not NO_ANSWER_TIMEOUT - 0.5 <= took <= NO_ANSWER_TIMEOUT + 8:
                h.fail("calls.no_answer_timeout=%d but the caller's final response came after "
                       "%.1fs" % (NO_ANSWER_TIMEOUT, took))
            line = script_line(relais, mark, "dial-result 111")
            if "answered=false" not in line or "code=408" not in line:
                h.fail("call:dial with calls.no_answer_timeout: %r (expected code=408)" % line)

        checks.run("caller CANCELs while ringing: caller gets 487, callee gets CANCEL, dial "
                   "returns 487", caller_cancels)
        checks.run("no answer within dial timeout=2: callee CANCELled, dial returns 408, the "
                   "script's fallback answers 480", no_answer_dial_timeout)
        checks.run("no answer within calls.no_answer_timeout: callee CANCELled, caller gets "
                   "the dial's 408", no_answer_config_timeout)
        if not relais.alive():
            h.fail("relais died during the calls")


if __name__ == "__main__":
    h.main(test)
