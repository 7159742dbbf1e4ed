// media_srtp_test.cpp — SDES a=crypto reading/writing, libsrtp2 protect/unprotect per suite
// (tampering, replays, wrong keys, SSRC bound) and the per-side SDES offer/answer of a stream.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "sdes.hpp"
#include "sdp.hpp"
#include "srtp_session.hpp"
#include "stream_crypto.hpp"

#include <srtp2/srtp.h>

using namespace relais::media;

namespace {

std::vector<uint8_t> rtp(uint16_t seq, uint32_t ssrc = 0x11223344, size_t payload = 160) {
  std::vector<uint8_t> p(12 + payload + kSrtpMaxTrailer, 0);
  p[0] = 0x80;
  p[1] = 8;
  p[2] = static_cast<uint8_t>(seq >> 8);
  p[3] = static_cast<uint8_t>(seq);
  p[4] = 0, p[5] = 0, p[6] = static_cast<uint8_t>(seq >> 8), p[7] = static_cast<uint8_t>(seq);
  p[8] = static_cast<uint8_t>(ssrc >> 24), p[9] = static_cast<uint8_t>(ssrc >> 16);
  p[10] = static_cast<uint8_t>(ssrc >> 8), p[11] = static_cast<uint8_t>(ssrc);
  for (size_t i = 0; i < payload; ++i) p[12 + i] = static_cast<uint8_t>(0x55 + i);
  return p;
}

std::vector<uint8_t> rtcp_rr(uint32_t ssrc) {
  std::vector<uint8_t> p(8 + kSrtpMaxTrailer, 0);
  p[0] = 0x80, p[1] = 201, p[2] = 0, p[3] = 1;
  p[4] = static_cast<uint8_t>(ssrc >> 24), p[5] = static_cast<uint8_t>(ssrc >> 16);
  p[6] = static_cast<uint8_t>(ssrc >> 8), p[7] = static_cast<uint8_t>(ssrc);
  return p;
}

SrtpKey key_for(SrtpSuite suite) {
  SrtpKey k;
  REQUIRE(srtp_random_key(suite, k));
  return k;
}

struct Pair {
  std::unique_ptr<SrtpSession> tx, rx;
  explicit Pair(const SrtpKey& k) {
    std::string e;
    tx = SrtpSession::create(k, SrtpSession::Direction::outbound, e);
    rx = SrtpSession::create(k, SrtpSession::Direction::inbound, e);
    REQUIRE_MESSAGE(tx, e);
    REQUIRE(rx);
  }
};

Sdp parse(const std::string& text) {
  std::string error;
  auto sdp = sdp_parse(text, error);
  REQUIRE_MESSAGE(sdp, error);
  return *sdp;
}

std::string audio_sdp(const std::string& proto, const std::vector<std::string>& crypto) {
  std::string s = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 " + proto +
                  " 0 8\r\n";
  for (const std::string& c : crypto) s += c + "\r\n";
  return s;
}

const char* kKey80 = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

}  // namespace

TEST_CASE("an SDES line with each supported suite is read with its tag and key") {
  std::string e;
  auto a = sdes_parse(kKey80, e);
  REQUIRE_MESSAGE(a, e);
  CHECK(a->tag == 1);
  CHECK(a->key.suite == SrtpSuite::aes_cm_128_hmac_sha1_80);
  CHECK(a->key.bytes[0] == 0x3d);  // 'P','S' → 0x3d 0x2d ...
  auto b = sdes_parse("22 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31", e);
  REQUIRE_MESSAGE(b, e);
  CHECK(b->tag == 22);
  CHECK(b->key.suite == SrtpSuite::aes_cm_128_hmac_sha1_32);
  auto c = sdes_parse("3 AEAD_AES_128_GCM inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA== WSH=64", e);
  REQUIRE_MESSAGE(c, e);
  CHECK(c->key.suite == SrtpSuite::aead_aes_128_gcm);
  CHECK(std::memcmp(c->key.bytes.data(), "1234567890123456789012345678", 28) == 0);
}

TEST_CASE("SDES lines we cannot honour are refused with a reason, never used") {
  const char* bad[] = {
      "",
      "1",
      "1 AES_CM_128_HMAC_SHA1_80",
      "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
      "1234567890 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
      "1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
      "1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key",
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx",        // short
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRAAAA",  // long
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx*VBR",    // alphabet
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",  // MKI
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|1:4",
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^99",
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
      "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=1",
      "1 AEAD_AES_128_GCM inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",  // 30 bytes for a 28-byte suite
  };
  for (const char* line : bad) {
    std::string e;
    CHECK_MESSAGE(!sdes_parse(line, e), line);
    CHECK_MESSAGE(!e.empty(), line);
  }
  std::string huge(4000, 'A');
  std::string e;
  CHECK(!sdes_parse("1 AES_CM_128_HMAC_SHA1_80 inline:" + huge, e));
}

TEST_CASE("a generated SDES line reads back as the same key") {
  for (SrtpSuite suite : kSrtpSuites) {
    CryptoAttr a;
    a.tag = 7;
    a.key = key_for(suite);
    std::string line = sdes_format(a);
    REQUIRE(line.rfind("a=crypto:7 ", 0) == 0);
    std::string e;
    auto back = sdes_parse(line.substr(9), e);
    REQUIRE_MESSAGE(back, e);
    CHECK(*back == a);
  }
  uint8_t out[4];
  size_t n = 0;
  CHECK(base64_encode(reinterpret_cast<const uint8_t*>("ab"), 2) == "YWI=");
  CHECK(base64_decode("YWI=", out, sizeof out, n));
  CHECK(n == 2);
  CHECK(!base64_decode("YWJjZGVm", out, sizeof out, n));  // 6 bytes into 4: refused, no overflow
}

TEST_CASE("GCM is available in this libsrtp build") { CHECK(srtp_suite_available(SrtpSuite::aead_aes_128_gcm)); }

TEST_CASE("protect then unprotect gives the packet back, per suite, RTP and RTCP") {
  for (SrtpSuite suite : kSrtpSuites) {
    CAPTURE(srtp_suite_name(suite));
    Pair s(key_for(suite));
    auto p = rtp(100);
    auto plain = p;
    uint32_t len = 172;
    REQUIRE(s.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
    CHECK(len == 172 + srtp_tag_length(suite));
    CHECK(std::memcmp(p.data(), plain.data(), 12) == 0);        // header in clear
    CHECK(std::memcmp(p.data() + 12, plain.data() + 12, 160) != 0);  // payload encrypted
    REQUIRE(s.rx->unprotect_rtp(p.data(), len) == SrtpSession::Result::ok);
    CHECK(len == 172);
    CHECK(std::memcmp(p.data(), plain.data(), 172) == 0);

    auto c = rtcp_rr(0x11223344);
    auto cplain = c;
    uint32_t clen = 8;
    REQUIRE(s.tx->protect_rtcp(c.data(), clen, c.size()) == SrtpSession::Result::ok);
    CHECK(clen == 8 + 4 + (suite == SrtpSuite::aead_aes_128_gcm ? 16 : 10));  // SRTCP index + tag
    REQUIRE(s.rx->unprotect_rtcp(c.data(), clen) == SrtpSession::Result::ok);
    CHECK(clen == 8);
    CHECK(std::memcmp(c.data(), cplain.data(), 8) == 0);
  }
}

TEST_CASE("a tampered SRTP packet fails authentication") {
  for (SrtpSuite suite : kSrtpSuites) {
    CAPTURE(srtp_suite_name(suite));
    Pair s(key_for(suite));
    auto p = rtp(5);
    uint32_t len = 172;
    REQUIRE(s.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
    auto q = p;
    q[40] ^= 1;
    uint32_t qlen = len;
    CHECK(s.rx->unprotect_rtp(q.data(), qlen) == SrtpSession::Result::auth_failed);
    // The genuine packet still passes afterwards: a forgery does not poison the context.
    CHECK(s.rx->unprotect_rtp(p.data(), len) == SrtpSession::Result::ok);
    // Truncated to less than the tag: refused, no read past the end.
    auto r = rtp(6);
    uint32_t rlen = 172;
    REQUIRE(s.tx->protect_rtp(r.data(), rlen, r.size()) == SrtpSession::Result::ok);
    rlen = 13;
    CHECK(s.rx->unprotect_rtp(r.data(), rlen) != SrtpSession::Result::ok);
  }
}

TEST_CASE("a replayed SRTP packet is refused") {
  Pair s(key_for(SrtpSuite::aes_cm_128_hmac_sha1_80));
  auto p = rtp(77);
  uint32_t len = 172;
  REQUIRE(s.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
  auto copy = p;
  uint32_t copy_len = len;
  REQUIRE(s.rx->unprotect_rtp(p.data(), len) == SrtpSession::Result::ok);
  CHECK(s.rx->unprotect_rtp(copy.data(), copy_len) == SrtpSession::Result::replayed);
  // Sending the same index twice is refused too (keystream reuse).
  auto again = rtp(77);
  uint32_t again_len = 172;
  CHECK(s.tx->protect_rtp(again.data(), again_len, again.size()) == SrtpSession::Result::replayed);
}

TEST_CASE("a packet under another key fails authentication") {
  Pair a(key_for(SrtpSuite::aes_cm_128_hmac_sha1_32));
  Pair b(key_for(SrtpSuite::aes_cm_128_hmac_sha1_32));
  auto p = rtp(1);
  uint32_t len = 172;
  REQUIRE(a.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
  CHECK(len == 176);
  CHECK(b.rx->unprotect_rtp(p.data(), len) == SrtpSession::Result::auth_failed);
}

TEST_CASE("a session carries a bounded number of SSRCs and never overruns a small buffer") {
  Pair s(key_for(SrtpSuite::aes_cm_128_hmac_sha1_80));
  for (uint32_t i = 0; i < SrtpSession::kMaxSsrcs; ++i) {
    auto p = rtp(1, 1000 + i);
    uint32_t len = 172;
    REQUIRE(s.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
  }
  auto p = rtp(1, 99);
  uint32_t len = 172;
  CHECK(s.tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::too_many_ssrcs);
  std::vector<uint8_t> small(180);
  uint32_t small_len = 172;
  CHECK(s.tx->protect_rtp(small.data(), small_len, small.size()) == SrtpSession::Result::malformed);
}

TEST_CASE("an SRTP offer towards a plain RTP side: keys per side, no crypto to the plain side") {
  StreamCrypto c;
  Sdp offer = parse(audio_sdp("RTP/SAVP", {"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
                                          std::string("a=crypto:2 ") + (kKey80 + 2)}));
  SdpMediaOut out;
  REQUIRE(crypto_offer(c, 0, offer, offer.media[0], "RTP/AVP", SdesOptions{}, out) == "");
  CHECK(out.proto == "RTP/AVP");
  CHECK(out.strip_crypto);
  CHECK(out.add.empty());
  CHECK(c.side[0].srtp.mode == SideSrtp::Mode::srtp);
  CHECK(c.side[0].srtp.rx.suite == SrtpSuite::aes_cm_128_hmac_sha1_32);  // the first line wins
  CHECK(c.side[0].srtp.tx.suite == SrtpSuite::aes_cm_128_hmac_sha1_32);
  CHECK(c.side[0].srtp.tx != c.side[0].srtp.rx);                        // our own key
  CHECK(c.side[1].srtp.mode == SideSrtp::Mode::plain);

  Sdp answer = parse(audio_sdp("RTP/AVP", {}));
  REQUIRE(crypto_answer(c, 1, answer, answer.media[0], out) == "");
  CHECK(out.proto == "RTP/SAVP");
  REQUIRE(out.add.size() == 1);
  CHECK(out.add[0].rfind("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:", 0) == 0);
  std::string e;
  auto ours = sdes_parse(out.add[0].substr(9), e);
  REQUIRE(ours);
  CHECK(ours->key == c.side[0].srtp.tx);

  // A re-offer with the same key keeps our key (the crypto context continues).
  SrtpKey before = c.side[0].srtp.tx;
  REQUIRE(crypto_offer(c, 0, offer, offer.media[0], "RTP/AVP", SdesOptions{}, out) == "");
  CHECK(c.side[0].srtp.tx == before);
}

TEST_CASE("SRTP on both sides uses separate keys and the answer picks one of our tags") {
  StreamCrypto c;
  Sdp offer = parse(audio_sdp("RTP/SAVP", {std::string("a=crypto:") + kKey80}));
  SdpMediaOut out;
  REQUIRE(crypto_offer(c, 0, offer, offer.media[0], "", SdesOptions{}, out) == "");
  CHECK(out.proto == "RTP/SAVP");
  REQUIRE(out.add.size() == 3);
  CHECK(out.add[0].find("AES_CM_128_HMAC_SHA1_80") != std::string::npos);
  CHECK(out.add[0].find("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR") == std::string::npos);  // never the offerer's key
  CHECK(c.side[1].srtp.mode == SideSrtp::Mode::pending);

  std::string e;
  auto offered2 = sdes_parse(out.add[1].substr(9), e);
  REQUIRE(offered2);
  CryptoAttr theirs;
  theirs.tag = offered2->tag;
  theirs.key = key_for(offered2->key.suite);
  Sdp answer = parse(audio_sdp("RTP/SAVP", {sdes_format(theirs)}));
  REQUIRE(crypto_answer(c, 1, answer, answer.media[0], out) == "");
  CHECK(c.side[1].srtp.mode == SideSrtp::Mode::srtp);
  CHECK(c.side[1].srtp.rx == theirs.key);
  CHECK(c.side[1].srtp.tx == offered2->key);
  CHECK(c.side[0].srtp.rx != c.side[1].srtp.rx);
  CHECK(c.side[0].srtp.tx != c.side[1].srtp.tx);
  REQUIRE(out.add.size() == 1);
  CHECK(out.add[0].rfind("a=crypto:1 AES_CM_128_HMAC_SHA1_80 ", 0) == 0);
}

TEST_CASE("unusable SDES offers and answers are errors that change nothing") {
  StreamCrypto c;
  SdpMediaOut out;
  Sdp no_crypto = parse(audio_sdp("RTP/SAVP", {}));
  CHECK(crypto_offer(c, 0, no_crypto, no_crypto.media[0], "RTP/AVP", SdesOptions{}, out) != "");
  Sdp junk = parse(audio_sdp("RTP/SAVP", {"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%%%%"}));
  CHECK(crypto_offer(c, 0, junk, junk.media[0], "RTP/AVP", SdesOptions{}, out) != "");
  CHECK(c.side[0].srtp.mode == SideSrtp::Mode::plain);

  SdesOptions only80;
  only80.allowed[static_cast<int>(SrtpSuite::aes_cm_128_hmac_sha1_32)] = false;
  only80.allowed[static_cast<int>(SrtpSuite::aead_aes_128_gcm)] = false;
  Sdp offer32 = parse(audio_sdp("RTP/SAVP", {"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"}));
  CHECK(crypto_offer(c, 0, offer32, offer32.media[0], "RTP/AVP", only80, out) != "");

  Sdp plain = parse(audio_sdp("RTP/AVP", {}));
  REQUIRE(crypto_offer(c, 0, plain, plain.media[0], "RTP/SAVP", only80, out) == "");
  REQUIRE(out.add.size() == 1);
  CryptoAttr wrong_tag;
  wrong_tag.tag = 9;
  wrong_tag.key = key_for(SrtpSuite::aes_cm_128_hmac_sha1_80);
  Sdp answer = parse(audio_sdp("RTP/SAVP", {sdes_format(wrong_tag)}));
  StreamCrypto before = c;
  CHECK(crypto_answer(c, 1, answer, answer.media[0], out) != "");
  CHECK(c.side[1].srtp == before.side[1].srtp);
  // An SRTP answer to a plain offer is refused as well.
  StreamCrypto fresh;
  REQUIRE(crypto_offer(fresh, 0, plain, plain.media[0], "", SdesOptions{}, out) == "");
  CHECK(crypto_answer(fresh, 1, answer, answer.media[0], out) != "");
}

namespace {

// libsrtp2 as the reference for our OpenSSL transform of the AES-CM suites.
struct Libsrtp {
  srtp_t ctx = nullptr;
  Libsrtp(const SrtpKey& k, bool inbound) {
    srtp_init();
    srtp_policy_t p;
    std::memset(&p, 0, sizeof p);
    if (k.suite == SrtpSuite::aes_cm_128_hmac_sha1_32) srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
    else srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
    auto key = k.bytes;
    p.key = key.data();
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.window_size = 128;
    REQUIRE(srtp_create(&ctx, &p) == srtp_err_status_ok);
  }
  ~Libsrtp() { srtp_dealloc(ctx); }
};

}  // namespace

TEST_CASE("our AES-CM transform and libsrtp2 read each other's SRTP and SRTCP, across a sequence wrap") {
  for (SrtpSuite suite : {SrtpSuite::aes_cm_128_hmac_sha1_80, SrtpSuite::aes_cm_128_hmac_sha1_32}) {
    CAPTURE(srtp_suite_name(suite));
    SrtpKey k = key_for(suite);
    std::string e;
    auto ours_tx = SrtpSession::create(k, SrtpSession::Direction::outbound, e);
    auto ours_rx = SrtpSession::create(k, SrtpSession::Direction::inbound, e);
    Libsrtp ref_tx(k, false), ref_rx(k, true);
    for (uint32_t i = 0; i < 40; ++i) {
      uint16_t seq = static_cast<uint16_t>(65520 + i);  // wraps: the rollover counter must follow
      auto p = rtp(seq, 0xCAFE), plain = p;
      uint32_t len = 172;
      REQUIRE(ours_tx->protect_rtp(p.data(), len, p.size()) == SrtpSession::Result::ok);
      int n = static_cast<int>(len);
      REQUIRE_MESSAGE(srtp_unprotect(ref_rx.ctx, p.data(), &n) == srtp_err_status_ok, "seq " << seq);
      CHECK(std::memcmp(p.data(), plain.data(), 172) == 0);

      auto q = rtp(seq, 0xBEEF);
      int m = 172;
      REQUIRE(srtp_protect(ref_tx.ctx, q.data(), &m) == srtp_err_status_ok);
      uint32_t qlen = static_cast<uint32_t>(m);
      REQUIRE_MESSAGE(ours_rx->unprotect_rtp(q.data(), qlen) == SrtpSession::Result::ok, "seq " << seq);
      CHECK(qlen == 172);
      CHECK(std::memcmp(q.data() + 12, plain.data() + 12, 160) == 0);
    }
    for (int i = 0; i < 3; ++i) {
      auto c = rtcp_rr(0xCAFE), plain = c;
      uint32_t clen = 8;
      REQUIRE(ours_tx->protect_rtcp(c.data(), clen, c.size()) == SrtpSession::Result::ok);
      int n = static_cast<int>(clen);
      REQUIRE(srtp_unprotect_rtcp(ref_rx.ctx, c.data(), &n) == srtp_err_status_ok);
      CHECK(n == 8);
      auto d = rtcp_rr(0xBEEF);
      int m = 8;
      REQUIRE(srtp_protect_rtcp(ref_tx.ctx, d.data(), &m) == srtp_err_status_ok);
      uint32_t dlen = static_cast<uint32_t>(m);
      REQUIRE(ours_rx->unprotect_rtcp(d.data(), dlen) == SrtpSession::Result::ok);
      CHECK(dlen == 8);
    }
  }
}
