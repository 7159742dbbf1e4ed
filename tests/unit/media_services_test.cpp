// media_services_test.cpp — the media verbs over ng without sockets: which participant and
// codec a command targets, the durations replied, the errors of the contract, and the
// recording file's life (.part while recording, renamed on stop or delete).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "bencode.hpp"
#include "media_audio_test_util.hpp"
#include "media_log.hpp"
#include "media_services.hpp"
#include "ng_commands.hpp"
#include "session.hpp"

using namespace relais::media;
using relais::bencode::Value;

namespace {

class RecordingPlane : public MediaPlane {
 public:
  std::optional<PairHandle> create_pair(const PairSpec& spec, std::string&) override {
    PairHandle h;
    h.id = next_id++;
    h.port[0] = static_cast<uint16_t>(30000 + 4 * h.id);
    h.port[1] = static_cast<uint16_t>(h.port[0] + 2);
    h.stats = std::make_shared<PairStats>();
    specs[h.id] = spec;
    return h;
  }
  void update_pair(uint64_t id, const PairSpec& spec) override { specs[id] = spec; }
  void release_pair(uint64_t id) override { released.push_back(id); }
  void media_command(uint64_t id, MediaCommand cmd) override { commands.emplace_back(id, std::move(cmd)); }

  std::map<uint64_t, PairSpec> specs;
  std::vector<std::pair<uint64_t, MediaCommand>> commands;
  std::vector<uint64_t> released;
  uint64_t next_id = 1;
};

const char* kOffer =
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 5000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
// relais answering itself: no destination, PCMU and telephone-event 100.
const char* kSelfAnswer =
    "v=0\r\no=- 2 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=audio 9 RTP/AVP 0 100\r\na=rtpmap:100 telephone-event/8000\r\n";

struct Fixture {
  RecordingPlane plane;
  SessionManager sessions{plane, "192.0.2.1"};
  MediaServices media{sessions, plane, nullptr};
  NgCommands commands{sessions, &media};
  sockaddr_in peer{};
  media_test::TempDir dir;

  Fixture() {
    set_log_level(LogLevel::warn);
    peer.sin_family = AF_INET;
    peer.sin_port = htons(5060);
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    REQUIRE(run({{"command", s("offer")}, {"call-id", s("c1")}, {"from-tag", s("A")}, {"sdp", s(kOffer)}})
                .get_string("result") == "ok");
    REQUIRE(run({{"command", s("answer")}, {"call-id", s("c1")}, {"from-tag", s("A")}, {"to-tag", s("B")},
                 {"sdp", s(kSelfAnswer)}})
                .get_string("result") == "ok");
  }

  Value run(std::initializer_list<std::pair<const char*, Value>> kv) {
    Value r = Value::make_dict();
    for (auto& [k, v] : kv) r[k] = v;
    return commands.execute(r, peer, 1'000'000'000);
  }
  static Value s(const std::string& v) { return Value::string(v); }
  static Value i(int64_t v) { return Value::integer(v); }

  std::string wav(const std::string& name, double seconds, int rate) {
    SF_INFO info{};
    info.samplerate = rate;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    std::string path = dir.file(name);
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    std::vector<int16_t> x(static_cast<size_t>(seconds * rate), 100);
    sf_writef_short(f, x.data(), static_cast<sf_count_t>(x.size()));
    sf_close(f);
    return path;
  }
};

}  // namespace

TEST_CASE("the SDP gives each side its G.711 choice and telephone-event type; 0.0.0.0 is no destination") {
  Fixture f;
  const PairSpec& spec = f.plane.specs[1];
  CHECK(spec.side[0].g711_pt == 8);
  CHECK(spec.side[0].g711_alaw);
  CHECK(spec.side[0].te_pt == 101);
  CHECK(spec.side[1].g711_pt == 0);
  CHECK_FALSE(spec.side[1].g711_alaw);
  CHECK(spec.side[1].te_pt == 100);
  CHECK(spec.side[1].rtp.sin_port == 0);   // c=0.0.0.0 port 9: never sent to
  CHECK(spec.side[1].rtcp.sin_port == 0);
}

TEST_CASE("play media targets the from-tag's side with that side's first G.711 and replies the duration") {
  Fixture f;
  std::string a = f.wav("a.wav", 1.0, 8000), b = f.wav("b.wav", 0.5, 16000);
  Value r = f.run({{"command", Fixture::s("play media")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("A")},
                   {"file", Fixture::s(a)}});
  REQUIRE(r.get_string("result") == "ok");
  CHECK(r.find("duration")->num == 1000);
  REQUIRE(f.plane.commands.size() == 1);
  const MediaCommand& c = f.plane.commands[0].second;
  CHECK(c.kind == MediaCommand::Kind::play);
  CHECK(c.side == 0);
  CHECK(c.codec.pt == 8);
  CHECK(c.codec.alaw);
  CHECK(c.files.size() == 1);

  Value list = Value::make_list();
  list.list = {Fixture::s(a), Fixture::s(b)};
  r = f.run({{"command", Fixture::s("play media")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("B")},
             {"file", list}, {"repeat-times", Fixture::i(2)}});
  REQUIRE(r.get_string("result") == "ok");
  CHECK(r.find("duration")->num == 3000);
  CHECK(f.plane.commands[1].second.side == 1);
  CHECK(f.plane.commands[1].second.codec.pt == 0);
  CHECK(f.media.cache().loads() == 2);  // a.wav came from the cache the second time

  r = f.run({{"command", Fixture::s("play media")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("A")},
             {"tone", Fixture::s("busy")}, {"repeat-times", Fixture::i(0)}});
  CHECK(r.find("duration")->num == -1);
  r = f.run({{"command", Fixture::s("play media")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("A")},
             {"tone", Fixture::s("ringback")}, {"duration", Fixture::i(2500)}});
  CHECK(r.find("duration")->num == 2500);
  CHECK(f.plane.commands.back().second.tone_samples == 20000);
  Value q = f.run({{"command", Fixture::s("query")}, {"call-id", Fixture::s("c1")}});
  CHECK(q.find("media")->find("playing")->list.size() == 2);
  f.run({{"command", Fixture::s("stop media")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("A")}});
  q = f.run({{"command", Fixture::s("query")}, {"call-id", Fixture::s("c1")}});
  CHECK(q.find("media")->find("playing")->list.size() == 1);
}

TEST_CASE("media verbs answer the contract's errors") {
  Fixture f;
  auto reason = [&](std::initializer_list<std::pair<const char*, Value>> kv) {
    return f.run(kv).get_string("error-reason");
  };
  using F = Fixture;
  CHECK(reason({{"command", F::s("play media")}, {"call-id", F::s("nope")}, {"from-tag", F::s("A")},
                {"tone", F::s("beep")}}) == "Unknown call-id");
  CHECK(reason({{"command", F::s("play media")}, {"call-id", F::s("c1")}, {"from-tag", F::s("Z")},
                {"tone", F::s("beep")}}) == "Unknown from-tag");
  CHECK(reason({{"command", F::s("play media")}, {"call-id", F::s("c1")}, {"from-tag", F::s("A")},
                {"file", F::s(f.dir.file("missing.wav"))}}) == "Cannot open media file");
  CHECK(reason({{"command", F::s("play media")}, {"call-id", F::s("c1")}, {"from-tag", F::s("A")}}) ==
        "need one of file or tone");
  CHECK(reason({{"command", F::s("play media")}, {"call-id", F::s("c1")}, {"from-tag", F::s("A")},
                {"tone", F::s("beep")}, {"repeat-times", F::s("many")}}) == "bad repeat-times");
  CHECK(reason({{"command", F::s("play DTMF")}, {"call-id", F::s("c1")}, {"from-tag", F::s("A")},
                {"code", F::s("E")}}) == "Invalid DTMF code");
  CHECK(reason({{"command", F::s("stop recording")}, {"call-id", F::s("c1")}}) == "Not recording");
  CHECK(reason({{"command", F::s("start recording")}, {"call-id", F::s("c1")}}) == "missing output-destination");
  CHECK(reason({{"command", F::s("start recording")}, {"call-id", F::s("c1")},
                {"output-destination", F::s(f.dir.file("no/such/dir.wav"))}}) == "Cannot open output file");
  CHECK(f.plane.commands.empty());
  // Without media services the verbs exist but say so.
  NgCommands bare(f.sessions);
  Value r = Value::make_dict();
  r["command"] = F::s("play media");
  CHECK(bare.execute(r, f.peer, 0).get_string("error-reason") == "media services unavailable");
}

TEST_CASE("a side offering no G.711 cannot be played to") {
  Fixture f;
  const char* opus = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
                     "m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n";
  f.run({{"command", Fixture::s("offer")}, {"call-id", Fixture::s("c2")}, {"from-tag", Fixture::s("X")},
         {"sdp", Fixture::s(opus)}});
  Value r = f.run({{"command", Fixture::s("play media")}, {"call-id", Fixture::s("c2")}, {"from-tag", Fixture::s("X")},
                   {"tone", Fixture::s("beep")}});
  CHECK(r.get_string("error-reason") == "No G.711 codec");
}

TEST_CASE("play DTMF bounds duration and volume and uses the side's telephone-event") {
  Fixture f;
  Value r = f.run({{"command", Fixture::s("play DTMF")}, {"call-id", Fixture::s("c1")}, {"from-tag", Fixture::s("B")},
                   {"code", Fixture::s("#")}, {"duration", Fixture::i(5)}, {"volume", Fixture::i(99)}});
  REQUIRE(r.get_string("result") == "ok");
  const MediaCommand& c = f.plane.commands.back().second;
  CHECK(c.kind == MediaCommand::Kind::dtmf);
  CHECK(c.side == 1);
  CHECK(c.key == '#');
  CHECK(c.codec.te_pt == 100);
  CHECK(c.duration_ms == 40);
  CHECK(c.volume == 63);
}

TEST_CASE("a recording writes <path>.part and renames it on stop; delete finalises too") {
  Fixture f;
  std::string path = f.dir.file("rec.wav");
  Value r = f.run({{"command", Fixture::s("start recording")}, {"call-id", Fixture::s("c1")},
                   {"from-tag", Fixture::s("A")}, {"output-destination", Fixture::s(path)},
                   {"silence-ms", Fixture::i(800)}});
  REQUIRE(r.get_string("result") == "ok");
  const MediaCommand& c = f.plane.commands.back().second;
  CHECK(c.kind == MediaCommand::Kind::record_start);
  CHECK(c.record_sides == 1);
  CHECK(c.silence_ms == 800);
  CHECK(access((path + ".part").c_str(), F_OK) == 0);
  Value q = f.run({{"command", Fixture::s("query")}, {"call-id", Fixture::s("c1")}});
  CHECK(q.find("media")->get_string("recording") == path);
  r = f.run({{"command", Fixture::s("stop recording")}, {"call-id", Fixture::s("c1")}});
  REQUIRE(r.get_string("result") == "ok");
  CHECK(r.get_string("file") == path);
  CHECK(r.find("duration")->num == 0);
  CHECK(access((path + ".part").c_str(), F_OK) != 0);
  CHECK(access(path.c_str(), F_OK) == 0);

  std::string mixed = f.dir.file("mixed.wav");
  r = f.run({{"command", Fixture::s("start recording")}, {"call-id", Fixture::s("c1")},
             {"output-destination", Fixture::s(mixed)}});
  REQUIRE(r.get_string("result") == "ok");
  CHECK(f.plane.commands.back().second.record_sides == 3);
  f.run({{"command", Fixture::s("delete")}, {"call-id", Fixture::s("c1")}});
  CHECK(access((mixed + ".part").c_str(), F_OK) != 0);
  CHECK(access(mixed.c_str(), F_OK) == 0);
}
