// media_plane.hpp — what the sessions (control thread) need from the packet side: create a
// relayed stream pair on fresh ports, change where it sends, release it, and read its counters.
// Sessions see this interface only; the real plane is RelayEngine, the unit tests use a fake.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "media_command.hpp"
#include "srtp_session.hpp"

namespace relais::media {

// Where one side of a stream receives: from its SDP until the worker latches its real source.
struct SideSpec {
  sockaddr_in rtp{};      // sin_port 0 = not known yet (no SDP from that side so far)
  sockaddr_in rtcp{};
  bool rtcp_mux = false;  // this side sends and expects RTCP on its RTP port
  uint32_t clock_rate = 8000;
  // For the media services (its own SDP's numbering): the first PCMU/PCMA format, and the
  // telephone-event type. -1 = none.
  int16_t g711_pt = -1;
  bool g711_alaw = false;
  int16_t te_pt = -1;
  uint32_t te_rate = 8000;
  SideSrtp srtp;          // SDES keys for this side (stream_crypto.hpp); plain by default
};

struct PairSpec {
  SideSpec side[2];           // 0 = the offerer, 1 = the answerer
  bool strict_source = false; // after latching, drop packets from any other source
  bool asymmetric = false;    // never latch: always send to the SDP address
  uint64_t generation = 0;    // bumped by each offer/answer so the worker can re-latch
};

// Counters of the packets one side sent to the relay. Written by one worker with relaxed
// stores, read by the control thread with relaxed loads: each value alone is exact enough for
// statistics, and no lock or fence sits on the packet path.
struct SideCounters {
  std::atomic<uint64_t> packets{0}, bytes{0};
  std::atomic<uint64_t> rtcp_packets{0}, rtcp_bytes{0};
  std::atomic<uint64_t> dropped{0};       // not RTP/RTCP, wrong source (strict), no destination
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> expected{0};      // RFC 3550 A.3 extended range
  std::atomic<int64_t> lost{0};           // expected - received (may be negative: duplicates)
  std::atomic<uint32_t> jitter{0};        // RFC 3550 A.8, in RTP timestamp units
  std::atomic<uint32_t> latched_ip{0};    // network order; 0 = not latched
  std::atomic<uint16_t> latched_port{0};
  std::atomic<uint64_t> dtmf_keys{0};     // DTMF keys detected from this side
  std::atomic<uint64_t> dtmf_dropped{0};  // ... and not notified (rate limit)
  std::atomic<uint64_t> suppressed{0};    // not forwarded: we were playing to the other side
  // SRTP/SRTCP from this side that failed authentication (or was malformed, or an SSRC past
  // the session's bound), and replays: dropped, never forwarded, never latched on.
  std::atomic<uint64_t> srtp_failed{0};
  std::atomic<uint64_t> srtp_replayed{0};
};

struct PairStats {
  SideCounters side[2];
  std::atomic<int64_t> last_packet_ns{0};  // CLOCK_MONOTONIC of the last packet either way
};

struct PairHandle {
  uint64_t id = 0;
  uint16_t port[2] = {0, 0};  // RTP port facing side i (its RTCP port is +1)
  int worker = 0;
  std::shared_ptr<const PairStats> stats;
};

class MediaPlane {
 public:
  virtual ~MediaPlane() = default;
  // Allocates and binds two port pairs on one worker. nullopt + error when the range is full.
  virtual std::optional<PairHandle> create_pair(const PairSpec& spec, std::string& error) = 0;
  virtual void update_pair(uint64_t id, const PairSpec& spec) = 0;
  virtual void release_pair(uint64_t id) = 0;
  // Media services on the pair (play, DTMF, record). Planes without them ignore it.
  virtual void media_command(uint64_t id, MediaCommand cmd) {
    (void)id;
    (void)cmd;
  }
};

}  // namespace relais::media
