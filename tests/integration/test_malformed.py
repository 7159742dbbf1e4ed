"""test_malformed.py — hostile and broken input over UDP and TCP: relais answers 400 (or the
documented alternative), never crashes, and afterwards still answers OPTIONS and registers."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

SILENCE = None  # "no answer" in the accepted sets below
USER = "101"


def build(sock_port, transport="UDP", omit=(), replace=None, extra=(), body=b"",
          content_length=None, first_line=None, user=USER):
    """A REGISTER (unauthenticated unless extra has Authorization) with headers removable."""
    replace = replace or {}
    hdrs = [
        ("Via", "SIP/2.0/%s 127.0.0.1:%d;branch=%s;rport" % (transport, sock_port, h.new_branch())),
        ("Max-Forwards", "70"),
        ("From", "<sip:%s@%s>;tag=%s" % (user, h.DOMAIN, h.new_tag())),
        ("To", "<sip:%s@%s>" % (user, h.DOMAIN)),
        ("Call-ID", h.new_call_id()),
        ("CSeq", "1 REGISTER"),
        ("Contact", "<sip:%s-bad@127.0.0.1:%d>" % (user, sock_port)),
        ("Expires", "300"),
    ]
    lines = [first_line or "REGISTER sip:%s SIP/2.0" % h.DOMAIN]
    for name, value in hdrs:
        if name in omit:
            continue
        lines.append("%s: %s" % (name, replace.get(name, value)))
    lines += list(extra)
    if isinstance(body, str):
        body = body.encode()
    cl = len(body) if content_length is None else content_length
    if cl != "omit":
        lines.append("Content-Length: %s" % cl)
    out = b""
    for l in lines:
        out += (l if isinstance(l, bytes) else l.encode()) + b"\r\n"
    return out + b"\r\n" + body


def describe(resp):
    if resp is None:
        return "no answer"
    return resp.first_line


def test(checks):
    relais = h.Relais(name="malformed")
    with relais:
        port = relais.port
        results = []

        # A real challenge gives realm/nonce for the broken Authorization headers.
        with relais.client("udp") as c:
            r = c.send_register(USER, contacts=["<sip:x@127.0.0.1:5999>"], expires=300)
            h.expect_status(r, 401, "REGISTER to get a challenge")
            chal = h.pick_challenge(r.challenges(), "MD5") or r.challenges()[0]
            realm, nonce = chal["realm"], chal["nonce"]

        def good_auth(**over):
            p = {"username": USER, "realm": realm, "nonce": nonce, "uri": "sip:%s" % h.DOMAIN,
                 "response": "0" * 32, "algorithm": "MD5", "qop": "auth", "nc": "00000001",
                 "cnonce": "abcdef"}
            p.update(over)
            parts = []
            for k, v in p.items():
                if v is None:
                    continue
                if k in ("algorithm", "qop", "nc"):
                    parts.append("%s=%s" % (k, v))
                else:
                    parts.append('%s="%s"' % (k, v))
            return "Authorization: Digest " + ", ".join(parts)

        def udp_case(name, make, accepted, wait=1.5):
            """make(port) -> bytes; accepted: set of status codes and/or SILENCE."""
            def run():
                client = h.SipClient("127.0.0.1", port, "udp")
                s = client.sock
                try:
                    data = make(client.local_port)
                    try:
                        s.sendto(data, ("127.0.0.1", port))
                    except OSError as e:
                        h.fail("could not send %d bytes: %s" % (len(data), e))
                    resp = client.wait_response(timeout=wait)
                finally:
                    s.close()
                got = SILENCE if resp is None else resp.status
                line = "UDP %-45s sent %6d bytes -> %s" % (name, len(data), describe(resp))
                results.append(line)
                h.log(line)
                if got not in accepted:
                    h.fail("%s: got %s, expected one of %s\n  sent: %r\n  got: %r" % (
                        name, describe(resp), sorted(accepted, key=str), data[:400],
                        resp.raw[:600] if resp else None))
                if not relais.alive():
                    h.fail("relais died after %s (exit %s)" % (name, relais.proc.returncode))
            checks.run("UDP " + name, run)

        def tcp_case(name, chunks, accepted, wait=2.0, pause=0.0):
            """Send chunks over one TCP connection; accepted: codes, SILENCE (incl. closed)."""
            def run():
                t = h.SipClient("127.0.0.1", port, "tcp")
                try:
                    data = b""
                    for ch in chunks:
                        chunk = ch(t.local_port) if callable(ch) else ch
                        data += chunk
                        try:
                            t.sock.sendall(chunk)
                        except OSError as e:
                            h.log("send failed (%s) — relais closed the connection" % e)
                            break
                        if pause:
                            time.sleep(pause)
                    resp = t.wait_response(timeout=wait)
                    state = ""
                    if resp is None:
                        if not t.tcp_closed:
                            t.recv_message(timeout=0.2)
                        state = " (connection %s)" % ("closed by relais" if t.tcp_closed else
                                                      "still open")
                finally:
                    t.close()
                got = SILENCE if resp is None else resp.status
                line = "TCP %-45s sent %6d bytes -> %s%s" % (name, len(data), describe(resp), state)
                results.append(line)
                h.log(line)
                if got not in accepted:
                    h.fail("%s: got %s, expected one of %s\n  got: %r" % (
                        name, describe(resp), sorted(accepted, key=str),
                        resp.raw[:600] if resp else None))
                if not relais.alive():
                    h.fail("relais died after %s (exit %s)" % (name, relais.proc.returncode))
            checks.run("TCP " + name, run)

        E400 = {400}
        AUTHBAD = {400, 401, 403}
        # -- structurally broken requests: 400
        udp_case("missing Call-ID", lambda p: build(p, omit=("Call-ID",)), E400)
        udp_case("missing CSeq", lambda p: build(p, omit=("CSeq",)), E400)
        udp_case("missing From", lambda p: build(p, omit=("From",)), E400)
        udp_case("missing To", lambda p: build(p, omit=("To",)), E400)
        udp_case("missing From and To", lambda p: build(p, omit=("From", "To")), E400)
        udp_case("CSeq not a number", lambda p: build(p, replace={"CSeq": "abc REGISTER"}), E400)
        udp_case("CSeq method differs from request", lambda p: build(p, replace={"CSeq": "1 INVITE"}),
                 E400)
        udp_case("From without URI", lambda p: build(p, replace={"From": ";tag=1"}), E400)
        udp_case("header line without colon",
                 lambda p: build(p, extra=("This is not a header",)), E400)
        udp_case("Expires not a number", lambda p: build(p, replace={"Expires": "soon"}), {400, 401})
        udp_case("Contact garbage", lambda p: build(p, replace={"Contact": "<<<>>>"}), {400, 401})
        udp_case("missing Via (nowhere to answer)", lambda p: build(p, omit=("Via",)), {400, SILENCE})
        udp_case("SIP/3.0 request line",
                 lambda p: build(p, first_line="REGISTER sip:%s SIP/3.0" % h.DOMAIN), {400, 505, SILENCE})
        udp_case("request line garbage",
                 lambda p: build(p, first_line="REGISTER"), {400, SILENCE})
        # -- bad Authorization data: 400 / 401 / 403, never a binding
        udp_case("Authorization without nonce",
                 lambda p: build(p, extra=(good_auth(nonce=None),)), AUTHBAD)
        udp_case("Authorization with garbage nonce",
                 lambda p: build(p, extra=(good_auth(nonce="!!garbage%%nonce\x7f"),)), AUTHBAD)
        udp_case("Authorization with empty nonce",
                 lambda p: build(p, extra=(good_auth(nonce=""),)), AUTHBAD)
        udp_case("Authorization response not hex",
                 lambda p: build(p, extra=(good_auth(response="zz" * 16),)), AUTHBAD)
        udp_case("Authorization response far too long",
                 lambda p: build(p, extra=(good_auth(response="a" * 4000),)), AUTHBAD)
        udp_case("Authorization unknown algorithm",
                 lambda p: build(p, extra=(good_auth(algorithm="SHA-999"),)), AUTHBAD)
        udp_case("Authorization 10 KB username",
                 lambda p: build(p, extra=(good_auth(username="u" * 10240),)), AUTHBAD)
        udp_case("Authorization qop=auth without nc/cnonce",
                 lambda p: build(p, extra=(good_auth(nc=None, cnonce=None),)), AUTHBAD)
        udp_case("Authorization bad nc",
                 lambda p: build(p, extra=(good_auth(nc="zzzzzzzz"),)), AUTHBAD)
        udp_case("Authorization: Basic",
                 lambda p: build(p, extra=("Authorization: Basic MTAxOnB3",)), AUTHBAD)
        udp_case("Authorization: Digest with no parameters",
                 lambda p: build(p, extra=("Authorization: Digest",)), AUTHBAD)
        udp_case("Authorization with unterminated quote",
                 lambda p: build(p, extra=('Authorization: Digest username="101, realm="%s' % realm,)),
                 AUTHBAD)
        udp_case("Authorization for another realm",
                 lambda p: build(p, extra=(good_auth(realm="evil.example"),)), AUTHBAD)
        udp_case("two Authorization headers",
                 lambda p: build(p, extra=(good_auth(), good_auth(username="102"))), AUTHBAD)
        # -- sizes and framing
        udp_case("60 KB header value",
                 lambda p: build(p, extra=("X-Big: " + "a" * 60000,)), {400, 401, 413, SILENCE})
        udp_case("5000 small headers",
                 lambda p: build(p, extra=["X-H%d: v" % i for i in range(5000)]),
                 {400, 401, 413, SILENCE})
        udp_case("Content-Length larger than the datagram",
                 lambda p: build(p, content_length=500), {400, SILENCE})
        udp_case("Content-Length smaller than the body",
                 lambda p: build(p, body="x" * 100, content_length=10), {400, 401})
        udp_case("Content-Length negative", lambda p: build(p, content_length=-5), {400, SILENCE})
        udp_case("Content-Length not a number", lambda p: build(p, content_length="ten"),
                 {400, SILENCE})
        udp_case("Content-Length huge", lambda p: build(p, content_length=99999999999999999999),
                 {400, 413, SILENCE})
        udp_case("non-UTF-8 bytes in headers",
                 lambda p: build(p, extra=(b"X-Bin: \xff\xfe\x00\x01\x80",)), {400, 401, SILENCE})
        udp_case("NUL bytes in the request line",
                 lambda p: build(p, first_line=b"REGISTER sip:a\x00b SIP/2.0"), {400, SILENCE})
        rnd = random.Random(1234)
        junk = bytes(rnd.randrange(256) for _ in range(1400))
        udp_case("binary junk", lambda p: junk, {400, SILENCE}, wait=1.0)
        udp_case("empty datagram", lambda p: b"", {SILENCE}, wait=1.0)
        udp_case("CRLF keepalive only", lambda p: b"\r\n\r\n", {SILENCE}, wait=1.0)
        udp_case("stray response", lambda p: (
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\nFrom: <sip:a@b>;tag=1\r\n"
            "To: <sip:a@b>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            % (p, h.new_branch())).encode(), {SILENCE}, wait=1.0)

        # -- TCP
        tcp_case("binary junk then silence", [junk], {400, SILENCE}, wait=1.5)
        tcp_case("message larger than 64 KB",
                 [lambda p: build(p, transport="TCP", extra=("X-Big: " + "b" * 70000,))],
                 {400, 413, 503, SILENCE})
        tcp_case("endless header without CRLF", [b"REGISTER sip:%s SIP/2.0\r\nX-A: " % h.DOMAIN.encode()
                                                 + b"c" * 100000], {400, 413, SILENCE})
        tcp_case("Content-Length larger than sent, then close",
                 [lambda p: build(p, transport="TCP", body="x" * 10, content_length=1000)],
                 {400, SILENCE}, wait=1.5)
        tcp_case("Content-Length negative",
                 [lambda p: build(p, transport="TCP", content_length=-1)], {400, SILENCE})
        tcp_case("missing Call-ID", [lambda p: build(p, transport="TCP", omit=("Call-ID",))], E400)

        def options_msg(p):
            return (("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:%d;branch=%s\r\n"
                     "Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:127.0.0.1:%d>\r\n"
                     "Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n") % (
                port, p, h.new_branch(), h.DOMAIN, h.new_tag(), port, h.new_call_id())).encode()

        def split_options():
            t = h.SipClient("127.0.0.1", port, "tcp")
            try:
                msg = options_msg(t.local_port)
                for part in (msg[:7], msg[7:60], msg[60:-3], msg[-3:]):
                    t.sock.sendall(part)
                    time.sleep(0.15)
                h.expect_status(t.wait_response(timeout=3), 200, "OPTIONS sent in 4 TCP segments")
                # two pipelined requests in one write
                t.sock.sendall(b"\r\n" + options_msg(t.local_port) + options_msg(t.local_port))
                h.expect_status(t.wait_response(timeout=3), 200, "first of two pipelined OPTIONS")
                h.expect_status(t.wait_response(timeout=3), 200, "second of two pipelined OPTIONS")
            finally:
                t.close()

        checks.run("TCP request split across segments, pipelined requests", split_options)

        # -- afterwards: still alive and working
        def still_works():
            if not relais.alive():
                h.fail("relais is not running (exit %s)" % relais.proc.returncode)
            with relais.client("udp") as c:
                h.expect_status(c.options(), 200, "OPTIONS after the hostile input")
                b = h.bindings_of(c, USER)
                if b:
                    h.fail("hostile REGISTERs created bindings for %s: %s" % (USER, b))
                contact = "sip:101-after@127.0.0.1:41101"
                r, _ = c.register(USER, h.user_password(USER), contacts=["<%s>" % contact],
                                  expires=300)
                h.expect_status(r, 200, "normal REGISTER after the hostile input")
                h.expect_contacts(h.bindings_of(c, USER), {contact: (280, 300)}, "query")
            with relais.client("tcp") as t:
                h.expect_status(t.options(), 200, "OPTIONS over TCP after the hostile input")

        checks.run("relais still answers OPTIONS and registers", still_works)

        def clean_log():
            bad = [l for l in relais.log_lines() if any(s in l for s in (
                "AddressSanitizer", "runtime error:", "Assertion", "Segmentation", "terminate called"))]
            if bad:
                h.fail("relais log shows a crash/sanitizer report:\n" + "\n".join(bad[:20]))

        checks.run("no sanitizer/assert output in the log", clean_log)
        h.log("=== what came back\n" + "\n".join(results))
        checks.run("SIGTERM after the hostile input exits 0", relais.stop)


if __name__ == "__main__":
    h.main(test)
