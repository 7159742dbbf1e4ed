"""test_reload.py — SIGHUP re-reads the users of the config (event=reload): a new user can
register, a changed password takes effect, and bindings made before the reload stay."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402


def test(checks):
    relais = h.Relais(name="reload")
    with relais:
        c = relais.client("udp")
        q = relais.client("udp")
        kept = "sip:101-kept@127.0.0.1:41201"

        def before():
            r, _ = c.register("101", h.user_password("101"), contacts=["<%s>" % kept], expires=300)
            h.expect_status(r, 200, "REGISTER 101 before reload")
            r, _ = c.register("300", "pw-300-new", contacts=["<sip:300@127.0.0.1:41202>"], expires=300)
            h.expect_status(r, (401, 403, 404), "REGISTER of a user not yet in the config")

        def reload_():
            users = h.default_users()
            users["300"] = {"password": "pw-300-new"}
            users["102"] = {"password": "pw-102-changed"}
            relais.update_config({"users": users})
            mark = relais.log_mark()
            relais.signal(signal.SIGHUP)
            line = relais.wait_log("event=reload", timeout=5, since=mark, what="SIGHUP")
            h.log("reload: %s" % line)

        def after():
            r, _ = c.register("300", "pw-300-new", contacts=["<sip:300@127.0.0.1:41202>"], expires=300)
            h.expect_status(r, 200, "REGISTER of the user added by the reload")
            r, _ = c.register("102", h.user_password("102"), contacts=["<sip:102@127.0.0.1:41203>"],
                              expires=300)
            h.expect_status(r, (401, 403), "REGISTER 102 with its old password after the reload")
            r, _ = c.register("102", "pw-102-changed", contacts=["<sip:102@127.0.0.1:41203>"],
                              expires=300)
            h.expect_status(r, 200, "REGISTER 102 with its new password after the reload")
            h.expect_contacts(h.bindings_of(q, "101"), {kept: (280, 300)},
                              "binding made before the reload")

        def broken_reload():
            # DESIGN.md: a config/script that fails to load on SIGHUP keeps the old one running
            # and logs file:line.
            good_text = open(relais.config_path).read()
            relais.write_config(good_text.replace("return {", "return {{", 1))  # syntax error
            mark = relais.log_mark()
            relais.signal(signal.SIGHUP)
            line = h.wait_until(lambda: [l for l in relais.log_since(mark)
                                         if "relais.lua:" in l], timeout=5,
                                what="a file:line message about the broken config")
            h.log("broken reload logged: %s" % line[0])
            if not relais.alive():
                h.fail("relais exited on SIGHUP with a broken config")
            r, _ = c.register("300", "pw-300-new", contacts=["<sip:300@127.0.0.1:41202>"],
                              expires=300)
            h.expect_status(r, 200, "REGISTER with the users of the last good config")
            relais.write_config(good_text)

        checks.run("before reload: 101 registers, unknown 300 refused", before)
        checks.run("SIGHUP logs event=reload", reload_)
        checks.run("after reload: new user and new password work, bindings kept", after)
        checks.run("SIGHUP with a broken config keeps the old one, logs file:line", broken_reload)
        c.close()
        q.close()
        if not relais.alive():
            h.fail("relais died on SIGHUP")


if __name__ == "__main__":
    h.main(test)
