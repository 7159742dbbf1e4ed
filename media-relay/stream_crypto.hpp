// stream_crypto.hpp — SDES offer/answer for one stream pair (RFC 4568 §7), as a relay that
// terminates SRTP on each side separately: a side that speaks RTP/SAVP gets keys of its own
// (we decrypt with the key it sent, it decrypts with the key we sent it), so one side can be
// SRTP and the other plain RTP, or both SRTP with unrelated keys. Control thread only; the
// outcome per side (SideSrtp) travels to the worker inside the PairSpec.
#pragma once

#include <string>
#include <vector>

#include "sdes.hpp"
#include "sdp.hpp"
#include "srtp_session.hpp"

namespace relais::media {

// Which suites we may use on a call (ng "SDES" key: no-<suite>, only-<suite>).
struct SdesOptions {
  bool allowed[4] = {false, true, true, true};  // by SrtpSuite
  bool allows(SrtpSuite s) const { return allowed[static_cast<int>(s)] && srtp_suite_available(s); }
};

struct StreamCrypto {
  struct Side {
    std::string proto;                // this side's profile (its own SDP, or what we offered it)
    std::vector<CryptoAttr> offered;  // our a=crypto lines in the last offer we sent this side
    CryptoAttr answered;              // our a=crypto in the answer we send it (its chosen tag)
    SideSrtp srtp;                    // what the worker does with this side's packets
  };
  Side side[2];
};

// RTP/AVP, RTP/AVPF → plain; RTP/SAVP, RTP/SAVPF → SRTP; false for other protocols (UDP/TLS/...,
// which we relay untouched).
bool rtp_profile(const std::string& proto, bool& srtp);

// An offer from side s whose section is `m` (of `sdp`); `requested` is the ng transport-protocol
// for the other side ("" = the offerer's own profile). "" or an error text; `c` changes only on
// success.
std::string crypto_offer(StreamCrypto& c, int s, const Sdp& sdp, const SdpMedia& m, const std::string& requested,
                         const SdesOptions& opts, SdpMediaOut& out);
// The answer from side a to the other side's offer.
std::string crypto_answer(StreamCrypto& c, int a, const Sdp& sdp, const SdpMedia& m, SdpMediaOut& out);

}  // namespace relais::media
