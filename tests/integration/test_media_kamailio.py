"""test_media_kamailio.py — interop: Kamailio 5.6.3 with its own rtpengine module drives
relais-media over the ng protocol, as it would drive rtpengine. A sipp caller (G.711 audio played
from a pcap) calls a sipp callee that echoes RTP, through Kamailio; rtpengine_manage() on the
INVITE (offer), the 200 (answer) and the BYE (delete). The test proves from relais-media's own
query statistics during the call, and from the delete it logs, that RTP went through the relay
in both directions, and that the SDP each sipp received points at the relay.

Before relais-media is trusted, one check proves the module talks to it at all (its startup
ping shows in relais-media's log as an ng request)."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

PCAP = "/usr/share/sip-tester/g711a.pcap"
FLAGS = "trust-address replace-origin replace-session-connection ICE=remove RTP/AVP"

KAMAILIO_CFG = r"""#!KAMAILIO
# A stateful proxy that anchors media in an rtpengine-compatible relay at @NG_PORT@.
debug=2
log_stderror=yes
children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
enable_sctp=no
disable_tcp=yes
listen=udp:@KAMAILIO_IP@:@KAMAILIO_PORT@
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "rtpengine.so"

modparam("rr", "append_fromtag", 1)
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:@NG_PORT@")
modparam("rtpengine", "rtpengine_tout_ms", 2000)

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        # sipp's built-in UAS does not echo Record-Route, so in-dialog requests may come
        # without our Route: they follow their Request-URI (the callee's Contact).
        loose_route();
        if (is_method("BYE")) {
            xlog("L_INFO", "MEDIA-PROXY: BYE $ci -> delete\n");
            rtpengine_manage();
        }
        route(RELAY);
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            rtpengine_manage();
            t_relay();
        }
        exit;
    }
    if (is_method("INVITE")) {
        record_route();
        xlog("L_INFO", "MEDIA-PROXY: INVITE $ci -> offer\n");
        rtpengine_manage("@FLAGS@");
        t_on_reply("MEDIA_REPLY");
        $du = "sip:127.0.0.1:@UAS_PORT@";
        route(RELAY);
    }
    sl_send_reply("405", "Method Not Allowed");
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

onreply_route[MEDIA_REPLY] {
    if (has_body("application/sdp")) {
        xlog("L_INFO", "MEDIA-PROXY: $rs reply $ci -> answer\n");
        rtpengine_manage("@FLAGS@");
    }
}
"""

UAC_XML = r"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="uac with pcap audio through a proxy">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:caller@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      Max-Forwards: 70
      From: <sip:caller@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:caller@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>

  <nop>
    <action>
      <exec play_pcap_audio="@PCAP@"/>
    </action>
  </nop>

  <pause milliseconds="4000"/>

  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      Max-Forwards: 70
      From: <sip:caller@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>

  <recv response="200" crlf="true"/>
</scenario>
"""


def write(dirpath, name, text):
    path = os.path.join(dirpath, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def sdp_of(msg):
    body = msg.body.decode("utf-8", "replace") if isinstance(msg.body, bytes) else msg.body
    return body or ""


def test(checks):
    h.require_tool("kamailio")
    h.require_tool("sipp")
    if not os.path.exists(PCAP):
        h.fail("%s is missing (package sip-tester)" % PCAP)
    with h.RelaisMedia(workers=2, timeout=30) as relay:
        work = h.make_tempdir("media-kamailio")
        uas_port = h.free_port()
        kam = h.Kamailio(write(work, "kamailio.cfg.in", KAMAILIO_CFG),
                         values={"NG_PORT": relay.ng_port, "UAS_PORT": uas_port, "FLAGS": FLAGS},
                         name="kamailio-media")
        mark = relay.log_mark()
        with kam:
            def module_pings():
                # The module pings every configured node when its workers start.
                ok = h.wait_until(lambda: relay.grep("event=ng.request command=ping", mark),
                                  timeout=8, what="the rtpengine module's ping")
                h.log("module ping seen: %s" % ok[0])
            checks.run("Kamailio's rtpengine module pings relais-media", module_pings)

            state = {}

            def call_through_relay():
                uas_media = h.free_media_port()
                uas = h.SippProc(["timeout", "-s", "INT", "-k", "5", "25", "sipp", "-sn", "uas",
                                  "-rtp_echo", "-i", "127.0.0.1", "-p", str(uas_port),
                                  "-mp", str(uas_media), "-m", "1", "-nostdin", "-trace_err",
                                  "-trace_msg", "-timeout", "22s", "-timeout_error"],
                                 h.make_tempdir("sipp-uas"), 25, port=uas_port).wait_ready()
                uac_xml = write(work, "uac_pcap.xml", UAC_XML.replace("@PCAP@", PCAP))
                uac_media = h.free_media_port()
                uac = h.start_sipp("%s:%d" % (kam.host, kam.port), uac_xml,
                                   ["-i", "127.0.0.1", "-p", str(h.free_port()), "-mp", str(uac_media),
                                    "-s", "echo", "-m", "1", "-l", "1"], timeout=25)
                # Poll relais-media while the call runs: keep the last query of the call.
                ng = relay.client()
                deadline = time.monotonic() + 20
                call_id, last = None, None
                while uac.running() and time.monotonic() < deadline:
                    calls = ng.request({"command": "list"}).get("calls", [])
                    if calls:
                        call_id = calls[0]
                        q = ng.request({"command": "query", "call-id": call_id})
                        if q.get("result") == "ok":
                            last = q
                    time.sleep(0.25)
                ru, (rs,) = h.finish_call(uac, [uas])
                ng.close()
                state.update(call_id=call_id, query=last, uac=ru, uas=rs, uac_media=uac_media,
                             uas_media=uas_media)
                if ru.rc != 0:
                    h.fail("the call failed:\n%s\nkamailio:\n%s" % (h.call_report(ru, [rs], ["callee"]),
                                                                     kam.log_tail()))
                if not last:
                    h.fail("relais-media never had the call (no offer from Kamailio?)\n%s" % relay.log_tail())

            checks.run("a sipp call with RTP through Kamailio completes", call_through_relay)

            def sdp_points_at_relay():
                ru, rs = state["uac"], state["uas"]
                invite = h.sipp_first(rs, "received", method="INVITE")
                ok200 = h.sipp_first(ru, "received", status=200, cseq_method="INVITE")
                if not invite or not ok200:
                    h.fail("missing INVITE at the callee or 200 at the caller")
                for who, msg, own in (("callee's INVITE", invite, state["uac_media"]),
                                      ("caller's 200", ok200, state["uas_media"])):
                    sdp = sdp_of(msg)
                    ports = h.sdp_media_ports(sdp)
                    if h.sdp_connection(sdp) != "127.0.0.1" or not ports or \
                            not relay.port_min <= ports[0][1] <= relay.port_max or ports[0][1] == own:
                        h.fail("%s SDP does not point at the relay (%d-%d):\n%s" % (
                            who, relay.port_min, relay.port_max, sdp))
                h.log("callee was offered %r, caller got %r" % (h.sdp_media_ports(sdp_of(invite)),
                                                                h.sdp_media_ports(sdp_of(ok200))))
            checks.run("the SDP each side received points at relais-media", sdp_points_at_relay)

            def rtp_both_ways():
                q = state["query"]
                streams = q["streams"]
                by_side = {}
                for s in streams:
                    by_side[s["tag"]] = s
                h.log("last query during the call: %r" % streams)
                if len(by_side) != 2:
                    h.fail("expected two tagged sides, got %r" % streams)
                for tag, s in by_side.items():
                    if s["packets"] < 50 or s["forwarded"] < 50:
                        h.fail("side %s: only %d packets in, %d forwarded" % (tag, s["packets"], s["forwarded"]))
                caller = [s for s in streams if s["peer"]["port"] == state["uac_media"]]
                callee = [s for s in streams if s["peer"]["port"] == state["uas_media"]]
                if not caller or not callee:
                    h.fail("latched peers are not the two sipp media ports %d/%d: %r" % (
                        state["uac_media"], state["uas_media"], [s["peer"] for s in streams]))
                line = relay.wait_log("event=call.delete call-id=%s" % state["call_id"], timeout=5)
                h.log("relais-media: %s" % line)
                m = re.search(r"packets=(\d+)", line)
                if not m or int(m.group(1)) < 100:
                    h.fail("delete reported too few packets: %s" % line)
            checks.run("RTP flowed through relais-media in both directions", rtp_both_ways)

            checks.run("relais-media is alive and answers ping afterwards",
                       lambda: relay.client().request({"command": "ping"}) == {"result": "pong"} or
                       h.fail("no pong"))


if __name__ == "__main__":
    h.main(test)
