"""test_tls_edge.py — relais's TCP/TLS edge (tls/): baresip registers over TLS and calls a TCP
baresip both ways with audio; an incoming call reaches the TLS phone over the connection it
registered on, and fails with 480 once that connection is gone; the TLS policy (1.2+, cipher
list) and certificate verification seen from openssl s_client and python's ssl; certificate
reload on SIGHUP with a connection kept across it; plain TCP through the edge; hostile input
over TLS and TCP; handshake timeout, /metrics counters and the connection cap."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import tls_tools as t  # noqa: E402
from test_call_baresip import Phone, wav_stats  # noqa: E402 - the headless baresip of that test

CALL_SECONDS = 3

SCRIPT = r"""
function on_invite(call)
  call:dial(call.ruri.user)
end
"""


def use_transport(phone, relais_port, transport, cafile):
    """Points a test_call_baresip Phone at relais over `transport` (its account says udp)."""
    with open(os.path.join(phone.dir, "accounts"), "w") as f:
        f.write("<sip:%s@127.0.0.1:%d;transport=%s>;auth_pass=%s;answermode=auto;regint=600\n" % (
            phone.user, relais_port, transport, h.user_password(phone.user)))
    with open(os.path.join(phone.dir, "config"), "a") as f:
        f.write("sip_cafile\t\t%s\n" % cafile)


def established_tls_peers(tls_port):
    """Local ports of the established TCP connections to relais's TLS port (client side)."""
    r = subprocess.run(["ss", "-tnH", "state", "established", "( dport = :%d )" % tls_port],
                       capture_output=True, text=True, timeout=5)
    ports = []
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            ports.append(int(fields[-2].rsplit(":", 1)[1]))
    return sorted(ports)


def options_over(client, what):
    h.expect_status(client.options(), 200, what)


def test(checks):
    for tool in ("baresip", "timeout", "openssl", "ss"):
        h.require_tool(tool)
    certs = t.make_certs(h.make_tempdir("tls-certs"))
    tls_port = h.free_port(udp=False)
    http_port = h.free_port(udp=False)
    config = {
        "auth": {"algorithms": ["MD5"]},
        "calls": {"authenticate": True, "unknown_sources": "allow", "no_answer_timeout": 10},
        "http": {"listen": "127.0.0.1:%d" % http_port},
        "tls": {"listen": ["tls:127.0.0.1:%d" % tls_port], "certificate": "tls/server.pem",
                "private_key": "tls/server.key", "ca": certs["ca"], "min_version": "1.2",
                "ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20", "handshake_timeout": 3},
    }
    relais = h.Relais(name="tls-edge", config=config, script=SCRIPT)
    # Relative certificate paths resolve against relais's working directory; the reload check
    # overwrites these copies.
    os.makedirs(os.path.join(relais.workdir, "tls"))

    def install_certificate(which):
        shutil.copy(certs[which], os.path.join(relais.workdir, "tls", "server.pem"))
        shutil.copy(certs[which + ".key"], os.path.join(relais.workdir, "tls", "server.key"))

    install_certificate("server")
    ca_ctx = t.client_context(certs["ca"])

    with relais:
        alice = Phone("alice", "101", relais, 440)    # TLS
        bob = Phone("bob", "102", relais, 1000)       # TCP
        use_transport(alice, tls_port, "tls", certs["ca"])
        use_transport(bob, relais.port, "tcp", certs["ca"])
        state = {}
        alice.start(seconds=90)
        bob.start(seconds=90)
        try:
            def both_register():
                for p, proto in ((alice, "TLS"), (bob, "TCP")):
                    try:
                        line = h.wait_until(p.registered_line, timeout=10, what="%s registered" % p.name)
                    except AssertionError:
                        h.fail("%s did not register over %s; log:\n%s" % (p.name, proto, p.log_text()[-3000:]))
                    if "/%s/" % proto not in line:
                        h.fail("%s registered, but not over %s: %s" % (p.name, proto, line))
                    h.log("%s: %s" % (p.name, line.strip()))
                    p.connect()
                ok = relais.wait_log("event=register.ok aor=101@", timeout=5)
                m = re.search(r"src=tls:127\.0\.0\.1:(\d+)", ok)
                if not m:
                    h.fail("alice's REGISTER did not arrive over TLS: %s" % ok)
                state["alice_port"] = int(m.group(1))
                if "src=tcp:127.0.0.1:" not in relais.wait_log("event=register.ok aor=102@", timeout=5):
                    h.fail("bob's REGISTER did not arrive over TCP")

            def call(caller, callee, uri, what):
                if caller.sock is None or callee.sock is None:
                    h.fail("phones not registered")
                before = {p.name: set(p.dumps()) for p in (caller, callee)}
                caller.events.clear()
                callee.events.clear()
                mark = relais.log_mark()
                caller.command("dial", uri)
                ea = caller.wait_event("CALL_ESTABLISHED", 10)
                eb = callee.wait_event("CALL_ESTABLISHED", 5 if ea else 0.1)
                if not ea or not eb:
                    h.fail("%s: not established (caller %s, callee %s)\nrelais:\n%s\ncaller log:\n%s" % (
                        what, caller.event_types(), callee.event_types(), "\n".join(relais.log_since(mark)[-30:]),
                        caller.log_text()[-2000:]))
                peers = established_tls_peers(tls_port)
                time.sleep(CALL_SECONDS)
                caller.command("hangup")
                if not caller.wait_event("CALL_CLOSED", 5) or not callee.wait_event("CALL_CLOSED", 5):
                    h.fail("%s: hang-up did not close both sides (%s / %s)" % (
                        what, caller.event_types(), callee.event_types()))
                time.sleep(0.5)
                for p in (caller, callee):
                    new = sorted(set(p.dumps()) - before[p.name])
                    if not new:
                        h.fail("%s: %s wrote no received-audio dump" % (what, p.name))
                    seconds, rms = wav_stats(new[-1])
                    h.log("%s: %s received %.2f s of audio, rms %.0f" % (what, p.name, seconds, rms))
                    if seconds < 1.0 or rms < 100:
                        h.fail("%s: %s received %.2f s of audio (rms %.0f) in a %d s call" % (
                            what, p.name, seconds, rms, CALL_SECONDS))
                return mark, peers

            def tls_calls_tcp():
                call(alice, bob, "sip:102@127.0.0.1:%d;transport=tls" % tls_port, "TLS alice -> TCP bob")

            def tcp_calls_tls_over_its_connection():
                mark, peers = call(bob, alice, "sip:101@127.0.0.1:%d;transport=tcp" % relais.port,
                                   "TCP bob -> TLS alice")
                # The only connection to the TLS port during the call is the one alice registered on:
                # the INVITE reached her through it (relais cannot open a connection to a phone).
                if peers != [state["alice_port"]]:
                    h.fail("during the call the TLS connections were from ports %s; alice registered from %d"
                           % (peers, state["alice_port"]))
                opened = [l for l in relais.log_since(mark) if "event=edge.open" in l and "transport=tls" in l]
                if opened:
                    h.fail("a new TLS connection was opened for the incoming call: %s" % opened)

            def flow_gone_480():
                if "alice_port" not in state:
                    h.fail("alice never registered")
                os.killpg(alice.proc.pid, signal.SIGKILL)
                alice.proc.wait(timeout=5)
                relais.wait_log("peer=tls:127.0.0.1:%d reason=" % state["alice_port"], timeout=5,
                                what="the edge closing alice's flow")
                bob.events.clear()
                t0 = time.monotonic()
                bob.command("dial", "sip:101@127.0.0.1:%d;transport=tcp" % relais.port)
                closed = bob.wait_event("CALL_CLOSED", 6)
                took = time.monotonic() - t0
                if not closed or "480" not in str(closed.get("param")):
                    h.fail("call to alice after her connection closed: %s after %.1f s (want 480)" % (
                        bob.event_types(), took))
                if took > 4:
                    h.fail("480 took %.1f s" % took)
                relais.wait_log("event=call.flow_gone", timeout=2)
                h.log("480 after %.2f s: %s" % (took, closed.get("param")))

            checks.run("baresip registers over TLS (and a second one over TCP)", both_register)
            checks.run("TLS phone calls TCP phone: established, audio both ways", tls_calls_tcp)
            checks.run("TCP phone calls TLS phone over the connection it registered on, audio both ways",
                       tcp_calls_tls_over_its_connection)
            checks.run("TLS phone's connection closed: a call to it fails with 480 at once", flow_gone_480)
        finally:
            alice.stop()
            bob.stop()

        def policy():
            code, out = t.s_client(tls_port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
            if t.negotiated(out):
                h.fail("TLS 1.1 negotiated: %s" % (t.negotiated(out),))
            code, out = t.s_client(tls_port, ["-tls1_2", "-cipher", "AES128-SHA"])
            if t.negotiated(out):
                h.fail("AES128-SHA negotiated: %s" % (t.negotiated(out),))
            code, out = t.s_client(tls_port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                                              "-CAfile", certs["ca"], "-verify_return_error"])
            got = t.negotiated(out)
            if code != 0 or got != ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"):
                h.fail("TLS 1.2 ECDHE-AESGCM handshake failed (exit %d, %s):\n%s" % (code, got, out[-1500:]))
            # The refusals were the server's: its log names the reasons.
            text = relais.log_text()
            for reason in ("unsupported protocol", "no shared cipher"):
                if not re.search(r"event=edge\.handshake_failed .*%s" % reason, text):
                    h.fail("no edge.handshake_failed line with %r in relais's log" % reason)

        def verification():
            with t.TlsSipClient("127.0.0.1", tls_port, ca_ctx) as c:
                options_over(c, "OPTIONS over TLS verified against the dev CA")
            try:
                t.TlsSipClient("127.0.0.1", tls_port, t.client_context(certs["rogue-ca"])).close()
            except ssl.SSLCertVerificationError as e:
                h.log("rogue CA refused as expected: %s" % e)
                return
            h.fail("the server certificate verified against an unrelated CA")

        def plain_tcp():
            with relais.client("tcp") as c:
                options_over(c, "OPTIONS over TCP through the edge")
                contact = c.contact_uri("110")
                r, _ = c.register("110", h.user_password("110"), contacts=["<%s>" % contact], expires=300)
                h.expect_status(r, 200, "REGISTER over TCP through the edge")
                h.expect_contacts(h.bindings_of(c, "110"), {contact: (280, 300)}, "query over TCP")
            # The 200 can reach us before relais's log line reaches the harness's reader.
            relais.wait_log("event=register.ok aor=110@", timeout=5, what="register.ok of 110")
            via = [l for l in relais.log_lines() if "event=register.ok aor=110@" in l]
            if not via or "src=tcp:127.0.0.1:%d" % c.local_port not in via[-1]:
                h.fail("the registrar did not see the phone's own address: %s" % via[-1:])

        def hostile(kind):
            def connect():
                if kind == "tls":
                    return t.TlsSipClient("127.0.0.1", tls_port, ca_ctx)
                return relais.client("tcp")

            def case(name, payload, accepted=(400, 413)):
                c = connect()
                try:
                    data = payload(c) if callable(payload) else payload
                    try:
                        c.sock.sendall(data)
                    except OSError:
                        pass
                    r = c.wait_response(timeout=4)
                    if r is None:
                        c.recv_message(timeout=0.5)
                    got = r.status if r else ("closed" if c.tcp_closed else "silence")
                finally:
                    c.close()
                h.log("%s %-34s -> %s" % (kind, name, got))
                if got not in accepted and got != "closed":
                    h.fail("%s %s: got %s" % (kind, name, got))

            def big_header(c):
                return c.build_request("OPTIONS", "sip:127.0.0.1", "sip:probe@%s" % h.DOMAIN,
                                       "sip:127.0.0.1", h.new_call_id(), 1, ["X-Big: " + "a" * 60000])

            def lying_length(c):
                data = c.build_request("OPTIONS", "sip:127.0.0.1", "sip:probe@%s" % h.DOMAIN,
                                       "sip:127.0.0.1", h.new_call_id(), 1)
                return data.replace(b"Content-Length: 0", b"Content-Length: 99999999")

            def negative_length(c):
                data = c.build_request("OPTIONS", "sip:127.0.0.1", "sip:probe@%s" % h.DOMAIN,
                                       "sip:127.0.0.1", h.new_call_id(), 1)
                return data.replace(b"Content-Length: 0", b"Content-Length: -4")

            case("60 KB header", big_header)
            case("Content-Length 99999999", lying_length)
            case("Content-Length negative", negative_length)
            case("binary garbage", bytes(range(256)) * 8)
            case("endless header line", b"OPTIONS sip:x SIP/2.0\r\nX: " + b"z" * 70000)
            if not relais.alive():
                h.fail("relais died")
            with connect() as c:
                options_over(c, "OPTIONS over %s after the hostile input" % kind)

        def handshake_timeout():
            s = socket.create_connection(("127.0.0.1", tls_port), timeout=6)
            t0 = time.monotonic()
            try:
                data = s.recv(10)  # nothing sent: the edge must give up after handshake_timeout (3 s)
            except (ConnectionResetError, socket.timeout):
                data = None
            took = time.monotonic() - t0
            s.close()
            if data != b"" or not 2.0 <= took <= 5.0:
                h.fail("an idle connection to the TLS port got %r after %.1f s (want close after ~3 s)" % (data, took))
            relais.wait_log("reason=\"handshake timeout\"", timeout=2)

        def reload():
            old = t.TlsSipClient("127.0.0.1", tls_port, ca_ctx)
            try:
                options_over(old, "OPTIONS before the reload")
                if old.peer_fingerprint() != t.pem_fingerprint(certs["server"]):
                    h.fail("before the reload the server did not present server.pem")
                install_certificate("server2")
                mark = relais.log_mark()
                relais.signal(signal.SIGHUP)
                relais.wait_log("event=tls.reloaded", since=mark, timeout=5)
                options_over(old, "OPTIONS on the connection opened before the reload")
                with t.TlsSipClient("127.0.0.1", tls_port, ca_ctx) as new:
                    options_over(new, "OPTIONS on a new connection")
                    if new.peer_fingerprint() != t.pem_fingerprint(certs["server2"]):
                        h.fail("a new connection did not get the new certificate")
                # A broken certificate file: the reload logs an error and the current one stays.
                with open(os.path.join(relais.workdir, "tls", "server.pem"), "w") as f:
                    f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
                mark = relais.log_mark()
                relais.signal(signal.SIGHUP)
                relais.wait_log("event=tls.reload_failed", since=mark, timeout=5)
                with t.TlsSipClient("127.0.0.1", tls_port, ca_ctx) as new:
                    options_over(new, "OPTIONS after a failed reload")
                    if new.peer_fingerprint() != t.pem_fingerprint(certs["server2"]):
                        h.fail("after a failed reload the certificate changed")
                options_over(old, "OPTIONS on the old connection after both reloads")
            finally:
                old.close()

        def metrics():
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=5).read().decode()

            def value(name):
                m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
                if not m:
                    h.fail("metric %s missing" % name)
                return int(m.group(1))
            for name in ('relais_edge_connections_total{transport="tls"}',
                         'relais_edge_connections_total{transport="tcp"}', "relais_edge_handshakes_failed_total",
                         "relais_edge_framing_errors_total", 'relais_edge_messages_total{direction="in"}',
                         'relais_edge_messages_total{direction="out"}'):
                if value(name) <= 0:
                    h.fail("%s is 0" % name)
                h.log("%s %d" % (name, value(name)))

        checks.run("TLS 1.1 and AES128-SHA refused, TLS 1.2 ECDHE-AESGCM accepted (openssl s_client)", policy)
        checks.run("certificate verifies against the dev CA, not against a rogue CA", verification)
        checks.run("REGISTER and OPTIONS over plain TCP through the edge", plain_tcp)
        checks.run("hostile input over TLS: 400/413 or close, relais alive", hostile, "tls")
        checks.run("hostile input over TCP: 400/413 or close, relais alive", hostile, "tcp")
        checks.run("a connection that never handshakes is closed after handshake_timeout", handshake_timeout)
        checks.run("SIGHUP reloads the certificate: old connection kept, new one gets the new certificate",
                   reload)
        checks.run("/metrics counts edge connections, failures and messages", metrics)

        def clean_log():
            bad = [l for l in relais.log_lines() if any(s in l for s in (
                "AddressSanitizer", "LeakSanitizer", "runtime error:", "Assertion", "Segmentation"))]
            if bad:
                h.fail("relais log shows a crash/sanitizer report:\n" + "\n".join(bad[:20]))

        checks.run("no sanitizer/assert output in the log", clean_log)

    # A second relais: max_connections is a hard cap, and a freed slot is usable again.
    small = h.Relais(name="tls-edge-max", config={"tls": {"listen": [], "max_connections": 2}})
    with small:
        def connection_cap():
            first, second = small.client("tcp"), small.client("tcp")
            try:
                options_over(first, "OPTIONS on connection 1 of 2")
                options_over(second, "OPTIONS on connection 2 of 2")
                third = socket.create_connection(("127.0.0.1", small.port), timeout=3)
                try:
                    third.sendall(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
                    got = third.recv(100)
                except (ConnectionResetError, BrokenPipeError):
                    got = b""
                third.close()
                if got != b"":
                    h.fail("a third connection over max_connections = 2 got %r" % got)
                small.wait_log("event=edge.refused", timeout=2)
            finally:
                first.close()
            h.wait_until(lambda: small.grep("event=edge.close"), timeout=3, what="the first connection closed")
            with small.client("tcp") as again:
                options_over(again, "OPTIONS once a connection slot is free again")
            second.close()

        checks.run("tls.max_connections caps TCP/TLS connections", connection_cap)


if __name__ == "__main__":
    h.main(test)
