"""test_media_services.py — relais-media's media services over ng, the way relais uses them when
it answers a call itself (answer SDP c=0.0.0.0 port 9): (a) `play media` of a WAV made by sox
reaches the offerer as paced PCMU at ~50 packets/s with the right tone, a 16 kHz stereo prompt
and a named tone too, then `playback-done`; playing to a side suppresses the other side's audio
until `stop media`; (b) RFC 4733 keys 1,2,3 from the offerer give exactly three `dtmf`
notifications; `play DTMF` sends RFC 4733 events; in-band keys of a phone without
telephone-event are detected once relais plays to it; (c) `start recording` of the offerer's 2 s
of PCMU gives a 2 s 8 kHz WAV (and a `silence` notification after speech); (d) a missing file
is an error and the relay keeps answering; (e) a DTMF flood gives a bounded number of
notifications; (f) `delete` during a recording finalises the file."""

import os
import socket
import subprocess
import sys
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

OFFER_PTS = "0 8 101"


def sdp(port, ip="127.0.0.1", pts=OFFER_PTS):
    s = ("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n"
         "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" % (ip, ip, port, pts))
    if "101" in pts.split():
        s += "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    return s + "a=sendrecv\r\n"


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.5)
    return s


def ok(reply, what):
    if reply.get("result") != "ok":
        h.fail("%s: expected ok, got %r" % (what, reply))
    return reply


def ivr_call(ng, call_id, a_sock):
    """offer from A (a real socket), answer by "relais itself" (c=0.0.0.0, port 9).
    Returns the relay port A sends to (and receives our media from)."""
    ok(ng.request({"command": "offer", "call-id": call_id, "from-tag": "A-" + call_id,
                   "sdp": sdp(a_sock.getsockname()[1])}), "offer")
    ans = ok(ng.request({"command": "answer", "call-id": call_id, "from-tag": "A-" + call_id,
                         "to-tag": "B-" + call_id, "sdp": sdp(9, ip="0.0.0.0", pts="0 101")}), "answer")
    return h.sdp_media_ports(ans["sdp"])[0][1]


def collect(sock, until, timeout):
    """[(arrival, data)] until until() is true (checked between packets) or the timeout."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(0.05)
        try:
            data, _ = sock.recvfrom(4096)
            got.append((time.monotonic(), data))
        except socket.timeout:
            if until():
                break
    return got


def send_paced(sock, dest, packets, interval=0.02):
    """Sends packets on an absolute 20 ms schedule."""
    t0 = time.monotonic()
    for i, p in enumerate(packets):
        delay = t0 + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendto(p, dest)


def pcmu_packets(samples, ssrc, seq0=100, ts0=5000):
    out = []
    for k in range(0, len(samples), 160):
        payload = h.ulaw_encode(samples[k:k + 160])
        out.append(h.rtp_packet(seq0 + k // 160, ts0 + k, ssrc, pt=0, payload_len=0) + payload)
    return out


def sox(*args):
    h.require_tool("sox")
    subprocess.run(["sox"] + list(args), check=True, capture_output=True, timeout=30)


def check_prompt_stream(got, what, seconds, freq, pt=0):
    """The packets of one playback: count ~50/s, payload type, marker, seq/ts steps, pacing, tone."""
    n = len(got)
    want = 50 * seconds
    if abs(n - want) > max(2, 0.1 * want):
        h.fail("%s: %d packets for %.1f s of audio (want %d ±10%%)" % (what, n, seconds, want))
    fields = [h.rtp_fields(d) for _, d in got]
    if any(f[1] != pt for f in fields):
        h.fail("%s: payload types %r, expected %d" % (what, sorted({f[1] for f in fields}), pt))
    if not fields[0][0] or any(f[0] for f in fields[1:]):
        h.fail("%s: marker must be on the first packet only" % what)
    if len({f[4] for f in fields}) != 1:
        h.fail("%s: more than one SSRC" % what)
    for a, b in zip(fields, fields[1:]):
        if (b[2] - a[2]) & 0xffff != 1 or (b[3] - a[3]) & 0xffffffff != 160:
            h.fail("%s: seq/timestamp steps %d/%d" % (what, b[2] - a[2], b[3] - a[3]))
    span = got[-1][0] - got[0][0]
    if abs(span - (n - 1) * 0.02) > 0.15:
        h.fail("%s: %d packets spread over %.3f s, expected paced at 20 ms" % (what, n, span))
    audio = []
    for f in fields:
        audio += h.ulaw_decode(f[5])
    # Skip the edges (filter ramp-up of a resampled file, last padded frame).
    f_measured = h.zero_crossing_frequency(audio[400:-400])
    if abs(f_measured - freq) > freq * 0.03:
        h.fail("%s: dominant frequency %.1f Hz, expected %d" % (what, f_measured, freq))
    h.log("%s: %d packets over %.3f s, %.1f Hz" % (what, n, span, f_measured))


def check_play(relay, tmp):
    ng = relay.event_client
    a = udp()
    to_a = ivr_call(ng, "play-1", a)
    a.sendto(h.rtp_packet(1, 160, 0xA, pt=0), ("127.0.0.1", to_a))  # latch, as a phone would
    wav8 = os.path.join(tmp, "tone440-8k.wav")
    sox("-n", "-r", "8000", "-c", "1", "-b", "16", wav8, "synth", "1.0", "sine", "440", "vol", "0.5")
    r = ok(ng.request({"command": "play media", "call-id": "play-1", "from-tag": "A-play-1", "file": wav8}),
           "play media")
    if abs(r.get("duration", 0) - 1000) > 5:
        h.fail("play media duration %r, expected 1000 ms" % r)
    got = collect(a, lambda: any(n["command"] == "playback-done" for n in ng.notes) or ng.poll_notes(0) or False,
                  timeout=4)
    done = ng.wait_note(lambda n: n["command"] == "playback-done", timeout=2, what="playback-done")
    if done.get("call-id") != "play-1" or done.get("from-tag") != "A-play-1":
        h.fail("playback-done: %r" % done)
    check_prompt_stream(got, "8 kHz prompt", 1.0, 440)

    # A 16 kHz stereo prompt (decimated with a low-pass) and then a named tone, back to back
    # requests: the second replaces nothing since the first one has ended.
    wav16 = os.path.join(tmp, "tone1k-16k.wav")
    sox("-n", "-r", "16000", "-c", "2", "-b", "16", wav16, "synth", "0.6", "sine", "1000", "vol", "0.5")
    r = ok(ng.request({"command": "play media", "call-id": "play-1", "from-tag": "A-play-1",
                       "file": [wav16, wav16]}), "play media list")
    if abs(r["duration"] - 1200) > 5:
        h.fail("two 0.6 s files: duration %r" % r)
    got = collect(a, lambda: any(n["command"] == "playback-done" for n in ng.notes) or ng.poll_notes(0) or False,
                  timeout=4)
    ng.wait_note(lambda n: n["command"] == "playback-done", timeout=2, what="playback-done (list)")
    check_prompt_stream(got, "16 kHz stereo prompt x2", 1.2, 1000)

    r = ok(ng.request({"command": "play media", "call-id": "play-1", "from-tag": "A-play-1", "tone": "beep"}),
           "play tone")
    if r["duration"] != 400:
        h.fail("beep duration %r" % r)
    got = collect(a, lambda: any(n["command"] == "playback-done" for n in ng.notes) or ng.poll_notes(0) or False,
                  timeout=3)
    ng.wait_note(lambda n: n["command"] == "playback-done", timeout=2, what="playback-done (beep)")
    check_prompt_stream(got, "beep", 0.4, 1000)

    # Looped ringback until stop media: no playback-done, and the packets stop.
    r = ok(ng.request({"command": "play media", "call-id": "play-1", "from-tag": "A-play-1", "tone": "ringback",
                       "repeat-times": 0}), "loop")
    if r["duration"] != -1:
        h.fail("loop duration %r" % r)
    got = collect(a, lambda: False, timeout=0.5)
    if len(got) < 15:
        h.fail("looped ringback: only %d packets in 0.5 s" % len(got))
    q = ok(ng.request({"command": "query", "call-id": "play-1"}), "query")
    if q.get("media", {}).get("playing") != ["A-play-1"]:
        h.fail("query while playing: %r" % q.get("media"))
    ok(ng.request({"command": "stop media", "call-id": "play-1", "from-tag": "A-play-1"}), "stop media")
    collect(a, lambda: False, timeout=0.1)
    if collect(a, lambda: True, timeout=0.3):
        h.fail("packets kept coming after stop media")
    ng.poll_notes(0.2)
    if any(n["command"] == "playback-done" for n in ng.notes):
        h.fail("a stopped playback reported playback-done: %r" % ng.notes)

    errors = {
        "unknown call": ({"call-id": "nope", "from-tag": "x", "file": wav8}, "Unknown call-id"),
        "unknown tag": ({"call-id": "play-1", "from-tag": "nobody", "file": wav8}, "Unknown from-tag"),
        "unknown tone": ({"call-id": "play-1", "from-tag": "A-play-1", "tone": "siren"}, "Unknown tone"),
    }
    for what, (args, reason) in errors.items():
        args = dict(args, command="play media")
        r = ng.request(args)
        if r.get("result") != "error" or reason not in r.get("error-reason", ""):
            h.fail("%s: %r" % (what, r))
    ok(ng.request({"command": "delete", "call-id": "play-1"}), "delete")
    a.close()


def check_no_g711(relay):
    ng = relay.event_client
    a = udp()
    ng.request({"command": "offer", "call-id": "opus-1", "from-tag": "A", "sdp": sdp(a.getsockname()[1], pts="96")
                .replace("a=sendrecv", "a=rtpmap:96 opus/48000/2\r\na=sendrecv")})
    r = ng.request({"command": "play media", "call-id": "opus-1", "from-tag": "A", "tone": "beep"})
    if r.get("result") != "error" or r.get("error-reason") != "No G.711 codec":
        h.fail("play to a side without G.711: %r" % r)
    ok(ng.request({"command": "delete", "call-id": "opus-1"}), "delete")
    a.close()


def check_suppression(relay):
    """Playing to A: what B says is not forwarded to A until stop media."""
    ng = relay.event_client
    a, b = udp(), udp()
    ok(ng.request({"command": "offer", "call-id": "sup-1", "from-tag": "A", "sdp": sdp(a.getsockname()[1])}), "offer")
    to_b_sdp = None
    ans = ok(ng.request({"command": "answer", "call-id": "sup-1", "from-tag": "A", "to-tag": "B",
                         "sdp": sdp(b.getsockname()[1])}), "answer")
    to_a = h.sdp_media_ports(ans["sdp"])[0][1]
    q = ok(ng.request({"command": "query", "call-id": "sup-1"}), "query")
    to_b_sdp = [s["local-port"] for s in q["streams"] if s["tag"] == "B"][0]
    ok(ng.request({"command": "play media", "call-id": "sup-1", "from-tag": "A", "tone": "dial",
                   "duration": 600}), "play dial")
    time.sleep(0.05)
    for i in range(10):
        b.sendto(h.rtp_packet(i, 160 * i, 0xB0B, pt=8), ("127.0.0.1", to_b_sdp))
        time.sleep(0.02)
    got = collect(a, lambda: False, timeout=0.2)
    ssrcs = {h.rtp_fields(d)[4] for _, d in got}
    if 0xB0B in ssrcs or not got:
        h.fail("while playing to A: B's packets forwarded or nothing played (%d packets, ssrcs %r)" % (
            len(got), ssrcs))
    if any(h.rtp_fields(d)[1] != 0 for _, d in got):
        h.fail("dial tone not PCMU")
    ok(ng.request({"command": "stop media", "call-id": "sup-1", "from-tag": "A"}), "stop")
    collect(a, lambda: False, timeout=0.1)
    b.sendto(h.rtp_packet(50, 8000, 0xB0B, pt=8), ("127.0.0.1", to_b_sdp))
    got = collect(a, lambda: True, timeout=1)
    if not got or h.rtp_fields(got[0][1])[4] != 0xB0B:
        h.fail("forwarding did not resume after stop media: %r" % got[:2])
    q = ok(ng.request({"command": "query", "call-id": "sup-1"}), "query")
    sup = [s["suppressed"] for s in q["streams"] if s["tag"] == "B"][0]
    if sup != 10:
        h.fail("suppressed counter %r, expected 10" % sup)
    ok(ng.request({"command": "delete", "call-id": "sup-1"}), "delete")
    a.close()
    b.close()


def send_key(sock, dest, seq, ts, event, ssrc=0xD7):
    """One key as a phone sends it: 5 updates every 20 ms, then the end report three times."""
    for k in range(5):
        sock.sendto(h.rfc4733_packet(seq, ts, ssrc, event, False, 160 * (k + 1), marker=(k == 0)), dest)
        seq += 1
        time.sleep(0.02)
    for _ in range(3):
        sock.sendto(h.rfc4733_packet(seq, ts, ssrc, event, True, 960), dest)
        seq += 1
    return seq


def check_dtmf(relay):
    ng = relay.event_client
    a = udp()
    to_a = ivr_call(ng, "dtmf-1", a)
    dest = ("127.0.0.1", to_a)
    seq, ts = 10, 1000
    for event in (1, 2, 3):
        seq = send_key(a, dest, seq, ts, event)
        ts += 2000
        time.sleep(0.05)
    ng.poll_notes(1.0)
    keys = [n for n in ng.notes if n["command"] == "dtmf"]
    ng.notes = [n for n in ng.notes if n["command"] != "dtmf"]
    digits = [k["digit"] for k in keys]
    if digits != ["1", "2", "3"]:
        h.fail("dtmf notifications %r, expected exactly 1,2,3" % keys)
    for k in keys:
        if k["call-id"] != "dtmf-1" or k["from-tag"] != "A-dtmf-1" or k["source"] != "rfc4733" or \
                k["duration"] != 120 or k["volume"] != 10:
            h.fail("dtmf notification fields: %r" % k)

    # play DTMF to A: RFC 4733 (A offered telephone-event 101).
    ok(ng.request({"command": "play DTMF", "call-id": "dtmf-1", "from-tag": "A-dtmf-1", "code": "7",
                   "duration": 100}), "play DTMF")
    got = collect(a, lambda: False, timeout=0.5)
    events = [h.rtp_fields(d) for _, d in got]
    if not events or any(f[1] != 101 for f in events):
        h.fail("play DTMF: %d packets, types %r" % (len(events), {f[1] for f in events}))
    ends = [f for f in events if f[5][1] & 0x80]
    if len(events) != 7 or len(ends) != 3 or not events[0][0] or any(f[5][0] != 7 for f in events) or \
            len({f[3] for f in events}) != 1 or int.from_bytes(ends[0][5][2:4], "big") != 800:
        h.fail("play DTMF packets: %r" % [(f[0], f[2], f[3], f[5].hex()) for f in events])
    r = ng.request({"command": "play DTMF", "call-id": "dtmf-1", "from-tag": "A-dtmf-1", "code": "X"})
    if r.get("result") != "error":
        h.fail("play DTMF with a bad code: %r" % r)
    ok(ng.request({"command": "delete", "call-id": "dtmf-1"}), "delete")
    a.close()


DTMF_FREQS = {"4": (770, 1209), "7": (852, 1209), "#": (941, 1477)}


def check_inband(relay):
    """A phone without telephone-event: once relais uses media services on the call, keys in
    its G.711 audio are detected (source inband)."""
    ng = relay.event_client
    a = udp()
    ok(ng.request({"command": "offer", "call-id": "inb-1", "from-tag": "A", "sdp": sdp(a.getsockname()[1], pts="0 8")}),
       "offer")
    ans = ok(ng.request({"command": "answer", "call-id": "inb-1", "from-tag": "A", "to-tag": "B",
                         "sdp": sdp(9, ip="0.0.0.0", pts="0")}), "answer")
    to_a = h.sdp_media_ports(ans["sdp"])[0][1]
    ok(ng.request({"command": "play media", "call-id": "inb-1", "from-tag": "A", "tone": "beep"}), "beep")
    audio = []
    for key in ("4", "7", "#"):
        lo, hi = DTMF_FREQS[key]
        tone = [x + y for x, y in zip(h.sine(lo, 0.12, amplitude=5000, phase_samples=len(audio)),
                                      h.sine(hi, 0.12, amplitude=5000, phase_samples=len(audio)))]
        audio += tone + [0] * 960
    send_paced(a, ("127.0.0.1", to_a), pcmu_packets(audio, 0x1B))
    ng.poll_notes(0.5)
    keys = [n for n in ng.notes if n["command"] == "dtmf"]
    ng.notes = [n for n in ng.notes if n["command"] != "dtmf"]
    if [k["digit"] for k in keys] != ["4", "7", "#"] or any(k["source"] != "inband" for k in keys):
        h.fail("in-band keys: %r" % keys)
    if any(abs(k["duration"] - 120) > 40 for k in keys):
        h.fail("in-band key durations: %r" % [k["duration"] for k in keys])
    ok(ng.request({"command": "delete", "call-id": "inb-1"}), "delete")
    a.close()


def wav_seconds(path):
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, 8000):
            h.fail("%s: %d ch, %d bytes, %d Hz; expected 8 kHz mono 16-bit" % (
                path, w.getnchannels(), w.getsampwidth(), w.getframerate()))
        frames = w.readframes(w.getnframes())
        return w.getnframes() / 8000.0, frames


def check_record(relay, tmp):
    ng = relay.event_client
    a = udp()
    to_a = ivr_call(ng, "rec-1", a)
    path = os.path.join(tmp, "rec-1.wav")
    ok(ng.request({"command": "start recording", "call-id": "rec-1", "from-tag": "A-rec-1",
                   "output-destination": path, "silence-ms": 400}), "start recording")
    if not os.path.exists(path + ".part"):
        h.fail("no .part file while recording")
    # 1.2 s of 440 Hz "speech", then 0.8 s of silence: 2.0 s in 100 packets.
    audio = h.sine(440, 1.2) + [0] * 6400
    send_paced(a, ("127.0.0.1", to_a), pcmu_packets(audio, 0x5EC))
    note = ng.wait_note(lambda n: n["command"] == "silence", timeout=2, what="silence notification")
    if note.get("call-id") != "rec-1" or note.get("from-tag") != "A-rec-1":
        h.fail("silence notification: %r" % note)
    r = ok(ng.request({"command": "stop recording", "call-id": "rec-1"}), "stop recording")
    if r.get("file") != path or abs(r.get("duration", 0) - 2000) > 200:
        h.fail("stop recording reply %r" % r)
    if os.path.exists(path + ".part"):
        h.fail(".part file left after stop recording")
    seconds, frames = wav_seconds(path)
    if abs(seconds - 2.0) > 0.2:
        h.fail("recording lasts %.3f s, expected 2.0 ±10%%" % seconds)
    import struct
    samples = struct.unpack("<%dh" % (len(frames) // 2), frames)
    f = h.zero_crossing_frequency(samples[800:8800])
    if abs(f - 440) > 15:
        h.fail("recorded tone %.1f Hz, expected 440" % f)
    h.log("recording: %.3f s, %.1f Hz, reply %r" % (seconds, f, r))
    r = ng.request({"command": "stop recording", "call-id": "rec-1"})
    if r.get("result") != "error":
        h.fail("stop recording without a recording: %r" % r)
    r = ng.request({"command": "start recording", "call-id": "rec-1", "output-destination": "/nonexistent/dir/x.wav"})
    if r.get("result") != "error":
        h.fail("recording into a missing directory: %r" % r)
    ok(ng.request({"command": "delete", "call-id": "rec-1"}), "delete")
    a.close()


def check_missing_file(relay):
    ng = relay.event_client
    a = udp()
    ivr_call(ng, "miss-1", a)
    for f in ("/nonexistent/prompt.wav", ["/nonexistent/a.wav"], "/etc/hostname"):
        r = ng.request({"command": "play media", "call-id": "miss-1", "from-tag": "A-miss-1", "file": f})
        if r.get("result") != "error" or r.get("error-reason") != "Cannot open media file":
            h.fail("play media %r: %r" % (f, r))
    if ng.request({"command": "ping"}) != {"result": "pong"} or not relay.alive():
        h.fail("relay not answering after a missing file")
    ok(ng.request({"command": "delete", "call-id": "miss-1"}), "delete")
    a.close()


def check_dtmf_flood(relay):
    ng = relay.event_client
    a = udp()
    to_a = ivr_call(ng, "flood-1", a)
    dest = ("127.0.0.1", to_a)
    t0 = time.monotonic()
    for i in range(2000):  # 2000 distinct one-packet keys
        a.sendto(h.rfc4733_packet(i, 160 * i, 0xF1, i % 16, True, 800), dest)
        if i % 50 == 0:
            time.sleep(0.002)
    elapsed = time.monotonic() - t0
    ng.poll_notes(1.0)
    keys = [n for n in ng.notes if n["command"] == "dtmf"]
    ng.notes = [n for n in ng.notes if n["command"] != "dtmf"]
    bound = 20 + 20 * (elapsed + 1.5) + 5
    h.log("flood: %d notifications for 2000 keys in %.2f s (bound %d)" % (len(keys), elapsed, bound))
    if not keys or len(keys) > bound:
        h.fail("DTMF flood gave %d notifications (bound %d)" % (len(keys), bound))
    if ng.request({"command": "ping"}) != {"result": "pong"} or not relay.alive():
        h.fail("relay not answering after the DTMF flood")
    q = ok(ng.request({"command": "query", "call-id": "flood-1"}), "query")
    s = [s for s in q["streams"] if s["tag"] == "A-flood-1"][0]
    # Loopback may drop some of a burst; every key that arrived is either notified or dropped.
    if s["dtmf-keys"] < 1000 or s["dtmf-dropped"] != s["dtmf-keys"] - len(keys):
        h.fail("flood counters: keys %r dropped %r (notified %d)" % (s["dtmf-keys"], s["dtmf-dropped"], len(keys)))
    ok(ng.request({"command": "delete", "call-id": "flood-1"}), "delete")
    a.close()


def check_delete_finalises(relay, tmp):
    ng = relay.event_client
    a = udp()
    to_a = ivr_call(ng, "del-1", a)
    path = os.path.join(tmp, "del-1.wav")
    ok(ng.request({"command": "start recording", "call-id": "del-1", "output-destination": path}), "start")
    send_paced(a, ("127.0.0.1", to_a), pcmu_packets(h.sine(300, 1.0), 0xDE1))
    ok(ng.request({"command": "delete", "call-id": "del-1"}), "delete mid-recording")
    if os.path.exists(path + ".part") or not os.path.exists(path):
        h.fail("after delete: .part %s, final %s" % (os.path.exists(path + ".part"), os.path.exists(path)))
    seconds, _ = wav_seconds(path)
    if abs(seconds - 1.0) > 0.1:
        h.fail("recording finalised by delete lasts %.3f s, expected 1.0" % seconds)
    # Shutdown finalises too.
    to_a = ivr_call(ng, "del-2", a)
    path2 = os.path.join(tmp, "del-2.wav")
    ok(ng.request({"command": "start recording", "call-id": "del-2", "from-tag": "A-del-2",
                   "output-destination": path2}), "start")
    send_paced(a, ("127.0.0.1", to_a), pcmu_packets(h.sine(300, 0.5), 0xDE2))
    if relay.stop() != 0:
        h.fail("exit code at SIGTERM")
    if os.path.exists(path2 + ".part") or abs(wav_seconds(path2)[0] - 0.5) > 0.1:
        h.fail("recording not finalised by SIGTERM")
    a.close()


def test(checks):
    with h.RelaisMedia(workers=2) as relay:
        tmp = relay.workdir
        relay.event_client = h.NgEventClient("127.0.0.1", relay.ng_port)
        checks.run("play media: 8 kHz WAV, 16 kHz stereo list, tones; paced PCMU, playback-done", check_play,
                   relay, tmp)
        checks.run("play media to a side without G.711 is refused", check_no_g711, relay)
        checks.run("playing to a side suppresses the other side's audio until stop media", check_suppression, relay)
        checks.run("RFC 4733 keys 1,2,3 give three dtmf notifications; play DTMF sends RFC 4733", check_dtmf, relay)
        checks.run("in-band DTMF of a phone without telephone-event (after a media command)", check_inband, relay)
        checks.run("start/stop recording: 2 s of PCMU → 2 s WAV, silence notification", check_record, relay, tmp)
        checks.run("play media of a missing file is an error, relay keeps answering", check_missing_file, relay)
        checks.run("DTMF flood: bounded notifications, relay alive", check_dtmf_flood, relay)
        checks.run("delete and SIGTERM during a recording finalise the WAV", check_delete_finalises, relay, tmp)


if __name__ == "__main__":
    h.main(test)
