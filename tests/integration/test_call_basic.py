"""test_call_basic.py — sipp caller → relais → sipp callee: a basic call connects and ends with a
BYE from either side; the callee's leg hides the caller's (and the caller's the callee's); the
script sees the call's fields and call:dial reports the outcome; a busy callee makes dial return
486 and the script's fallback runs; without on_invite relais dials the registered contacts of
the Request-URI user (404 when there are none)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

CALLS = {"authenticate": False, "unknown_sources": "allow", "no_answer_timeout": 30}

SCRIPT = r"""
-- test_call_basic.py dialplan: "busy" goes to a fixed URI, anything else to the AoR.
function on_invite(call)
  relais.log(string.format(
    "fields from=%s@%s to=%s@%s ruri=%s@%s src=%s:%s transport=%s auth=%s trunk=%s",
    tostring(call.from.user), tostring(call.from.host), tostring(call.to.user),
    tostring(call.to.host), tostring(call.ruri.user), tostring(call.ruri.host),
    tostring(call.source_ip), tostring(call.source_port), tostring(call.transport),
    tostring(call.auth_user), tostring(call.from_trunk)))
  relais.log("header user-agent=" .. tostring(call:header("User-Agent"))
             .. " missing=" .. tostring(call:header("X-Not-There"))
             .. " call_id=" .. tostring(call.call_id))
  if call.ruri.user == "busy" then
    local r = call:dial("sip:busy@127.0.0.1:@BUSY_PORT@", { timeout = 10 })
    relais.log(string.format("dial-result busy answered=%s code=%s", tostring(r.answered),
                             tostring(r.code)))
    if r.code == 486 then
      relais.log("fallback-busy")
      return call:reject(486, "Busy Here")
    end
    return call:reject(500, "unexpected dial result " .. tostring(r.code))
  end
  local r = call:dial(call.ruri.user, { headers = { ["X-Relais-Test"] = "basic" } })
  relais.log(string.format("dial-result %s answered=%s code=%s ended_by=%s",
                           call.ruri.user, tostring(r.answered), tostring(r.code),
                           tostring(r.ended_by)))
end
"""


def header_values(msg):
    return ["%s: %s" % (n, v) for n, v in msg.headers]


def tag_of(value):
    params = h.parse_params(value.split(">", 1)[1] if ">" in value else value.partition(";")[2])
    return params.get("tag")


def expect_connected(ru, rs, what):
    report = h.call_report(ru, rs, names=["callee"] * len(rs))
    h.log(report)
    if ru.rc != 0 or any(r.rc != 0 for r in rs):
        h.fail("%s: a sipp failed\n%s" % (what, report))


def wait_script_line(relais, mark, prefix, timeout=5):
    line = h.wait_until(lambda: [l for l in h.script_logs(relais, mark) if l.startswith(prefix)],
                        timeout=timeout, what="script log line starting %r" % prefix)
    return line[0]


def test(checks):
    h.require_tool("sipp")
    busy_port = h.free_port()
    relais = h.Relais(name="call-basic", config={"calls": CALLS},
                      script=SCRIPT.replace("@BUSY_PORT@", str(busy_port)))
    state = {}
    with relais:
        def basic_call():
            uas_port = h.free_port()
            contact = h.register_from_port(relais, "105", uas_port)
            h.log("105 registered as %s" % contact)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_basic.xml", "105", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            state.update(uac=ru, uas=rs, uac_port=int(uac.argv[uac.argv.index("-p") + 1]),
                         uas_port=uas_port, mark=mark)
            expect_connected(ru, [rs], "basic call to 105")
            for method in ("INVITE", "ACK", "BYE"):
                if not h.sipp_first(rs, "received", method=method):
                    h.fail("the callee never received %s:\n%s" % (method, h.sipp_summary(rs)))
            line = wait_script_line(relais, mark, "dial-result 105")
            h.log("script: %s" % line)
            if "answered=true" not in line or "ended_by=caller" not in line:
                h.fail("call:dial result after a call the caller hung up: %r "
                       "(expected answered=true, ended_by=caller)" % line)

        def script_fields():
            if "mark" not in state:
                h.fail("no basic call to look at")
            fields = wait_script_line(relais, state["mark"], "fields ")
            hdr = wait_script_line(relais, state["mark"], "header ")
            h.log("script: %s\nscript: %s" % (fields, hdr))
            want = ["from=100@%s" % h.DOMAIN, "to=105@%s" % h.DOMAIN, "ruri=105@127.0.0.1",
                    "src=127.0.0.1:%d" % state["uac_port"], "transport=udp", "auth=nil",
                    "trunk=nil"]
            missing = [w for w in want if w not in fields.split()]
            if missing:
                h.fail("on_invite saw %r; expected fields %s" % (fields, missing))
            a_invite = h.sipp_first(state["uac"], "sent", method="INVITE")
            if "user-agent=sipp-relais-it" not in hdr or "missing=nil" not in hdr:
                h.fail("call:header(): %r (expected user-agent=sipp-relais-it, missing=nil)" % hdr)
            if "call_id=%s" % a_invite.get("call-id") not in hdr:
                h.fail("call.call_id: %r, caller's Call-ID is %s" % (hdr, a_invite.get("call-id")))

        def hides_caller():
            if "uas" not in state:
                h.fail("no basic call to look at")
            a = h.sipp_first(state["uac"], "sent", method="INVITE")
            b = h.sipp_first(state["uas"], "received", method="INVITE")
            if a is None or b is None:
                h.fail("missing INVITE in the traces (caller sent %s, callee got %s)" % (a, b))
            h.log("A-leg INVITE as sent:\n  " + "\n  ".join(header_values(a)))
            h.log("B-leg INVITE as received:\n  " + "\n  ".join(header_values(b)))
            problems = []
            if b.get("call-id") == a.get("call-id"):
                problems.append("same Call-ID on both legs: %s" % b.get("call-id"))
            a_tag = tag_of(a.get("from"))
            if tag_of(b.get("from") or "") == a_tag:
                problems.append("same From tag on both legs: %s" % a_tag)
            a_branch = h.parse_params(a.get("via").partition(";")[2]).get("branch")
            caller_addr = "127.0.0.1:%d" % state["uac_port"]
            for line in header_values(b):
                low = line.lower()
                for needle, what in ((a.get("call-id"), "caller's Call-ID"),
                                     (a_tag, "caller's From tag"),
                                     (a_branch, "caller's Via branch"),
                                     (caller_addr, "caller's address"),
                                     ("rport=%d" % state["uac_port"], "caller's port")):
                    if needle and needle.lower() in low:
                        problems.append("%s in %r" % (what, line))
            for name in ("via", "record-route", "contact", "route"):
                for v in b.all(name):
                    if caller_addr in v:
                        problems.append("%s of the caller: %s" % (name, v))
            if problems:
                h.fail("the callee's leg shows the caller's leg:\n  " + "\n  ".join(problems))

        def hides_callee():
            if "uas" not in state:
                h.fail("no basic call to look at")
            ok = h.sipp_first(state["uac"], "received", status=200, cseq_method="INVITE")
            b_ok = h.sipp_first(state["uas"], "sent", status=200, cseq_method="INVITE")
            if ok is None or b_ok is None:
                h.fail("missing 200 in the traces")
            h.log("A-leg 200 as received:\n  " + "\n  ".join(header_values(ok)))
            problems = []
            callee_addr = "127.0.0.1:%d" % state["uas_port"]
            b_tag = tag_of(b_ok.get("to"))
            if tag_of(ok.get("to")) == b_tag:
                problems.append("the callee's To tag reached the caller: %s" % b_tag)
            for line in header_values(ok):
                if callee_addr in line:
                    problems.append("callee's address in %r" % line)
                if b_tag and b_tag in line:
                    problems.append("callee's tag in %r" % line)
            b_callid = h.sipp_first(state["uas"], "received", method="INVITE").get("call-id")
            if ok.get("call-id") == b_callid:
                problems.append("the caller sees the callee leg's Call-ID")
            if problems:
                h.fail("the caller's leg shows the callee's leg:\n  " + "\n  ".join(problems))

        def dial_headers():
            if "uas" not in state:
                h.fail("no basic call to look at")
            b = h.sipp_first(state["uas"], "received", method="INVITE")
            if (b.get("x-relais-test") or "").strip() != "basic":
                h.fail("dial opts.headers X-Relais-Test=basic not on the callee's INVITE; "
                       "headers:\n  " + "\n  ".join(header_values(b)))

        def callee_hangs_up():
            uas_port = h.free_port()
            h.register_from_port(relais, "106", uas_port)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_hangup.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_wait_bye.xml", "106", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            expect_connected(ru, [rs], "call to 106 that the callee hangs up")
            if not h.sipp_first(ru, "received", method="BYE"):
                h.fail("the caller never got the BYE")
            line = wait_script_line(relais, mark, "dial-result 106")
            h.log("script: %s" % line)
            if "answered=true" not in line or "ended_by=callee" not in line:
                h.fail("call:dial result after the callee hung up: %r "
                       "(expected answered=true, ended_by=callee)" % line)

        def busy_fallback():
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_busy.xml", port=busy_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_fail.xml", "busy", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs])
            h.log(report)
            final = [m for _, m in h.sipp_messages(ru, "received")
                     if m.status and m.status >= 200 and "INVITE" in (m.get("cseq") or "")]
            if not final or final[0].status != 486:
                h.fail("caller expected 486 from the script's fallback, got %s\n%s" % (
                    final[0].first_line if final else "no final response", report))
            if ru.rc != 0 or rs.rc != 0:
                h.fail("a sipp failed in the busy call\n%s" % report)
            logs = h.script_logs(relais, mark)
            h.log("script lines: %s" % logs)
            if not any(l.startswith("dial-result busy") and "code=486" in l
                       and "answered=false" in l for l in logs):
                h.fail("call:dial to a busy callee did not return answered=false code=486: %s"
                       % logs)
            if "fallback-busy" not in logs:
                h.fail("the script's busy fallback did not run: %s" % logs)

        checks.run("basic call: caller → relais → registered callee connects, caller hangs up",
                   basic_call)
        checks.run("on_invite sees from/to/ruri/source/transport, call:header and call_id",
                   script_fields)
        checks.run("topology hiding: the callee's leg carries nothing of the caller's",
                   hides_caller)
        checks.run("topology hiding: the caller's leg carries nothing of the callee's",
                   hides_callee)
        checks.run("call:dial opts.headers reach the callee", dial_headers)
        checks.run("BYE from the callee ends the call on the caller's side", callee_hangs_up)
        checks.run("busy callee: dial returns 486, the script's fallback answers the caller 486",
                   busy_fallback)
        if not relais.alive():
            h.fail("relais died during the calls")

    plain = h.Relais(name="call-default", config={"calls": CALLS})
    with plain:
        def default_routing():
            uas_port = h.free_port()
            h.register_from_port(plain, "107", uas_port)
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(plain, "call_uac_basic.xml", "107", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            expect_connected(ru, [rs], "call to registered 107 without on_invite")

        def default_not_found():
            uac = h.sipp_uac(plain, "call_uac_fail.xml", "108", timeout=10)
            ru, _ = h.finish_call(uac)
            final = [m for _, m in h.sipp_messages(ru, "received")
                     if m.status and m.status >= 200]
            if ru.rc != 0 or not final or final[0].status != 404:
                h.fail("call to unregistered 108 without on_invite: expected 404, got %s\n%s" % (
                    final[0].first_line if final else "no final response", h.call_report(ru)))

        checks.run("no on_invite: relais dials the registered contacts of the Request-URI user",
                   default_routing)
        checks.run("no on_invite: a user with no registered contact gets 404", default_not_found)
        if not plain.alive():
            h.fail("relais died during the calls")


if __name__ == "__main__":
    h.main(test)
