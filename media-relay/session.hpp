// session.hpp — calls as the control thread sees them: a call has two tagged sides (offerer,
// answerer) and one relayed stream pair per m= line. Offer/answer turn an SDP into port
// allocations on the MediaPlane and into the rewritten SDP for the other side.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "media_plane.hpp"
#include "stream_crypto.hpp"

namespace relais::media {

// One offer or answer as the ng layer decoded it.
struct OfferAnswer {
  std::string call_id, from_tag, to_tag, via_branch, sdp;
  bool replace_origin = false;
  bool remove_ice = false;
  std::string transport_protocol;   // the other side's profile (RTP/AVP, RTP/SAVP ...)
  SdesOptions sdes;                 // suites allowed for SRTP (ng "SDES")
  bool strict_source = false;
  bool asymmetric = false;
  bool sip_source = false;        // use received-from's address instead of the SDP's
  std::string received_from;      // IPv4 of the SIP sender, informational unless sip_source
  bool mux_offer = false, mux_demux = false, mux_accept = false, mux_require = false;
  sockaddr_in controller{};       // where the request came from: gets our timeout notification
};

struct Stream {
  std::string type;           // audio / video ...
  PairHandle handle;
  PairSpec spec;
  bool sdp_mux[2] = {false, false};  // side i's own SDP carried a=rtcp-mux
  StreamCrypto crypto;               // SDES state per side
};

struct Call {
  std::string id;
  std::string tag[2];         // [0] offerer (from-tag of the first offer), [1] answerer
  std::vector<Stream> streams;
  sockaddr_in controller{};
  int64_t created_unix = 0;
  int64_t last_signal_ns = 0; // monotonic, last offer/answer
  uint64_t generation = 0;
  // Media services (MediaServices keeps these): what plays to side i, the running recording.
  uint64_t playing[2] = {0, 0};
  uint64_t recording = 0;
};

struct ExpiredCall {
  std::string call_id, from_tag, to_tag;
  sockaddr_in controller{};
  int64_t idle_ns = 0;
};

class SessionManager {
 public:
  SessionManager(MediaPlane& plane, std::string address) : plane_(plane), address_(std::move(address)) {}
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // Each returns an error text ("" on success) and fills sdp_out with the rewritten body.
  std::string offer(const OfferAnswer& req, int64_t now_ns, std::string& sdp_out);
  std::string answer(const OfferAnswer& req, int64_t now_ns, std::string& sdp_out);
  // Releases every stream of the call; false when unknown.
  bool remove(const std::string& call_id);
  const Call* find(const std::string& call_id) const;
  Call* find_mutable(const std::string& call_id);
  // The call a stream pair belongs to (worker events name pairs, not calls).
  Call* find_by_pair(uint64_t pair_id);
  // Called before a call's pairs are released (delete, idle expiry, shutdown): the media
  // services finish its recording there while the worker still has the pair.
  void set_release_hook(std::function<void(Call&)> hook) { on_release_ = std::move(hook); }
  std::vector<std::string> call_ids(size_t limit) const;
  size_t size() const { return calls_.size(); }
  // Deletes calls without a packet (and without signalling) for timeout_ns and returns them.
  std::vector<ExpiredCall> expire(int64_t now_ns, int64_t timeout_ns);
  // Monotonic time of the call's last packet or signal.
  static int64_t last_activity(const Call& call);

  const std::string& address() const { return address_; }

 private:
  void release(Call& call);

  MediaPlane& plane_;
  std::string address_;
  std::map<std::string, Call> calls_;
  std::unordered_map<uint64_t, std::string> by_pair_;  // pair id → call id
  std::function<void(Call&)> on_release_;
};

}  // namespace relais::media
