// sdp.hpp — the SDP a relay needs: read each m= section's media address, rewrite the body so
// every stream points at the relay (c=, m= port, a=rtcp, rtcp-mux, ICE lines), keep the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace relais::media {

struct SdpMedia {
  std::string type;           // audio, video, ...
  uint16_t port = 0;          // 0 = stream disabled (RFC 3264 §6)
  std::string proto;          // RTP/AVP ...
  std::vector<std::string> formats;
  std::string address;        // effective connection address (media c= or session c=)
  uint16_t rtcp_port = 0;     // a=rtcp, else port + 1 (RFC 3605)
  std::string rtcp_address;   // a=rtcp's address when given, else `address`
  bool rtcp_mux = false;      // a=rtcp-mux (RFC 5761)
  uint32_t clock_rate = 8000; // of the first format, for RFC 3550 jitter
  int g711_pt = -1;           // the first PCMU/PCMA format in m= order (static or rtpmap'd)
  bool g711_alaw = false;
  int te_pt = -1;             // a=rtpmap:<pt> telephone-event/<rate> of a listed format
  uint32_t te_rate = 8000;
  size_t first_line = 0;      // index of the m= line in Sdp::lines
  size_t end_line = 0;        // one past the section's last line
};

struct Sdp {
  std::vector<std::string> lines;  // without line ends
  std::vector<SdpMedia> media;
};

// Bounded: refuses bodies over 64 KiB, over 2000 lines or 32 m= lines, lines that are not
// `<letter>=`, and m=/c= lines it cannot read. Never throws.
std::optional<Sdp> sdp_parse(std::string_view text, std::string& error);

enum class MuxOut { keep, on, off };

// What to write into one m= section besides addresses (SRTP: stream_crypto.hpp).
struct SdpMediaOut {
  std::string proto;               // "" = keep (or SdpRewrite::transport_protocol)
  bool strip_crypto = false;       // drop the a=crypto lines of the side that sent the SDP
  std::vector<std::string> add;    // extra a= lines (our own a=crypto)
};

struct SdpRewrite {
  std::string address;              // the relay's IPv4 address
  bool replace_origin = false;      // o= gets the relay's address too
  bool remove_ice = false;          // drop a=ice-*, a=candidate, a=end-of-candidates ...
  std::string transport_protocol;   // replaces the m= proto when set
  std::span<const SdpMediaOut> media;  // per m= line when not empty
};

// The body for the other side: stream i announces relay port ports[i] (its RTCP on ports[i] + 1
// unless mux[i]). A disabled stream (port 0) stays at 0. ports/mux must cover every m= line.
std::string sdp_rewrite(const Sdp& sdp, const SdpRewrite& opts, std::span<const uint16_t> ports,
                        std::span<const bool> mux);

}  // namespace relais::media
