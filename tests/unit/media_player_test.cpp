// media_player_test.cpp — what MediaOutput puts on the wire: 20 ms G.711 frames on an absolute
// schedule with our own SSRC, +1 sequence and +160 timestamp, a marker on the first packet, the
// end of a prompt reported once; RFC 4733 keys with a fixed event timestamp and three end
// reports; in-band keys when there is no telephone-event.
#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "g711.hpp"
#include "media_audio_test_util.hpp"
#include "media_player.hpp"
#include "rtp_packet.hpp"

using namespace relais::media;

namespace {
constexpr int64_t kMs = 1'000'000;

struct Capture : FrameSink {
  std::vector<std::vector<uint8_t>> packets;
  void packet(const uint8_t* data, size_t len) override { packets.emplace_back(data, data + len); }
  RtpHeader header(size_t i) const {
    RtpHeader h;
    rtp_parse(packets[i].data(), packets[i].size(), h);
    return h;
  }
};

PcmBuffer pcm(size_t n, int16_t value) { return std::make_shared<std::vector<int16_t>>(n, value); }
}  // namespace

TEST_CASE("a prompt goes out as paced 20 ms frames and its end is reported once") {
  MediaOutput out;
  Capture cap;
  std::vector<PcmBuffer> files{pcm(800, 1000), pcm(800, -1000)};  // 2 × 100 ms
  out.play(std::make_unique<PcmPlaylist>(files, 1), 42, OutputCodec{8, true, -1}, 1000 * kMs);
  CHECK(out.next_due() == 1000 * kMs);
  CHECK(out.tick(1000 * kMs, cap) == 0);
  CHECK(cap.packets.size() == 1);
  CHECK(out.tick(1039 * kMs, cap) == 0);  // 20 ms is due, 40 ms not yet
  CHECK(cap.packets.size() == 2);
  CHECK(out.next_due() == 1040 * kMs);
  uint64_t done = 0;
  for (int64_t t = 1050 * kMs; t <= 1300 * kMs; t += 20 * kMs)
    if (uint64_t d = out.tick(t, cap)) {
      CHECK(done == 0);
      done = d;
    }
  CHECK(done == 42);
  REQUIRE(cap.packets.size() == 10);
  CHECK_FALSE(out.active());
  CHECK(out.next_due() == INT64_MAX);
  auto h0 = cap.header(0);
  CHECK(h0.marker);
  CHECK(h0.pt == 8);
  CHECK(cap.packets[0].size() == 172);
  for (size_t i = 1; i < cap.packets.size(); ++i) {
    auto h = cap.header(i);
    CHECK_FALSE(h.marker);
    CHECK(h.ssrc == h0.ssrc);
    CHECK(static_cast<uint16_t>(h.seq - h0.seq) == i);
    CHECK(h.timestamp - h0.timestamp == 160 * i);
  }
  CHECK(cap.packets[0][12] == linear_to_alaw(1000));
  CHECK(cap.packets[9][12] == linear_to_alaw(-1000));
  CHECK(out.tick(2000 * kMs, cap) == 0);
}

TEST_CASE("repeat and loop; stop ends a loop without a done report") {
  MediaOutput out;
  Capture cap;
  out.play(std::make_unique<PcmPlaylist>(std::vector<PcmBuffer>{pcm(160, 5)}, 3), 1, OutputCodec{0, false, -1}, 0);
  CHECK(out.tick(40 * kMs, cap) == 0);
  CHECK(cap.packets.size() == 3);
  CHECK(out.tick(60 * kMs, cap) == 1);  // three rounds of one frame, then the end
  MediaOutput loop;
  Capture lc;
  loop.play(std::make_unique<PcmPlaylist>(std::vector<PcmBuffer>{pcm(100, 5)}, 0), 2, OutputCodec{0, false, -1}, 0);
  for (int64_t t = 0; t <= 2000 * kMs; t += 20 * kMs) CHECK(loop.tick(t, lc) == 0);
  CHECK(lc.packets.size() == 101);
  loop.stop_prompt();
  CHECK_FALSE(loop.active());
  CHECK(loop.tick(3000 * kMs, lc) == 0);
  CHECK(lc.packets.size() == 101);
}

TEST_CASE("a worker that falls behind skips frames instead of bursting, timestamps follow the clock") {
  MediaOutput out;
  Capture cap;
  out.play(std::make_unique<PcmPlaylist>(std::vector<PcmBuffer>{pcm(80000, 1)}, 1), 1, OutputCodec{0, false, -1}, 0);
  out.tick(0, cap);
  out.tick(60 * kMs, cap);  // 3 frames due: sent (catching up a short stall)
  CHECK(cap.packets.size() == 4);
  out.tick(1000 * kMs, cap);  // 46 frames late: skipped
  CHECK(cap.packets.size() == 5);
  CHECK(cap.header(4).timestamp - cap.header(0).timestamp == 160 * 50);
}

TEST_CASE("a DTMF key goes out as RFC 4733 events: fixed timestamp, growing duration, three ends") {
  MediaOutput out;
  Capture cap;
  REQUIRE(out.queue_dtmf('#', 100, 12, OutputCodec{0, false, 101}, 0));
  for (int64_t t = 0; t <= 400 * kMs; t += 20 * kMs) out.tick(t, cap);
  REQUIRE(cap.packets.size() == 7);
  CHECK_FALSE(out.active());
  auto h0 = cap.header(0);
  CHECK(h0.marker);
  for (size_t i = 0; i < 7; ++i) {
    auto h = cap.header(i);
    CHECK(h.pt == 101);
    CHECK(h.timestamp == h0.timestamp);
    CHECK(static_cast<uint16_t>(h.seq - h0.seq) == i);
    CHECK(cap.packets[i].size() == 16);
    const uint8_t* p = cap.packets[i].data() + 12;
    CHECK(p[0] == 11);
    CHECK((p[1] & 0x3f) == 12);
    bool end = p[1] & 0x80;
    CHECK(end == (i >= 4));
    CHECK(((p[2] << 8) | p[3]) == static_cast<int>(std::min<size_t>(i + 1, 5) * 160));
  }
  CHECK_FALSE(out.queue_dtmf('x', 100, 10, OutputCodec{0, false, 101}, 0));
}

TEST_CASE("a key during a prompt pauses it; the prompt continues on the same stream") {
  MediaOutput out;
  Capture cap;
  out.play(std::make_unique<PcmPlaylist>(std::vector<PcmBuffer>{pcm(1600, 7)}, 1), 9, OutputCodec{0, false, 101}, 0);
  out.tick(0, cap);
  out.queue_dtmf('1', 40, 10, OutputCodec{0, false, 101}, 0);
  uint64_t done = 0;
  for (int64_t t = 20 * kMs; t <= 1000 * kMs && !done; t += 20 * kMs) done = out.tick(t, cap);
  CHECK(done == 9);
  size_t audio = 0, events = 0;
  for (size_t i = 0; i < cap.packets.size(); ++i) (cap.header(i).pt == 0 ? audio : events)++;
  CHECK(audio == 10);
  CHECK(events == 4);  // 40 ms: one update, then the end three times
  std::set<uint32_t> ssrcs;
  for (size_t i = 0; i < cap.packets.size(); ++i) ssrcs.insert(cap.header(i).ssrc);
  CHECK(ssrcs.size() == 1);
}

TEST_CASE("without telephone-event a key is the dual tone in the side's G.711") {
  MediaOutput out;
  Capture cap;
  REQUIRE(out.queue_dtmf('5', 100, 10, OutputCodec{0, false, -1}, 0));
  for (int64_t t = 0; t <= 400 * kMs; t += 20 * kMs) out.tick(t, cap);
  REQUIRE(cap.packets.size() == 8);  // 100 ms of tone, 60 ms of pause
  std::vector<int16_t> audio;
  for (auto& p : cap.packets) {
    CHECK(p[1] == 0x80 * (&p == &cap.packets[0]));
    for (size_t i = 12; i < p.size(); ++i) audio.push_back(ulaw_to_linear(p[i]));
  }
  CHECK(media_test::goertzel(audio.data(), 800, 770) > 2000);
  CHECK(media_test::goertzel(audio.data(), 800, 1336) > 2000);
  CHECK(media_test::rms(audio.data() + 800, 480) == 0);
}
