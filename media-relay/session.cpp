// session.cpp — offer/answer over calls and their stream pairs, modelled on rtpengine's
// monologues: an offer from side s allocates (or keeps) the pair and returns SDP with the ports
// facing the other side; the answer fills in the answerer's address and returns SDP with the
// ports facing the offerer.
#include "session.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <ctime>

#include "media_log.hpp"
#include "sdp.hpp"

namespace relais::media {

namespace {

bool ipv4(const std::string& text, sockaddr_in& out, uint16_t port) {
  out = sockaddr_in{};
  out.sin_family = AF_INET;
  out.sin_port = htons(port);
  return inet_pton(AF_INET, text.c_str(), &out.sin_addr) == 1;
}

// A side's receive addresses from its SDP section; "" or an error text.
std::string side_from_media(const SdpMedia& m, const OfferAnswer& req, SideSpec& side) {
  std::string rtp_ip = m.address, rtcp_ip = m.rtcp_address;
  if (req.sip_source && !req.received_from.empty()) rtp_ip = rtcp_ip = req.received_from;
  SideSpec s;
  if (m.port != 0) {
    if (!ipv4(rtp_ip, s.rtp, m.port) || !ipv4(rtcp_ip, s.rtcp, m.rtcp_port))
      return "unsupported connection address '" + rtp_ip + "'";
    // c=0.0.0.0 (RFC 3264 §8.4 hold, or relais answering a call itself with port 9): no
    // destination. Sending there would reach this host (Linux routes 0.0.0.0 to loopback).
    if (s.rtp.sin_addr.s_addr == INADDR_ANY) s.rtp = sockaddr_in{};
    if (s.rtcp.sin_addr.s_addr == INADDR_ANY) s.rtcp = sockaddr_in{};
  }
  s.rtcp_mux = m.rtcp_mux;
  s.clock_rate = m.clock_rate;
  s.g711_pt = static_cast<int16_t>(m.g711_pt);
  s.g711_alaw = m.g711_alaw;
  s.te_pt = static_cast<int16_t>(m.te_pt);
  s.te_rate = m.te_rate;
  side = s;
  return "";
}

SdpRewrite rewrite_options(const OfferAnswer& req, const std::string& address) {
  SdpRewrite o;
  o.address = address;
  o.replace_origin = req.replace_origin;
  o.remove_ice = req.remove_ice;
  o.transport_protocol = req.transport_protocol;
  return o;
}

}  // namespace

SessionManager::~SessionManager() {
  for (auto& [id, call] : calls_) release(call);
}

void SessionManager::release(Call& call) {
  if (on_release_) on_release_(call);
  for (Stream& s : call.streams) {
    by_pair_.erase(s.handle.id);
    plane_.release_pair(s.handle.id);
  }
  call.streams.clear();
}

Call* SessionManager::find_mutable(const std::string& call_id) {
  auto it = calls_.find(call_id);
  return it == calls_.end() ? nullptr : &it->second;
}

Call* SessionManager::find_by_pair(uint64_t pair_id) {
  auto it = by_pair_.find(pair_id);
  return it == by_pair_.end() ? nullptr : find_mutable(it->second);
}

std::string SessionManager::offer(const OfferAnswer& req, int64_t now_ns, std::string& sdp_out) {
  std::string error;
  auto sdp = sdp_parse(req.sdp, error);
  if (!sdp) return "bad SDP: " + error;

  auto [it, created] = calls_.try_emplace(req.call_id);
  Call& call = it->second;
  int s = 0;
  if (created || call.tag[0].empty()) {
    call.id = req.call_id;
    call.tag[0] = req.from_tag;
    call.created_unix = static_cast<int64_t>(time(nullptr));
  } else if (req.from_tag == call.tag[0]) {
    s = 0;
  } else if (req.from_tag == call.tag[1]) {
    s = 1;  // a re-offer from the answerer (re-INVITE in the other direction)
  } else {
    // A new from-tag on a known call: the offerer side is replaced, its ports stay.
    call.tag[0] = req.from_tag;
  }
  if (s == 0 && !req.to_tag.empty() && call.tag[1].empty()) call.tag[1] = req.to_tag;

  // Validate every section before touching the plane so a bad offer changes nothing.
  std::vector<SideSpec> sides(sdp->media.size());
  std::vector<StreamCrypto> crypto(sdp->media.size());
  std::vector<SdpMediaOut> media_out(sdp->media.size());
  for (size_t k = 0; k < sdp->media.size(); ++k) {
    std::string e = side_from_media(sdp->media[k], req, sides[k]);
    if (k < call.streams.size()) crypto[k] = call.streams[k].crypto;
    if (e.empty()) e = crypto_offer(crypto[k], s, *sdp, sdp->media[k], req.transport_protocol, req.sdes, media_out[k]);
    if (!e.empty()) {
      if (created) calls_.erase(it);
      return e;
    }
  }
  ++call.generation;
  size_t existing = call.streams.size();
  for (size_t k = 0; k < sdp->media.size(); ++k) {
    if (k >= existing) {
      Stream st;
      st.type = sdp->media[k].type;
      st.spec.side[s] = sides[k];
      for (int i = 0; i < 2; ++i) st.spec.side[i].srtp = crypto[k].side[i].srtp;
      st.spec.strict_source = req.strict_source;
      st.spec.asymmetric = req.asymmetric;
      st.spec.generation = call.generation;
      auto handle = plane_.create_pair(st.spec, error);
      if (!handle) {
        if (created) {
          release(call);
          calls_.erase(it);
        }
        return "cannot allocate relay ports: " + error;
      }
      st.handle = std::move(*handle);
      by_pair_[st.handle.id] = call.id;
      call.streams.push_back(std::move(st));
    }
    Stream& st = call.streams[k];
    st.type = sdp->media[k].type;
    st.spec.side[s] = sides[k];
    st.sdp_mux[s] = sdp->media[k].rtcp_mux;
    st.crypto = crypto[k];
    for (int i = 0; i < 2; ++i) st.spec.side[i].srtp = st.crypto.side[i].srtp;
    st.spec.strict_source = req.strict_source;
    st.spec.asymmetric = req.asymmetric;
    st.spec.generation = call.generation;
    if (k < existing) plane_.update_pair(st.handle.id, st.spec);
  }

  std::vector<uint16_t> ports;
  std::vector<char> mux;
  for (size_t k = 0; k < sdp->media.size(); ++k) {
    ports.push_back(call.streams[k].handle.port[1 - s]);
    mux.push_back((sdp->media[k].rtcp_mux || req.mux_offer || req.mux_require) && !req.mux_demux);
  }
  bool mux_bools[32] = {};
  for (size_t k = 0; k < mux.size() && k < 32; ++k) mux_bools[k] = mux[k];
  SdpRewrite rw = rewrite_options(req, address_);
  rw.media = media_out;
  sdp_out = sdp_rewrite(*sdp, rw, ports, std::span<const bool>(mux_bools, mux.size()));
  call.controller = req.controller;
  call.last_signal_ns = now_ns;
  Log(LogLevel::info, created ? "call.offer" : "call.reoffer")
      .kv("call-id", call.id).kv("from-tag", req.from_tag).kv("side", s)
      .kv("streams", static_cast<long>(call.streams.size()))
      .kv("port", static_cast<long>(ports.empty() ? 0 : ports[0]));
  return "";
}

std::string SessionManager::answer(const OfferAnswer& req, int64_t now_ns, std::string& sdp_out) {
  auto it = calls_.find(req.call_id);
  if (it == calls_.end()) return "Unknown call-id";
  Call& call = it->second;
  std::string error;
  auto sdp = sdp_parse(req.sdp, error);
  if (!sdp) return "bad SDP: " + error;
  int a;
  if (req.from_tag == call.tag[1] && req.to_tag == call.tag[0] && !call.tag[0].empty()) {
    a = 0;  // the answer to a re-offer that came from side 1
  } else if (req.from_tag == call.tag[0]) {
    a = 1;
    call.tag[1] = req.to_tag;  // forking: the last answer wins
  } else {
    return "Unknown from-tag";
  }
  if (sdp->media.size() > call.streams.size()) return "answer has more m= lines than the offer";
  std::vector<SideSpec> sides(sdp->media.size());
  std::vector<StreamCrypto> crypto(sdp->media.size());
  std::vector<SdpMediaOut> media_out(sdp->media.size());
  for (size_t k = 0; k < sdp->media.size(); ++k) {
    std::string e = side_from_media(sdp->media[k], req, sides[k]);
    crypto[k] = call.streams[k].crypto;
    if (e.empty()) e = crypto_answer(crypto[k], a, *sdp, sdp->media[k], media_out[k]);
    if (!e.empty()) return e;
  }

  ++call.generation;
  std::vector<uint16_t> ports;
  bool mux_bools[32] = {};
  for (size_t k = 0; k < sdp->media.size(); ++k) {
    Stream& st = call.streams[k];
    bool answerer_mux = sdp->media[k].rtcp_mux || req.mux_require;
    // Towards the offerer we accept mux only if it offered it (RFC 5761 §5.1.1).
    bool out_mux = st.sdp_mux[1 - a] && (answerer_mux || req.mux_accept) && !req.mux_demux;
    st.spec.side[a] = sides[k];
    st.sdp_mux[a] = sdp->media[k].rtcp_mux;
    st.crypto = crypto[k];
    for (int i = 0; i < 2; ++i) st.spec.side[i].srtp = st.crypto.side[i].srtp;
    st.spec.side[1 - a].rtcp_mux = out_mux;
    st.spec.strict_source = st.spec.strict_source || req.strict_source;
    st.spec.asymmetric = st.spec.asymmetric || req.asymmetric;
    st.spec.generation = call.generation;
    plane_.update_pair(st.handle.id, st.spec);
    ports.push_back(st.handle.port[1 - a]);
    if (k < 32) mux_bools[k] = out_mux;
  }
  SdpRewrite rw = rewrite_options(req, address_);
  rw.media = media_out;
  sdp_out = sdp_rewrite(*sdp, rw, ports, std::span<const bool>(mux_bools, ports.size()));
  call.controller = req.controller;
  call.last_signal_ns = now_ns;
  Log(LogLevel::info, "call.answer").kv("call-id", call.id).kv("from-tag", req.from_tag)
      .kv("to-tag", req.to_tag).kv("side", a);
  return "";
}

bool SessionManager::remove(const std::string& call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return false;
  release(it->second);
  calls_.erase(it);
  return true;
}

const Call* SessionManager::find(const std::string& call_id) const {
  auto it = calls_.find(call_id);
  return it == calls_.end() ? nullptr : &it->second;
}

std::vector<std::string> SessionManager::call_ids(size_t limit) const {
  std::vector<std::string> out;
  for (const auto& [id, call] : calls_) {
    if (out.size() >= limit) break;
    out.push_back(id);
  }
  return out;
}

int64_t SessionManager::last_activity(const Call& call) {
  int64_t last = call.last_signal_ns;
  for (const Stream& s : call.streams)
    if (s.handle.stats) last = std::max(last, s.handle.stats->last_packet_ns.load(std::memory_order_relaxed));
  return last;
}

std::vector<ExpiredCall> SessionManager::expire(int64_t now_ns, int64_t timeout_ns) {
  std::vector<ExpiredCall> out;
  for (auto it = calls_.begin(); it != calls_.end();) {
    int64_t idle = now_ns - last_activity(it->second);
    if (idle < timeout_ns) {
      ++it;
      continue;
    }
    out.push_back({it->first, it->second.tag[0], it->second.tag[1], it->second.controller, idle});
    release(it->second);
    it = calls_.erase(it);
  }
  return out;
}

}  // namespace relais::media
