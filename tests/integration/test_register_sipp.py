"""test_register_sipp.py — sipp registers to relais with Digest MD5 (401 then 200, the binding
shows in a query); sipp with a wrong password gets 401/403 and no binding."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402


def sipp_args(user, password):
    # -auth_uri: the Digest uri must be the Request-URI (sip:DOMAIN); sipp adds "sip:" itself.
    return ["-s", user, "-au", user, "-ap", password, "-key", "domain", h.DOMAIN,
            "-auth_uri", h.DOMAIN, "-i", "127.0.0.1", "-p", str(h.free_port()), "-t", "u1",
            "-m", "1", "-l", "1"]


def test(checks):
    h.require_tool("sipp")
    # sipp 3.6.1 answers only the topmost WWW-Authenticate and aborts on any algorithm but MD5
    # ("createAuthHeader: authentication must use MD5 or AKAv1-MD5"); it cannot skip relais's
    # preferred SHA-256 challenge. The algorithms list is the preference order, so a deployment
    # with MD5-only phones lists MD5 first — as here.
    with h.Relais(name="sipp-reg", config={"auth": {"algorithms": ["MD5", "SHA-256"]}}) as relais:
        target = "%s:%d" % relais.addr()
        py = relais.client("udp")

        def md5_offered_first():
            r = py.send_register("100", contacts=["<sip:100@127.0.0.1:5999>"], expires=300)
            h.expect_status(r, 401, "unauthenticated REGISTER")
            algs = [c.get("algorithm", "MD5").upper() for c in r.challenges()]
            if not algs or algs[0] != "MD5":
                h.fail("auth.algorithms = {MD5, SHA-256} must put MD5 topmost, 401 offers %s" % algs)

        def sipp_registers():
            user = "101"
            res = h.run_sipp(target, os.path.join(h.SCENARIOS, "register_digest.xml"),
                             sipp_args(user, h.user_password(user)), timeout=20)
            h.log(res.report())
            if res.rc != 0:
                h.fail("sipp REGISTER with digest failed (exit %s):\n%s" % (res.rc, res.report()))
            b = h.bindings_of(py, user)
            h.log("bindings of %s: %s" % (user, b))
            sipp_contacts = [c for c in b if c.startswith("sip:%s@127.0.0.1:" % user)]
            if len(sipp_contacts) != 1:
                h.fail("expected exactly one sipp contact for %s, query shows %s" % (user, b))
            exp = b[sipp_contacts[0]]
            if exp is None or not 250 <= exp <= 300:
                h.fail("sipp registered with Expires: 300, query shows expires=%s" % exp)

        def sipp_wrong_password():
            user = "102"
            res = h.run_sipp(target, os.path.join(h.SCENARIOS, "register_wrong_password.xml"),
                             sipp_args(user, "not-the-password"), timeout=20)
            h.log(res.report())
            if res.rc != 0:
                h.fail("wrong-password scenario did not end in 401/403 (exit %s):\n%s" % (
                    res.rc, res.report()))
            b = h.bindings_of(py, user)
            if b:
                h.fail("wrong password still created bindings for %s: %s" % (user, b))

        checks.run("challenges follow the configured algorithm order", md5_offered_first)
        checks.run("sipp REGISTER 401 then 200, binding visible", sipp_registers)
        checks.run("sipp wrong password refused, no binding", sipp_wrong_password)
        py.close()
        if not relais.alive():
            h.fail("relais died during the test")


if __name__ == "__main__":
    h.main(test)
