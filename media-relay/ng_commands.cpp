// ng_commands.cpp — ping, offer, answer, delete, query, list with the keys and flags that
// Kamailio's rtpengine module sends for a plain call. Unknown keys are ignored (the module
// sends more than a relay without SRTP/recording needs); wrongly typed known keys are errors.
#include "ng_commands.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "media_log.hpp"
#include "media_services.hpp"
#include "ng_media.hpp"
#include "udp_socket.hpp"

namespace relais::media {

namespace {

using bencode::Value;
constexpr size_t kMaxIdLength = 256;  // call-id / tags: bounded before they become map keys

struct Ctx {
  SessionManager& sessions;
  MediaServices* media;
  const sockaddr_in& from;
  int64_t now_ns;
};

// rtpengine accepts "strict source", "strict-source", "strict_source" alike.
std::string normalize(std::string s) {
  for (char& c : s) {
    if (c == ' ' || c == '_') c = '-';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// A list of strings, or one string as a one-item list; false on any other shape.
bool string_list(const Value& req, const char* key, std::vector<std::string>& out) {
  const Value* v = req.find(key);
  if (!v) return true;
  if (v->is_string()) {
    out.push_back(normalize(v->str));
    return true;
  }
  if (!v->is_list()) return false;
  for (const Value& item : v->list) {
    if (!item.is_string()) return false;
    out.push_back(normalize(item.str));
  }
  return true;
}

std::string required_id(const Value& req, const char* key, std::string& out) { return ng_required_id(req, key, out); }

// rtpengine's SDES options: "no-<suite>" removes a suite, "only-<suite>" keeps just the listed
// ones. Items are already normalized (lower case, '-' for '_').
std::string read_sdes(const std::vector<std::string>& items, SdesOptions& out) {
  bool only[4] = {false, false, false, false};
  bool any_only = false;
  for (const std::string& item : items) {
    bool is_no = item.rfind("no-", 0) == 0, is_only = item.rfind("only-", 0) == 0;
    if (!is_no && !is_only) continue;  // other rtpengine SDES options change nothing here
    std::string name = item.substr(is_no ? 3 : 5);
    std::optional<SrtpSuite> suite;
    for (SrtpSuite s : kSrtpSuites)
      if (normalize(srtp_suite_name(s)) == name) suite = s;
    if (!suite) return "unknown SDES crypto suite " + name;
    if (is_no) out.allowed[static_cast<int>(*suite)] = false;
    else only[static_cast<int>(*suite)] = any_only = true;
  }
  if (any_only)
    for (int i = 0; i < 4; ++i) out.allowed[i] = out.allowed[i] && only[i];
  return "";
}

std::string read_offer_answer(const Value& req, const Ctx& ctx, bool answer, OfferAnswer& oa) {
  if (auto e = required_id(req, "call-id", oa.call_id); !e.empty()) return e;
  if (auto e = required_id(req, "from-tag", oa.from_tag); !e.empty()) return e;
  if (answer) {
    if (auto e = required_id(req, "to-tag", oa.to_tag); !e.empty()) return e;
  } else if (const Value* t = req.find("to-tag"); t && t->is_string() && t->str.size() <= kMaxIdLength) {
    oa.to_tag = t->str;
  }
  const Value* sdp = req.find("sdp");
  if (!sdp) return "missing sdp";
  if (!sdp->is_string()) return "bad sdp";
  oa.sdp = sdp->str;
  oa.via_branch = req.get_string("via-branch");

  std::vector<std::string> flags, replace, mux, received;
  if (!string_list(req, "flags", flags)) return "bad flags";
  if (!string_list(req, "replace", replace)) return "bad replace";
  if (!string_list(req, "rtcp-mux", mux)) return "bad rtcp-mux";
  if (!string_list(req, "received-from", received)) return "bad received-from";
  std::vector<std::string> direction;
  if (!string_list(req, "direction", direction)) return "bad direction";  // one interface: informational
  for (const std::string& f : flags) {
    if (f == "strict-source") oa.strict_source = true;
    else if (f == "asymmetric") oa.asymmetric = true;
    else if (f == "symmetric") oa.asymmetric = false;
    else if (f == "sip-source-address") oa.sip_source = true;
    else if (f == "trust-address") oa.sip_source = false;
    else if (f == "replace-origin") oa.replace_origin = true;
    // Other flags (port-latching, record-call, ...) have no effect on a plain relay.
  }
  for (const std::string& r : replace)
    if (r == "origin") oa.replace_origin = true;  // session-connection: c= is always rewritten
  for (const std::string& m : mux) {
    if (m == "offer") oa.mux_offer = true;
    else if (m == "demux") oa.mux_demux = true;
    else if (m == "accept") oa.mux_accept = true;
    else if (m == "require") oa.mux_require = true;
  }
  if (received.size() == 2 && received[0] == "ip4") oa.received_from = received[1];
  if (const Value* ice = req.find("ICE"); ice && ice->is_string())
    oa.remove_ice = normalize(ice->str) == "remove" || normalize(ice->str) == "force-relay";
  if (const Value* tp = req.find("transport-protocol"); tp) {
    if (!tp->is_string()) return "bad transport-protocol";
    // The profile of the SDP we produce for the other side, as Kamailio's rtpengine module
    // asks for it: SAVP makes us terminate SRTP (SDES) towards that side.
    bool srtp = false;
    if (!rtp_profile(tp->str, srtp)) return "unsupported transport-protocol " + tp->str;
    oa.transport_protocol = tp->str;
  }
  std::vector<std::string> sdes;
  if (!string_list(req, "SDES", sdes)) return "bad SDES";
  for (const std::string& f : flags)
    if (f.rfind("sdes-", 0) == 0) sdes.push_back(f.substr(5));  // rtpengine's flag spelling
  if (auto e = read_sdes(sdes, oa.sdes); !e.empty()) return e;
  oa.controller = ctx.from;
  return "";
}

std::string cmd_ping(Ctx&, const Value&, Value& reply) {
  reply["result"] = Value::string("pong");
  return "";
}

std::string cmd_offer_answer(Ctx& ctx, const Value& req, Value& reply, bool answer) {
  OfferAnswer oa;
  if (auto e = read_offer_answer(req, ctx, answer, oa); !e.empty()) return e;
  std::string sdp;
  std::string e = answer ? ctx.sessions.answer(oa, ctx.now_ns, sdp) : ctx.sessions.offer(oa, ctx.now_ns, sdp);
  if (!e.empty()) return e;
  reply["sdp"] = Value::string(std::move(sdp));
  return "";
}

std::string cmd_offer(Ctx& ctx, const Value& req, Value& reply) { return cmd_offer_answer(ctx, req, reply, false); }
std::string cmd_answer(Ctx& ctx, const Value& req, Value& reply) { return cmd_offer_answer(ctx, req, reply, true); }

std::string cmd_delete(Ctx& ctx, const Value& req, Value& reply) {
  std::string call_id;
  if (auto e = required_id(req, "call-id", call_id); !e.empty()) return e;
  const Call* call = ctx.sessions.find(call_id);
  if (!call) return "Unknown call-id";
  NgCommands::call_stats(*call, reply, ctx.now_ns);
  const Value& rtp = reply.dict["totals"].dict["RTP"];
  int64_t side_packets[2] = {0, 0};
  for (const Stream& st : call->streams)
    for (int i = 0; i < 2; ++i) side_packets[i] += static_cast<int64_t>(st.handle.stats->side[i].packets.load(std::memory_order_relaxed));
  Log(LogLevel::info, "call.delete").kv("call-id", call_id)
      .kv("packets", static_cast<long long>(rtp.find("packets")->num))
      .kv("bytes", static_cast<long long>(rtp.find("bytes")->num))
      .kv("from-tag", call->tag[0]).kv("from-packets", static_cast<long long>(side_packets[0]))
      .kv("to-tag", call->tag[1]).kv("to-packets", static_cast<long long>(side_packets[1]));
  ctx.sessions.remove(call_id);
  return "";
}

std::string cmd_query(Ctx& ctx, const Value& req, Value& reply) {
  std::string call_id;
  if (auto e = required_id(req, "call-id", call_id); !e.empty()) return e;
  const Call* call = ctx.sessions.find(call_id);
  if (!call) return "Unknown call-id";
  NgCommands::call_stats(*call, reply, ctx.now_ns);
  // Ours: what the media services are doing on the call.
  Value playing = Value::make_list();
  for (int side = 0; side < 2; ++side)
    if (call->playing[side]) playing.list.push_back(Value::string(call->tag[side]));
  Value media = Value::make_dict();
  media["playing"] = std::move(playing);
  media["recording"] = Value::string(ctx.media ? ctx.media->recording_path(*call) : "");
  reply["media"] = std::move(media);
  return "";
}

std::string cmd_list(Ctx& ctx, const Value& req, Value& reply) {
  size_t limit = 1000;
  if (const Value* l = req.find("limit"); l && l->is_integer() && l->num >= 0)
    limit = std::min<size_t>(limit, static_cast<size_t>(l->num));
  Value calls = Value::make_list();
  for (std::string& id : ctx.sessions.call_ids(limit)) calls.list.push_back(Value::string(std::move(id)));
  reply["calls"] = std::move(calls);
  return "";
}

template <std::string (*F)(MediaServices&, const Value&, Value&)>
std::string media_verb(Ctx& ctx, const Value& req, Value& reply) {
  if (!ctx.media) return "media services unavailable";
  return F(*ctx.media, req, reply);
}

struct Verb {
  const char* name;
  std::string (*handler)(Ctx&, const Value&, Value&);
};
constexpr Verb kVerbs[] = {
    {"ping", cmd_ping},     {"offer", cmd_offer}, {"answer", cmd_answer},
    {"delete", cmd_delete}, {"query", cmd_query}, {"list", cmd_list},
    {"play media", media_verb<ng_play_media>},
    {"stop media", media_verb<ng_stop_media>},
    {"play DTMF", media_verb<ng_play_dtmf>},
    {"start recording", media_verb<ng_start_recording>},
    {"stop recording", media_verb<ng_stop_recording>},
};

Value endpoint(uint32_t ip, uint16_t port) {
  Value v = Value::make_dict();
  in_addr a{};
  a.s_addr = ip;
  char text[INET_ADDRSTRLEN] = "";
  inet_ntop(AF_INET, &a, text, sizeof text);
  v["family"] = Value::string("IPv4");
  v["address"] = Value::string(text);
  v["port"] = Value::integer(port);
  return v;
}

}  // namespace

std::string ng_required_id(const Value& req, const char* key, std::string& out) {
  const Value* v = req.find(key);
  if (!v) return std::string("missing ") + key;
  if (!v->is_string() || v->str.empty()) return std::string("bad ") + key;
  if (v->str.size() > kMaxIdLength) return std::string(key) + " too long";
  out = v->str;
  return "";
}

void NgCommands::call_stats(const Call& call, Value& reply, int64_t now_ns) {
  int64_t totals[2][3] = {};  // RTP, RTCP × packets, bytes, errors
  Value tags = Value::make_dict();
  Value flat = Value::make_list();
  for (int side = 0; side < 2; ++side) {
    Value medias = Value::make_list();
    for (size_t k = 0; k < call.streams.size(); ++k) {
      const Stream& st = call.streams[k];
      const SideCounters& c = st.handle.stats->side[side];
      auto ld = [](const auto& a) { return static_cast<int64_t>(a.load(std::memory_order_relaxed)); };
      int64_t packets = ld(c.packets), bytes = ld(c.bytes), dropped = ld(c.dropped);
      int64_t rtcp_packets = ld(c.rtcp_packets), rtcp_bytes = ld(c.rtcp_bytes);
      totals[0][0] += packets;
      totals[0][1] += bytes;
      totals[0][2] += dropped;
      totals[1][0] += rtcp_packets;
      totals[1][1] += rtcp_bytes;
      uint32_t rate = st.spec.side[side].clock_rate ? st.spec.side[side].clock_rate : 8000;
      int64_t jitter = ld(c.jitter);
      Value stats = Value::make_dict();
      stats["packets"] = Value::integer(packets);
      stats["bytes"] = Value::integer(bytes);
      stats["errors"] = Value::integer(dropped);
      Value s = Value::make_dict();
      s["local port"] = Value::integer(st.handle.port[side]);
      s["advertised endpoint"] = endpoint(st.spec.side[side].rtp.sin_addr.s_addr, ntohs(st.spec.side[side].rtp.sin_port));
      uint32_t lip = c.latched_ip.load(std::memory_order_relaxed);
      s["endpoint"] = lip ? endpoint(lip, c.latched_port.load(std::memory_order_relaxed)) : s.dict["advertised endpoint"];
      s["stats"] = stats;
      Value media = Value::make_dict();
      media["index"] = Value::integer(static_cast<int64_t>(k + 1));
      media["type"] = Value::string(st.type);
      media["streams"] = Value::make_list();
      media["streams"].list.push_back(s);
      medias.list.push_back(std::move(media));

      Value f = Value::make_dict();
      f["index"] = Value::integer(static_cast<int64_t>(k + 1));
      f["type"] = Value::string(st.type);
      f["tag"] = Value::string(call.tag[side]);
      f["local-port"] = Value::integer(st.handle.port[side]);
      f["peer"] = s.dict["endpoint"];
      f["latched"] = Value::integer(lip ? 1 : 0);
      f["packets"] = Value::integer(packets);
      f["bytes"] = Value::integer(bytes);
      f["rtcp-packets"] = Value::integer(rtcp_packets);
      f["rtcp-bytes"] = Value::integer(rtcp_bytes);
      f["forwarded"] = Value::integer(ld(c.forwarded));
      f["suppressed"] = Value::integer(ld(c.suppressed));
      f["dtmf-keys"] = Value::integer(ld(c.dtmf_keys));
      f["dtmf-dropped"] = Value::integer(ld(c.dtmf_dropped));
      // SRTP: the suite this side speaks ("" = plain RTP), and what failed to authenticate.
      const SideSrtp& srtp = st.spec.side[side].srtp;
      f["crypto-suite"] = Value::string(srtp.mode == SideSrtp::Mode::srtp ? srtp_suite_name(srtp.rx.suite) : "");
      f["srtp-failed"] = Value::integer(ld(c.srtp_failed));
      f["srtp-replayed"] = Value::integer(ld(c.srtp_replayed));
      f["dropped"] = Value::integer(dropped);
      f["expected"] = Value::integer(ld(c.expected));
      f["lost"] = Value::integer(ld(c.lost));
      f["jitter"] = Value::integer(jitter);
      f["jitter-ms"] = Value::integer(jitter * 1000 / rate);
      flat.list.push_back(std::move(f));
    }
    std::string tag = call.tag[side];
    if (tag.empty()) continue;  // no answer yet: the answerer has no tag
    Value t = Value::make_dict();
    t["tag"] = Value::string(tag);
    t["medias"] = std::move(medias);
    tags[tag] = std::move(t);
  }
  Value rtp = Value::make_dict(), rtcp = Value::make_dict();
  rtp["packets"] = Value::integer(totals[0][0]);
  rtp["bytes"] = Value::integer(totals[0][1]);
  rtp["errors"] = Value::integer(totals[0][2]);
  rtcp["packets"] = Value::integer(totals[1][0]);
  rtcp["bytes"] = Value::integer(totals[1][1]);
  rtcp["errors"] = Value::integer(0);
  Value tot = Value::make_dict();
  tot["RTP"] = std::move(rtp);
  tot["RTCP"] = std::move(rtcp);
  reply["created"] = Value::integer(call.created_unix);
  reply["idle"] = Value::integer((now_ns - SessionManager::last_activity(call)) / 1000000000);
  reply["totals"] = std::move(tot);
  reply["tags"] = std::move(tags);
  reply["streams"] = std::move(flat);
}

Value NgCommands::execute(const Value& request, const sockaddr_in& from, int64_t now_ns) {
  Value reply = Value::make_dict();
  std::string error;
  const Value* command = request.find("command");
  if (!request.is_dict()) {
    error = "request is not a dictionary";
  } else if (!command || !command->is_string()) {
    error = "missing command";
  } else {
    const Verb* verb = nullptr;
    for (const Verb& v : kVerbs)
      if (command->str == v.name) verb = &v;
    if (!verb) {
      error = "Unrecognized command";
    } else {
      Ctx ctx{sessions_, media_, from, now_ns};
      error = verb->handler(ctx, request, reply);
      if (error.empty() && !reply.find("result")) reply["result"] = Value::string("ok");
    }
  }
  if (!error.empty()) {
    reply = Value::make_dict();
    reply["result"] = Value::string("error");
    reply["error-reason"] = Value::string(error);
    Log(LogLevel::info, "ng.error").kv("peer", format_addr(from))
        .kv("command", command && command->is_string() ? command->str : "").kv("reason", error)
        .kv("call-id", request.get_string("call-id"));
  }
  return reply;
}

}  // namespace relais::media
