// stream_crypto.cpp — choosing suites and keys per side of a stream pair.
#include "stream_crypto.hpp"

namespace relais::media {

namespace {

// The a=crypto attribute values of a section, in SDP order (the offerer's preference).
std::vector<std::string_view> crypto_values(const Sdp& sdp, const SdpMedia& m) {
  std::vector<std::string_view> out;
  for (size_t i = m.first_line + 1; i < m.end_line && i < sdp.lines.size(); ++i) {
    std::string_view line = sdp.lines[i];
    if (line.substr(0, 9) == "a=crypto:") out.push_back(line.substr(9));
  }
  return out;
}

// Our key for a suite: the one we already use with this side when the suite is the same (a
// re-offer keeps the crypto context), else a fresh one.
bool our_key(const CryptoAttr& previous, SrtpSuite suite, SrtpKey& key) {
  if (previous.key.suite == suite) {
    key = previous.key;
    return true;
  }
  return srtp_random_key(suite, key);
}

}  // namespace

bool rtp_profile(const std::string& proto, bool& srtp) {
  if (proto == "RTP/AVP" || proto == "RTP/AVPF") return srtp = false, true;
  if (proto == "RTP/SAVP" || proto == "RTP/SAVPF") return srtp = true, true;
  return false;
}

std::string crypto_offer(StreamCrypto& c, int s, const Sdp& sdp, const SdpMedia& m, const std::string& requested,
                         const SdesOptions& opts, SdpMediaOut& out) {
  const int o = 1 - s;
  bool s_srtp = false, o_srtp = false;
  out = SdpMediaOut{};
  out.proto = requested;
  if (!rtp_profile(m.proto, s_srtp) || m.port == 0) return "";  // not ours to secure: relayed as is
  std::string o_proto = requested.empty() ? m.proto : requested;
  if (!rtp_profile(o_proto, o_srtp)) return "unsupported transport-protocol " + o_proto;

  StreamCrypto next = c;
  StreamCrypto::Side& from = next.side[s];
  StreamCrypto::Side& to = next.side[o];
  from.proto = m.proto;
  SrtpSuite preferred = SrtpSuite::none;
  if (s_srtp) {
    // RFC 4568 §7.1.2: the answerer takes the first line it supports.
    std::optional<CryptoAttr> chosen;
    std::string why = "no a=crypto line";
    for (std::string_view value : crypto_values(sdp, m)) {
      std::string error;
      auto attr = sdes_parse(value, error);
      if (!attr) {
        why = error;
        continue;
      }
      if (!opts.allows(attr->key.suite)) {
        why = std::string("crypto suite ") + srtp_suite_name(attr->key.suite) + " not allowed";
        continue;
      }
      chosen = attr;
      break;
    }
    if (!chosen) return "no usable SDES crypto in the " + m.type + " offer: " + why;
    CryptoAttr answer;
    answer.tag = chosen->tag;
    if (!our_key(from.answered, chosen->key.suite, answer.key)) return "no randomness for an SRTP key";
    from.answered = answer;
    from.srtp.mode = SideSrtp::Mode::srtp;
    from.srtp.rx = chosen->key;
    from.srtp.tx = answer.key;
    preferred = chosen->key.suite;
  } else {
    from.answered = CryptoAttr{};
    from.srtp = SideSrtp{};
  }

  out.proto = o_proto;
  out.strip_crypto = true;  // the offerer's keys are for us, never for the other side
  to.proto = o_proto;
  if (o_srtp) {
    std::vector<CryptoAttr> offered;
    auto add = [&](SrtpSuite suite) -> bool {
      if (!opts.allows(suite)) return true;
      for (const CryptoAttr& a : offered)
        if (a.key.suite == suite) return true;
      CryptoAttr attr;
      attr.tag = static_cast<uint32_t>(offered.size() + 1);
      CryptoAttr previous;
      for (const CryptoAttr& a : to.offered)
        if (a.key.suite == suite) previous = a;
      if (to.srtp.mode == SideSrtp::Mode::srtp && to.srtp.tx.suite == suite) previous.key = to.srtp.tx;
      if (!our_key(previous, suite, attr.key)) return false;
      offered.push_back(attr);
      return true;
    };
    if (preferred != SrtpSuite::none && !add(preferred)) return "no randomness for an SRTP key";
    for (SrtpSuite suite : kSrtpSuites)
      if (!add(suite)) return "no randomness for an SRTP key";
    if (offered.empty()) return "no SRTP crypto suite allowed";
    for (const CryptoAttr& a : offered) out.add.push_back(sdes_format(a));
    to.offered = std::move(offered);
    // Until the answer names its key, what that side sends cannot be authenticated: dropped.
    // A side already speaking SRTP keeps its keys until then (re-INVITE).
    if (to.srtp.mode != SideSrtp::Mode::srtp) to.srtp = SideSrtp{SideSrtp::Mode::pending, {}, {}};
  } else {
    to.offered.clear();
  }
  c = next;
  return "";
}

std::string crypto_answer(StreamCrypto& c, int a, const Sdp& sdp, const SdpMedia& m, SdpMediaOut& out) {
  const int s = 1 - a;
  out = SdpMediaOut{};
  bool a_srtp = false;
  if (!rtp_profile(m.proto, a_srtp)) return "";
  StreamCrypto next = c;
  StreamCrypto::Side& from = next.side[a];
  from.proto = m.proto;
  if (m.port == 0) {
    from.srtp = SideSrtp{};  // a rejected stream carries nothing
  } else if (a_srtp) {
    if (from.offered.empty()) return "the " + m.type + " answer uses SRTP but none was offered";
    std::optional<std::pair<CryptoAttr, CryptoAttr>> match;  // theirs, ours
    std::string why = "no a=crypto line";
    for (std::string_view value : crypto_values(sdp, m)) {
      std::string error;
      auto attr = sdes_parse(value, error);
      if (!attr) {
        why = error;
        continue;
      }
      for (const CryptoAttr& ours : from.offered)
        if (ours.tag == attr->tag && ours.key.suite == attr->key.suite) match.emplace(*attr, ours);
      if (match) break;
      why = "a=crypto tag does not match the offer";
    }
    if (!match) return "no usable SDES crypto in the " + m.type + " answer: " + why;
    from.srtp.mode = SideSrtp::Mode::srtp;
    from.srtp.rx = match->first.key;
    from.srtp.tx = match->second.key;
  } else {
    // RFC 4568 wants a plain answer to an SRTP offer rejected; we take it as "this side speaks
    // plain RTP" (what the answerer will do anyway).
    from.srtp = SideSrtp{};
  }

  // Towards the offerer: its own profile (RFC 3264 §6: the answer keeps the offer's transport),
  // with our key for the line it preferred.
  const StreamCrypto::Side& to = next.side[s];
  out.proto = to.proto;
  out.strip_crypto = true;
  if (to.srtp.mode == SideSrtp::Mode::srtp) out.add.push_back(sdes_format(to.answered));
  c = next;
  return "";
}

}  // namespace relais::media
