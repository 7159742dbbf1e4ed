"""test_baresip.py — a real softphone (baresip, headless) registers to relais with Digest; a
second baresip account with a wrong password ends up with no binding."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402


class Baresip(h.BaresipProcess):
    """One headless baresip with its own config dir, SIP port and account."""

    def __init__(self, name, user, password, relais_port):
        super().__init__(name)
        self.sip_port = h.free_port()
        rtp = h.free_port(tcp=False)
        # To/AoR host = relais's listen IP: relais serves it as user@domain.
        h.write_baresip_files(self.dir, [
            "poll_method\t\tepoll",
            "sip_listen\t\t127.0.0.1:%d" % self.sip_port,
            "net_interface\t\t127.0.0.1",
            "rtp_ports\t\t%d-%d" % (rtp, rtp + 10),
            "module_path\t\t%s" % h.MODULE_PATH,
            "module\t\t\tg711.so",
            "module_app\t\taccount.so",
        ], "<sip:%s@127.0.0.1:%d;transport=udp>;auth_pass=%s;regint=600" % (user, relais_port, password))


registered_line = h.registered_line


def test(checks):
    h.require_tool("baresip")
    h.require_tool("timeout")
    if not os.path.isdir(h.MODULE_PATH):
        h.fail("baresip modules not found at %s (package baresip-core)" % h.MODULE_PATH)
    # baresip 1.0.0 (libre's sip auth) walks every WWW-Authenticate header and fails the whole
    # registration with ENOSYS ("Register: Function not implemented") as soon as one of them is
    # not MD5 — even when an MD5 challenge is also offered. Phones like it need an MD5-only realm.
    with h.Relais(name="baresip", config={"auth": {"algorithms": ["MD5"]}}) as relais:
        q = relais.client("udp")
        good = Baresip("good", "101", h.user_password("101"), relais.port)
        bad = Baresip("bad", "102", "not-the-password", relais.port)
        with good, bad:
            def good_registers():
                try:
                    line = h.wait_until(lambda: registered_line(good.log_text()), timeout=10,
                                        what="baresip logging 200 OK for its registration")
                except AssertionError:
                    h.fail("baresip did not register; its log:\n%s" % good.log_text()[-3000:])
                h.log("baresip: %s" % line.strip())
                marker = "@127.0.0.1:%d" % good.sip_port
                b = h.bindings_of(q, "101")
                h.log("bindings of 101: %s" % b)
                mine = [(k, v) for k, v in b.items() if marker in k]
                if len(mine) != 1:
                    h.fail("expected one binding with %s, query shows %s" % (marker, b))
                if mine[0][1] is None or not 550 <= mine[0][1] <= 600:
                    h.fail("baresip asked regint=600, binding shows expires=%s" % mine[0][1])

            def bad_refused():
                # baresip gives up after a failed digest; give it time to try.
                def refused():
                    t = bad.log_text()
                    return any(s in t for s in ("401 Unauthorized", "403 Forbidden", "403"))
                try:
                    h.wait_until(refused, timeout=10, what="baresip with a wrong password refused")
                except AssertionError:
                    h.fail("no 401/403 in the wrong-password baresip log:\n%s" %
                           bad.log_text()[-3000:])
                time.sleep(1.0)
                text = bad.log_text()
                h.log("wrong-password baresip log tail:\n%s" % text[-800:])
                if registered_line(text):
                    h.fail("baresip with a wrong password got 200: %s" % registered_line(text))
                b = h.bindings_of(q, "102")
                if b:
                    h.fail("wrong password created bindings: %s" % b)

            checks.run("baresip registers (200 OK, binding visible in a query)", good_registers)
            checks.run("baresip with a wrong password gets no binding", bad_refused)
        q.close()
        if not relais.alive():
            h.fail("relais died during the test")


if __name__ == "__main__":
    h.main(test)
