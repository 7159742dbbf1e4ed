"""test_trunk_tls.py — a trunk to an operator over TLS, opened and verified by relais's own edge
(tls/trunk_links.cpp). The operator is Kamailio with its tls module (kamailio-operator.cfg with
-A WITH_TLS): it presents the dev server certificate and requires a client certificate.

* relais connects to it over TLS, checks its certificate against the configured CA and the
  configured server name, presents its client certificate, registers (Digest) with a Contact on
  that connection, and a local call goes out through the trunk to a sipp "PSTN".
* A call from the PSTN comes back in over the same TLS connection relais opened and reaches a
  local user, with call.from_trunk set.
* Refusals, each proven by relais's log and by the far end seeing no SIP: a server whose
  certificate does not chain to the CA (openssl s_server with the rogue certificate), the right
  CA but a name the certificate does not carry, and relais without a client certificate at an
  operator that requires one. A call to a trunk whose connection is down fails at once with 503.

Kamailio listens on 127.0.0.2 so its requests are told apart from local phones by source address
(see test_trunk_kamailio.py)."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
import tls_tools as t  # noqa: E402
from test_trunk_kamailio import OP_DOMAIN, OP_IP, TRUNK_USER, TRUNK_PASSWORD, MOBILE, \
    PSTN_CALLER, DID, call_to_pstn, evidence, operator_lines  # noqa: E402

CALLS = {"authenticate": False, "unknown_sources": "reject", "no_answer_timeout": 10}

SCRIPT = r"""
-- Local callers: 0... goes out through the TLS operator, 8... through the rogue trunk (whose
-- certificate must be refused). Calls from the operator ring the user named by the R-URI.
function on_invite(call)
  relais.log(string.format("trunk-tls invite ruri=%s from_trunk=%s transport=%s",
                           tostring(call.ruri.user), tostring(call.from_trunk), tostring(call.transport)))
  if call.from_trunk then
    local r = call:dial(call.ruri.user)
    return
  end
  local user = call.ruri.user or ""
  local trunk = user:match("^0") and "operator" or user:match("^8") and "rogue" or nil
  if not trunk then return call:reject(404, "Not Found") end
  local r = call:dial("trunk:" .. trunk .. "/" .. user)
  relais.log(string.format("trunk-tls result trunk=%s answered=%s code=%s",
                           trunk, tostring(r.answered), tostring(r.code)))
end
"""


def write_kamailio_tls_cfg(workdir, certs):
    """tls.cfg for the operator: our dev server certificate, client certificates required and
    checked against the dev CA (paths absolute: see CLIENT-NOTES.md)."""
    path = os.path.join(workdir, "operator-tls.cfg")
    with open(path, "w") as f:
        f.write("""[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
certificate = %s
private_key = %s
ca_list = %s

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
""" % (certs["server"], certs["server.key"], certs["ca"]))
    return path


class SServer:
    """openssl s_server presenting `cert`: a TLS peer that logs what it receives. stdin stays
    open (a pipe) so it does not hang up on EOF."""

    def __init__(self, cert, key, workdir):
        self.port = h.free_port(udp=False)
        self.out_path = os.path.join(workdir, "s_server.out")
        self.err_path = os.path.join(workdir, "s_server.err")
        self.proc = h.popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port,
                             "-cert", cert, "-key", key, "-quiet"],
                            stdin=subprocess.PIPE, stdout=open(self.out_path, "wb"),
                            stderr=open(self.err_path, "wb"))
        h.wait_until(lambda: h.tcp_port_open(self.port), timeout=5, what="openssl s_server listening")

    def received(self):
        with open(self.out_path, "rb") as f:
            return f.read()

    def errors(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def test(checks):
    for tool in ("kamailio", "kamcmd", "sipp", "openssl"):
        h.require_tool(tool)
    workdir = h.make_tempdir("trunk-tls")
    certs = t.make_certs(os.path.join(workdir, "certs"))
    kport = h.free_port(host=OP_IP, tcp=False)
    tls_port = h.free_port(host=OP_IP, udp=False)
    pstn_port = h.free_port()
    kam = h.Kamailio(os.path.join(h.HERE, "kamailio-operator.cfg"), {
        "DOMAIN": OP_DOMAIN, "USER": TRUNK_USER, "PASSWORD": TRUNK_PASSWORD,
        "TRUNK_AOR": "sip:%s@%s" % (TRUNK_USER, OP_DOMAIN),
        "PSTN": "127.0.0.1:%d" % pstn_port, "AUTH_SECRET": "operator-" + h.SECRET,
        "TLS_PORT": tls_port, "TLS_CFG": write_kamailio_tls_cfg(workdir, certs),
    }, name="operator-tls", host=OP_IP, port=kport, defines=["WITH_TLS"])
    rogue = SServer(certs["rogue"], certs["rogue.key"], workdir)
    proxy = "sip:%s:%d;transport=tls" % (OP_IP, tls_port)
    client_tls = {"ca": certs["ca"], "certificate": certs["client"],
                  "private_key": certs["client.key"], "server_name": "localhost"}
    relais = h.Relais(name="trunk-tls", config={
        "calls": CALLS,
        "trunks": {
            "operator": {"proxy": proxy, "domain": OP_DOMAIN, "username": TRUNK_USER,
                         "password": TRUNK_PASSWORD, "register": True, "expires": 300,
                         "addresses": [OP_IP], "tls": client_tls},
            # The operator's own certificate chains to the CA but does not name this host.
            "wrongname": {"proxy": proxy, "domain": OP_DOMAIN,
                          "tls": dict(client_tls, server_name="operator.example.net")},
            # No client certificate: the operator requires one.
            "nocert": {"proxy": proxy, "domain": OP_DOMAIN,
                       "tls": {"ca": certs["ca"], "server_name": "localhost"}},
            "rogue": {"proxy": "sip:127.0.0.1:%d;transport=tls" % rogue.port, "domain": OP_DOMAIN,
                      "tls": {"ca": certs["ca"]}},
        },
    }, script=SCRIPT)
    state = {}

    def registers_over_tls():
        line = relais.wait_log("event=trunk.registered", timeout=15, what="trunk registration over TLS")
        h.log("relais: %s" % line)
        up = [l for l in relais.log_lines() if "event=trunk.link_up" in l and "trunk=operator" in l]
        if not up or "peer=tls:%s:%d" % (OP_IP, tls_port) not in up[0]:
            h.fail("no trunk.link_up to tls:%s:%d: %s" % (OP_IP, tls_port, up))
        local = up[0].split("local=")[1].split()[0]
        state["local"] = local
        connected = [l for l in relais.log_lines() if "event=edge.connected" in l
                     and "peer=tls:%s:%d" % (OP_IP, tls_port) in l]
        if not connected or "version=TLSv1." not in connected[0]:
            h.fail("no TLS handshake logged toward the operator: %s" % connected)
        got = kam.contacts_of(TRUNK_USER)
        h.log("operator usrloc %s: %s" % (TRUNK_USER, got))
        contact = "sip:%s@%s;transport=tls" % (TRUNK_USER, local)
        if h.find_contact(got, contact)[0] is None:
            h.fail("operator has no binding %s (has %s)\n%s" % (contact, got, evidence(kam, 0, relais, 0)))
        ops = operator_lines(kam)
        if not any("request REGISTER" in l and "proto tls" in l and "from 127.0.0.1:%s" % local.split(":")[1] in l
                   for l in ops):
            h.fail("the operator did not log the REGISTER over TLS from %s:\n  %s" % (local, "\n  ".join(ops[-20:])))

    def outbound_call():
        _, _, report, kmark = call_to_pstn(relais, kam, pstn_port,
                                           "outbound call 100 -> trunk:operator/%s over TLS" % MOBILE)
        ops = operator_lines(kam, kmark)
        src = "from 127.0.0.1:%s proto tls" % state["local"].split(":")[1]
        for method in ("INVITE", "ACK", "BYE"):
            if not any(("request %s" % method) in l and src in l for l in ops):
                h.fail("the operator got no %s over relais's TLS connection (%s)\n%s" % (method, src, report))
        if any("request" in l and "proto udp" in l and "from 127.0.0.1:%d" % relais.port in l for l in ops):
            h.fail("relais sent to the TLS trunk over UDP as well\n" + report)

    def inbound_call():
        kmark, rmark = kam.log_mark(), relais.log_mark()
        uas_port = h.free_port()
        h.register_from_port(relais, DID, uas_port)
        uas = h.sipp_uas("call_uas_answer.xml", port=uas_port, timeout=15)
        uac = h.start_sipp("%s:%d" % (OP_IP, kport), os.path.join(h.SCENARIOS, "call_uac_basic.xml"),
                           ["-i", "127.0.0.1", "-p", str(h.free_port()),
                            "-mp", str(h.free_media_port()), "-m", "1", "-s", DID,
                            "-key", "caller", PSTN_CALLER, "-key", "domain", OP_DOMAIN], timeout=15)
        ru, (rs,) = h.finish_call(uac, [uas])
        report = evidence(kam, kmark, relais, rmark, [ru, rs], ["PSTN caller", "user 100"])
        h.log(report)
        if ru.rc != 0 or rs.rc != 0:
            h.fail("inbound call PSTN -> operator -> relais (TLS) -> %s failed\n%s" % (DID, report))
        logs = h.script_logs(relais, rmark)
        if not any(l.startswith("trunk-tls invite ruri=%s" % DID) and "from_trunk=operator" in l
                   and "transport=tls" in l for l in logs):
            h.fail("script did not see the operator's call over TLS with from_trunk=operator: %s" % logs)
        # Over the connection relais opened, not a new one to a listener (relais has no TLS one).
        opened = [l for l in relais.log_since(rmark) if "event=edge.open" in l]
        if opened:
            h.fail("the operator's INVITE came over a new connection: %s" % opened)

    def refusals():
        lines = relais.log_lines()

        def failed(trunk, needle, event="event=trunk.link_failed"):
            got = [l for l in lines if event in l and "trunk=%s" % trunk in l]
            if not got:
                h.fail("no %s for %s" % (event, trunk))
            if not any(needle in l for l in got):
                h.fail("trunk %s failed for another reason than %r: %s" % (trunk, needle, got[0]))
            h.log("%s: %s" % (trunk, got[0]))
            attempts = [l for l in lines if "event=trunk.link_connecting" in l and "trunk=%s" % trunk in l]
            # 1 s, then 2 s, 4 s... between attempts: at most 4 in the first ~8 s.
            if len(attempts) > 5:
                h.fail("trunk %s retried %d times: no backoff" % (trunk, len(attempts)))
            return got

        for trunk, why in (("rogue", "certificate verify failed (unable to get local issuer certificate)"),
                           ("wrongname", "certificate verify failed (hostname mismatch)")):
            failed(trunk, why)
            if any("event=trunk.link_up" in l and "trunk=%s" % trunk in l for l in lines):
                h.fail("trunk %s came up" % trunk)
        # With TLS 1.3 the client finishes its handshake before the server checks the client
        # certificate: the operator's refusal arrives as an alert right after.
        failed("nocert", "alert certificate required", "event=trunk.link_down")
        if rogue.received():
            h.fail("the rogue server received bytes after the handshake: %r" % rogue.received()[:200])
        if "alert" not in rogue.errors():
            h.fail("the rogue server did not see relais abort the handshake: %s" % rogue.errors()[-400:])
        ops = operator_lines(kam)
        if any("wrongname" in l or "nocert" in l for l in ops):
            h.fail("a refused trunk's request reached the operator")

    def call_to_refused_trunk():
        rmark = relais.log_mark()
        uac = h.sipp_uac(relais, "call_uac_fail.xml", "8123", caller="100", timeout=10)
        t0 = time.monotonic()
        ru = uac.wait()
        final = [m for _, m in h.sipp_messages(ru, "received") if m.status and m.status >= 300]
        h.log("caller got %s in %.1f s" % (final[0].first_line if final else None, time.monotonic() - t0))
        if ru.rc != 0 or not final or final[0].status != 503:
            h.fail("a call to the rogue trunk did not fail with 503\n%s\n%s" % (
                h.sipp_summary(ru), "\n".join(relais.log_since(rmark)[-20:])))
        if not any("event=call.trunk_link_down" in l and "trunk=rogue" in l for l in relais.log_since(rmark)):
            h.fail("no call.trunk_link_down logged")
        if rogue.received():
            h.fail("the rogue server received SIP: %r" % rogue.received()[:200])

    try:
        with kam:
            if not h.tcp_port_open(tls_port, OP_IP):
                h.fail("kamailio does not listen for TLS on %s:%d\n%s" % (OP_IP, tls_port, kam.log_tail()))
            started = checks.run("relais starts with four TLS trunks", relais.start)
            for name, fn in [
                ("TLS link up, operator certificate verified, REGISTER over it", registers_over_tls),
                ("outbound call through the TLS trunk to the PSTN", outbound_call),
                ("inbound call from the operator over relais's TLS connection", inbound_call),
                ("rogue CA, wrong name and missing client certificate are refused", refusals),
                ("a call to a trunk whose TLS link is down fails with 503", call_to_refused_trunk),
            ]:
                checks.run(name, fn if started else h.fail, *(() if started else ("relais did not start",)))
            if relais.alive():
                relais.stop()
            if checks.failed():
                h.log("=== kamailio log (last 80 lines)\n" + kam.log_tail(80))
    finally:
        rogue.stop()


if __name__ == "__main__":
    h.main(test)
