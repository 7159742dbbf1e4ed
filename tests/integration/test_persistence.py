"""test_persistence.py — registrations survive a restart (SQLite file, Redis), and two relais
nodes on one Redis see each other's registrations."""

import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

EXPIRES = 600


def pw(u):
    return h.user_password(u)


def register(client, user, contact, expires=EXPIRES):
    r, _ = client.register(user, pw(user), contacts=["<%s>" % contact], expires=expires)
    h.expect_status(r, 200, "REGISTER %s" % user)
    return time.monotonic()


def check_survives(relais, what):
    """Register, SIGTERM at once (the store must flush), wait, restart, query."""
    u, contact = "101", "sip:101-persist@127.0.0.1:41001"
    u2, gone = "102", "sip:102-gone@127.0.0.1:41002"
    with relais.client("udp") as c:
        t0 = register(c, u, contact)
        register(c, u2, gone)
        r, _ = c.register(u2, pw(u2), contacts=["<%s>" % gone], expires=0)
        h.expect_status(r, 200, "unregister %s" % u2)
    relais.stop()  # checks exit code 0
    time.sleep(2.0)  # a binding whose expiry was reset at restart would show EXPIRES again
    relais.start()
    with relais.client("udp") as c:
        b = h.bindings_of(c, u)
        elapsed = time.monotonic() - t0
        h.log("%s: after restart (%.1f s after REGISTER) bindings of %s: %s" % (what, elapsed, u, b))
        k, e = h.find_contact(b, contact)
        if k is None:
            h.fail("%s: binding lost across restart; query shows %s" % (what, b))
        hi = EXPIRES - int(elapsed) + 1
        lo = EXPIRES - elapsed - 10
        if e is None or not lo <= e <= hi:
            h.fail("%s: remaining expiry %s after %.1f s, expected %d..%d" % (what, e, elapsed,
                                                                               int(lo), hi))
        b2 = h.bindings_of(c, u2)
        if b2:
            h.fail("%s: a removed binding came back after restart: %s" % (what, b2))


def test(checks):
    def sqlite_restart():
        relais = h.Relais(name="persist-sqlite")
        with relais:
            check_survives(relais, "sqlite")
            if not os.path.exists(relais.db_path):
                h.fail("no sqlite file at store.path %s" % relais.db_path)

    checks.run("sqlite store survives SIGTERM + restart", sqlite_restart)

    with h.RedisServer() as redis:
        prefix = "it%s:" % secrets.token_hex(3)
        store = {"store": {"backend": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port,
                           "prefix": prefix}}

        def redis_restart():
            relais = h.Relais(name="persist-redis", config=store)
            with relais:
                with relais.client("udp") as c:
                    register(c, "103", "sip:103-key@127.0.0.1:41003")
                check_survives(relais, "redis")

        def redis_key_layout():
            key = "%sloc:103@%s" % (prefix, h.DOMAIN)
            keys = redis.command("KEYS", prefix + "*")
            h.log("redis keys under %s: %s" % (prefix, keys))
            if key not in (keys or []):
                h.fail("expected key %s in redis, found %s" % (key, keys))

        def two_nodes():
            a = h.Relais(name="node-a", config=dict(store, node_id="node-a"))
            b = h.Relais(name="node-b", config=dict(store, node_id="node-b"))
            with a, b:
                ca, cb = a.client("udp"), b.client("udp")
                try:
                    ua, contact_a = "104", "sip:104-a@127.0.0.1:41004"
                    register(ca, ua, contact_a)
                    bb = h.wait_until(lambda: h.bindings_of(cb, ua), timeout=3,
                                      what="node B seeing node A's registration")
                    h.expect_contacts(bb, {contact_a: (EXPIRES - 15, EXPIRES)},
                                      "query on node B after REGISTER on node A")
                    ub, contact_b = "105", "sip:105-b@127.0.0.1:41005"
                    register(cb, ub, contact_b)
                    ba = h.wait_until(lambda: h.bindings_of(ca, ub), timeout=3,
                                      what="node A seeing node B's registration")
                    h.expect_contacts(ba, {contact_b: (EXPIRES - 15, EXPIRES)},
                                      "query on node A after REGISTER on node B")
                    # A refresh through B of A's contact, then removal through B, seen on A.
                    r, _ = cb.register(ua, pw(ua), contacts=["<%s>" % contact_a], expires=0)
                    h.expect_status(r, 200, "unregister on node B of node A's contact")
                    left = h.bindings_of(ca, ua)
                    if left:
                        h.fail("node A still lists %s after removal on node B" % left)
                finally:
                    ca.close()
                    cb.close()

        checks.run("redis store survives SIGTERM + restart", redis_restart)
        checks.run("redis keys are <prefix>loc:<aor>", redis_key_layout)
        checks.run("two nodes on one redis see each other's registrations", two_nodes)


if __name__ == "__main__":
    h.main(test)
