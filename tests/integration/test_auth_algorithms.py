"""test_auth_algorithms.py — which Digest challenges relais offers: MD5 alone unless configured,
a per-user list overriding auth.algorithms, and a SHA-256 client registering where SHA-256 is
offered; plus a user provisioned only in the store with `relais --add-user`."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402


def offered(client, user):
    r = client.send_register(user, contacts=["<sip:%s@127.0.0.1:41999>" % user], expires=300)
    h.expect_status(r, 401, "unauthenticated REGISTER for %s" % user)
    return [c.get("algorithm", "MD5").upper() for c in r.challenges()]


def test(checks):
    users = h.default_users()
    users["101"] = {"password": h.user_password("101"), "algorithms": ["SHA-256", "MD5"]}
    relais = h.Relais(name="algs", config={"auth": {"algorithms": ["MD5"]}, "users": users})
    with relais:
        c = relais.client("udp")

        def md5_only_by_default():
            algs = offered(c, "100")
            if algs != ["MD5"]:
                h.fail("auth.algorithms = {MD5}: 401 for 100 must offer only MD5, offered %s" % algs)

        def per_user_list_wins():
            algs = offered(c, "101")
            if algs != ["SHA-256", "MD5"]:
                h.fail("user 101 has algorithms {SHA-256, MD5}: offered %s" % algs)

        def sha256_client_registers_where_offered():
            r, _ = c.register("101", h.user_password("101"), contacts=["<sip:101@127.0.0.1:41998>"],
                              expires=300, algorithm="SHA-256")
            h.expect_status(r, 200, "SHA-256 REGISTER for 101")

        def sha256_refused_where_not_offered():
            # A client answering with an algorithm we did not offer gets a fresh challenge.
            r = c.send_register("100", contacts=["<sip:100@127.0.0.1:41997>"], expires=300)
            chal = dict(r.challenges()[0])
            chal["algorithm"] = "SHA-256"
            auth = c.authorization_for(chal, "100", h.user_password("100"))
            r2 = c.send_register("100", contacts=["<sip:100@127.0.0.1:41997>"], expires=300,
                                 authorization=auth)
            h.expect_status(r2, 401, "SHA-256 answer to an MD5-only challenge")

        checks.run("MD5 alone is offered when configured so", md5_only_by_default)
        checks.run("a user's own algorithms list orders its challenges", per_user_list_wins)
        checks.run("a SHA-256 client registers where SHA-256 is offered", sha256_client_registers_where_offered)
        checks.run("an answer with an algorithm not offered is challenged again", sha256_refused_where_not_offered)

    # A user that exists only in the store (SQLite file of the stopped node above).
    def store_user():
        store_path = relais.db_path
        args = [h.relais_bin(), "--config", relais.config_path, "--set", "store.path=%s" % store_path,
                "--add-user", "350:pw-350-store"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            h.fail("--add-user exited %d: %s" % (out.returncode, out.stderr))
        with h.Relais(name="algs-store", config={"auth": {"algorithms": ["MD5"]}},
                      sets=["store.path=%s" % store_path]) as again:
            cl = again.client("udp")
            r, _ = cl.register("350", "pw-350-store", contacts=["<sip:350@127.0.0.1:41996>"], expires=300)
            h.expect_status(r, 200, "REGISTER of a store-provisioned user")
            r, _ = cl.register("350", "wrong", contacts=["<sip:350@127.0.0.1:41995>"], expires=300)
            h.expect_status(r, 403, "REGISTER of a store user with a wrong password")

    checks.run("a user added with --add-user registers from the store", store_user)


if __name__ == "__main__":
    h.main(test)
