// srtp_policy.hpp — who must, may or must not use SRTP, and what that means for a call's two
// legs. A policy belongs to a party: a user (users.NAME.srtp), a trunk (trunks.NAME.srtp), or
// the default (media.srtp). The caller's policy decides whether its offer is acceptable (488
// otherwise); the callee's policy decides the transport-protocol relais asks the media relay for
// on the callee's leg (the relay terminates SRTP per leg with separate keys, relais-media or
// rtpengine alike).
#pragma once

#include <sofia-sip/sip.h>

#include <optional>
#include <string>
#include <string_view>

namespace relais {

struct Config;

enum class SrtpPolicy { never, optional, mandatory };

std::optional<SrtpPolicy> srtp_policy_from(std::string_view text);  // "never" | "optional" | "mandatory"
const char* srtp_policy_name(SrtpPolicy policy);

// What an SDP body's RTP streams use: none (no active RTP m= line), plain RTP/AVP(F), or
// SRTP (RTP/SAVP(F) with an a=crypto line). "mixed" counts as plain: one clear stream is enough
// to break a "mandatory" promise.
enum class SdpSecurity { none, plain, srtp };
SdpSecurity sdp_security(std::string_view sdp);

// The policy of the party placing a call: its authenticated user, else its trunk, else
// media.srtp.
SrtpPolicy caller_srtp_policy(const Config& cfg, const std::string& auth_user, const std::string& from_trunk);
// The policy of a dial target as the script wrote it: "trunk:NAME/..." → the trunk's, a
// configured user ("101", "101@domain") → the user's, anything else → media.srtp.
SrtpPolicy target_srtp_policy(const Config& cfg, const std::string& target);

// Why the caller's INVITE must be refused with 488 under its policy, "" when acceptable (also
// when the INVITE has no SDP: a late offer is checked by nobody here).
std::string srtp_refusal(SrtpPolicy caller, const sip_t* invite);

// transport-protocol for the ng offer towards a callee with this policy: "RTP/SAVP",
// "RTP/AVP", or "" (optional: the caller's own profile).
std::string srtp_transport_for(SrtpPolicy callee);
// The profile an SDP body uses ("RTP/SAVP" / "RTP/AVP"), "" when it has no RTP stream.
std::string sdp_profile(std::string_view sdp);

}  // namespace relais
