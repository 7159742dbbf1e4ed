"""test_srtp.py — SRTP (SDES, RFC 4568) in relais-media and relais's SRTP policy.

(a) relais-media alone over ng: an SRTP side (crypto by srtp_filter, i.e. libsrtp2) and a plain
    RTP side (transport-protocol RTP/AVP): plaintext arrives on the plain side, ciphertext
    (+10/+4/+16 bytes of tag, payload not the plaintext) on the SRTP side, per suite; SRTCP the
    same; tampered, replayed and forged packets are dropped, counted and never latched on; SRTP on
    both sides with separate keys; a prompt played to and a recording made from an SRTP side.
(b) baresip with mediaenc=srtp-mand registers over TLS (relais's tls.listen, dev certificates
    from tls/make-dev-certs.sh) and calls a plain-RTP sipp UAS (-rtp_echo) through relais +
    relais-media: baresip and relais's log show the REGISTER and the INVITE on the TLS
    connection and a capture shows no SIP over UDP but the trunk leg to sipp; the phone leg is
    SRTP (182-byte RTP payloads = 172 + the 10-byte tag, payload not the phone's 440 Hz), the
    sipp leg plain RTP (172 bytes, decodes to ~440 Hz); baresip's received audio is sipp's
    echo of its 440 Hz tone.
(c) a user whose policy is srtp = "mandatory" offering plain RTP gets 488; srtp = "never"
    on a trunk gives it plain RTP.
"""

import os
import re
import socket
import struct
import sys
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import srtp_tools as st  # noqa: E402

SUITES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"]


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.5)
    return s


def recv(sock, timeout=1.0):
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(4096)
    except socket.timeout:
        return None, None


def recv_all(sock, timeout=0.3):
    out = []
    while True:
        data, src = recv(sock, timeout)
        if data is None:
            return out
        out.append(data)


def sdp(port, proto="RTP/AVP", crypto=()):
    s = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio %d %s 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n" % (port, proto))
    return s + "".join(c + "\r\n" for c in crypto)


def ok(reply, what):
    if reply.get("result") != "ok":
        h.fail("%s: %r" % (what, reply))
    return reply


def pong(ng, what):
    r = ng.request({"command": "ping"})
    if r.get("result") != "pong":
        h.fail("ping %s: %r" % (what, r))


def audio_port(body):
    return h.sdp_media_ports(body)[0][1]


def side_stats(ng, call_id, tag):
    q = ok(ng.request({"command": "query", "call-id": call_id}), "query")
    for s in q["streams"]:
        if s["tag"] == tag:
            return s
    h.fail("no stream for %s in %r" % (tag, q))


def plain_rtp(seq, ssrc=0x5A5A0001, fill=None):
    payload = bytes((seq * 7 + i) & 0xff for i in range(160)) if fill is None else bytes([fill]) * 160
    return struct.pack("!BBHII", 0x80, 0, seq & 0xffff, seq * 160, ssrc) + payload


class SrtpCall:
    """Side A speaks SRTP (its own key; it learns ours from the answer), side B plain RTP."""

    def __init__(self, ng, call_id, suite, b_proto="RTP/AVP"):
        self.ng, self.call_id, self.suite = ng, call_id, suite
        self.a, self.a_rtcp, self.b = udp(), None, udp()
        self.a_key = st.new_key(suite)
        o = ok(ng.request({"command": "offer", "call-id": call_id, "from-tag": "A", "transport-protocol": b_proto,
                           "replace": ["origin"], "ICE": "remove",
                           "sdp": sdp(self.a.getsockname()[1], "RTP/SAVP", [st.crypto_line(1, suite, self.a_key)])}),
               "offer " + suite)
        self.offer_sdp = o["sdp"]
        self.to_b_port = audio_port(o["sdp"])
        self.b_offered = st.crypto_lines(o["sdp"])
        b_sdp = sdp(self.b.getsockname()[1], b_proto)
        if b_proto == "RTP/SAVP":
            tag, b_suite, _ = self.b_offered[0]
            self.b_key = st.new_key(b_suite)
            b_sdp = sdp(self.b.getsockname()[1], b_proto, [st.crypto_line(tag, b_suite, self.b_key)])
        a = ok(ng.request({"command": "answer", "call-id": call_id, "from-tag": "A", "to-tag": "B",
                           "replace": ["origin"], "ICE": "remove", "sdp": b_sdp}), "answer")
        self.answer_sdp = a["sdp"]
        self.to_a_port = audio_port(a["sdp"])
        lines = st.crypto_lines(a["sdp"])
        if len(lines) != 1 or lines[0][0] != 1 or lines[0][1] != suite:
            h.fail("answer to the SRTP side: expected one a=crypto:1 %s, got %r\n%s" % (suite, lines, a["sdp"]))
        self.relay_key = lines[0][2]
        if self.relay_key == self.a_key:
            h.fail("the relay answered with the offerer's own key")
        self.crypto = st.SrtpEndpoint(suite, self.a_key, self.relay_key)

    def close(self):
        self.crypto.close()
        self.ng.request({"command": "delete", "call-id": self.call_id})
        self.a.close()
        self.b.close()


def check_srtp_to_rtp(relay):
    ng = relay.client()
    for suite in SUITES:
        c = SrtpCall(ng, "srtp-" + suite, suite)
        if st.sdp_proto(c.offer_sdp) != "RTP/AVP" or st.crypto_lines(c.offer_sdp):
            h.fail("%s: the plain side's offer must be RTP/AVP without a=crypto:\n%s" % (suite, c.offer_sdp))
        if st.sdp_proto(c.answer_sdp) != "RTP/SAVP":
            h.fail("%s: the SRTP side's answer must stay RTP/SAVP:\n%s" % (suite, c.answer_sdp))
        relay_a = ("127.0.0.1", c.to_a_port)
        relay_b = ("127.0.0.1", c.to_b_port)
        # A → B: SRTP in, plaintext out.
        for seq in range(10, 15):
            plain = plain_rtp(seq)
            c.a.sendto(c.crypto.protect(plain), relay_a)
            got, _ = recv(c.b)
            if got != plain:
                h.fail("%s: B did not get A's plaintext (got %r)" % (suite, got and got[:16]))
        # B → A: plaintext in, SRTP out (tag length, encrypted payload, authenticates).
        for seq in range(200, 205):
            plain = plain_rtp(seq, ssrc=0xB0B, fill=0x33)
            c.b.sendto(plain, relay_b)
            got, _ = recv(c.a)
            if got is None or len(got) != len(plain) + st.TAG_LENGTH[suite]:
                h.fail("%s: A got %r bytes, expected %d" % (suite, got and len(got), len(plain) + st.TAG_LENGTH[suite]))
            if got[12:172] == plain[12:172] or bytes([0x33]) * 16 in got:
                h.fail("%s: plaintext payload reached the SRTP side" % suite)
            if c.crypto.unprotect(got) != plain:
                h.fail("%s: A cannot decrypt what the relay sent with the relay's key" % suite)
        s = side_stats(ng, c.call_id, "A")
        if s["crypto-suite"] != suite or s["srtp-failed"] != 0 or s["forwarded"] != 5:
            h.fail("%s: stats of the SRTP side %r" % (suite, s))
        h.log("%s: A→B plaintext, B→A +%d bytes ciphertext" % (suite, st.TAG_LENGTH[suite]))
        c.close()


def check_srtcp(relay):
    ng = relay.client()
    c = SrtpCall(ng, "srtcp-1", "AES_CM_128_HMAC_SHA1_80")
    b_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b_rtcp.bind(("127.0.0.1", c.b.getsockname()[1] + 1))
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x5A5A0001) + bytes(range(24))
    c.a.sendto(c.crypto.protect_rtcp(rr), ("127.0.0.1", c.to_a_port + 1))
    got, _ = recv(b_rtcp)
    if got != rr:
        h.fail("B did not get A's RTCP in the clear: %r" % got)
    forged = bytearray(c.crypto.protect_rtcp(rr))
    forged[10] ^= 0xff
    c.a.sendto(bytes(forged), ("127.0.0.1", c.to_a_port + 1))
    if recv(b_rtcp, 0.4)[0] is not None:
        h.fail("a tampered SRTCP packet was forwarded")
    if side_stats(ng, c.call_id, "A")["srtp-failed"] != 1:
        h.fail("tampered SRTCP not counted")
    b_rtcp.close()
    c.close()


def check_attacks(relay):
    ng = relay.client()
    c = SrtpCall(ng, "srtp-attack", "AES_CM_128_HMAC_SHA1_80")
    relay_a = ("127.0.0.1", c.to_a_port)
    # A forged packet from a stranger before A ever sent anything: dropped, and it must not
    # latch (B's audio keeps going to A's SDP address).
    stranger = udp()
    fake = bytearray(c.crypto.protect(plain_rtp(1)))
    fake[20] ^= 0x01
    stranger.sendto(bytes(fake), relay_a)
    stranger.sendto(plain_rtp(2), relay_a)  # plain RTP to an SRTP side: no valid tag
    if recv(c.b, 0.4)[0] is not None:
        h.fail("a forged/plain packet to the SRTP side reached B")
    c.b.sendto(plain_rtp(300, ssrc=0xB0B), ("127.0.0.1", c.to_b_port))
    got, _ = recv(c.a)
    if got is None:
        h.fail("B's audio did not reach A: a forged packet moved the latch")
    if recv(stranger, 0.3)[0] is not None:
        h.fail("the stranger latched with a forged packet")
    # Replay: a genuine packet twice.
    good = c.crypto.protect(plain_rtp(3))
    c.a.sendto(good, relay_a)
    if recv(c.b)[0] is None:
        h.fail("genuine packet lost")
    c.a.sendto(good, relay_a)
    if recv(c.b, 0.4)[0] is not None:
        h.fail("a replayed SRTP packet was forwarded")
    s = side_stats(ng, c.call_id, "A")
    if s["srtp-failed"] != 2 or s["srtp-replayed"] != 1 or s["forwarded"] != 1:
        h.fail("attack counters: %r" % s)
    # A flood of garbage at the SRTP port: all dropped, relay answers afterwards.
    for i in range(2000):
        stranger.sendto(os.urandom(12) + b"\x80" * (i % 200), relay_a)
        stranger.sendto(b"\x80\x00" + os.urandom(10 + i % 300), relay_a)
    pong(ng, "after garbage")
    stranger.close()
    h.log("forged, plain, replayed and garbage packets dropped: %r" % {k: s[k] for k in ("srtp-failed", "srtp-replayed")})
    c.close()


def check_srtp_both_sides(relay):
    ng = relay.client()
    c = SrtpCall(ng, "srtp-both", "AES_CM_128_HMAC_SHA1_32", b_proto="RTP/SAVP")
    if st.sdp_proto(c.offer_sdp) != "RTP/SAVP" or len(c.b_offered) < 2:
        h.fail("offer towards B must be RTP/SAVP with our own a=crypto lines:\n%s" % c.offer_sdp)
    if any(key == c.a_key for _, _, key in c.b_offered):
        h.fail("A's key leaked to B")
    tag, b_suite, relay_b_key = c.b_offered[0]
    if b_suite != "AES_CM_128_HMAC_SHA1_32":
        h.fail("the offerer's suite should be offered first, got %s" % b_suite)
    b_crypto = st.SrtpEndpoint(b_suite, c.b_key, relay_b_key)
    plain = plain_rtp(40)
    c.a.sendto(c.crypto.protect(plain), ("127.0.0.1", c.to_a_port))
    got, _ = recv(c.b)
    if got is None or got[12:] == plain[12:] or b_crypto.unprotect(got) != plain:
        h.fail("A→B over two SRTP legs: B could not decrypt with B's key from the relay")
    plain = plain_rtp(900, ssrc=0xB0B)
    c.b.sendto(b_crypto.protect(plain), ("127.0.0.1", c.to_b_port))
    got, _ = recv(c.a)
    if got is None or c.crypto.unprotect(got) != plain:
        h.fail("B→A over two SRTP legs failed")
    b_crypto.close()
    c.close()


def check_media_services(relay):
    """A prompt played to an SRTP side is encrypted; a recording of it decodes its audio."""
    ng = relay.client()
    c = SrtpCall(ng, "srtp-media", "AES_CM_128_HMAC_SHA1_80")
    relay_a = ("127.0.0.1", c.to_a_port)
    ok(ng.request({"command": "play media", "call-id": c.call_id, "from-tag": "A", "tone": "beep"}), "play beep")
    packets = recv_all(c.a, 0.6)
    if len(packets) < 15:
        h.fail("only %d packets of the beep reached the SRTP side" % len(packets))
    samples = []
    for p in packets:
        if len(p) != 182:
            h.fail("beep packet of %d bytes to the SRTP side (expected 172 + 10)" % len(p))
        plain = c.crypto.unprotect(p)
        if plain is None:
            h.fail("a generated packet does not authenticate with the relay's key")
        samples += h.ulaw_decode(h.rtp_fields(plain)[5])
    f = h.zero_crossing_frequency(samples[:2400])
    if abs(f - 1000) > 30:
        h.fail("beep decoded to %.0f Hz" % f)
    path = os.path.join(relay.workdir, "srtp-rec.wav")
    ok(ng.request({"command": "start recording", "call-id": c.call_id, "from-tag": "A",
                   "output-destination": path}), "start recording")
    tone = h.sine(440, 1.0)
    for i in range(50):
        frame = h.ulaw_encode(tone[i * 160:(i + 1) * 160])
        pkt = struct.pack("!BBHII", 0x80, 0, 500 + i, 8000 + 160 * i, 0xA11CE) + frame
        c.a.sendto(c.crypto.protect(pkt), relay_a)
        time.sleep(0.02)
    ok(ng.request({"command": "stop recording", "call-id": c.call_id}), "stop recording")
    with wave.open(path, "rb") as w:
        rec = struct.unpack("<%dh" % w.getnframes(), w.readframes(w.getnframes()))
    f = h.zero_crossing_frequency(rec[800:7200])
    if abs(f - 440) > 15:
        h.fail("recording of the SRTP side decodes to %.0f Hz, expected 440" % f)
    h.log("beep to the SRTP side: %d packets of 182 bytes, 1000 Hz; recording of it: %.0f Hz" % (len(packets), f))
    c.close()


def check_bad_crypto(relay):
    ng = relay.client()
    bad = [[], ["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"], ["a=crypto:1 NULL_CIPHER inline:x"],
           ["a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s|2^20|1:4" % st.crypto_line(1, "AES_CM_128_HMAC_SHA1_80", b"k" * 30).split("inline:")[1]]]
    for i, lines in enumerate(bad):
        r = ng.request({"command": "offer", "call-id": "bad-%d" % i, "from-tag": "A", "transport-protocol": "RTP/AVP",
                        "sdp": sdp(4000, "RTP/SAVP", lines)})
        if r.get("result") != "error" or "crypto" not in r.get("error-reason", "").lower():
            h.fail("offer with %r: %r" % (lines, r))
    pong(ng, "after bad offers")
    if ok(ng.request({"command": "list"}), "list")["calls"]:
        h.fail("a refused offer left a call behind")


# ----------------------------------------------------------------------------------------------
# (b), (c): baresip through relais + relais-media

CALL_SECONDS = 3

SCRIPT = r"""
-- test_srtp.py: every call goes to the operator trunk (a sipp UAS echoing RTP)
function on_invite(call)
  local r = call:dial("trunk:operator/" .. call.ruri.user, { timeout = 10 })
  relais.log("dial-result", r.answered, r.code)
end
"""


class SrtpPhone:
    """A baresip phone (test_call_baresip.Phone) with the srtp module and a mediaenc policy;
    tls=(port, cafile) registers it over TLS to relais's edge instead of UDP."""

    def __init__(self, name, user, relais, freq, mediaenc, tls=None):
        from test_call_baresip import Phone
        self.phone = Phone(name, user, relais, freq)
        cfg = os.path.join(self.phone.dir, "config")
        lines = open(cfg).read().splitlines()
        lines.insert(lines.index("module\t\t\tg711.so"), "module\t\t\tsrtp.so")
        rtp = [l for l in lines if l.startswith("rtp_ports")][0].split()[1]
        self.rtp_ports = range(int(rtp.split("-")[0]), int(rtp.split("-")[1]) + 1)
        acc = os.path.join(self.phone.dir, "accounts")
        line = open(acc).read().strip()
        if tls:
            udp_aor = "@127.0.0.1:%d;transport=udp>" % relais.port
            if udp_aor not in line:
                h.fail("unexpected baresip account line %r" % line)
            line = line.replace(udp_aor, "@127.0.0.1:%d;transport=tls>" % tls[0])
            lines.append("sip_cafile\t\t%s" % tls[1])
        if mediaenc:
            line += ";mediaenc=" + mediaenc
        h.write_baresip_files(self.phone.dir, lines, line)

    def __getattr__(self, name):
        return getattr(self.phone, name)


def tone_440(samples):
    """(dominant frequency, share of the signal's energy at 440 Hz) of 8 kHz samples. A 440 Hz
    tone puts ~100 % of its energy there, noise (ciphertext) ~0 %."""
    import math
    from media_tools import dominant_frequency
    samples = samples[:4000]
    if not samples:
        return 0, 0.0
    w = 2 * math.pi * 440 / 8000
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + 2 * math.cos(w) * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - 2 * math.cos(w) * s1 * s2
    energy = sum(x * x for x in samples) * len(samples) / 2 or 1.0
    return dominant_frequency(samples, lo=200, hi=1200, step=10), power / energy


def g711_tone(payloads):
    """tone_440 of µ-law payloads (RTP header stripped)."""
    samples = []
    for p in payloads:
        samples += h.ulaw_decode(p[12:172])
    return tone_440(samples)


def wav_samples(path):
    """The 16-bit samples of a baresip dump (read raw when its header was never finalised)."""
    with open(path, "rb") as f:
        data = f.read()
    pcm = data[44:] if data[:4] == b"RIFF" else data
    n = len(pcm) // 2
    return list(struct.unpack("<%dh" % n, pcm[:2 * n]))


def check_baresip_srtp_tls_call(relais, uas_port, tls):
    """baresip registered over TLS with mediaenc=srtp-mand calls the plain-RTP sipp trunk."""
    from media_tools import Capture
    from test_call_baresip import wav_stats
    tls_port, _cafile = tls
    callee_mp = h.free_media_port()
    alice = SrtpPhone("alice-srtp", "101", relais, 440, "srtp-mand", tls=tls)
    # Captured from before baresip starts: its RTP range, sipp's media port, and UDP SIP on both
    # baresip's own port and relais's (where the trunk leg to sipp runs), so a REGISTER or INVITE
    # over UDP would show.
    sip_ports = (alice.sip_port, relais.port)
    cap = Capture(list(alice.rtp_ports) + [callee_mp] + list(sip_ports), seconds=45)
    mark = relais.log_mark()
    with alice.phone:
        try:
            line = h.wait_until(lambda: alice.registered_line(), timeout=10, what="baresip (TLS, srtp-mand) registered")
        except AssertionError:
            h.fail("baresip did not register over TLS; its log:\n%s\nrelais:\n%s" % (
                alice.log_text()[-3000:], "\n".join(relais.log_since(mark)[-20:])))
        if "/TLS/" not in line:
            h.fail("baresip registered, but not over TLS: %s" % line.strip())
        reg = relais.wait_log("event=register.ok aor=101@", since=mark, timeout=5)
        m = re.search(r"src=tls:127\.0\.0\.1:(\d+)", reg)
        if not m:
            h.fail("relais did not get alice's REGISTER over TLS: %s" % reg)
        flow_port = int(m.group(1))
        h.log("baresip: %s; relais: REGISTER from tls:127.0.0.1:%d" % (line.strip(), flow_port))
        alice.connect()
        uas = h.start_sipp(None, os.path.join(h.SCENARIOS, "call_uas_answer.xml"),
                           ["-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(callee_mp), "-rtp_echo", "-m", "1"],
                           timeout=30, port=uas_port).wait_ready()
        call_mark = relais.log_mark()
        alice.command("dial", "sip:5550100@127.0.0.1:%d;transport=tls" % tls_port)
        if not alice.wait_event("CALL_ESTABLISHED", 10):
            h.fail("SRTP call not established (events %s)\nrelais:\n%s\nbaresip:\n%s" % (
                alice.event_types(), "\n".join(relais.log_since(call_mark)[-30:]), alice.log_text()[-3000:]))
        start = relais.wait_log("event=call.start", since=call_mark, timeout=2)
        if "src=tls:127.0.0.1:%d " % flow_port not in start + " ":
            h.fail("the INVITE did not arrive over alice's TLS connection (port %d): %s" % (flow_port, start))
        time.sleep(CALL_SECONDS)
        alice.command("hangup")
        alice.wait_event("CALL_CLOSED", 5)
        packets = cap.packets()
        uas.wait()
    # Signalling: nothing from or to baresip over UDP; on relais's UDP port only the trunk leg.
    sip = [(src, dst, p) for _, src, dst, p in packets if src in sip_ports or dst in sip_ports]
    stray = [(src, dst, p[:40]) for src, dst, p in sip
             if alice.sip_port in (src, dst) or not {src, dst} == {relais.port, uas_port}]
    if stray:
        h.fail("SIP over UDP besides the sipp trunk leg (baresip must use TLS only): %s" % stray[:5])
    trunk = [p.split(b" ", 1)[0].decode("ascii", "replace") for src, dst, p in sip if dst == uas_port]
    if "INVITE" not in trunk:
        h.fail("the capture did not see the trunk INVITE over UDP (saw %s)" % trunk)
    h.log("UDP SIP: %d packets, all relais<->sipp (%s); none from baresip" % (len(sip), " ".join(trunk)))
    flows = {}
    for src, dst, _p in ((src, dst, p) for _, src, dst, p in packets):
        flows[(src, dst)] = flows.get((src, dst), 0) + 1
    # RTP only (version 2, not RTCP's 192-223 second byte): the phone's RTCP shares the range.
    packets = [(src, dst, p) for _, src, dst, p in packets if src not in sip_ports and dst not in sip_ports
               and len(p) >= 12 and p[0] >> 6 == 2 and not 192 <= p[1] <= 223]
    phone_out = [p for src, dst, p in packets if src in alice.rtp_ports]
    phone_in = [p for src, dst, p in packets if dst in alice.rtp_ports]
    sipp_in = [p for src, dst, p in packets if dst == callee_mp]
    sipp_out = [p for src, dst, p in packets if src == callee_mp]
    h.log("phone→relay %d, relay→phone %d, relay→sipp %d, sipp→relay %d packets" % (
        len(phone_out), len(phone_in), len(sipp_in), len(sipp_out)))
    for what, pkts in (("phone→relay", phone_out), ("relay→phone", phone_in), ("relay→sipp", sipp_in),
                       ("sipp→relay", sipp_out)):
        if len(pkts) < 50:
            h.fail("%s: only %d packets in a %d s call; flows %s (phone RTP ports %d-%d)\nbaresip:\n%s" % (
                what, len(pkts), CALL_SECONDS, sorted(flows.items()), alice.rtp_ports[0], alice.rtp_ports[-1],
                alice.log_text()[-2500:]))
    # Phone leg: SRTP with AES_CM_128_HMAC_SHA1_80 (baresip offers it first): 12 + 160 bytes of
    # G.711 + a 10-byte tag; the payload is not the tone.
    for what, pkts in (("phone→relay", phone_out), ("relay→phone", phone_in)):
        sizes = sorted({len(p) for p in pkts})
        if sizes != [182]:
            h.fail("%s: packet sizes %s, expected 182 (172 + the 10-byte SRTP tag)" % (what, sizes))
        f, share = g711_tone(pkts[10:60])
        if share > 0.1:
            h.fail("%s: %.0f %% of the payload's energy is at 440 Hz: plaintext on the SRTP leg" % (what, 100 * share))
        h.log("%s: SRTP, UDP payload %s bytes; as G.711: %.1f %% at 440 Hz, strongest %d Hz (noise)" % (
            what, sizes, 100 * share, f))
    # Operator leg: plain RTP carrying the phone's 440 Hz.
    for what, pkts in (("relay→sipp", sipp_in), ("sipp→relay", sipp_out)):
        sizes = sorted({len(p) for p in pkts})
        f, share = g711_tone(pkts[10:60])
        if sizes != [172] or abs(f - 440) > 15 or share < 0.5:
            h.fail("%s: sizes %s, tone %d Hz (%.0f %% at 440); expected plain 172-byte RTP of 440 Hz" % (
                what, sizes, f, 100 * share))
        h.log("%s: plain RTP, UDP payload %s bytes, %d Hz, %.0f %% of the energy at 440 Hz" % (
            what, sizes, f, 100 * share))
    # Audio back to the phone: sipp echoes what it gets, so baresip hears its own 440 Hz after
    # SRTP→RTP→echo→RTP→SRTP.
    time.sleep(0.5)
    dumps = alice.dumps()
    if not dumps:
        h.fail("baresip wrote no received-audio dump")
    seconds, rms = wav_stats(dumps[-1])
    f, share = tone_440(wav_samples(dumps[-1])[4000:])
    h.log("baresip received %.2f s of audio, rms %.0f, %d Hz (%.0f %% of the energy at 440 Hz)" % (
        seconds, rms, f, 100 * share))
    if seconds < 1.0 or rms < 500 or abs(f - 440) > 15 or share < 0.5:
        h.fail("baresip received %.2f s, rms %.0f, %d Hz (%.0f %% at 440): the far end's tone did not come "
               "back over SRTP" % (seconds, rms, f, 100 * share))


def check_mandatory_plain_488(relais):
    mark = relais.log_mark()
    plain = SrtpPhone("alice-plain", "101", relais, 440, None)
    with plain.phone:
        h.wait_until(lambda: plain.registered_line(), timeout=10, what="baresip (plain) registered")
        plain.connect()
        plain.command("dial", "sip:5550100@127.0.0.1:%d" % relais.port)
        closed = plain.wait_event("CALL_CLOSED", 10)
        if not closed or "488" not in str(closed.get("param")):
            h.fail("plain RTP offer from an SRTP-mandatory user: expected 488, got %s" % plain.event_types())
        h.log("plain offer from 101: %s" % closed.get("param"))
    if not any("event=call.rejected" in l and "SRTP required" in l for l in relais.log_since(mark)):
        h.fail("relais did not log the SRTP refusal")
    if any("dial-result" in l for l in relais.log_since(mark)):
        h.fail("the refused call reached the script")


def relais_checks(checks):
    h.require_tool("baresip")
    h.require_tool("sipp")
    import tls_tools
    certs = tls_tools.make_certs(h.make_tempdir("srtp-certs"))
    tls_port = h.free_port(udp=False)
    uas_port = h.free_port()
    with h.RelaisMedia(workers=1) as relay:
        config = {
            "auth": {"algorithms": ["MD5"]},  # baresip 1.0.0 (CLIENT-NOTES.md)
            "calls": {"authenticate": True, "unknown_sources": "allow", "no_answer_timeout": 15},
            "media": {"mode": "relay", "ng": "127.0.0.1:%d" % relay.ng_port, "timeout_ms": 500,
                      "srtp": "optional"},
            "tls": {"listen": ["tls:127.0.0.1:%d" % tls_port], "certificate": certs["server"],
                    "private_key": certs["server.key"], "ca": certs["ca"]},
            "users": {"101": {"srtp": "mandatory"}},
            "trunks": {"operator": {"proxy": "sip:127.0.0.1:%d" % uas_port, "srtp": "never"}},
        }
        with h.Relais(name="srtp", config=config, script=SCRIPT) as relais:
            relais.wait_log("event=media.relay_up", timeout=10, what="relay health ping")
            checks.run("baresip over TLS (srtp-mand) → relais → plain sipp trunk: SIP over TLS only, SRTP on "
                       "the phone leg, RTP on the trunk leg, audio both ways", check_baresip_srtp_tls_call,
                       relais, uas_port, (tls_port, certs["ca"]))
            checks.run("a plain offer from an SRTP-mandatory user gets 488", check_mandatory_plain_488, relais)
            if not relais.alive():
                h.fail("relais died")


def test(checks):
    relais_checks(checks)
    with h.RelaisMedia(workers=2) as relay:
        checks.run("SRTP side ↔ plain side over ng, per suite (80, 32, GCM)", check_srtp_to_rtp, relay)
        checks.run("SRTCP decrypted towards the plain side; tampered SRTCP dropped", check_srtcp, relay)
        checks.run("forged, plain, replayed, garbage packets: dropped, counted, never latched", check_attacks, relay)
        checks.run("SRTP on both sides with separate keys", check_srtp_both_sides, relay)
        checks.run("media services on an SRTP side: encrypted beep, decrypted recording", check_media_services, relay)
        checks.run("unusable a=crypto offers are ng errors", check_bad_crypto, relay)
        if relay.stop() != 0:
            h.fail("relais-media exit code at SIGTERM")


if __name__ == "__main__":
    h.main(test)
