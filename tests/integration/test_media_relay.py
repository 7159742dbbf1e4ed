"""test_media_relay.py — relais-media on its own, driven over the ng protocol from python like
Kamailio's rtpengine module would: (a) control verbs and the retransmission cache, (b) RTP and
RTCP of an audio and a video stream relayed both ways, the relay's ports seen as the source,
(c) symmetric latching of a side that sends from another port than its SDP says,
(d) strict source drops a third party after latching (and without it the third party passes),
(e) idle timeout deletes the call and notifies the controller, (f) hostile input on the ng and
media ports leaves the process alive, answering, and its memory bounded."""

import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

RTP_LEN = 172


def sdp_body(port, video_port=None, ip="127.0.0.1", extra=""):
    s = ("v=0\r\no=- 1234 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
         "m=audio %d RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n" % (ip, ip, port)) + extra
    if video_port:
        s += "m=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendrecv\r\n" % video_port
    return s


def udp(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Room for a whole burst (check_flows reads its 50 packets per stream only at the end):
    # with a generic (skb-mode) XDP program on lo, as under test_media_xdp.py, the kernel
    # charges every datagram received on lo ~1.9x as much (4352 instead of 2304 bytes for a
    # video packet), and the default 208 KiB buffer drops the 49th. Twice rmem_max without root.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.5)
    return s


def endpoint_pair():
    """Two sockets on p and p+1 (RTP, RTCP) for an endpoint."""
    for _ in range(100):
        p = h.free_port(tcp=False) & ~1
        try:
            a = udp(p)
        except OSError:
            continue
        try:
            b = udp(p + 1)
        except OSError:
            a.close()
            continue
        return a, b
    h.fail("no free RTP/RTCP port pair")


def drain(sock, want, timeout=2.0):
    """[(data, source)] received on sock until `want` packets or the timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            got.append(sock.recvfrom(4096))
        except socket.timeout:
            break
    return got


def expect_ok(reply, what):
    if reply.get("result") != "ok":
        h.fail("%s: expected result ok, got %r" % (what, reply))
    return reply


def expect_error(reply, what):
    if reply.get("result") != "error" or not reply.get("error-reason"):
        h.fail("%s: expected an error reply with a reason, got %r" % (what, reply))
    return reply


def offer(ng, call_id, sdp, from_tag="tagA", **kw):
    msg = {"command": "offer", "call-id": call_id, "from-tag": from_tag, "sdp": sdp,
           "flags": ["trust-address"], "replace": ["origin", "session-connection"],
           "ICE": "remove", "transport-protocol": "RTP/AVP", "via-branch": "z9hG4bK1",
           "received-from": ["IP4", "127.0.0.1"], "direction": ["internal", "internal"]}
    msg.update(kw)
    return expect_ok(ng.request(msg), "offer %s" % call_id)


def answer(ng, call_id, sdp, from_tag="tagA", to_tag="tagB", **kw):
    msg = {"command": "answer", "call-id": call_id, "from-tag": from_tag, "to-tag": to_tag,
           "sdp": sdp, "flags": ["trust-address"], "replace": ["origin", "session-connection"],
           "ICE": "remove", "transport-protocol": "RTP/AVP", "via-branch": "z9hG4bK1"}
    msg.update(kw)
    return expect_ok(ng.request(msg), "answer %s" % call_id)


def relay_ports(relay, sdp, what):
    ports = [p for _, p in h.sdp_media_ports(sdp)]
    if h.sdp_connection(sdp) != "127.0.0.1":
        h.fail("%s: c= is not the relay address:\n%s" % (what, sdp))
    for p in ports:
        if not relay.port_min <= p <= relay.port_max or p % 2:
            h.fail("%s: port %d is not an even port of the relay range %d-%d" % (
                what, p, relay.port_min, relay.port_max))
        if "a=rtcp:%d" % (p + 1) not in sdp:
            h.fail("%s: no a=rtcp:%d for port %d:\n%s" % (what, p + 1, p, sdp))
    return ports


def stream_stats(q, tag, index=1):
    for s in q.get("streams", []):
        if s["tag"] == tag and s["index"] == index:
            return s
    h.fail("query has no stream %d for tag %s: %r" % (index, tag, q))


def setup_call(relay, ng, call_id, a_port, b_port, a_video=None, b_video=None, **kw):
    """offer(A) + answer(B); returns (ports A sends to, ports B sends to)."""
    o = offer(ng, call_id, sdp_body(a_port, a_video), **kw)
    to_b = relay_ports(relay, o["sdp"], "offer SDP")
    a = answer(ng, call_id, sdp_body(b_port, b_video))
    to_a = relay_ports(relay, a["sdp"], "answer SDP")
    return to_a, to_b


def check_control(relay):
    ng = relay.client()
    r = ng.request({"command": "ping"})
    if r != {"result": "pong"}:
        h.fail("ping: %r" % r)
    sdp = sdp_body(40000, extra="a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\n"
                               "a=candidate:1 1 UDP 2130706431 10.0.0.1 40000 typ host\r\n")
    msg = {"command": "offer", "call-id": "ctl-1", "from-tag": "tagA", "sdp": sdp, "ICE": "remove",
           "replace": ["origin"], "flags": ["trust-address"]}
    first = ng.request(msg, cookie="retrans-cookie-1")
    expect_ok(first, "offer")
    if "ice-" in first["sdp"] or "candidate" in first["sdp"]:
        h.fail("ICE attributes not removed:\n%s" % first["sdp"])
    if "o=- 1234 1 IN IP4 127.0.0.1" not in first["sdp"]:
        h.fail("origin not rewritten:\n%s" % first["sdp"])
    # A retransmission (same cookie) gets the cached reply, not a second execution.
    again = ng.request(msg, cookie="retrans-cookie-1")
    if again != first:
        h.fail("retransmitted offer got a different reply:\n%r\n%r" % (first, again))
    calls = expect_ok(ng.request({"command": "list"}), "list")["calls"]
    if calls != ["ctl-1"]:
        h.fail("list: %r" % calls)
    # A re-offer (new cookie, same tags) keeps the ports.
    re_offer = ng.request(msg)
    if h.sdp_media_ports(re_offer["sdp"]) != h.sdp_media_ports(first["sdp"]):
        h.fail("re-offer changed ports: %r -> %r" % (h.sdp_media_ports(first["sdp"]),
                                                     h.sdp_media_ports(re_offer["sdp"])))
    ans = answer(ng, "ctl-1", sdp_body(40010))
    relay_ports(relay, ans["sdp"], "answer SDP")
    q = expect_ok(ng.request({"command": "query", "call-id": "ctl-1"}), "query")
    if set(q["tags"]) != {"tagA", "tagB"} or "RTP" not in q["totals"]:
        h.fail("query shape: %r" % q)
    expect_ok(ng.request({"command": "delete", "call-id": "ctl-1", "from-tag": "tagA"}), "delete")
    expect_error(ng.request({"command": "query", "call-id": "ctl-1"}), "query after delete")
    expect_error(ng.request({"command": "answer", "call-id": "nope", "from-tag": "a", "to-tag": "b",
                             "sdp": sdp}), "answer for an unknown call")
    ng.close()


def check_flows(relay):
    ng = relay.client()
    a_rtp, a_rtcp = endpoint_pair()
    b_rtp, b_rtcp = endpoint_pair()
    a_vid, _a_vid_rtcp = endpoint_pair()
    b_vid, _b_vid_rtcp = endpoint_pair()
    pa, pb = a_rtp.getsockname()[1], b_rtp.getsockname()[1]
    to_a, to_b = setup_call(relay, ng, "flow-1", pa, pb, a_vid.getsockname()[1], b_vid.getsockname()[1])
    n = 50
    for i in range(n):
        a_rtp.sendto(h.rtp_packet(1000 + i, 160 * i, 0xA), ("127.0.0.1", to_a[0]))
        b_rtp.sendto(h.rtp_packet(2000 + i, 160 * i, 0xB), ("127.0.0.1", to_b[0]))
        a_vid.sendto(h.rtp_packet(3000 + i, 3000 * i, 0xAA, pt=96, payload_len=900), ("127.0.0.1", to_a[1]))
        b_vid.sendto(h.rtp_packet(4000 + i, 3000 * i, 0xBB, pt=96, payload_len=900), ("127.0.0.1", to_b[1]))
        time.sleep(0.002)
    at_b, at_a = drain(b_rtp, n), drain(a_rtp, n)
    vid_b, vid_a = drain(b_vid, n), drain(a_vid, n)
    for name, got, relay_port, ssrc in (("A->B audio", at_b, to_b[0], 0xA), ("B->A audio", at_a, to_a[0], 0xB),
                                        ("A->B video", vid_b, to_b[1], 0xAA), ("B->A video", vid_a, to_a[1], 0xBB)):
        if len(got) < n:
            h.fail("%s: %d of %d packets arrived" % (name, len(got), n))
        srcs = {src for _, src in got}
        if srcs != {("127.0.0.1", relay_port)}:
            h.fail("%s: source seen %r, expected the relay port %d" % (name, srcs, relay_port))
        if any(int.from_bytes(d[8:12], "big") != ssrc for d, _ in got):
            h.fail("%s: payload not relayed unchanged" % name)
    if any(len(d) != RTP_LEN for d, _ in at_b + at_a):
        h.fail("audio packet length changed")
    # RTCP: A's RTCP port to the relay's RTCP port reaches B's RTCP port from the relay's.
    rtcp = bytes([0x80, 200, 0, 6]) + b"\x00" * 24
    a_rtcp.sendto(rtcp, ("127.0.0.1", to_a[0] + 1))
    got = drain(b_rtcp, 1)
    if not got or got[0][1] != ("127.0.0.1", to_b[0] + 1):
        h.fail("RTCP A->B not relayed from the relay's RTCP port: %r" % got)
    q = expect_ok(ng.request({"command": "query", "call-id": "flow-1"}), "query")
    for tag in ("tagA", "tagB"):
        s = stream_stats(q, tag)
        if s["packets"] != n or s["bytes"] != n * RTP_LEN or s["lost"] != 0:
            h.fail("stats of %s: %r" % (tag, s))
    if stream_stats(q, "tagA", 2)["packets"] != n or stream_stats(q, "tagA")["rtcp-packets"] != 1:
        h.fail("video/RTCP stats: %r" % q["streams"])
    # Loss from sequence numbers: skip 5 numbers.
    for i in range(10):
        a_rtp.sendto(h.rtp_packet(1000 + n + (i if i < 5 else i + 5), 160 * (n + i), 0xA), ("127.0.0.1", to_a[0]))
    drain(b_rtp, 10)
    time.sleep(0.1)
    q = expect_ok(ng.request({"command": "query", "call-id": "flow-1"}), "query")
    if stream_stats(q, "tagA")["lost"] != 5:
        h.fail("expected 5 lost after a gap of 5: %r" % stream_stats(q, "tagA"))
    d = expect_ok(ng.request({"command": "delete", "call-id": "flow-1"}), "delete")
    if d["totals"]["RTP"]["packets"] < 4 * n:
        h.fail("delete totals: %r" % d["totals"])
    h.log("flows ok: query after delete-stats %r" % d["totals"])
    for s in (a_rtp, a_rtcp, b_rtp, b_rtcp, a_vid, b_vid, _a_vid_rtcp, _b_vid_rtcp):
        s.close()
    ng.close()


def check_latching(relay):
    ng = relay.client()
    a_sdp_sock, a_real = udp(), udp()  # A announces one port, sends from another (a NAT)
    b = udp()
    to_a, to_b = setup_call(relay, ng, "latch-1", a_sdp_sock.getsockname()[1], b.getsockname()[1])
    for i in range(5):
        a_real.sendto(h.rtp_packet(i, 160 * i, 1), ("127.0.0.1", to_a[0]))
    if len(drain(b, 5)) != 5:
        h.fail("A's packets did not reach B")
    for i in range(5):
        b.sendto(h.rtp_packet(i, 160 * i, 2), ("127.0.0.1", to_b[0]))
    got = drain(a_real, 5)
    if len(got) != 5 or {s for _, s in got} != {("127.0.0.1", to_a[0])}:
        h.fail("B's packets did not follow A's real source: %r" % got)
    if drain(a_sdp_sock, 1, timeout=0.3):
        h.fail("packets still went to the SDP port after latching")
    q = ng.request({"command": "query", "call-id": "latch-1"})
    peer = stream_stats(q, "tagA")["peer"]
    if peer["port"] != a_real.getsockname()[1]:
        h.fail("query does not show the latched endpoint: %r" % peer)
    expect_ok(ng.request({"command": "delete", "call-id": "latch-1"}), "delete")
    for s in (a_sdp_sock, a_real, b):
        s.close()
    ng.close()


def check_strict_source(relay):
    ng = relay.client()
    for call_id, flags, third_passes in (("strict-1", ["strict-source"], False), ("loose-1", [], True)):
        a, b, c = udp(), udp(), udp()
        o = offer(ng, call_id, sdp_body(a.getsockname()[1]), flags=flags)
        to_b = relay_ports(relay, o["sdp"], "offer")
        to_a = relay_ports(relay, answer(ng, call_id, sdp_body(b.getsockname()[1]))["sdp"], "answer")
        a.sendto(h.rtp_packet(1, 160, 1), ("127.0.0.1", to_a[0]))  # A latches
        if len(drain(b, 1)) != 1:
            h.fail("%s: A's first packet did not reach B" % call_id)
        for i in range(5):
            c.sendto(h.rtp_packet(100 + i, 160 * i, 0xC), ("127.0.0.1", to_a[0]))
        got = drain(b, 5, timeout=0.6)
        if third_passes and len(got) != 5:
            h.fail("%s: without strict source the third party's packets should pass: %d" % (call_id, len(got)))
        if not third_passes and got:
            h.fail("%s: strict source let %d third-party packets through" % (call_id, len(got)))
        a.sendto(h.rtp_packet(2, 320, 1), ("127.0.0.1", to_a[0]))
        if len(drain(b, 1)) != 1:
            h.fail("%s: A's packet after the third party did not reach B" % call_id)
        q = ng.request({"command": "query", "call-id": call_id})
        dropped = stream_stats(q, "tagA")["dropped"]
        if (dropped >= 5) == third_passes:
            h.fail("%s: dropped=%d" % (call_id, dropped))
        expect_ok(ng.request({"command": "delete", "call-id": call_id}), "delete")
        for s in (a, b, c):
            s.close()
        _ = to_b
    ng.close()


def check_timeout():
    with h.RelaisMedia(workers=2, timeout=2, name="relais-media-timeout") as relay:
        ng = relay.client()
        a, b = udp(), udp()
        t0 = time.monotonic()
        offer(ng, "idle-1", sdp_body(a.getsockname()[1]))
        to_a, _ = setup_call(relay, ng, "busy-1", a.getsockname()[1], b.getsockname()[1], from_tag="tagA")
        note = None
        seq = 0
        while time.monotonic() - t0 < 4.0:  # busy-1 keeps sending, idle-1 sends nothing
            a.sendto(h.rtp_packet(seq, 160 * seq, 7), ("127.0.0.1", to_a[0]))
            seq += 1
            raw = ng.recv_raw(timeout=0.1)
            if raw and note is None:
                note = raw
        if note is None:
            h.fail("no timeout notification reached the controller within 4 s")
        cookie, _, body = note.partition(b" ")
        msg = h.bdecode(body)
        if msg.get("command") != "timeout" or msg.get("call-id") != "idle-1" or msg.get("from-tag") != "tagA":
            h.fail("notification: %r" % note)
        h.log("timeout notification: %r" % note)
        expect_error(ng.request({"command": "query", "call-id": "idle-1"}), "query of the expired call")
        expect_ok(ng.request({"command": "query", "call-id": "busy-1"}), "query of the call with packets")
        relay.wait_log("event=call.timeout call-id=idle-1")
        # Once its packets stop, busy-1 expires too.
        raw = ng.recv_raw(timeout=4.0)
        if not raw or h.bdecode(raw.partition(b" ")[2]).get("call-id") != "busy-1":
            h.fail("busy-1 did not time out after its packets stopped: %r" % raw)
        if relay.stop() != 0:
            h.fail("exit code at SIGTERM")
        a.close()
        b.close()
        ng.close()


def check_garbage(relay):
    ng = relay.client()
    rnd = random.Random(1234)
    # Set up a call so its media ports can be flooded too.
    a, b = udp(), udp()
    to_a, to_b = setup_call(relay, ng, "junk-1", a.getsockname()[1], b.getsockname()[1])
    cases = {
        b"no-space-at-all": None,
        b"c1 d7:command4:pinge": "pong",
        b"c2 d7:command": "error",
        b"c3 " + b"l" * 5000 + b"e" * 5000: "error",
        b"c4 d7:command999999999:x": "error",
        b"c5 i123e": "error",
        b"c6 d7:command9:blablablae": "error",
        b"c7 d7:command5:queryee": "error",
        b"c8 d7:call-id3:abc7:command5:querye": "error",
        b"c9 d7:command5:offer7:call-id1:x8:from-tag1:y3:sdp5:garbae": "error",
        b"c10 d7:command5:offer7:call-id1:x8:from-tag1:y3:sdpi5ee": "error",
        b"c11 d7:command6:answer7:call-id1:x8:from-tag1:y6:to-tag1:z3:sdp3:v=0e": "error",
        b"c12 d5:flagsi3e7:command5:offer7:call-id1:x8:from-tag1:y3:sdp3:v=0e": "error",
        b"c13 " + b"d1:a" * 40 + b"i1e" + b"e" * 40: "error",
    }
    for data, want in cases.items():
        ng.send_raw(data)
        raw = ng.recv_raw(timeout=0.5)
        if want is None:
            if raw is not None:
                h.fail("expected silence for %r, got %r" % (data[:40], raw))
            continue
        if raw is None:
            h.fail("no reply to %r" % data[:40])
        cookie, _, body = raw.partition(b" ")
        if cookie != data.split(b" ")[0]:
            h.fail("reply cookie %r for %r" % (cookie, data[:40]))
        reply = h.bdecode(body)
        got = reply.get("result")
        if got != want:
            h.fail("%r: expected %s, got %r" % (data[:40], want, reply))
    # Mutated offers: the SDP parser and the port pool see junk and exhaustion.
    base = sdp_body(40000, 40002).encode()
    for i in range(300):
        sdp = bytearray(base)
        for _ in range(rnd.randrange(1, 8)):
            pos = rnd.randrange(len(sdp))
            sdp[pos:pos + rnd.randrange(1, 4)] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 4)))
        r = ng.request({"command": "offer", "call-id": "fz-%d" % i, "from-tag": "f", "sdp": bytes(sdp)})
        if r.get("result") not in ("ok", "error"):
            h.fail("mutated offer %d: %r" % (i, r))
    for call_id in ng.request({"command": "list"})["calls"]:
        if call_id.startswith("fz-"):
            expect_ok(ng.request({"command": "delete", "call-id": call_id}), "delete " + call_id)
    rss_samples = []
    for round_ in range(2):
        for i in range(2000 if round_ else 300):
            kind = i % 4
            blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 300)))
            if kind == 0:
                data = blob
            elif kind == 1:
                data = b"g%d-%d " % (round_, i) + blob
            elif kind == 2:
                data = b"t%d-%d d7:command5:offer7:call-id%d:%s" % (round_, i, len(str(i)), str(i).encode())
            else:
                data = b"u%d-%d d7:command5:query7:call-id4:%04de" % (round_, i, i % 10000)
            ng.send_raw(data)
            # Media ports get junk too (and RTP-looking junk from strangers).
            a.sendto(blob, ("127.0.0.1", to_a[0] + (i % 2)))
            if i % 50 == 0:
                ng.request({"command": "ping"})  # paces the flood; also proves liveness
        while ng.recv_raw(timeout=0.2) is not None:
            pass
        rss_samples.append(relay.rss_kb())
    h.log("RSS after warm-up %d kB, after 2000 more garbage datagrams %d kB" % tuple(rss_samples))
    asan = "asan" in os.path.realpath(h.relais_media_bin()) or os.environ.get("RELAIS_SANITIZE")
    limit = 32768 if asan else 4096  # ASan keeps freed memory in quarantine
    if rss_samples[1] - rss_samples[0] > limit:
        h.fail("RSS grew by %d kB over 2000 garbage datagrams" % (rss_samples[1] - rss_samples[0]))
    if not relay.alive():
        h.fail("relais-media died")
    if ng.request({"command": "ping"}) != {"result": "pong"}:
        h.fail("ping after garbage")
    # The call still relays after the junk.
    b.sendto(h.rtp_packet(1, 160, 9), ("127.0.0.1", to_b[0]))
    if not drain(a, 1):
        h.fail("the call stopped relaying after junk on its ports")
    expect_ok(ng.request({"command": "delete", "call-id": "junk-1"}), "delete")
    for s in (a, b):
        s.close()
    ng.close()


def check_workers():
    """Calls spread over two workers; each worker relays its own streams both ways."""
    with h.RelaisMedia(workers=2, name="relais-media-workers") as relay:
        ng = relay.client()
        mark = relay.log_mark()
        calls = []
        for i in range(6):
            a, b = udp(), udp()
            to_a, to_b = setup_call(relay, ng, "mw-%d" % i, a.getsockname()[1], b.getsockname()[1])
            calls.append((a, b, to_a[0], to_b[0]))
        for seq in range(20):
            for a, b, pa, pb in calls:
                a.sendto(h.rtp_packet(seq, 160 * seq, 1), ("127.0.0.1", pa))
                b.sendto(h.rtp_packet(seq, 160 * seq, 2), ("127.0.0.1", pb))
        for i, (a, b, pa, pb) in enumerate(calls):
            got_b, got_a = drain(b, 20), drain(a, 20)
            if len(got_b) != 20 or len(got_a) != 20:
                h.fail("call mw-%d: %d/%d packets relayed" % (i, len(got_b), len(got_a)))
            if {s for _, s in got_b} != {("127.0.0.1", pb)} or {s for _, s in got_a} != {("127.0.0.1", pa)}:
                h.fail("call mw-%d: wrong relay source ports" % i)
        workers = {re.search(r"worker=(\d+)", l).group(1) for l in relay.grep("event=stream.create", mark)}
        if workers != {"0", "1"}:
            h.fail("streams were not spread over both workers: %r" % workers)
        for a, b, _, _ in calls:
            a.close()
            b.close()
        ng.close()
        if relay.stop() != 0:
            h.fail("exit code at SIGTERM")


def test(checks):
    with h.RelaisMedia(workers=1) as relay:
        checks.run("control verbs, retransmission cache, re-offer keeps ports", check_control, relay)
        checks.run("audio+video RTP and RTCP relayed both ways via the relay's ports", check_flows, relay)
        checks.run("symmetric latching follows the real source", check_latching, relay)
        checks.run("strict source drops a third party after latching", check_strict_source, relay)
        checks.run("garbage on ng and media ports: replies or silence, alive, bounded RSS", check_garbage, relay)
        checks.run("SIGTERM exits cleanly", lambda: relay.stop() == 0 or h.fail("exit code %s" % relay.proc.returncode))
    checks.run("two workers: streams spread over both, all relayed", check_workers)
    checks.run("idle timeout deletes the call and notifies the controller", check_timeout)


if __name__ == "__main__":
    h.main(test)
