"""netns_lab.py — a small internet in network namespaces for NAT tests: a core namespace (relais
and relais-media on a public address), and per phone a home router that masquerades (iptables
MASQUERADE, like a DSL box) and the phone behind it. Every home uses the same private subnet
(192.168.1.0/24, the phone at .2), so only the routers' public addresses tell phones apart —
relais must never route by a private address. The routers also move every UDP/TCP source port
into 40000-49999, so the phones' own ports (5060) are never where they can be reached.

    phone-X (192.168.1.2) --veth-- nat-X (192.168.1.1 | 198.51.100.X) --veth-- core (198.51.100.20X)
                                                                                 + 203.0.113.1 (relais)

Namespaces are named per test process and removed by close() (and at exit). Needs root, `ip`
and `iptables`.
"""

import atexit
import os
import subprocess

from harness_core import require_tool
from sip_uac import fail

RELAIS_IP = "203.0.113.1"


def _run(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        fail("%s: %s" % (" ".join(argv), (r.stderr or r.stdout).strip()))
    return r


class Lab:
    def __init__(self, homes=("a", "b")):
        require_tool("ip")
        require_tool("iptables")
        if os.geteuid() != 0:
            fail("network namespaces need root")
        self.tag = "rl%d" % (os.getpid() % 100000)
        self.core = self.tag + "-core"
        self.namespaces = []
        self.homes = {}
        atexit.register(self.close)
        self._ns(self.core)
        self._sh(self.core, "ip link set lo up")
        self._sh(self.core, "ip addr add %s/32 dev lo" % RELAIS_IP)
        self._sh(self.core, "sysctl -qw net.ipv4.ip_forward=1")
        for i, name in enumerate(homes, start=1):
            self._home(name, i)

    def _ns(self, name):
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)

    def _sh(self, ns, command):
        return _run("ip", "netns", "exec", ns, "sh", "-c", command)

    def _home(self, name, i):
        nat, phone = "%s-nat%s" % (self.tag, name), "%s-ph%s" % (self.tag, name)
        self._ns(nat)
        self._ns(phone)
        public = "198.51.100.%d" % i
        # core <-> router (the "internet" link)
        up, down = "%sw%d" % (self.tag, i), "%sn%d" % (self.tag, i)
        _run("ip", "link", "add", up, "type", "veth", "peer", "name", down)
        _run("ip", "link", "set", up, "netns", self.core)
        _run("ip", "link", "set", down, "netns", nat)
        # One core address per link: Sofia binds "0.0.0.0" per local address, and the same
        # address on two links fails with EADDRINUSE.
        gateway = "198.51.100.%d" % (200 + i)
        self._sh(self.core, "ip addr add %s/32 dev %s; ip link set %s up; ip route add %s/32 dev %s"
                 % (gateway, up, up, public, up))
        self._sh(nat, "ip link set lo up; ip addr add %s/32 dev %s; ip link set %s up; "
                      "ip route add %s/32 dev %s; ip route add default via %s"
                 % (public, down, down, gateway, down, gateway))
        # router <-> phone (the home LAN)
        lan, eth = "%sl%d" % (self.tag, i), "%sp%d" % (self.tag, i)
        _run("ip", "link", "add", lan, "type", "veth", "peer", "name", eth)
        _run("ip", "link", "set", lan, "netns", nat)
        _run("ip", "link", "set", eth, "netns", phone)
        self._sh(nat, "ip addr add 192.168.1.1/24 dev %s; ip link set %s up; sysctl -qw net.ipv4.ip_forward=1; "
                      "iptables -t nat -A POSTROUTING -o %s -p udp -j MASQUERADE --to-ports 40000-49999; "
                      "iptables -t nat -A POSTROUTING -o %s -p tcp -j MASQUERADE --to-ports 40000-49999; "
                      "iptables -t nat -A POSTROUTING -o %s -j MASQUERADE" % (lan, lan, down, down, down))
        # A router that forgets an idle UDP mapping after 5 s (real ones: 30-180 s), so a test
        # can prove relais keeps NATed phones reachable.
        self._sh(nat, "sysctl -qw net.netfilter.nf_conntrack_udp_timeout=5 "
                      "net.netfilter.nf_conntrack_udp_timeout_stream=5")
        self._sh(phone, "ip link set lo up; ip addr add 192.168.1.2/24 dev %s; ip link set %s up; "
                        "ip route add default via 192.168.1.1" % (eth, eth))
        self.homes[name] = {"nat": nat, "phone": phone, "public": public}

    def prefix(self, ns):
        """argv prefix running a command inside namespace `ns`."""
        return ["ip", "netns", "exec", ns]

    def phone_ns(self, name):
        return self.homes[name]["phone"]

    def public_ip(self, name):
        return self.homes[name]["public"]

    def close(self):
        for ns in reversed(self.namespaces):
            # Processes left in a namespace would keep it (and its veths) alive.
            pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces = []
