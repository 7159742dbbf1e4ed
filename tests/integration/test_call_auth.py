"""test_call_auth.py — with calls.authenticate = true an INVITE whose From user is a configured
user is challenged (407, Proxy-Authenticate, the REGISTER realm) before any routing; the caller
answers the challenge and the call connects, with call.auth_user set; a wrong password is
refused (403 or a new 407) and nothing rings; a From user that is not configured is let
through when calls.unknown_sources = "allow"."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

# sipp 3.6.1 answers only the topmost challenge and only MD5 (README.md).
CONFIG = {"auth": {"algorithms": ["MD5"]},
          "calls": {"authenticate": True, "unknown_sources": "allow", "no_answer_timeout": 30}}

SCRIPT = r"""
-- test_call_auth.py dialplan
function on_invite(call)
  relais.log(string.format("auth from=%s auth_user=%s", tostring(call.from.user),
                           tostring(call.auth_user)))
  call:dial(call.ruri.user, { timeout = 8 })
end
"""

SDP = ("v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def sipp_auth_args(relais, user, password, callee):
    # -auth_uri: the Digest uri must be the Request-URI (sip:CALLEE@HOST:PORT); sipp adds "sip:".
    return ["-au", user, "-ap", password, "-auth_uri", "%s@%s:%d" % (callee, relais.host,
                                                                     relais.port)]


def test(checks):
    h.require_tool("sipp")
    relais = h.Relais(name="call-auth", config=CONFIG, script=SCRIPT)
    with relais:
        def challenged():
            c = relais.client("udp")
            try:
                r401 = c.send_register("100", contacts=["<sip:100@127.0.0.1:5999>"], expires=60)
                h.expect_status(r401, 401, "unauthenticated REGISTER (for the realm)")
                realm = r401.challenges()[0].get("realm")
                mark = relais.log_mark()
                call_id, tag, branch = h.new_call_id(), h.new_tag(), h.new_branch()
                ruri = "sip:105@%s:%d" % (relais.host, relais.port)
                invite = c.build_request(
                    "INVITE", ruri, "sip:100@%s" % h.DOMAIN, "sip:105@%s" % h.DOMAIN, call_id, 1,
                    headers=["Contact: <sip:100@%s>" % c.local_hostport(),
                             "Content-Type: application/sdp"],
                    body=SDP, from_tag=tag, branch=branch)
                r = c.transaction(invite, call_id, 1)
                h.expect_status(r, 407, "INVITE from configured user 100 without credentials")
                chals = r.challenges("proxy-authenticate")
                h.log("407: %s | Proxy-Authenticate: %s" % (r.first_line,
                                                             r.all("proxy-authenticate")))
                # RFC 3261 §17.1.1.3: the ACK of a non-2xx shares the INVITE's branch and the
                # response's To tag.
                ack = "\r\n".join([
                    "ACK %s SIP/2.0" % ruri,
                    "Via: SIP/2.0/UDP %s;branch=%s;rport" % (c.local_hostport(), branch),
                    "Max-Forwards: 70",
                    "From: <sip:100@%s>;tag=%s" % (h.DOMAIN, tag),
                    "To: %s" % r.get("to"),
                    "Call-ID: %s" % call_id,
                    "CSeq: 1 ACK",
                    "Content-Length: 0", "", ""])
                c.send_raw(ack)
                if not chals:
                    h.fail("407 without a Digest Proxy-Authenticate: %s" % r.summary())
                if chals[0].get("realm") != realm:
                    h.fail("407 realm %r differs from the REGISTER realm %r" % (
                        chals[0].get("realm"), realm))
                algs = [ch.get("algorithm", "MD5").upper() for ch in chals]
                if algs != ["MD5"]:
                    h.fail("auth.algorithms = {MD5}: 407 offers %s" % algs)
                again = c.recv_message(timeout=1.0)
                if again is not None and again.status == 407:
                    h.fail("407 retransmitted after the ACK: %s" % again.first_line)
                ran = [l for l in h.script_logs(relais, mark) if l.startswith("auth ")]
                if ran:
                    h.fail("on_invite ran for an unauthenticated INVITE: %s" % ran)
            finally:
                c.close()

        def authenticated_call():
            uas_port = h.free_port()
            h.register_from_port(relais, "105", uas_port)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_auth.xml", "105", caller="100", timeout=15,
                             args=sipp_auth_args(relais, "100", h.user_password("100"), "105"))
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs])
            h.log(report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("authenticated call 100 → 105 failed\n%s" % report)
            inv = [m for _, m in h.sipp_messages(ru, "sent") if m.method == "INVITE"]
            if len(inv) != 2 or not inv[1].get("proxy-authorization"):
                h.fail("expected INVITE, 407, INVITE with Proxy-Authorization\n%s" % report)
            b = h.sipp_first(rs, "received", method="INVITE")
            if b.get("proxy-authorization") or b.get("authorization"):
                h.fail("the caller's credentials reached the callee: %s" % (
                    b.get("proxy-authorization") or b.get("authorization")))
            lines = [l for l in h.script_logs(relais, mark) if l.startswith("auth ")]
            h.log("script: %s" % lines)
            if lines != ["auth from=100 auth_user=100"]:
                h.fail("on_invite should run once with call.auth_user = 100, saw %s" % lines)

        def wrong_password():
            # 106's contact is a bare socket: anything relais sends it would be a call leg.
            port = h.free_port()
            h.register_from_port(relais, "106", port)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port))
            try:
                mark = relais.log_mark()
                uac = h.sipp_uac(relais, "call_uac_auth_wrong.xml", "106", caller="100",
                                 timeout=15,
                                 args=sipp_auth_args(relais, "100", "not-the-password", "106"))
                ru, _ = h.finish_call(uac)
                report = h.call_report(ru)
                h.log(report)
                finals = [m.status for _, m in h.sipp_messages(ru, "received")
                          if m.status and m.status >= 200]
                if ru.rc != 0 or len(finals) < 2 or finals[1] not in (403, 407):
                    h.fail("wrong password: expected 407 then 403/407, got %s\n%s" % (
                        finals, report))
                sock.settimeout(1.0)
                try:
                    data, src = sock.recvfrom(65535)
                    h.fail("a wrongly authenticated INVITE still reached the callee: %r" %
                           data[:300])
                except socket.timeout:
                    pass
                ran = [l for l in h.script_logs(relais, mark) if l.startswith("auth ")]
                if ran:
                    h.fail("on_invite ran for a wrongly authenticated INVITE: %s" % ran)
            finally:
                sock.close()

        def unknown_caller_allowed():
            uas_port = h.free_port()
            h.register_from_port(relais, "107", uas_port)
            mark = relais.log_mark()
            uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
            uac = h.sipp_uac(relais, "call_uac_basic.xml", "107", caller="stranger", timeout=15)
            ru, (rs,) = h.finish_call(uac, [uas])
            report = h.call_report(ru, [rs])
            h.log(report)
            if ru.rc != 0 or rs.rc != 0:
                h.fail("call from an unconfigured From user with unknown_sources=allow failed\n%s"
                       % report)
            lines = [l for l in h.script_logs(relais, mark) if l.startswith("auth ")]
            if lines != ["auth from=stranger auth_user=nil"]:
                h.fail("on_invite for an unauthenticated caller: %s (expected auth_user=nil)"
                       % lines)

        checks.run("INVITE from a configured user gets 407 (REGISTER realm, MD5), no routing",
                   challenged)
        checks.run("sipp answers the 407 and the call connects, call.auth_user set",
                   authenticated_call)
        checks.run("wrong password: 403/407, nothing reaches the callee", wrong_password)
        checks.run("unconfigured From user passes with unknown_sources = allow",
                   unknown_caller_allowed)
        if not relais.alive():
            h.fail("relais died during the calls")


if __name__ == "__main__":
    h.main(test)
