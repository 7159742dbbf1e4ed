"""free_ports.py — free ports on 127.0.0.1 (and ::1) for the processes of the integration
tests: single ports for UDP and TCP, sipp media port pairs, relay port ranges, and a check of
whether a UDP port is bound yet (from /proc, without racing the process about to take it).
"""

import socket

from harness_core import log
from sip_uac import fail


def _bindable(family, kind, host, port):
    s = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def ipv6_available():
    """True when a UDP socket can bind [::1]; the reason is printed when it cannot."""
    if not socket.has_ipv6:
        log("ipv6 unavailable: python built without IPv6")
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError as e:
        log("ipv6 unavailable: cannot bind [::1]: %s" % e)
        return False


def free_port(host="127.0.0.1", udp=True, tcp=True, also_ipv6=False):
    """A port free for both UDP and TCP on host (and on ::1 when asked). Bounded retries.

    Drawn from 10000-19999, below the relays' ranges (free_port_range) and the kernel's
    ephemeral range: a port the kernel picked for us would be handed out again to any socket of
    a parallel test that binds port 0 or connects, before our process binds it (seen: sipp
    failing with EADDRINUSE under ctest -j2)."""
    import random
    for _ in range(200):
        port = random.randrange(10000, 20000)
        ok = True
        if udp and not _bindable(socket.AF_INET, socket.SOCK_DGRAM, host, port):
            ok = False
        if tcp and not _bindable(socket.AF_INET, socket.SOCK_STREAM, host, port):
            ok = False
        if ok and also_ipv6:
            ok = _bindable(socket.AF_INET6, socket.SOCK_DGRAM, "::1", port) and \
                 _bindable(socket.AF_INET6, socket.SOCK_STREAM, "::1", port)
        if ok:
            return port
    fail("no free port found after 200 tries")


def free_media_port():
    """A UDP port p with p and p+2 free (sipp -mp binds the audio port and the one two above)."""
    for _ in range(100):
        p = free_port(tcp=False)
        if p < 65530 and _bindable(socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1", p + 2):
            return p
    fail("no free media port pair found")


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (free_port's ports come from it)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count, host="127.0.0.1"):
    """A run of `count` consecutive UDP ports (even start) that are free now, from 20000 up to
    the kernel's ephemeral range. A relay binds its range call by call, later: inside the
    ephemeral range a port free_port() handed to a parallel test's sipp could be taken by then
    (seen: sipp -mp failing with EADDRINUSE in test_media_call under ctest -j2)."""
    import random
    top = max(_ephemeral_low(), 20000 + count + 2)
    for _ in range(200):
        start = random.randrange(20000, top - count) & ~1
        if all(_bindable(socket.AF_INET, socket.SOCK_DGRAM, host, p) for p in range(start, start + count)):
            return start, start + count - 1
    fail("no free UDP port range of %d found" % count)


def udp_port_bound(port, host="127.0.0.1"):
    """True when some process has a UDP socket bound to host:port (read from /proc, no bind
    race with the process that is about to take it)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                local = line.split()[1]
                if local == want or local == "00000000:%04X" % port:
                    return True
    except OSError:
        pass
    return False


def tcp_port_open(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port (one connect, closed at once)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
