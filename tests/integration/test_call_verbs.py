"""test_call_verbs.py — the call verbs a script answers a caller with: call:reject(code, reason),
call:ring() then relais.sleep then a rejection (180 first), call:redirect(uri) (302 with that
Contact), call:dial with a parallel list of URIs (the busy one does not stop the other) and
with opts.caller_id; a Lua error in on_invite answers 500 and relais keeps serving calls."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

CALLS = {"authenticate": False, "unknown_sources": "allow", "no_answer_timeout": 30}

SCRIPT = r"""
-- test_call_verbs.py dialplan
function on_invite(call)
  local u = call.ruri.user
  if u == "reject" then
    return call:reject(603, "Declined By Script")
  elseif u == "ring" then
    call:ring()
    relais.sleep(1)
    return call:reject(480, "Rang Then Gave Up")
  elseif u == "redirect" then
    return call:redirect("sip:elsewhere@192.0.2.10:5070")
  elseif u == "parallel" then
    local r = call:dial({ "sip:busy@127.0.0.1:@BUSY_PORT@", "sip:answer@127.0.0.1:@ANSWER_PORT@" },
                        { timeout = 8, caller_id = "5550100" })
    relais.log(string.format("dial-result parallel answered=%s code=%s target=%s",
                             tostring(r.answered), tostring(r.code), tostring(r.target)))
    return
  elseif u == "boom" then
    error("deliberate script failure")
  elseif u == "spin" then
    while true do end
  end
  return call:reject(404, "No Such Test")
end
"""


def final_response(result):
    for _, m in h.sipp_messages(result, "received"):
        if m.status and m.status >= 200 and "INVITE" in (m.get("cseq") or ""):
            return m
    return None


def expect_final(relais, service, code, reason=None):
    """One sipp call to service that must end with code (and reason); returns the result."""
    uac = h.sipp_uac(relais, "call_uac_fail.xml", service, timeout=10)
    ru, _ = h.finish_call(uac)
    report = h.call_report(ru)
    h.log(report)
    fin = final_response(ru)
    if fin is None or fin.status != code:
        h.fail("call to %s: expected %d, got %s\n%s" % (
            service, code, fin.first_line if fin else "no final response", report))
    if reason and fin.reason != reason:
        h.fail("call to %s: reason %r, expected %r" % (service, fin.reason, reason))
    if ru.rc != 0:
        h.fail("call to %s: sipp failed\n%s" % (service, report))
    return ru, fin


def test(checks):
    h.require_tool("sipp")
    busy_port, answer_port = h.free_port(), h.free_port()
    script = SCRIPT.replace("@BUSY_PORT@", str(busy_port)).replace("@ANSWER_PORT@",
                                                                    str(answer_port))
    relais = h.Relais(name="call-verbs", config={"calls": CALLS}, script=script)
    with relais:
        def reject():
            expect_final(relais, "reject", 603, "Declined By Script")

        def ring_then_reject():
            t0 = time.monotonic()
            ru, _ = expect_final(relais, "ring", 480, "Rang Then Gave Up")
            took = time.monotonic() - t0
            if not h.sipp_first(ru, "received", status=180):
                h.fail("call:ring() sent no 180 to the caller:\n%s" % h.sipp_summary(ru))
            if took < 0.9:
                h.fail("relais.sleep(1) between ring and reject, but the call ended after %.2fs"
                       % took)

        def redirect():
            _, fin = expect_final(relais, "redirect", 302)
            contacts = [uri for uri, _ in fin.contacts()]
            if not any(c.startswith("sip:elsewhere@192.0.2.10:5070") for c in contacts):
                h.fail("302 Contact %s is not the script's sip:elsewhere@192.0.2.10:5070"
                       % contacts)

        def parallel_list():
            mark = relais.log_mark()
            busy = h.sipp_uas("call_uas_busy.xml", port=busy_port, timeout=15)
            answer = h.sipp_uas("call_uas_answer.xml", port=answer_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_basic.xml", "parallel", timeout=15)
            ru, (rb, ra) = h.finish_call(uac, [busy, answer])
            report = h.call_report(ru, [rb, ra], names=["busy target", "answering target"])
            h.log(report)
            if ru.rc != 0 or rb.rc != 0 or ra.rc != 0:
                h.fail("parallel dial {busy, answer}: a sipp failed\n%s" % report)
            line = h.wait_until(lambda: [l for l in h.script_logs(relais, mark)
                                         if l.startswith("dial-result parallel")],
                                timeout=5, what="dial-result parallel")[0]
            h.log("script: %s" % line)
            if "answered=true" not in line:
                h.fail("parallel dial answered by one target: %r" % line)
            b = h.sipp_first(ra, "received", method="INVITE")
            if "5550100" not in (b.get("from") or ""):
                h.fail("dial opts.caller_id = 5550100 not in the callee's From: %s"
                       % b.get("from"))

        def script_error():
            mark = relais.log_mark()
            expect_final(relais, "boom", 500)
            if not any("deliberate script failure" in l for l in relais.log_since(mark)):
                h.fail("the Lua error was not logged:\n%s" % "\n".join(relais.log_since(mark)))
            if not relais.alive():
                h.fail("relais died on a Lua error in on_invite")
            expect_final(relais, "reject", 603)

        checks.run("call:reject(603, reason) answers the caller with it", reject)
        checks.run("call:ring() sends 180, relais.sleep waits, then the rejection",
                   ring_then_reject)
        checks.run("call:redirect(uri) answers 302 with that Contact", redirect)
        checks.run("dial of a parallel list: busy target ignored, the other answers; caller_id "
                   "reaches the callee", parallel_list)
        checks.run("a Lua error in on_invite answers 500, relais keeps serving", script_error)

        def runaway_script():
            mark = relais.log_mark()
            t0 = time.monotonic()
            expect_final(relais, "spin", 500)
            if not any("instruction limit" in l for l in relais.log_since(mark)):
                h.fail("the runaway script was not reported:\n%s" % "\n".join(relais.log_since(mark)))
            h.log("runaway script stopped after %.2fs" % (time.monotonic() - t0))
            expect_final(relais, "reject", 603)

        checks.run("a runaway on_invite is stopped by the instruction limit, relais keeps serving",
                   runaway_script)
        if not relais.alive():
            h.fail("relais died during the calls")

    # calls.unknown_sources = "reject": an INVITE from neither a user nor a trunk gets 403 and
    # never reaches the script.
    strict = h.Relais(name="call-verbs-strict", config={"calls": {"authenticate": True, "unknown_sources": "reject"}},
                      script=script)
    with strict:
        def unknown_source_rejected():
            mark = strict.log_mark()
            uac = h.sipp_uac(strict, "call_uac_fail.xml", "reject", caller="stranger", timeout=10)
            ru, _ = h.finish_call(uac)
            fin = final_response(ru)
            if fin is None or fin.status != 403:
                h.fail("INVITE from an unknown source: expected 403, got %s\n%s" % (
                    fin.first_line if fin else "no final response", h.call_report(ru)))
            if h.script_logs(strict, mark):
                h.fail("the script ran for a rejected unknown source")

        checks.run("unknown_sources = reject answers 403 to an INVITE from nobody we know",
                   unknown_source_rejected)
        if not strict.alive():
            h.fail("relais died during the calls")


if __name__ == "__main__":
    h.main(test)
