// media_ng_test.cpp — relais-media's control logic without sockets: ng datagrams through
// NgControl (cookie, bencode, cache) and NgCommands over a SessionManager on a fake plane.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <map>
#include <string>

#include "bencode.hpp"
#include "media_log.hpp"
#include "ng_commands.hpp"
#include "ng_control.hpp"
#include "session.hpp"

using namespace relais::media;
using relais::bencode::Value;
namespace bencode = relais::bencode;

namespace {

// Hands out predictable ports and remembers what the sessions asked for.
class FakePlane : public MediaPlane {
 public:
  std::optional<PairHandle> create_pair(const PairSpec& spec, std::string& error) override {
    if (fail_next) {
      error = "port range exhausted";
      return std::nullopt;
    }
    PairHandle h;
    h.id = next_id++;
    h.port[0] = static_cast<uint16_t>(30000 + 4 * (h.id - 1));
    h.port[1] = static_cast<uint16_t>(h.port[0] + 2);
    auto stats = std::make_shared<PairStats>();
    h.stats = stats;
    live[h.id] = stats;
    specs[h.id] = spec;
    return h;
  }
  void update_pair(uint64_t id, const PairSpec& spec) override { specs[id] = spec; ++updates; }
  void release_pair(uint64_t id) override { live.erase(id); }

  std::map<uint64_t, std::shared_ptr<PairStats>> live;
  std::map<uint64_t, PairSpec> specs;
  uint64_t next_id = 1;
  int updates = 0;
  bool fail_next = false;
};

const std::string kSdpA =
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 5000 RTP/AVP 0\r\nm=video 5002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
const std::string kSdpB =
    "v=0\r\no=- 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

struct Fixture {
  FakePlane plane;
  SessionManager sessions{plane, "192.0.2.1"};
  NgCommands commands{sessions};
  NgControl control{commands};
  sockaddr_in peer{};
  int64_t now = 1'000'000'000;

  Fixture() {
    set_log_level(LogLevel::warn);  // the event lines are for operators, not test output
    peer.sin_family = AF_INET;
    peer.sin_port = htons(5060);
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
  }

  Value run(const Value& req) { return commands.execute(req, peer, now); }

  Value offer(const std::string& call, const std::string& from, const std::string& sdp, const std::string& to = "") {
    Value r = Value::make_dict();
    r["command"] = Value::string("offer");
    r["call-id"] = Value::string(call);
    r["from-tag"] = Value::string(from);
    if (!to.empty()) r["to-tag"] = Value::string(to);
    r["sdp"] = Value::string(sdp);
    r["replace"] = Value::make_list();
    r["replace"].list.push_back(Value::string("origin"));
    return run(r);
  }
  Value answer(const std::string& call, const std::string& from, const std::string& to, const std::string& sdp) {
    Value r = Value::make_dict();
    r["command"] = Value::string("answer");
    r["call-id"] = Value::string(call);
    r["from-tag"] = Value::string(from);
    r["to-tag"] = Value::string(to);
    r["sdp"] = Value::string(sdp);
    return run(r);
  }
  Value simple(const std::string& command, const std::string& call = "") {
    Value r = Value::make_dict();
    r["command"] = Value::string(command);
    if (!call.empty()) r["call-id"] = Value::string(call);
    return run(r);
  }
};

std::string reason(const Value& v) { return v.get_string("error-reason"); }

}  // namespace

TEST_CASE("ping answers pong") {
  Fixture f;
  Value r = f.simple("ping");
  CHECK(r.get_string("result") == "pong");
  CHECK(bencode::encode(r) == "d6:result4:ponge");
}

TEST_CASE("an offer allocates one pair per m= line and announces the answerer-facing ports") {
  Fixture f;
  Value r = f.offer("c1", "A", kSdpA);
  REQUIRE(r.get_string("result") == "ok");
  std::string sdp = r.get_string("sdp");
  CHECK(sdp.find("c=IN IP4 192.0.2.1\r\n") != std::string::npos);
  CHECK(sdp.find("o=- 1 1 IN IP4 192.0.2.1\r\n") != std::string::npos);
  CHECK(sdp.find("m=audio 30002 RTP/AVP 0\r\n") != std::string::npos);   // port[1] of pair 1
  CHECK(sdp.find("a=rtcp:30003\r\n") != std::string::npos);
  CHECK(sdp.find("m=video 30006 RTP/AVP 96\r\n") != std::string::npos);  // port[1] of pair 2
  REQUIRE(f.plane.live.size() == 2);
  const PairSpec& spec = f.plane.specs[1];
  CHECK(ntohs(spec.side[0].rtp.sin_port) == 5000);
  CHECK(ntohs(spec.side[0].rtcp.sin_port) == 5001);
  CHECK(spec.side[1].rtp.sin_port == 0);  // the answerer is not known yet
  CHECK(f.plane.specs[2].side[0].clock_rate == 90000);
}

TEST_CASE("the answer fills in the answerer and announces the offerer-facing ports") {
  Fixture f;
  REQUIRE(f.offer("c1", "A", kSdpA).get_string("result") == "ok");
  Value r = f.answer("c1", "A", "B", kSdpB);
  REQUIRE(r.get_string("result") == "ok");
  std::string sdp = r.get_string("sdp");
  CHECK(sdp.find("m=audio 30000 RTP/AVP 0\r\n") != std::string::npos);
  CHECK(sdp.find("m=video 30004 RTP/AVP 96\r\n") != std::string::npos);
  const PairSpec& spec = f.plane.specs[1];
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &spec.side[1].rtp.sin_addr, ip, sizeof ip);
  CHECK(std::string(ip) == "10.0.0.2");
  CHECK(ntohs(spec.side[1].rtp.sin_port) == 6000);
  const Call* call = f.sessions.find("c1");
  REQUIRE(call);
  CHECK(call->tag[0] == "A");
  CHECK(call->tag[1] == "B");
}

TEST_CASE("a re-offer from either side keeps the ports") {
  Fixture f;
  std::string first = f.offer("c1", "A", kSdpA).get_string("sdp");
  f.answer("c1", "A", "B", kSdpB);
  CHECK(f.offer("c1", "A", kSdpA, "B").get_string("sdp") == first);
  // The callee re-INVITEs: its offer goes to A, so it announces the A-facing ports.
  Value r = f.offer("c1", "B", kSdpB, "A");
  REQUIRE(r.get_string("result") == "ok");
  CHECK(r.get_string("sdp").find("m=audio 30000 ") != std::string::npos);
  Value a = f.answer("c1", "B", "A", kSdpA);
  REQUIRE(a.get_string("result") == "ok");
  CHECK(a.get_string("sdp").find("m=audio 30002 ") != std::string::npos);
  CHECK(f.plane.live.size() == 2);
  CHECK(f.plane.next_id == 3);
}

TEST_CASE("flags reach the plane: strict source, asymmetric, rtcp-mux, sip source address") {
  Fixture f;
  Value r = Value::make_dict();
  r["command"] = Value::string("offer");
  r["call-id"] = Value::string("c1");
  r["from-tag"] = Value::string("A");
  r["sdp"] = Value::string(kSdpA);
  r["flags"] = Value::make_list();
  r["flags"].list.push_back(Value::string("strict source"));
  r["flags"].list.push_back(Value::string("SIP-source-address"));
  r["received-from"] = Value::make_list();
  r["received-from"].list.push_back(Value::string("IP4"));
  r["received-from"].list.push_back(Value::string("198.51.100.9"));
  r["rtcp-mux"] = Value::make_list();
  r["rtcp-mux"].list.push_back(Value::string("offer"));
  r["ICE"] = Value::string("remove");
  r["transport-protocol"] = Value::string("RTP/AVP");
  Value reply = f.run(r);
  REQUIRE(reply.get_string("result") == "ok");
  CHECK(f.plane.specs[1].strict_source);
  CHECK_FALSE(f.plane.specs[1].asymmetric);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &f.plane.specs[1].side[0].rtp.sin_addr, ip, sizeof ip);
  CHECK(std::string(ip) == "198.51.100.9");
  CHECK(reply.get_string("sdp").find("a=rtcp-mux\r\n") != std::string::npos);
  r["transport-protocol"] = Value::string("UDP/TLS/RTP/SAVPF");  // DTLS-SRTP: not ours
  CHECK(reason(f.run(r)).find("transport-protocol") != std::string::npos);
}

TEST_CASE("query reports per-stream counters, delete releases every port") {
  Fixture f;
  f.offer("c1", "A", kSdpA);
  f.answer("c1", "A", "B", kSdpB);
  PairStats& stats = *f.plane.live[1];
  stats.side[0].packets = 50;
  stats.side[0].bytes = 50 * 172;
  stats.side[0].lost = 2;
  stats.side[0].jitter = 80;
  stats.side[1].packets = 49;
  Value q = f.simple("query", "c1");
  REQUIRE(q.get_string("result") == "ok");
  CHECK(q.find("totals")->find("RTP")->find("packets")->num == 99);
  const Value* streams = q.find("streams");
  REQUIRE(streams);
  REQUIRE(streams->list.size() == 4);
  const Value& a = streams->list[0];
  CHECK(a.get_string("tag") == "A");
  CHECK(a.find("lost")->num == 2);
  CHECK(a.find("jitter")->num == 80);
  CHECK(a.find("jitter-ms")->num == 10);  // 80 ticks at 8 kHz
  CHECK(q.find("tags")->find("B"));
  Value l = f.simple("list");
  REQUIRE(l.find("calls")->list.size() == 1);
  CHECK(l.find("calls")->list[0].str == "c1");
  Value d = f.simple("delete", "c1");
  CHECK(d.get_string("result") == "ok");
  CHECK(d.find("totals")->find("RTP")->find("packets")->num == 99);
  CHECK(f.plane.live.empty());
  CHECK(reason(f.simple("query", "c1")) == "Unknown call-id");
  CHECK(f.simple("list").find("calls")->list.empty());
}

TEST_CASE("errors: unknown command, missing keys, unknown call, bad SDP, full range") {
  Fixture f;
  CHECK(reason(f.simple("dance")) == "Unrecognized command");
  CHECK(reason(f.simple("query")) == "missing call-id");
  CHECK(reason(f.simple("delete", "nope")) == "Unknown call-id");
  Value no_command = Value::make_dict();
  CHECK(reason(f.run(no_command)) == "missing command");
  CHECK(reason(f.run(Value::integer(3))) == "request is not a dictionary");
  CHECK(reason(f.offer("c1", "A", "not sdp")).find("bad SDP") == 0);
  CHECK(f.sessions.size() == 0);  // a refused offer leaves no call behind
  CHECK(reason(f.answer("nope", "A", "B", kSdpB)) == "Unknown call-id");
  f.offer("c1", "A", kSdpA);
  CHECK(reason(f.answer("c1", "X", "B", kSdpB)) == "Unknown from-tag");
  f.plane.fail_next = true;
  CHECK(reason(f.offer("c2", "A", kSdpA)).find("cannot allocate") == 0);
  CHECK(f.sessions.find("c2") == nullptr);
  Value r = Value::make_dict();
  r["command"] = Value::string("offer");
  r["call-id"] = Value::string(std::string(1000, 'x'));
  CHECK(reason(f.run(r)) == "call-id too long");
}

TEST_CASE("ng datagrams: the cookie comes back, retransmissions hit the cache") {
  Fixture f;
  std::string offer = "abc123 d7:call-id2:c17:command5:offer8:from-tag1:A3:sdp" +
                      std::to_string(kSdpA.size()) + ":" + kSdpA + "e";
  std::string first = f.control.handle(offer, f.peer, f.now);
  REQUIRE(first.rfind("abc123 d", 0) == 0);
  CHECK(first.find("6:result2:ok") != std::string::npos);
  CHECK(f.plane.next_id == 3);
  f.now += 1'000'000'000;
  CHECK(f.control.handle(offer, f.peer, f.now) == first);
  CHECK(f.plane.next_id == 3);  // not executed twice
  // After 30 s the cookie is forgotten: a late duplicate is a re-offer (same ports).
  f.now += 31'000'000'000;
  std::string late = f.control.handle(offer, f.peer, f.now);
  CHECK(late == first);
  CHECK(f.plane.updates == 2);
}

TEST_CASE("ng datagrams: junk is answered with an error or dropped when no cookie") {
  Fixture f;
  CHECK(f.control.handle("", f.peer, f.now).empty());
  CHECK(f.control.handle("nospace", f.peer, f.now).empty());
  CHECK(f.control.handle(" d7:command4:pinge", f.peer, f.now).empty());
  CHECK(f.control.handle(std::string("c\x01 de", 4), f.peer, f.now).empty());
  CHECK(f.control.handle("c1 d7:command4:pinge", f.peer, f.now) == "c1 d6:result4:ponge");
  std::string r = f.control.handle("c2 d7:command4:ping", f.peer, f.now);
  CHECK(r.rfind("c2 d", 0) == 0);
  CHECK(r.find("malformed bencode") != std::string::npos);
  CHECK(f.control.handle("c3 " + std::string(5000, 'l'), f.peer, f.now).find("error") != std::string::npos);
  // A controller's reply to our notification is not a request: no reply, no ping-pong.
  CHECK(f.control.handle("n1 d6:result2:oke", f.peer, f.now).empty());
}

TEST_CASE("the reply cache stays bounded under a flood of distinct cookies") {
  Fixture f;
  for (int i = 0; i < 20000; ++i)
    f.control.handle("k" + std::to_string(i) + " d7:command4:pinge", f.peer, f.now + i);
  CHECK(f.control.cache_bytes() <= NgControl::kCacheMaxBytes);
  f.now += 31'000'000'000;
  f.control.handle("late d7:command4:pinge", f.peer, f.now + 40'000'000'000);
  CHECK(f.control.cache_entries() == 1);
}

TEST_CASE("an idle call expires and the notification names it") {
  Fixture f;
  f.offer("c1", "A", kSdpA);
  f.answer("c1", "A", "B", kSdpB);
  f.offer("c2", "X", kSdpA);
  f.plane.live[3]->last_packet_ns = f.now + 50'000'000'000;  // c2 had packets later
  auto expired = f.sessions.expire(f.now + 61'000'000'000, 60'000'000'000);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].call_id == "c1");
  CHECK(ntohs(expired[0].controller.sin_port) == 5060);
  CHECK(f.sessions.find("c1") == nullptr);
  CHECK(f.sessions.find("c2") != nullptr);
  std::string note = f.control.timeout_notification(expired[0]);
  size_t space = note.find(' ');
  REQUIRE(space != std::string::npos);
  CHECK(note.substr(space + 1) == "d7:call-id2:c17:command7:timeout8:from-tag1:A6:to-tag1:Be");
}
