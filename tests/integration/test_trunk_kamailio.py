"""test_trunk_kamailio.py — relais on a SIP trunk to an operator played by Kamailio
(kamailio-operator.cfg): relais registers to the operator with Digest; a local user calls a
mobile number out through the trunk (the operator challenges the INVITE with 407, a sipp "PSTN"
answers); a call from the PSTN to the DID 100 comes in through the operator, the script sees
call.from_trunk == "operator" and rings the registered user 100; the registration is refreshed
before it expires; with a wrong trunk password the registration fails and an INVITE's 407 is
answered once only.

Addresses: relais and the phones on 127.0.0.1, Kamailio on 127.0.0.2 (still the loopback
interface). relais tells a trunk's INVITEs by their source IP only, so the operator needs an
address of its own: with everything on 127.0.0.1 the local caller of the outbound call would also
count as "from the trunk". The trunk's `addresses` is therefore { "127.0.0.2" }.

Before relais is involved, one check proves the operator itself with the test's own clients
(REGISTER with the python UAC, a call with sipp answering the 407), so a failure in the later
checks points at relais and not at the peer."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

OP_DOMAIN = "operator.test"
OP_IP = "127.0.0.2"
TRUNK_USER = "office"
TRUNK_PASSWORD = "trunk-secret"
TRUNK_EXPIRES = 30          # the lowest relais accepts: the refresh shows within the test budget
MOBILE = "0612345678"       # an operator-side number (the "PSTN")
PSTN_CALLER = "0698765432"
DID = "100"                 # the number the operator delivers to the trunk = a local user

CALLS = {"authenticate": False, "unknown_sources": "reject", "no_answer_timeout": 10}

SCRIPT = r"""
-- test_trunk_kamailio.py dialplan: calls from the trunk ring the local user named by the
-- Request-URI; calls from local users to 0... numbers go out through the trunk.
function on_invite(call)
  relais.log(string.format("trunk-test invite ruri=%s from=%s@%s src=%s from_trunk=%s",
                           tostring(call.ruri.user), tostring(call.from.user),
                           tostring(call.from.host), tostring(call.source_ip),
                           tostring(call.from_trunk)))
  if call.from_trunk then
    local r = call:dial(call.ruri.user)
    relais.log(string.format("trunk-test inbound-result trunk=%s user=%s answered=%s code=%s",
                             tostring(call.from_trunk), tostring(call.ruri.user),
                             tostring(r.answered), tostring(r.code)))
    return
  end
  if call.ruri.user and call.ruri.user:match("^0%d+$") then
    local r = call:dial("trunk:operator/" .. call.ruri.user)
    relais.log(string.format("trunk-test outbound-result number=%s answered=%s code=%s",
                             tostring(call.ruri.user), tostring(r.answered), tostring(r.code)))
    return
  end
  return call:reject(404, "Not Found")
end
"""


def operator_lines(kam, since=0):
    return [l.split("<script>: ", 1)[-1] for l in kam.grep("OPERATOR: ", since)]


def evidence(kam, kmark, relais=None, rmark=0, sipps=(), names=()):
    """What was exchanged: each sipp's message flow, the operator's decisions, relais's log."""
    out = []
    for name, r in zip(names, sipps):
        out.append("%s sipp exit %s:\n%s" % (name, r.rc, h.sipp_summary(r)))
    out.append("operator (kamailio) log:\n  " + "\n  ".join(operator_lines(kam, kmark)[-40:]))
    if relais is not None:
        out.append("relais log:\n  " + "\n  ".join(relais.log_since(rmark)[-40:]))
    for r in sipps:
        if r.rc != 0:
            out.append(r.report())
    return "\n".join(out)


def call_to_pstn(relais, kam, pstn_port, what):
    """Local user 100 calls MOBILE through relais's trunk and the sipp "PSTN" behind the operator
    answers. Fails with the evidence unless both sipps succeeded; returns (caller result, PSTN
    result, report, the operator's log mark before the call)."""
    kmark, rmark = kam.log_mark(), relais.log_mark()
    uas = h.sipp_uas("trunk_uas_answer.xml", port=pstn_port, timeout=15)
    uac = h.sipp_uac(relais, "call_uac_basic.xml", MOBILE, caller="100", timeout=15)
    ru, (rs,) = h.finish_call(uac, [uas])
    report = evidence(kam, kmark, relais, rmark, [ru, rs], ["caller 100", "PSTN"])
    h.log(report)
    if ru.rc != 0 or rs.rc != 0:
        h.fail("%s failed\n%s" % (what, report))
    return ru, rs, report, kmark


def uri_of(value):
    m = re.search(r"<([^>]*)>", value or "")
    return m.group(1) if m else (value or "").split(";")[0].strip()


def test(checks):
    for tool in ("kamailio", "kamcmd", "sipp"):
        h.require_tool(tool)
    kport = h.free_port(host=OP_IP, tcp=False)
    pstn_port = h.free_port()
    kam = h.Kamailio(os.path.join(h.HERE, "kamailio-operator.cfg"), {
        "DOMAIN": OP_DOMAIN, "USER": TRUNK_USER, "PASSWORD": TRUNK_PASSWORD,
        "TRUNK_AOR": "sip:%s@%s" % (TRUNK_USER, OP_DOMAIN),
        "PSTN": "127.0.0.1:%d" % pstn_port, "AUTH_SECRET": "operator-" + h.SECRET,
        "TLS_PORT": 0, "TLS_CFG": "unused",  # only with -A WITH_TLS (test_trunk_tls.py)
    }, name="operator", host=OP_IP, port=kport)
    relais = h.Relais(name="trunk", config={
        "calls": CALLS,
        "trunks": {"operator": {
            "proxy": "sip:%s:%d" % (OP_IP, kport), "domain": OP_DOMAIN,
            "username": TRUNK_USER, "password": TRUNK_PASSWORD,
            "register": True, "expires": TRUNK_EXPIRES, "addresses": [OP_IP],
        }},
    }, script=SCRIPT)
    state = {}

    def operator_works():
        """The peer alone: REGISTER 401 → 200 and the binding in usrloc; a customer call to a
        mobile number: 407 → authenticated INVITE → PSTN answers; then the binding is removed."""
        kmark = kam.log_mark()
        c = h.SipClient(OP_IP, kport, domain=OP_DOMAIN)
        try:
            contact = "sip:%s@127.0.0.1:%d" % (TRUNK_USER, c.local_port)
            r, _ = c.register(TRUNK_USER, "wrong-password", contacts=["<%s>" % contact],
                              expires=60)
            h.expect_status(r, 401, "operator: REGISTER with a wrong password")
            r, chal = c.register(TRUNK_USER, TRUNK_PASSWORD, contacts=["<%s>" % contact],
                                 expires=60)
            h.expect_status(r, 200, "operator: REGISTER with the trunk credentials")
            if not chal or chal.challenges()[0].get("qop") != "auth":
                h.fail("operator: expected a 401 with qop=auth first, got %s" % (
                    chal and chal.summary()))
            got = kam.contacts_of(TRUNK_USER)
            if contact not in got:
                h.fail("operator usrloc after REGISTER: %s (expected %s)" % (got, contact))
            r, _ = c.register(TRUNK_USER, TRUNK_PASSWORD, contacts=["*"], expires=0)
            h.expect_status(r, 200, "operator: un-REGISTER")
            if kam.contacts_of(TRUNK_USER):
                h.fail("operator usrloc after un-REGISTER: %s" % kam.contacts_of(TRUNK_USER))
        finally:
            c.close()
        uas = h.sipp_uas("trunk_uas_answer.xml", port=pstn_port, timeout=12)
        uac = h.start_sipp("%s:%d" % (OP_IP, kport), os.path.join(h.SCENARIOS, "trunk_uac_auth.xml"),
                           ["-i", "127.0.0.1", "-p", str(h.free_port()),
                            "-mp", str(h.free_media_port()), "-m", "1", "-s", MOBILE,
                            "-key", "caller", TRUNK_USER, "-key", "domain", OP_DOMAIN,
                            "-au", TRUNK_USER, "-ap", TRUNK_PASSWORD,
                            "-auth_uri", "%s@%s" % (MOBILE, OP_DOMAIN)], timeout=12)
        ru, (rs,) = h.finish_call(uac, [uas])
        report = evidence(kam, kmark, sipps=[ru, rs], names=["customer", "PSTN"])
        h.log(report)
        if ru.rc != 0 or rs.rc != 0:
            h.fail("operator: a direct customer call to the PSTN failed\n" + report)

    def relais_starts():
        relais.start()

    def registers():
        kmark = state["kmark"]
        line = relais.wait_log("event=trunk.registered", timeout=10, what="trunk registration")
        h.log("relais: %s" % line)
        if "trunk=operator" not in line.split():
            h.fail("trunk.registered without trunk=operator: %r" % line)
        state["registered_at"] = time.monotonic()
        contact = "sip:%s@127.0.0.1:%d" % (TRUNK_USER, relais.port)
        got = kam.contacts_of(TRUNK_USER)
        h.log("operator usrloc %s: %s" % (TRUNK_USER, got))
        key, left = h.find_contact(got, contact)
        if key is None:
            h.fail("operator has no binding %s for %s (has %s)\n%s" % (
                contact, TRUNK_USER, got, evidence(kam, kmark, relais, 0)))
        if not 0 < left <= TRUNK_EXPIRES:
            h.fail("binding %s expires in %s s; relais asked for %d" % (key, left, TRUNK_EXPIRES))
        state["binding_left"] = left
        ops = operator_lines(kam, kmark)
        if not any("challenged with 401" in l for l in ops):
            h.fail("relais's REGISTER was never challenged?\n  " + "\n  ".join(ops))
        wanted = "registered sip:%s@%s contact <%s" % (TRUNK_USER, OP_DOMAIN, contact)
        if not any(wanted in l and "from 127.0.0.1:%d" % relais.port in l for l in ops):
            h.fail("operator did not log %r from relais's port\n  %s" % (wanted, "\n  ".join(ops)))

    def outbound_call():
        rmark = relais.log_mark()
        ru, rs, report, kmark = call_to_pstn(relais, kam, pstn_port,
                                             "outbound call 100 -> trunk:operator/%s" % MOBILE)
        ops = operator_lines(kam, kmark)
        for needle in ("outbound INVITE challenged with 407",
                       "outbound INVITE authenticated as %s" % TRUNK_USER):
            n = len([l for l in ops if needle in l])
            if n != 1:
                h.fail("operator logged %r %d times (expected once)\n%s" % (needle, n, report))
        invite = h.sipp_first(rs, "received", method="INVITE")
        problems = []
        if not invite.first_line.startswith("INVITE sip:%s@" % MOBILE):
            problems.append("PSTN Request-URI %r" % invite.first_line)
        if uri_of(invite.get("from")) != "sip:100@%s" % OP_DOMAIN:
            problems.append("From %r (expected <sip:100@%s>)" % (invite.get("from"), OP_DOMAIN))
        if "%s:%d" % (OP_IP, kport) not in (invite.get("via") or ""):
            problems.append("top Via %r is not the operator's" % invite.get("via"))
        bye = h.sipp_first(rs, "received", method="BYE")
        if bye is None or "%s:%d" % (OP_IP, kport) not in (bye.get("via") or ""):
            problems.append("BYE did not come through the operator: %r" % (bye and bye.get("via")))
        if problems:
            h.fail("outbound call: " + "; ".join(problems) + "\n" + report)
        logs = h.script_logs(relais, rmark)
        if not any(l.startswith("trunk-test invite ruri=%s" % MOBILE) and "from_trunk=nil" in l
                   for l in logs):
            h.fail("script did not see the local call with from_trunk=nil: %s" % logs)
        if not any(l.startswith("trunk-test outbound-result") and "answered=true" in l
                   for l in logs):
            h.fail("script's dial of the trunk did not report answered=true: %s" % logs)

    def inbound_call():
        kmark, rmark = kam.log_mark(), relais.log_mark()
        uas_port = h.free_port()
        contact = h.register_from_port(relais, DID, uas_port)
        h.log("%s registered as %s" % (DID, contact))
        uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
        uac = h.start_sipp("%s:%d" % (OP_IP, kport), os.path.join(h.SCENARIOS, "call_uac_basic.xml"),
                           ["-i", "127.0.0.1", "-p", str(h.free_port()),
                            "-mp", str(h.free_media_port()), "-m", "1", "-s", DID,
                            "-key", "caller", PSTN_CALLER, "-key", "domain", OP_DOMAIN],
                           timeout=15)
        ru, (rs,) = h.finish_call(uac, [uas])
        report = evidence(kam, kmark, relais, rmark, [ru, rs], ["PSTN caller", "user 100"])
        h.log(report)
        if ru.rc != 0 or rs.rc != 0:
            h.fail("inbound call PSTN -> operator -> relais -> %s failed\n%s" % (DID, report))
        ops = operator_lines(kam, kmark)
        wanted = "inbound INVITE delivered to sip:%s@127.0.0.1:%d" % (DID, relais.port)
        if not any(wanted in l for l in ops):
            h.fail("operator did not log %r\n%s" % (wanted, report))
        logs = h.script_logs(relais, rmark)
        if not any(l.startswith("trunk-test invite ruri=%s" % DID) and "from_trunk=operator" in l
                   for l in logs):
            h.fail("script did not see call.from_trunk == \"operator\": %s" % logs)
        for method in ("INVITE", "ACK", "BYE"):
            if not h.sipp_first(rs, "received", method=method):
                h.fail("user %s never received %s\n%s" % (DID, method, report))

    def wrong_password():
        """A trunk with a wrong password: the REGISTER fails (event=trunk.register_failed, no
        tight retry loop) and an outbound INVITE answers the 407 once, then gives up."""
        kmark = kam.log_mark()
        bad = h.Relais(name="trunk-badpw", config={
            "calls": CALLS,
            "trunks": {"operator": {
                "proxy": "sip:%s:%d" % (OP_IP, kport), "domain": OP_DOMAIN,
                "username": TRUNK_USER, "password": "not-the-" + TRUNK_PASSWORD,
                "register": True, "expires": TRUNK_EXPIRES, "addresses": [OP_IP],
            }},
        }, script=SCRIPT)
        with bad:
            line = bad.wait_log("event=trunk.register_failed", timeout=10,
                                what="registration with a wrong password")
            h.log("relais: %s" % line)
            if "trunk=operator" not in line.split():
                h.fail("trunk.register_failed without trunk=operator: %r" % line)
            time.sleep(2)
            src = "from 127.0.0.1:%d" % bad.port
            tries = [l for l in operator_lines(kam, kmark)
                     if "REGISTER" in l and "bad credentials" in l and src in l]
            if not 1 <= len(tries) <= 2:
                h.fail("%d REGISTERs with the wrong password reached the operator in ~2 s after "
                       "event=trunk.register_failed (expected 1, a retry at most)\n%s"
                       % (len(tries), evidence(kam, kmark, bad, 0)))
            if h.find_contact(kam.contacts_of(TRUNK_USER),
                              "sip:%s@127.0.0.1:%d" % (TRUNK_USER, bad.port))[0]:
                h.fail("the operator holds a binding for the wrong-password relais")
            cmark, rmark = kam.log_mark(), bad.log_mark()
            uac = h.sipp_uac(bad, "call_uac_fail.xml", MOBILE, caller="100", timeout=12)
            ru = uac.wait()
            report = evidence(kam, cmark, bad, rmark, [ru], ["caller 100"])
            h.log(report)
            if ru.rc != 0:
                h.fail("caller did not get a failure response\n" + report)
            final = [m for _, m in h.sipp_messages(ru, "received")
                     if m.status and m.status >= 300]
            h.log("caller got %s" % (final[0].first_line if final else None))
            ops = operator_lines(kam, cmark)
            counts = {k: len([l for l in ops if k in l]) for k in (
                "outbound INVITE challenged with 407", "outbound INVITE with bad credentials",
                "authenticated as", "request INVITE")}
            if counts != {"outbound INVITE challenged with 407": 1,
                          "outbound INVITE with bad credentials": 1,
                          "authenticated as": 0, "request INVITE": 2}:
                h.fail("operator saw %s (expected one plain INVITE, one with the wrong "
                       "credentials, nothing more)\n%s" % (counts, report))

    def refreshes():
        if "registered_at" not in state:
            h.fail("no first registration to refresh")
        contact = "<sip:%s@127.0.0.1:%d" % (TRUNK_USER, relais.port)
        needle = "registered sip:%s@%s contact %s" % (TRUNK_USER, OP_DOMAIN, contact)
        deadline = state["registered_at"] + state["binding_left"] - 1
        while time.monotonic() < deadline:
            if len([l for l in operator_lines(kam, state["kmark"]) if needle in l]) >= 2:
                break
            time.sleep(0.2)
        else:
            h.fail("no second REGISTER reached the operator within the %d s of the binding\n%s"
                   % (state["binding_left"], evidence(kam, state["kmark"], relais, 0)))
        got = kam.contacts_of(TRUNK_USER)
        key, left = h.find_contact(got, contact[1:])
        if key is None or left < TRUNK_EXPIRES - 5:
            h.fail("binding after the refresh: %s" % got)
        h.log("refreshed %.1f s after the first registration; binding now %s"
              % (time.monotonic() - state["registered_at"], got))

    with kam:
        checks.run("operator peer (kamailio): REGISTER 401/200, 407 call to the PSTN",
                   operator_works)
        state["kmark"] = kam.log_mark()
        started = checks.run("relais starts with trunks.operator", relais_starts)
        relais_checks = [
            ("relais registers to the operator (event=trunk.registered, usrloc binding)",
             registers),
            ("outbound: 100 -> trunk:operator/%s, 407 answered, PSTN answers" % MOBILE,
             outbound_call),
            ("inbound: PSTN -> operator -> relais, from_trunk=operator, rings user %s" % DID,
             inbound_call),
            ("wrong trunk password: event=trunk.register_failed, 407 answered once",
             wrong_password),
            ("relais refreshes the trunk registration before it expires", refreshes),
        ]
        try:
            for name, fn in relais_checks:
                if started:
                    checks.run(name, fn)
                else:
                    checks.run(name, h.fail, "relais did not start")
        finally:
            if relais.alive():
                relais.stop()
        if checks.failed():
            h.log("=== kamailio log (%s, last 120 lines)" % kam.workdir)
            for line in kam.log_lines()[-120:]:
                h.log("  | " + line)


if __name__ == "__main__":
    h.main(test)
