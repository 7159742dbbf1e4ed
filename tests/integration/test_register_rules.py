"""test_register_rules.py — the registrar's RFC 3261 §10.3 rules and Digest auth, checked with
the harness's SIP client over UDP, TCP and IPv6: queries, refresh, several contacts, removal,
Contact: *, expiry, 423/Min-Expires, clamping, CSeq ordering, max_contacts, stale nonces,
SHA-256 and MD5, OPTIONS, unknown methods and the on_register hook."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

HOOK_SCRIPT = r'''
-- Test hook: refuse the lab phone (user 200) from 127.0.0.1 when it announces itself as
-- "lab-phone"; annotate every other registration with what the script saw.
function on_register(req)
  if req.user == "200" and req.source_ip == "127.0.0.1" and req.user_agent == "lab-phone" then
    return req:reject(403, "Lab phone refused by script")
  end
  req:annotate("probe", "marker-7f3a u=" .. tostring(req.user) .. " d=" .. tostring(req.domain) ..
    " aor=" .. tostring(req.aor) .. " ip=" .. tostring(req.source_ip) ..
    " port=" .. tostring(req.source_port) .. " t=" .. tostring(req.transport) ..
    " ua=" .. tostring(req.user_agent))
end
'''


def pw(user):
    return h.user_password(user)


def ok_register(client, user, contacts, expires=None, what="REGISTER", **kw):
    r, _ = client.register(user, pw(user), contacts=contacts, expires=expires, **kw)
    h.expect_status(r, 200, "%s for %s" % (what, user))
    return r


def main_instance_checks(checks, relais):
    c = relais.client("udp")
    q = relais.client("udp")  # separate Call-IDs for queries
    host = "127.0.0.1"

    def uri(user, n):
        return "sip:%s-%s@%s:%d" % (user, n, host, 40000 + n)

    def challenge_offers_both():
        r = c.send_register("100", contacts=["<%s>" % uri(100, 1)], expires=300)
        h.expect_status(r, 401, "unauthenticated REGISTER")
        chals = r.challenges()
        h.log("challenges: %s" % chals)
        algs = [x.get("algorithm", "MD5").upper() for x in chals]
        if "SHA-256" not in algs or "MD5" not in algs:
            h.fail("401 must offer SHA-256 and MD5, offered %s" % algs)
        for x in chals:
            if "auth" not in [v.strip() for v in x.get("qop", "").split(",")]:
                h.fail("challenge without qop=auth: %s" % x)
            if not x.get("nonce"):
                h.fail("challenge without nonce: %s" % x)
            if x.get("realm") != h.DOMAIN:
                h.fail("realm %r, expected the domain %r (auth.realm defaults to domain)" % (
                    x.get("realm"), h.DOMAIN))
        if h.bindings_of(q, "100"):
            h.fail("an unauthenticated REGISTER created a binding")

    def register_and_query():
        u = "101"
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300)
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (290, 300)}, "200 to REGISTER")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (280, 300)}, "query")

    def to_host_ip_is_same_aor():
        u = "113"
        ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300)  # To: the domain
        h.expect_contacts(h.bindings_of(q, u, to_host="127.0.0.1"), {uri(u, 1): (280, 300)},
                          "query with To host 127.0.0.1")
        c2 = relais.client("udp")
        try:
            ok_register(c2, u, ["<%s>" % uri(u, 2)], expires=300, to_host="127.0.0.1")
        finally:
            c2.close()
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (280, 300), uri(u, 2): (280, 300)},
                          "query with To host = domain after a REGISTER to 127.0.0.1")

    def refresh_keeps_one_binding():
        u = "102"
        ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300)
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=600, what="refresh")
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (590, 600)}, "200 to refresh")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (580, 600)}, "query after refresh")

    def two_contacts_listed():
        u = "103"
        r = ok_register(c, u, ["<%s>;expires=120" % uri(u, 1), "<%s>" % uri(u, 2)], expires=300)
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (110, 120), uri(u, 2): (290, 300)},
                          "200 to REGISTER with two contacts (one ;expires=120, header 300)")
        c2 = relais.client("udp")
        try:
            r = ok_register(c2, u, ["<%s>" % uri(u, 3)], expires=300)
        finally:
            c2.close()
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (100, 120), uri(u, 2): (280, 300),
                                                uri(u, 3): (290, 300)},
                          "200 lists all current contacts of the AoR")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (100, 120), uri(u, 2): (280, 300),
                                                uri(u, 3): (280, 300)}, "query")

    def unregister_one():
        u = "104"
        ok_register(c, u, ["<%s>" % uri(u, 1), "<%s>" % uri(u, 2), "<%s>" % uri(u, 3)], expires=300)
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=0, what="Expires: 0")
        h.expect_contacts(r.contact_expires(), {uri(u, 2): (280, 300), uri(u, 3): (280, 300)},
                          "200 to Expires: 0 of one contact")
        r = ok_register(c, u, ["<%s>;expires=0" % uri(u, 2)], what=";expires=0")
        h.expect_contacts(r.contact_expires(), {uri(u, 3): (280, 300)},
                          "200 to ;expires=0 of one contact")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 3): (280, 300)}, "query after removals")

    def star_removes_all():
        u = "105"
        ok_register(c, u, ["<%s>" % uri(u, 1), "<%s>" % uri(u, 2)], expires=300)
        r, _ = c.register(u, pw(u), contacts=["*"], expires=300)
        h.expect_status(r, 400, "Contact: * with Expires: 300 (RFC 3261 §10.3 step 6)")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (280, 300), uri(u, 2): (280, 300)},
                          "bindings after the refused Contact: *")
        r = ok_register(c, u, ["*"], expires=0, what="Contact: * / Expires: 0")
        if r.contacts():
            h.fail("200 to Contact: * still lists %s" % r.contacts())
        b = h.bindings_of(q, u)
        if b:
            h.fail("query after Contact: * shows %s" % b)

    def interval_too_brief():
        u = "106"
        r, _ = c.register(u, pw(u), contacts=["<%s>" % uri(u, 1)], expires=30)
        h.expect_status(r, 423, "Expires: 30 below min_expires=60")
        me = r.get("min-expires")
        if me is None or me.strip() != "60":
            h.fail("423 must carry Min-Expires: 60, got %r" % me)
        r, _ = c.register(u, pw(u), contacts=["<%s>;expires=10" % uri(u, 1)])
        h.expect_status(r, 423, ";expires=10 below min_expires=60")
        if h.bindings_of(q, u):
            h.fail("a 423'd REGISTER created a binding")

    def clamp_to_max():
        u = "107"
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=7200)
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (3590, 3600)},
                          "Expires: 7200 clamped to max_expires=3600")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (3580, 3600)}, "query after clamp")

    def default_expires():
        u = "116"
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=None)
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (1790, 1800)},
                          "no Expires → default_expires=1800")

    def cseq_ordering():
        u = "108"
        call_id = h.new_call_id()
        ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300, call_id=call_id, cseq=20)
        for cseq in (20, 10):
            r, _ = c.register(u, pw(u), contacts=["<%s>" % uri(u, 1)], expires=900,
                              call_id=call_id, cseq=cseq)
            if r is None or not (400 <= r.status <= 599) or r.status == 401:
                h.fail("same Call-ID with CSeq %d (stored 20) must be refused with 4xx/5xx, got %s" % (
                    cseq, r and r.first_line))
            h.log("CSeq %d after 20 → %s" % (cseq, r.first_line))
        h.expect_contacts(h.bindings_of(q, u), {uri(u, 1): (280, 300)},
                          "binding unchanged by out-of-order REGISTERs")
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=900, call_id=call_id, cseq=30,
                        what="REGISTER with CSeq 30")
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (890, 900)}, "higher CSeq accepted")

    def max_contacts():
        u = "109"
        ok_register(c, u, ["<%s>" % uri(u, n) for n in (1, 2, 3)], expires=300)
        r, _ = c.register(u, pw(u), contacts=["<%s>" % uri(u, 4)], expires=300)
        h.expect_status(r, 403, "a 4th contact with max_contacts=3")
        h.expect_contacts(h.bindings_of(q, u), {uri(u, n): (280, 300) for n in (1, 2, 3)},
                          "bindings after the refused 4th contact")
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=600, what="refresh at max_contacts")
        h.expect_contacts(r.contact_expires(), {uri(u, 1): (590, 600), uri(u, 2): (280, 300),
                                                uri(u, 3): (280, 300)}, "refresh at the limit")

    def algorithm(alg, u):
        def run():
            r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300, algorithm=alg)
            h.expect_contacts(r.contact_expires(), {uri(u, 1): (290, 300)}, "%s REGISTER" % alg)
            b = h.bindings_of(q, u, algorithm=alg)
            h.expect_contacts(b, {uri(u, 1): (280, 300)}, "%s query" % alg)
        return run

    def wrong_password():
        u = "114"
        r, _ = c.register(u, "wrong-password", contacts=["<%s>" % uri(u, 1)], expires=300)
        h.expect_status(r, (401, 403), "wrong password")
        if r.status == 401:
            stale = [x for x in r.challenges() if x.get("stale", "").lower() == "true"]
            if stale:
                h.fail("wrong password answered 401 stale=true (stale is for expired nonces only)")
        if h.bindings_of(q, u):
            h.fail("a wrong password created a binding")

    def unknown_user():
        r, _ = c.register("999", "whatever", contacts=["<%s>" % uri(999, 1)], expires=300)
        h.expect_status(r, (401, 403, 404), "unknown user")

    def tcp_transport():
        u = "112"
        with relais.client("tcp") as t:
            contact = t.contact_uri(u)
            r = ok_register(t, u, ["<%s>" % contact], expires=300, what="REGISTER over TCP")
            h.expect_contacts(r.contact_expires(), {contact: (290, 300)}, "200 over TCP")
            h.expect_contacts(h.bindings_of(t, u), {contact: (280, 300)}, "query over TCP")
        h.expect_contacts(h.bindings_of(q, u), {contact: (280, 300)}, "query over UDP")

    def options_200():
        r = c.options()
        h.expect_status(r, 200, "OPTIONS")
        with relais.client("tcp") as t:
            h.expect_status(t.options(), 200, "OPTIONS over TCP")

    def unknown_method_405():
        r = c.request("FOO", user="101")
        h.expect_status(r, 405, "FOO")
        allow = ", ".join(r.all("allow"))
        h.log("Allow: %s" % allow)
        if not allow.strip():
            h.fail("405 without an Allow header")
        if "REGISTER" not in allow.upper():
            h.fail("Allow does not list REGISTER: %r" % allow)

    def hook_rejects():
        u = "200"
        lab = relais.client("udp", user_agent="lab-phone")
        try:
            r, _ = lab.register(u, pw(u), contacts=["<%s>" % uri(u, 1)], expires=300)
        finally:
            lab.close()
        h.expect_status(r, 403, "on_register rejecting user 200 from 127.0.0.1")
        h.log("reject reason: %r" % r.reason)
        if h.bindings_of(q, u):
            h.fail("a REGISTER rejected by the script created a binding")

    def hook_annotates():
        u = "115"
        r = ok_register(c, u, ["<%s>" % uri(u, 1)], expires=300)
        hits = h.wait_until(lambda: h.sqlite_search(relais.db_path, "marker-7f3a u=115"),
                            timeout=5, what="the annotation in the sqlite store %s" % relais.db_path)
        text = hits[0][1]
        h.log("annotation found in table %s: %s" % (hits[0][0], text[:600]))
        m = re.search(r"marker-7f3a [^\"|]*", text)
        seen = m.group(0) if m else text
        want = ["u=115", "d=%s" % h.DOMAIN, "aor=115@%s" % h.DOMAIN, "ip=127.0.0.1",
                "port=%d" % c.local_port, "t=udp", "ua=%s" % c.user_agent]
        missing = [w for w in want if w.lower() not in seen.lower()]
        if missing:
            h.fail("hook saw wrong request fields: %s missing from %r" % (missing, seen))
        del r

    def response_headers():
        # UDP REGISTERs are answered with text written by relais (SipRequest::respond_text),
        # TCP ones (through the stream edge) by nta: both must carry the same headers.
        for transport, u in (("udp", "117"), ("tcp", "118")):
            with relais.client(transport) as cl:
                contact = cl.contact_uri(u)
                r, challenge = cl.register(u, pw(u), contacts=["<%s>" % contact], expires=300)
                h.expect_status(r, 200, "REGISTER over %s" % transport)
                sent = cl.last_request.decode() if isinstance(cl.last_request, bytes) else cl.last_request
                req = dict((line.split(":", 1)[0].strip().lower(), line.split(":", 1)[1].strip())
                           for line in sent.split("\r\n")[1:] if ":" in line)
                for what, resp in (("401", challenge), ("200", r)):
                    if resp is None:
                        h.fail("no %s over %s" % (what, transport))
                    where = "%s over %s" % (what, transport)
                    via = resp.get("via") or ""
                    if what == "200" and not via.startswith(req["via"].split(";")[0]):
                        h.fail("%s: Via %r does not echo the request's %r" % (where, via, req["via"]))
                    if what == "200" and "branch=" + req["via"].split("branch=")[1].split(";")[0] not in via:
                        h.fail("%s: Via %r lost the branch" % (where, via))
                    if transport == "udp" and "rport=%d" % cl.local_port not in via:
                        h.fail("%s: Via %r without rport=%d" % (where, via, cl.local_port))
                    if what == "200":
                        for name in ("from", "call-id", "cseq"):
                            if (resp.get(name) or "").strip() != req[name]:
                                h.fail("%s: %s %r, request had %r" % (where, name, resp.get(name), req[name]))
                    if not re.search(r";\s*tag=[^;]+", resp.get("to") or ""):
                        h.fail("%s: To without a tag: %r" % (where, resp.get("to")))
                    if (resp.get("server") or "").strip() != "relais":
                        h.fail("%s: Server %r" % (where, resp.get("server")))
                    if (resp.get("content-length") or "").strip() != "0":
                        h.fail("%s: Content-Length %r" % (where, resp.get("content-length")))
                    if what == "401" and not resp.challenges():
                        h.fail("%s without WWW-Authenticate" % where)
                if not re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$", (r.get("date") or "").strip()):
                    h.fail("200 over %s: Date %r" % (transport, r.get("date")))
                h.expect_contacts(r.contact_expires(), {contact: (290, 300)}, "200 over %s" % transport)

    checks.run("401 offers SHA-256 and MD5 with qop=auth", challenge_offers_both)
    checks.run("register then query lists the binding", register_and_query)
    checks.run("To host 127.0.0.1 is the same AoR as the domain", to_host_ip_is_same_aor)
    checks.run("refresh keeps one binding with the new expiry", refresh_keeps_one_binding)
    checks.run("two contacts on one AoR are both listed", two_contacts_listed)
    checks.run("Expires: 0 / ;expires=0 remove one contact", unregister_one)
    checks.run("Contact: * with Expires: 0 removes all", star_removes_all)
    checks.run("423 with Min-Expires", interval_too_brief)
    checks.run("expiry above max is clamped", clamp_to_max)
    checks.run("default_expires applies without Expires", default_expires)
    checks.run("CSeq not higher than stored is refused", cseq_ordering)
    checks.run("more than max_contacts gets 403", max_contacts)
    checks.run("MD5 digest accepted", algorithm("MD5", "110"))
    checks.run("SHA-256 digest accepted", algorithm("SHA-256", "111"))
    checks.run("wrong password gets 401/403 and no binding", wrong_password)
    checks.run("unknown user refused", unknown_user)
    checks.run("TCP transport", tcp_transport)
    checks.run("UDP (text) and TCP (nta) responses carry the same headers", response_headers)
    checks.run("OPTIONS answered 200", options_200)
    checks.run("unknown method FOO gets 405 with Allow", unknown_method_405)
    checks.run("on_register reject gives 403 and no binding", hook_rejects)
    checks.run("on_register annotation stored with the request fields", hook_annotates)
    c.close()
    q.close()


def short_timers_checks(checks, relais):
    c = relais.client("udp")
    q = relais.client("udp")

    def short_expiry():
        u = "101"
        contact = "sip:101-short@127.0.0.1:40999"
        r = ok_register(c, u, ["<%s>" % contact], expires=2)
        h.expect_contacts(r.contact_expires(), {contact: (1, 2)}, "Expires: 2 with min_expires=1")
        time.sleep(3.5)
        b = h.bindings_of(q, u)
        if b:
            h.fail("binding registered with Expires: 2 still listed after 3.5 s: %s" % b)

    def stale_nonce():
        u = "102"
        contact = "sip:102-stale@127.0.0.1:40998"
        r1 = c.send_register(u, contacts=["<%s>" % contact], expires=300)
        h.expect_status(r1, 401, "unauthenticated REGISTER")
        chal = h.pick_challenge(r1.challenges(), "MD5") or r1.challenges()[0]
        time.sleep(2.5)
        auth = c.authorization_for(chal, u, pw(u))
        r2 = c.send_register(u, contacts=["<%s>" % contact], expires=300, authorization=auth)
        h.expect_status(r2, 401, "REGISTER with a nonce older than auth.nonce_ttl=1")
        stale = [x for x in r2.challenges() if x.get("stale", "").lower() == "true"]
        if not stale:
            h.fail("401 for an expired nonce lacks stale=true: %s" % r2.all("www-authenticate"))
        if h.bindings_of(q, u):
            h.fail("an expired nonce created a binding")
        ok_register(c, u, ["<%s>" % contact], expires=300, what="REGISTER after the stale 401")

    checks.run("short expiry really expires (min_expires=1 via --set)", short_expiry)
    checks.run("expired nonce gets 401 stale=true (nonce_ttl=1 via --set)", stale_nonce)
    c.close()
    q.close()


def ipv6_check(checks):
    def run():
        if not h.ipv6_available():
            h.log("ipv6 unavailable: IPv6 sub-check not run (passes only this sub-check)")
            return
        port = h.free_port(also_ipv6=True)
        relais = h.Relais(name="rules-v6", port=port, transports=("udp",),
                          sets=["sip.listen=udp:127.0.0.1:%d,udp:[::1]:%d" % (port, port)])
        with relais:
            u = "101"
            with h.SipClient("::1", port, "udp") as c6:
                contact = c6.contact_uri(u)
                r = ok_register(c6, u, ["<%s>" % contact], expires=300, what="REGISTER over [::1]")
                h.expect_contacts(r.contact_expires(), {contact: (290, 300)}, "200 over IPv6")
                h.expect_status(c6.options(), 200, "OPTIONS over [::1]")
            with relais.client("udp") as c4:
                h.expect_contacts(h.bindings_of(c4, u), {contact: (280, 300)},
                                  "query over IPv4 shows the IPv6 contact")

    checks.run("IPv6 [::1] UDP (listen list given as comma string via --set)", run)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)? "
                      r"level=(debug|info|warn|error) event=[A-Za-z0-9_.\-]+( |$)")


def log_format_check(checks, instances):
    def run():
        bad, events = [], 0
        for r in instances:
            for line in r.log_lines():
                if line.startswith("###"):
                    continue  # the harness's own markers
                if LOG_LINE.match(line):
                    events += 1
                else:
                    bad.append("%s: %s" % (r.name, line))
        if bad:
            h.fail("%d log lines are not '<iso-ts> level=L event=NAME key=value...':\n%s" % (
                len(bad), "\n".join(bad[:20])))
        if events < 10:
            h.fail("only %d event lines logged for a whole registrar session" % events)

    checks.run("every log line is '<iso-ts> level=... event=... key=value'", run)


def test(checks):
    main = h.Relais(name="rules", script=HOOK_SCRIPT,
                    config={"registrar": {"default_expires": 1800}})
    with main:
        main_instance_checks(checks, main)
        if not main.alive():
            h.fail("relais died during the checks")
    short = h.Relais(name="rules-short",
                     sets=["registrar.min_expires=1", "auth.nonce_ttl=1"])
    with short:
        short_timers_checks(checks, short)
    ipv6_check(checks)
    log_format_check(checks, [main, short])


if __name__ == "__main__":
    h.main(test)
