"""test_media_xdp.py — relais-media's AF_XDP backend (--io xdp) on loopback, in a network
namespace of its own (lo up, net.ipv4.conf.lo.route_localnet=1 and accept_local=1, which AF_XDP
on loopback needs; relais-media attaches its XDP program to that namespace's lo in skb mode).

(a) test_media_relay.py's scenarios (verbs, RTP/RTCP both ways, latching, strict source, idle
timeout, hostile input, two workers) all pass with --io xdp (RELAIS_MEDIA_EXTRA_ARGS);
(b) the AF_XDP path carries the traffic: 200 RTP packets of random lengths each way arrive
byte-identical from the relay's ports with no UDP/IP error in the kernel's counters (the kernel
verifies the checksums of what AF_XDP sends: a raw datagram with a bad one is shown to be
dropped first), and worker.xdp counts them all as rx_xdp/tx_xdp, none on the socket path;
(c) what the XDP program passes — IP options, fragments — still reaches the relay through its
kernel sockets (rx_socket) and is relayed; a datagram without a UDP checksum is relayed too;
(d) --workers 2 on loopback (one receive queue): worker 1 logs worker.xdp_no_queue, uses
io_uring, and every call on either worker relays both ways; worker 0's AF_XDP socket sees
exactly its own calls' packets;
(e) hostile input on XDP-claimed ports (random bytes 0..1500, truncated/odd RTP and RTCP,
inconsistent UDP lengths from a raw socket) leaves it alive, answering ping, relaying a new call,
counting the bad frames (rx_bad), exiting 0;
(f) SIGKILL leaves no XDP program on lo, and the next relay attaches again;
(g) without either sysctl (and with --xdp-mode native, or an unknown interface) it refuses to
start: exit code non-zero, event=startup.failed naming the cause, nothing left attached.
Observed and logged, not failed (see REQUIRE_*): a corrupt UDP checksum is relayed by the XDP
path, and a start right after the previous relay exited may need a retry (EBUSY on the queue).
Every relais-media log is finally searched for sanitizer reports.

Needs root and `ip`. The file runs itself again inside the namespace (`ip netns exec`); the
namespace (relais-xdp-<pid>) is removed at exit, and leftovers of killed runs at the next start.
"""

import atexit
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import relais_media  # noqa: E402
import test_media_relay as tmr  # noqa: E402

NS_PREFIX = "relais-xdp-"
XDP = ["--io", "xdp"]
SYSCTLS = ("route_localnet", "accept_local")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Segmentation fault")

# Back-to-back restarts: the kernel releases the previous relay's AF_XDP queue asynchronously
# after that process is gone; relais-media waits for it (binding fails with EBUSY meanwhile).
RESTARTS = 20


# ----------------------------------------------------------------------------------------------
# Outside: the namespace, and this file run again inside it


def _ip(*argv, check=True):
    r = subprocess.run(["ip"] + list(argv), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(argv), (r.stderr or r.stdout).strip()))
    return r


def _remove_namespace(ns):
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", ns, check=False)


def _remove_stale_namespaces():
    """Namespaces of earlier runs that were killed before their cleanup (ctest's timeout)."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"%s(\d+)\b" % re.escape(NS_PREFIX), line)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            h.log("removing stale namespace %s%s" % (NS_PREFIX, m.group(1)))
            _remove_namespace(NS_PREFIX + m.group(1))


def outside():
    if os.geteuid() != 0:
        h.log("FAIL: test_media_xdp needs root (network namespaces, XDP, AF_XDP)")
        sys.exit(1)
    h.require_tool("ip")
    _remove_stale_namespaces()
    ns = NS_PREFIX + str(os.getpid())
    atexit.register(_remove_namespace, ns)
    # ctest's SIGTERM/SIGINT: exit through atexit, which removes the namespace.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    rc = 1
    try:
        _ip("netns", "add", ns)
        _ip("netns", "exec", ns, "sh", "-c", "ip link set lo up && sysctl -qw net.ipv4.conf.lo.route_localnet=1 "
            "net.ipv4.conf.lo.accept_local=1")
        h.log("namespace %s: lo up, route_localnet=1, accept_local=1" % ns)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "--in-netns"],
                                env=dict(os.environ, RELAIS_XDP_NETNS=ns))
        try:
            rc = proc.wait(timeout=h.TEST_BUDGET_S + 30)  # the inside has its own watchdog
        except subprocess.TimeoutExpired:
            h.log("FAIL: the test inside %s did not finish" % ns)
            proc.kill()
            proc.wait(timeout=10)
    except Exception as e:  # noqa: BLE001 - reported, the namespace still goes
        h.log("FAIL: %s" % e)
    finally:
        _remove_namespace(ns)
    sys.exit(rc)


# ----------------------------------------------------------------------------------------------
# Inside: helpers


def sysctl_path(key):
    return "/proc/sys/net/ipv4/conf/lo/%s" % key


def set_sysctl(key, value):
    with open(sysctl_path(key), "w") as f:
        f.write("%d\n" % value)


def get_sysctl(key):
    with open(sysctl_path(key)) as f:
        return int(f.read())


def xdp_attached():
    """The XDP program on this namespace's lo, or ''."""
    out = subprocess.run(["ip", "link", "show", "dev", "lo"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"prog/xdp id \d+ name (\S+)", out)
    return m.group(1) if m else ""


def snmp():
    """This namespace's /proc/net/snmp as {'Udp': {'InCsumErrors': n, ...}, 'Ip': {...}}."""
    with open("/proc/net/snmp") as f:
        lines = f.read().splitlines()
    out = {}
    for head, values in zip(lines[::2], lines[1::2]):
        keys, vals = head.split(), values.split()
        out[keys[0].rstrip(":")] = {k: int(v) for k, v in zip(keys[1:], vals[1:])}
    return out


ERROR_COUNTERS = (("Udp", "InErrors"), ("Udp", "InCsumErrors"), ("Udp", "RcvbufErrors"), ("Udp", "NoPorts"),
                  ("Ip", "InHdrErrors"), ("Ip", "InAddrErrors"), ("Ip", "InDiscards"))


def error_counts():
    s = snmp()
    return {"%s%s" % k: s[k[0]][k[1]] for k in ERROR_COUNTERS}


def xdp_stats(relay):
    """{worker: {key: value}} of the event=worker.xdp lines (logged at SIGTERM)."""
    out = {}
    for line in relay.grep("event=worker.xdp "):
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        out[int(kv["worker"])] = {k: int(v) if v.isdigit() else v for k, v in kv.items()}
    return out


def stop_clean(relay):
    rc = relay.stop()
    if rc != 0:
        h.fail("%s exited with %s at SIGTERM:\n%s" % (relay.name, rc, relay.log_tail()))


def udp(port=0, options=None):
    s = tmr.udp(port)  # big receive buffer (see tmr.udp)
    if options:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, options)
    return s


def flush(sock):
    """Reads whatever is queued on sock; returns how many datagrams."""
    n = 0
    sock.setblocking(False)
    try:
        while True:
            sock.recvfrom(65536)
            n += 1
    except (BlockingIOError, socket.timeout):
        pass
    finally:
        sock.settimeout(0.5)
    return n


def checksum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def raw_udp(sport, dport, payload, checksum="good", udp_len=None, frag=None, options=b""):
    """An IPv4 packet 127.0.0.1 -> 127.0.0.1 for an IPPROTO_RAW socket (the kernel fills in
    the IP total length and header checksum). checksum: good | bad | zero; udp_len: the UDP
    length field when it must lie; frag: (offset in bytes, more fragments, id, bytes of the
    UDP datagram to carry) for a fragment."""
    length = 8 + len(payload)
    pseudo = socket.inet_aton("127.0.0.1") * 2 + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    c = checksum16(pseudo + struct.pack("!HHHH", sport, dport, length, 0) + payload) or 0xffff
    c = {"good": c, "bad": c ^ 0x5a5a, "zero": 0}[checksum]
    datagram = struct.pack("!HHHH", sport, dport, length if udp_len is None else udp_len, c) + payload
    frag_off, ident = 0, random.randrange(1, 0xffff)
    if frag:
        offset, more, ident, datagram = frag[0], frag[1], frag[2], datagram[frag[3][0]:frag[3][1]]
        frag_off = (offset // 8) | (0x2000 if more else 0)
    ihl = 5 + len(options) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 0, ident, frag_off, 64, socket.IPPROTO_UDP, 0,
                       socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")) + options + datagram


def raw_socket():
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


def send_raw(raw, packet):
    raw.sendto(packet, ("127.0.0.1", 0))


def rtp_random(seq, ssrc, rnd, max_payload=1400):
    """An RTP packet with a random payload of random (odd or even) length."""
    return struct.pack("!BBHII", 0x80, 8, seq & 0xffff, (seq * 160) & 0xffffffff, ssrc) + \
        rnd.randbytes(rnd.randrange(0, max_payload + 1))


def warm_up(a, b, to_a, what):
    """One packet A->B, awaited. The ng reply comes before the worker has attached (and the
    XDP program claimed) the call's ports: datagrams sent in between wait in the kernel socket
    and are read from it (rx_socket). Once one is relayed, all four ports of the call are
    claimed. Returns 1 (the packet it sent)."""
    a.sendto(h.rtp_packet(60000, 0, 0x5eed), ("127.0.0.1", to_a))
    if len(tmr.drain(b, 1, timeout=2.0)) != 1:
        h.fail("%s: the first packet A->B was not relayed" % what)
    return 1


def exchange(a, b, to_a, to_b, n, rnd, what, burst=10, a_ssrc=0xA1, b_ssrc=0xB2):
    """n RTP packets A->B and n B->A through the relay (A sends to port to_a, B to to_b), in
    bursts read before the next; every packet must arrive once, byte-identical, from the relay
    port of the other side. Returns the number delivered (2n)."""
    delivered = 0
    seq = 0
    while seq < n:
        count = min(burst, n - seq)
        sent = {"A->B": {}, "B->A": {}}
        for i in range(count):
            pa, pb = rtp_random(seq + i, a_ssrc, rnd), rtp_random(seq + i, b_ssrc, rnd)
            sent["A->B"][seq + i] = pa
            sent["B->A"][seq + i] = pb
            a.sendto(pa, ("127.0.0.1", to_a))
            b.sendto(pb, ("127.0.0.1", to_b))
        for direction, sock, source in (("A->B", b, to_b), ("B->A", a, to_a)):
            got = tmr.drain(sock, count, timeout=2.0)
            if len(got) != count:
                h.fail("%s %s: %d of %d packets of burst at seq %d arrived" % (what, direction, len(got), count, seq))
            for data, src in got:
                if src != ("127.0.0.1", source):
                    h.fail("%s %s: source %r, expected the relay port %d" % (what, direction, src, source))
                s = struct.unpack("!H", data[2:4])[0] if len(data) >= 4 else -1
                want = sent[direction].pop(s, None)
                if want != data:
                    h.fail("%s %s: packet seq %d not relayed byte-identical (%d bytes, sent %r)" % (
                        what, direction, s, len(data), None if want is None else len(want)))
            delivered += count
        seq += count
    return delivered


def stream_workers(relay):
    """{relay port: worker} from the event=stream.create lines."""
    out = {}
    for line in relay.grep("event=stream.create"):
        kv = dict(re.findall(r"([\w-]+)=(\S+)", line))
        for key in ("port-a", "port-b"):
            out[int(kv[key])] = int(kv["worker"])
    return out


# ----------------------------------------------------------------------------------------------
# Inside: checks


def check_namespace():
    ns = os.environ.get("RELAIS_XDP_NETNS", "?")
    h.log("namespace %s, relais-media %s" % (ns, h.relais_media_bin()))
    for key in SYSCTLS:
        if get_sysctl(key) != 1:
            h.fail("%s: net.ipv4.conf.lo.%s is not 1" % (ns, key))
    if "UP" not in subprocess.run(["ip", "link", "show", "dev", "lo"], capture_output=True, text=True,
                                  timeout=10).stdout:
        h.fail("%s: lo is not up" % ns)
    if xdp_attached():
        h.fail("%s: an XDP program is already on lo: %s" % (ns, xdp_attached()))


def check_kernel_verifies_checksums():
    """A datagram built without a checksum offload (raw socket, like AF_XDP's copy-mode
    frames) and a wrong UDP checksum is dropped on lo: a relayed packet that arrives proves its
    checksums. The same builder with a right checksum is delivered (the builder is sound)."""
    sink, raw = udp(), raw_socket()
    port = sink.getsockname()[1]
    before = error_counts()
    send_raw(raw, raw_udp(40000, port, b"bad checksum", checksum="bad"))
    if tmr.drain(sink, 1, timeout=0.3):
        h.fail("a datagram with a bad UDP checksum was delivered on lo")
    after = error_counts()
    if after["UdpInCsumErrors"] != before["UdpInCsumErrors"] + 1:
        h.fail("UdpInCsumErrors did not count the bad datagram: %r -> %r" % (before, after))
    send_raw(raw, raw_udp(40000, port, b"good checksum"))
    got = tmr.drain(sink, 1, timeout=1.0)
    if not got or got[0][0] != b"good checksum" or got[0][1] != ("127.0.0.1", 40000):
        h.fail("the raw datagram with a right checksum was not delivered: %r" % got)
    sink.close()
    raw.close()


def check_media_relay_scenarios(checks):
    """test_media_relay.py's own checks, every relais-media of them with --io xdp."""
    class Prefixed:
        def run(self, name, fn, *a, **kw):
            return checks.run("[test_media_relay --io xdp] " + name, fn, *a, **kw)

    first = len(h._relais_instances)
    os.environ["RELAIS_MEDIA_EXTRA_ARGS"] = " ".join(XDP)
    try:
        tmr.test(Prefixed())
    finally:
        del os.environ["RELAIS_MEDIA_EXTRA_ARGS"]
    relays = h._relais_instances[first:]

    def ran_with_xdp():
        if not relays:
            h.fail("test_media_relay started no relais-media")
        rx = 0
        for r in relays:
            if not r.grep("event=ready") or "io=xdp" not in r.grep("event=ready")[0]:
                h.fail("%s did not run with --io xdp: %r" % (r.name, r.grep("event=ready")))
            if not r.grep("event=xdp.attached interface=lo mode=skb queues=1"):
                h.fail("%s: no event=xdp.attached on lo" % r.name)
            rx += sum(s["rx_xdp"] for s in xdp_stats(r).values())
        if rx < 200:  # check_flows alone relays 4 x 50 RTP packets on worker 0
            h.fail("test_media_relay's packets did not go through AF_XDP: rx_xdp=%d in all" % rx)
        h.log("test_media_relay under xdp: %d relays, rx_xdp=%d in all" % (len(relays), rx))
    checks.run("test_media_relay's relays ran with --io xdp and AF_XDP carried their packets", ran_with_xdp)


def check_counters():
    n = 200
    rnd = random.Random(4242)
    with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-counters") as relay:
        relay.wait_log("event=worker.xdp_ready worker=0 interface=lo mode=skb")
        if xdp_attached() != "relais_xdp":
            h.fail("no relais_xdp program on lo while relais-media runs: %r" % xdp_attached())
        ng = relay.client()
        a, b = udp(), udp()
        to_a, to_b = tmr.setup_call(relay, ng, "xdp-count", a.getsockname()[1], b.getsockname()[1])
        warm = warm_up(a, b, to_a[0], "xdp-count")
        before = error_counts()
        delivered = exchange(a, b, to_a[0], to_b[0], n, rnd, "xdp-count")
        after = error_counts()
        if after != before:
            h.fail("kernel error counters moved while relaying: %r -> %r" % (before, after))
        q = tmr.expect_ok(ng.request({"command": "query", "call-id": "xdp-count"}), "query")
        for tag in ("tagA", "tagB"):
            if tmr.stream_stats(q, tag)["packets"] != n + (warm if tag == "tagA" else 0):
                h.fail("query stats of %s: %r" % (tag, tmr.stream_stats(q, tag)))
        ng.close()
        stop_clean(relay)
        stats = xdp_stats(relay)
        if set(stats) != {0}:
            h.fail("expected one event=worker.xdp line (worker 0), got %r" % stats)
        s = stats[0]
        h.log("sent %d through the relay, %d delivered; worker.xdp: %r" % (2 * n, delivered, s))
        if (s["interface"], s["queue"], s["mode"]) != ("lo", 0, "skb"):
            h.fail("worker.xdp names %s queue %s mode %s" % (s["interface"], s["queue"], s["mode"]))
        if s["rx_xdp"] < 2 * n:
            h.fail("rx_xdp=%d < %d packets sent through the relay" % (s["rx_xdp"], 2 * n))
        if s["tx_xdp"] < delivered:
            h.fail("tx_xdp=%d < %d packets delivered" % (s["tx_xdp"], delivered))
        # Clean traffic on claimed ports, to a peer already heard: only the warm-up packet
        # may have taken the socket path (sent before the worker claimed the port).
        for key in ("rx_socket", "tx_socket"):
            if s[key] > warm:
                h.fail("%s=%d on clean traffic (at most the %d warm-up packet)" % (key, s[key], warm))
        if s["rx_bad"] != 0:
            h.fail("rx_bad=%d on clean traffic" % s["rx_bad"])
        if xdp_attached():
            h.fail("the XDP program is still on lo after SIGTERM: %s" % xdp_attached())
        a.close()
        b.close()


def check_socket_fallback():
    m = 50
    rnd = random.Random(77)
    with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-fallback") as relay:
        ng = relay.client()
        # IP options (NOP NOP NOP EOL: IHL 6): the program passes A's datagrams to the kernel.
        a, b = udp(options=b"\x01\x01\x01\x00"), udp()
        pa = a.getsockname()[1]
        to_a, to_b = tmr.setup_call(relay, ng, "xdp-fallback", pa, b.getsockname()[1])
        warm_up(a, b, to_a[0], "IP options")
        delivered = exchange(a, b, to_a[0], to_b[0], m, rnd, "IP options")
        raw = raw_socket()
        # A fragmented datagram (two fragments, 304 + 316 bytes): reassembled by the kernel.
        payload = rtp_random(5000, 0xA1, rnd, 0)[:12] + rnd.randbytes(600)
        whole = raw_udp(pa, to_a[0], payload)[20:]
        ident = 0x4242
        send_raw(raw, raw_udp(pa, to_a[0], payload, frag=(0, True, ident, (0, 304))))
        send_raw(raw, raw_udp(pa, to_a[0], payload, frag=(304, False, ident, (304, len(whole)))))
        got = tmr.drain(b, 1, timeout=2.0)
        if not got or got[0] != (payload, ("127.0.0.1", to_b[0])):
            h.fail("the fragmented datagram was not relayed intact: %r" % [(len(d), s) for d, s in got])
        # No UDP checksum (0, legal in IPv4): through AF_XDP, relayed.
        zero = rtp_random(5001, 0xA1, rnd)
        send_raw(raw, raw_udp(pa, to_a[0], zero, checksum="zero"))
        got = tmr.drain(b, 1, timeout=2.0)
        if not got or got[0] != (zero, ("127.0.0.1", to_b[0])):
            h.fail("the datagram without a UDP checksum was not relayed: %r" % [(len(d), s) for d, s in got])
        raw.close()
        ng.close()
        stop_clean(relay)
        s = xdp_stats(relay).get(0)
        if not s:
            h.fail("no event=worker.xdp line")
        h.log("%d delivered with IP options on A's side, + 1 fragmented, + 1 without checksum; worker.xdp: %r"
              % (delivered, s))
        if s["rx_socket"] < m + 1:
            h.fail("rx_socket=%d < %d (A's datagrams with IP options + the fragmented one)" % (s["rx_socket"], m + 1))
        if s["rx_xdp"] < m + 1:
            h.fail("rx_xdp=%d < %d (B's datagrams + the one without checksum)" % (s["rx_xdp"], m + 1))
        a.close()
        b.close()


def check_bad_checksum():
    """A datagram with a corrupt UDP checksum is dropped on the AF_XDP path (counted in
    rx_bad), as the kernel's UDP receive drops it on the socket path: relais-media writes a new
    checksum when it forwards, so relaying it would hide the corruption from the receiver."""
    with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-checksum") as relay:
        ng = relay.client()
        a, b = udp(), udp()
        pa = a.getsockname()[1]
        to_a, _ = tmr.setup_call(relay, ng, "xdp-csum", pa, b.getsockname()[1])
        a.sendto(h.rtp_packet(1, 0, 0xA), ("127.0.0.1", to_a[0]))  # latch, learn the next hop
        if len(tmr.drain(b, 1)) != 1:
            h.fail("the first packet was not relayed")
        raw = raw_socket()
        send_raw(raw, raw_udp(pa, to_a[0], h.rtp_packet(2, 160, 0xA), checksum="bad"))
        relayed = bool(tmr.drain(b, 1, timeout=0.5))
        # The same datagram with its checksum right goes through: the drop was the checksum.
        good = h.rtp_packet(3, 320, 0xA)
        send_raw(raw, raw_udp(pa, to_a[0], good, checksum="good"))
        got = tmr.drain(b, 1, timeout=2.0)
        if len(got) != 1 or got[0][0] != good:
            h.fail("a raw datagram with a valid checksum was not relayed: %r" % (got,))
        raw.close()
        ng.close()
        stop_clean(relay)
        h.log("a datagram with a corrupt UDP checksum to an XDP-claimed port was %s (the socket path drops it)"
              % ("RELAYED with a recomputed checksum" if relayed else "dropped"))
        if relayed:
            h.fail("a datagram with a corrupt UDP checksum was relayed")
        if xdp_stats(relay).get(0, {}).get("rx_bad", 0) < 1:
            h.fail("the corrupt datagram was not counted in rx_bad: %r" % xdp_stats(relay))
        a.close()
        b.close()


def check_two_workers():
    calls, n = 6, 20
    rnd = random.Random(99)
    with h.RelaisMedia(workers=2, extra=XDP, name="relais-media-xdp-workers") as relay:
        relay.wait_log("event=worker.xdp_no_queue worker=1 queues=1 using=io_uring")
        relay.wait_log("event=worker.xdp_ready worker=0 interface=lo")
        if relay.grep("event=worker.xdp_no_queue worker=0"):
            h.fail("worker 0 has no AF_XDP socket")
        ng = relay.client()
        legs = []
        for i in range(calls):
            a, b = udp(), udp()
            to_a, to_b = tmr.setup_call(relay, ng, "xw-%d" % i, a.getsockname()[1], b.getsockname()[1])
            legs.append((a, b, to_a[0], to_b[0]))
        # The ng reply can be read before relais-media's stream.create line is: wait for all.
        h.wait_until(lambda: all(p in stream_workers(relay) for leg in legs for p in leg[2:]), timeout=5,
                     what="event=stream.create for every call")
        owners = stream_workers(relay)
        per_worker = {0: 0, 1: 0}
        for i, (a, b, pa, pb) in enumerate(legs):
            if owners.get(pa) is None or owners.get(pa) != owners.get(pb):
                h.fail("call xw-%d: relay ports %d/%d owned by %r/%r" % (i, pa, pb, owners.get(pa), owners.get(pb)))
            per_worker[owners[pa]] += 1
            warm_up(a, b, pa, "call xw-%d" % i)
            exchange(a, b, pa, pb, n, rnd, "call xw-%d (worker %d)" % (i, owners[pa]), a_ssrc=0xA0 + i,
                     b_ssrc=0xB0 + i)
        if not per_worker[0] or not per_worker[1]:
            h.fail("calls not spread over both workers: %r" % per_worker)
        ng.close()
        stop_clean(relay)
        stats = xdp_stats(relay)
        h.log("calls per worker %r; worker.xdp: %r" % (per_worker, stats))
        if set(stats) != {0}:
            h.fail("expected event=worker.xdp for worker 0 only, got workers %r" % sorted(stats))
        # Worker 0's socket gets its own calls' packets and nothing else (worker 1's ports are
        # not claimed): 2n per call, + its warm-up packet unless that came before the claim.
        want, warm = 2 * n * per_worker[0], per_worker[0]
        for key in ("rx_xdp", "tx_xdp"):
            if not want <= stats[0][key] <= want + warm:
                h.fail("worker 0: %s=%d, expected %d..%d" % (key, stats[0][key], want, want + warm))
        for a, b, _, _ in legs:
            a.close()
            b.close()


def junk_datagrams(rnd, count):
    """Hostile payloads: random bytes 0..1500, truncated RTP headers, RTP whose CSRC count,
    extension or padding claims more than there is, RTCP with lying lengths, STUN/DTLS lookalikes."""
    rtp = h.rtp_packet(7, 1120, 0xABCDEF)
    out = []
    for i in range(count):
        kind = i % 8
        if kind in (0, 1):
            out.append(rnd.randbytes(rnd.randrange(0, 1501)))
        elif kind == 2:
            out.append(rtp[:rnd.randrange(0, 12)])  # truncated header
        elif kind == 3:  # CSRC count 15, fewer CSRCs present
            out.append(bytes([0x8f]) + rtp[1:12] + rnd.randbytes(rnd.randrange(0, 60)))
        elif kind == 4:  # extension bit, header extension length beyond the packet
            out.append(bytes([0x90]) + rtp[1:12] + b"\xbe\xde" + struct.pack("!H", rnd.choice((0xffff, 1, 300))) +
                       rnd.randbytes(rnd.randrange(0, 8)))
        elif kind == 5:  # padding bit, padding count beyond the packet
            out.append(bytes([0xa0]) + rtp[1:12] + rnd.randbytes(rnd.randrange(0, 20)) + bytes([255]))
        elif kind == 6:  # RTCP SR/RR/SDES/BYE/APP with a lying length
            out.append(bytes([0x80 | rnd.randrange(32), rnd.randrange(200, 205)]) + struct.pack("!H", rnd.randrange(65536)) +
                       rnd.randbytes(rnd.randrange(0, 40)))
        else:  # STUN binding request / DTLS record lookalikes
            out.append(rnd.choice((b"\x00\x01\x00\x08\x21\x12\xa4\x42", b"\x16\xfe\xfd\x00\x00")) +
                       rnd.randbytes(rnd.randrange(0, 100)))
    return out


def check_hostile():
    rnd = random.Random(31337)
    with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-hostile") as relay:
        ng = relay.client()
        a, b, stranger = udp(), udp(), udp()
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        to_a, to_b = tmr.setup_call(relay, ng, "xdp-junk", pa, pb)
        exchange(a, b, to_a[0], to_b[0], 5, rnd, "before the junk")
        targets = [to_a[0], to_a[0] + 1, to_b[0], to_b[0] + 1]
        unused = [p for p in range(relay.port_min, relay.port_max + 1) if p not in targets][:4]
        junk = junk_datagrams(rnd, 3000)
        senders = (a, b, stranger)
        for i, data in enumerate(junk):
            sock = senders[i % 3]
            port = (targets + unused)[rnd.randrange(len(targets) + len(unused))]
            sock.sendto(data, ("127.0.0.1", port))
            if i % 100 == 99:
                if ng.request({"command": "ping"}) != {"result": "pong"}:  # paces the flood, proves liveness
                    h.fail("no pong after %d junk datagrams" % (i + 1))
                for s in senders:
                    flush(s)
        # Inconsistent UDP headers only a raw socket can send, straight to the claimed ports.
        raw = raw_socket()
        bad_lengths = 0
        for i in range(300):
            port = targets[i % len(targets)]
            body = h.rtp_packet(i, 160 * i, 0xBAD)[:rnd.randrange(0, 40)]
            kind = i % 6
            if kind == 0:
                send_raw(raw, raw_udp(pa, port, body, udp_len=rnd.randrange(0, 8)))  # shorter than a UDP header
                bad_lengths += 1
            elif kind == 1:
                send_raw(raw, raw_udp(pa, port, body, udp_len=8 + len(body) + rnd.randrange(1, 2000)))  # beyond it
                bad_lengths += 1
            elif kind == 2:
                send_raw(raw, raw_udp(pa, port, body, checksum="bad"))
            elif kind == 3:
                send_raw(raw, raw_udp(pa, port, body)[:20 + rnd.randrange(0, 8)])  # UDP header cut short
            elif kind == 4:
                send_raw(raw, raw_udp(pa, port, body, options=b"\x01\x01\x01\x00", checksum=rnd.choice(("good", "bad"))))
            else:  # a first fragment whose rest never comes
                send_raw(raw, raw_udp(pa, port, body + bytes(16), frag=(0, True, 0x7000 + i, (0, 16))))
        raw.close()
        time.sleep(0.2)
        for s in senders:
            flush(s)
        if not relay.alive():
            h.fail("relais-media died under junk:\n%s" % relay.log_tail())
        if ng.request({"command": "ping"}) != {"result": "pong"}:
            h.fail("no pong after the junk")
        c, d = udp(), udp()
        to_c, to_d = tmr.setup_call(relay, ng, "xdp-after-junk", c.getsockname()[1], d.getsockname()[1])
        exchange(c, d, to_c[0], to_d[0], 20, rnd, "call set up after the junk")
        ng.close()
        stop_clean(relay)
        s = xdp_stats(relay).get(0)
        h.log("3000 junk datagrams + 300 raw; worker.xdp: %r" % s)
        if not s or s["rx_bad"] < bad_lengths:
            h.fail("rx_bad should count the %d datagrams with impossible UDP lengths: %r" % (bad_lengths, s))
        for sock in (a, b, stranger, c, d):
            sock.close()


def check_sigkill_detaches():
    relay = h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-killed").start()
    if xdp_attached() != "relais_xdp":
        h.fail("no XDP program on lo while relais-media runs")
    relay.proc.send_signal(signal.SIGKILL)
    relay.proc.wait(timeout=10)
    h.wait_until(lambda: not xdp_attached(), timeout=5, interval=0.1, what="lo without an XDP program after SIGKILL")
    with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-after-kill") as again:
        ng = again.client()
        a, b = udp(), udp()
        to_a, to_b = tmr.setup_call(again, ng, "after-kill", a.getsockname()[1], b.getsockname()[1])
        warm_up(a, b, to_a[0], "after a SIGKILLed relay")
        exchange(a, b, to_a[0], to_b[0], 10, random.Random(5), "after a SIGKILLed relay")
        ng.close()
        stop_clean(again)
        if xdp_stats(again)[0]["rx_xdp"] < 20:
            h.fail("the relay started after the SIGKILL did not use AF_XDP: %r" % xdp_stats(again))
        a.close()
        b.close()


def refused_start(extra, needles, what):
    relay = h.RelaisMedia(workers=1, extra=extra, name="relais-media-xdp-refused")
    relay._append("### expected to fail: " + " ".join(relay.args))
    try:
        r = subprocess.run(list(relay.args), capture_output=True, text=True, timeout=20, cwd=relay.workdir)
    except subprocess.TimeoutExpired:
        h.fail("%s: relais-media did not exit (it should refuse to start)" % what)
    for line in r.stderr.splitlines():
        relay._append(line)
    relay._append("### exit code %s" % r.returncode)
    failed = [l for l in r.stderr.splitlines() if "event=startup.failed" in l]
    if r.returncode == 0 or "event=ready" in r.stderr or not failed:
        h.fail("%s: expected a refused start, got exit %s:\n%s" % (what, r.returncode, r.stderr[-2000:]))
    for needle in needles:
        if needle not in failed[0]:
            h.fail("%s: startup.failed does not name %r: %s" % (what, needle, failed[0]))
    if xdp_attached():
        h.fail("%s: an XDP program stayed on lo: %s" % (what, xdp_attached()))
    h.log("%s: exit %d, %s" % (what, r.returncode, failed[0]))


def check_refusals():
    try:
        for route_localnet, accept_local in ((0, 0), (1, 0), (0, 1)):
            set_sysctl("route_localnet", route_localnet)
            set_sysctl("accept_local", accept_local)
            missing = "route_localnet" if not route_localnet else "accept_local"
            refused_start(XDP, ["on loopback AF_XDP needs net.ipv4.conf.lo.%s=1" % missing,
                                "net.ipv4.conf.lo.route_localnet=1", "net.ipv4.conf.lo.accept_local=1"],
                          "route_localnet=%d accept_local=%d" % (route_localnet, accept_local))
    finally:
        for key in SYSCTLS:
            set_sysctl(key, 1)
    refused_start(XDP + ["--xdp-mode", "native"], ["attaching the XDP program to lo (native mode)"],
                  "--xdp-mode native on lo (no driver XDP)")
    refused_start(XDP + ["--xdp-interface", "nosuchif0"], ["no interface nosuchif0"], "an unknown --xdp-interface")


def check_restarts():
    """relais-media --io xdp stopped and started again at once, RESTARTS times: every start
    succeeds (no EBUSY from the previous relay's queue) and relays through AF_XDP."""
    rnd = random.Random(7)
    for i in range(RESTARTS):
        with h.RelaisMedia(workers=1, extra=XDP, name="relais-media-xdp-restart-%d" % i) as relay:
            ng = relay.client()
            a, b = udp(), udp()
            to_a, _ = tmr.setup_call(relay, ng, "xdp-restart-%d" % i, a.getsockname()[1], b.getsockname()[1])
            warm_up(a, b, to_a[0], "restart %d" % i)  # may race the port claim: socket path
            pkt = rtp_random(1, 0xA, rnd, max_payload=300)
            a.sendto(pkt, ("127.0.0.1", to_a[0]))
            got = tmr.drain(b, 1, timeout=2.0)
            ng.close()
            a.close()
            b.close()
            if len(got) != 1 or got[0][0] != pkt:
                h.fail("restart %d: the call did not relay" % i)
            stop_clean(relay)
            if xdp_stats(relay).get(0, {}).get("rx_xdp", 0) < 1:
                h.fail("restart %d: the packet did not come through AF_XDP: %r" % (i, xdp_stats(relay)))
    h.log("%d back-to-back restarts of relais-media --io xdp all started and relayed through AF_XDP" % RESTARTS)


def check_no_sanitizer_reports():
    bad = []
    for r in h._relais_instances:
        bad += ["%s: %s" % (r.name, l) for l in r.log_lines() if any(m in l for m in SANITIZER_MARKS)]
    if bad:
        h.fail("sanitizer reports in relais-media logs:\n" + "\n".join(bad[:30]))
    h.log("%d relais-media logs searched, no sanitizer report" % len(h._relais_instances))


def inside(checks):
    if not checks.run("own namespace: lo up, route_localnet=1, accept_local=1, no XDP program yet", check_namespace):
        return
    checks.run("the kernel drops bad UDP checksums on lo (so a relayed packet's arrival proves its)",
               check_kernel_verifies_checksums)
    check_media_relay_scenarios(checks)
    checks.run("AF_XDP carries the relayed RTP: 200 each way byte-identical, rx_xdp/tx_xdp count them, no socket path",
               check_counters)
    checks.run("IP options and fragments take the kernel socket path (rx_socket) and are relayed; no checksum is fine",
               check_socket_fallback)
    checks.run("a corrupt UDP checksum on an XDP-claimed port is dropped", check_bad_checksum)
    checks.run("--workers 2 on loopback: worker 1 io_uring (xdp_no_queue), all calls relay, worker 0 counts its own",
               check_two_workers)
    checks.run("hostile datagrams on XDP-claimed ports: alive, ping, rx_bad, a new call relays, exit 0", check_hostile)
    checks.run("SIGKILL leaves no XDP program on lo; the next relay attaches and relays", check_sigkill_detaches)
    checks.run("refuses to start without route_localnet/accept_local, in native mode, on an unknown interface",
               check_refusals)
    checks.run("%d starts right after the previous relay exited" % RESTARTS, check_restarts)
    checks.run("no sanitizer report in any relais-media log", check_no_sanitizer_reports)


if __name__ == "__main__":
    if "--in-netns" in sys.argv[1:]:
        h.main(inside)
    else:
        outside()
