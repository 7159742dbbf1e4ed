// srtp_policy.cpp — SRTP policy per party and the SDP facts it needs.
#include "srtp_policy.hpp"

#include "config.hpp"

namespace relais {

namespace {

const std::string* policy_text(const Config& cfg, const std::string& user, const std::string& trunk) {
  if (!user.empty())
    if (auto it = cfg.users.find(user); it != cfg.users.end() && !it->second.srtp.empty()) return &it->second.srtp;
  if (!trunk.empty())
    if (auto it = cfg.trunks.find(trunk); it != cfg.trunks.end() && !it->second.srtp.empty()) return &it->second.srtp;
  return &cfg.media.srtp;
}

SrtpPolicy resolve(const Config& cfg, const std::string& user, const std::string& trunk) {
  return srtp_policy_from(*policy_text(cfg, user, trunk)).value_or(SrtpPolicy::optional);
}

}  // namespace

std::optional<SrtpPolicy> srtp_policy_from(std::string_view text) {
  if (text == "never") return SrtpPolicy::never;
  if (text == "optional") return SrtpPolicy::optional;
  if (text == "mandatory") return SrtpPolicy::mandatory;
  return std::nullopt;
}

const char* srtp_policy_name(SrtpPolicy policy) {
  switch (policy) {
    case SrtpPolicy::never:
      return "never";
    case SrtpPolicy::mandatory:
      return "mandatory";
    case SrtpPolicy::optional:
      break;
  }
  return "optional";
}

SdpSecurity sdp_security(std::string_view sdp) {
  // One pass over the lines: each m= section is SRTP when its profile is SAVP(F) and it has an
  // a=crypto line before the next m=. Disabled streams (port 0) and non-RTP ones do not count.
  int active = 0, secure = 0;
  bool in_rtp = false, savp = false, crypto = false;
  auto close_section = [&] {
    if (!in_rtp) return;
    ++active;
    if (savp && crypto) ++secure;
  };
  size_t pos = 0;
  while (pos < sdp.size()) {
    size_t nl = sdp.find('\n', pos);
    std::string_view line = sdp.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? sdp.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 2) == "m=") {
      close_section();
      // m=<media> <port> <proto> ...
      size_t a = line.find(' '), b = a == std::string_view::npos ? a : line.find(' ', a + 1);
      size_t c = b == std::string_view::npos ? b : line.find(' ', b + 1);
      std::string_view port = a == std::string_view::npos || b == std::string_view::npos ? "" : line.substr(a + 1, b - a - 1);
      std::string_view proto = b == std::string_view::npos ? "" : line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
      in_rtp = port != "0" && (proto == "RTP/AVP" || proto == "RTP/AVPF" || proto == "RTP/SAVP" || proto == "RTP/SAVPF");
      savp = proto == "RTP/SAVP" || proto == "RTP/SAVPF";
      crypto = false;
    } else if (in_rtp && line.substr(0, 9) == "a=crypto:") {
      crypto = true;
    }
  }
  close_section();
  if (active == 0) return SdpSecurity::none;
  return secure == active ? SdpSecurity::srtp : SdpSecurity::plain;
}

std::string sdp_profile(std::string_view sdp) {
  switch (sdp_security(sdp)) {
    case SdpSecurity::srtp:
      return "RTP/SAVP";
    case SdpSecurity::plain:
      return "RTP/AVP";
    case SdpSecurity::none:
      break;
  }
  return "";
}

SrtpPolicy caller_srtp_policy(const Config& cfg, const std::string& auth_user, const std::string& from_trunk) {
  return resolve(cfg, auth_user, from_trunk);
}

SrtpPolicy target_srtp_policy(const Config& cfg, const std::string& target) {
  if (target.rfind("trunk:", 0) == 0) {
    size_t slash = target.find('/');
    return resolve(cfg, "", target.substr(6, slash == std::string::npos ? std::string::npos : slash - 6));
  }
  std::string user = target;
  if (user.rfind("sip:", 0) == 0 || user.rfind("sips:", 0) == 0) return resolve(cfg, "", "");
  if (size_t at = user.find('@'); at != std::string::npos) {
    std::string host = user.substr(at + 1);
    user.resize(at);
    bool ours = host == cfg.domain;
    for (const std::string& alias : cfg.aliases) ours = ours || host == alias;
    if (!ours) return resolve(cfg, "", "");
  }
  return resolve(cfg, user, "");
}

std::string srtp_refusal(SrtpPolicy caller, const sip_t* invite) {
  if (!invite || !invite->sip_payload || !invite->sip_payload->pl_data) return "";
  SdpSecurity s = sdp_security(std::string_view(invite->sip_payload->pl_data, invite->sip_payload->pl_len));
  if (caller == SrtpPolicy::mandatory && s == SdpSecurity::plain) return "SRTP required";
  if (caller == SrtpPolicy::never && s == SdpSecurity::srtp) return "SRTP not allowed";
  return "";
}

std::string srtp_transport_for(SrtpPolicy callee) {
  switch (callee) {
    case SrtpPolicy::mandatory:
      return "RTP/SAVP";
    case SrtpPolicy::never:
      return "RTP/AVP";
    case SrtpPolicy::optional:
      break;
  }
  return "";
}

}  // namespace relais
