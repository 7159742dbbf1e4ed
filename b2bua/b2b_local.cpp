// b2b_local.cpp — calls relais answers itself (IVR, voicemail). The caller's offer goes to the
// relay as usual; the answer is ours: one G.711 codec from the caller's own list (so prompts
// need no transcoding), telephone-event when offered, and an address of 0.0.0.0 that tells the
// relay "nothing to send towards this side" — it plays to and records from the caller only.
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>

#include <algorithm>
#include <sstream>

#include "b2b_call.hpp"
#include "call_engine.hpp"
#include "call_memory.hpp"
#include "log.hpp"

namespace relais {

namespace {

std::vector<std::string> split_lines(const std::string& sdp) {
  std::vector<std::string> lines;
  std::istringstream in(sdp);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// a=rtpmap:<pt> <name>/<rate> → pt when the name matches (case-insensitive), else -1.
int rtpmap_pt(const std::string& line, const char* name) {
  if (line.rfind("a=rtpmap:", 0) != 0) return -1;
  auto w = words(line.substr(9));
  if (w.size() < 2) return -1;
  std::string enc = w[1].substr(0, w[1].find('/'));
  if (strcasecmp(enc.c_str(), name) != 0 || w[1].find("/8000") == std::string::npos) return -1;
  try {
    return std::stoi(w[0]);
  } catch (...) {
    return -1;
  }
}

// The first audio m= line's G.711 payload type in the caller's order, and its telephone-event.
bool choose_codec(const std::string& sdp, int& pt, int& event_pt) {
  pt = -1;
  event_pt = -1;
  bool in_audio = false, seen_audio = false;
  for (const std::string& line : split_lines(sdp)) {
    if (line.rfind("m=", 0) == 0) {
      if (seen_audio) break;
      in_audio = line.rfind("m=audio ", 0) == 0;
      if (!in_audio) continue;
      seen_audio = true;
      auto w = words(line);
      for (size_t i = 3; i < w.size() && pt < 0; ++i)
        if (w[i] == "0" || w[i] == "8") pt = std::stoi(w[i]);
    } else if (in_audio) {
      int te = rtpmap_pt(line, "telephone-event");
      if (te >= 96 && te <= 127 && event_pt < 0) event_pt = te;
    }
  }
  return pt >= 0;
}

// Our answer: the chosen codec on the first audio stream, every other stream refused (port 0).
std::string local_answer_sdp(const std::string& offer, int pt, int event_pt, uint64_t session) {
  std::string out = "v=0\r\no=relais " + std::to_string(session) + " 1 IN IP4 0.0.0.0\r\ns=relais\r\n"
                    "c=IN IP4 0.0.0.0\r\nt=0 0\r\n";
  bool audio_done = false;
  for (const std::string& line : split_lines(offer)) {
    if (line.rfind("m=", 0) != 0) continue;
    auto w = words(line);
    if (w.size() < 4) continue;
    if (w[0] == "m=audio" && !audio_done) {
      audio_done = true;
      out += "m=audio 9 RTP/AVP " + std::to_string(pt);
      if (event_pt >= 0) out += " " + std::to_string(event_pt);
      out += "\r\na=rtpmap:" + std::to_string(pt) + (pt == 0 ? " PCMU/8000" : " PCMA/8000") + "\r\n";
      if (event_pt >= 0)
        out += "a=rtpmap:" + std::to_string(event_pt) + " telephone-event/8000\r\na=fmtp:" + std::to_string(event_pt) + " 0-16\r\n";
      out += "a=ptime:20\r\na=sendrecv\r\n";
    } else {
      out += w[0] + " 0 " + w[2] + " " + w[3] + "\r\n";
    }
  }
  return out;
}

// The relay's offer toward callees, cut down to the codec the caller already got from us:
// a callee choosing another one would send the caller audio it never agreed to.
std::string keep_formats(const std::string& sdp, int pt, int event_pt) {
  std::string out;
  bool in_audio = false, audio_done = false;
  auto keep = [&](const std::string& fmt) { return fmt == std::to_string(pt) || (event_pt >= 0 && fmt == std::to_string(event_pt)); };
  for (const std::string& line : split_lines(sdp)) {
    if (line.rfind("m=", 0) == 0) {
      auto w = words(line);
      in_audio = !audio_done && line.rfind("m=audio ", 0) == 0 && w.size() >= 3;
      if (in_audio) {
        audio_done = true;
        std::string m = w[0] + " " + w[1] + " " + w[2];
        for (size_t i = 3; i < w.size(); ++i)
          if (keep(w[i])) m += " " + w[i];
        out += m + "\r\n";
        continue;
      }
    } else if (in_audio && (line.rfind("a=rtpmap:", 0) == 0 || line.rfind("a=fmtp:", 0) == 0)) {
      // The caller wrote these lines: an empty "a=rtpmap:" names no format and is dropped.
      auto fmt = words(line.substr(line.find(':') + 1));
      if (fmt.empty() || !keep(fmt.front())) continue;
    }
    out += line + "\r\n";
  }
  return out;
}

// RFC 2976 INFO bodies phones use for DTMF: application/dtmf-relay ("Signal=5") and
// application/dtmf ("5").
std::string info_digit(const sip_t* sip) {
  if (!sip->sip_content_type || !sip->sip_content_type->c_type || !sip->sip_payload) return {};
  std::string type = sip->sip_content_type->c_type;
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string body(sip->sip_payload->pl_data, std::min<size_t>(sip->sip_payload->pl_len, 256));
  std::string value;
  if (type == "application/dtmf-relay") {
    for (const std::string& line : split_lines(body)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(0, eq);
      key.erase(std::remove_if(key.begin(), key.end(), ::isspace), key.end());
      if (strcasecmp(key.c_str(), "Signal") != 0) continue;
      value = line.substr(eq + 1);
    }
  } else if (type == "application/dtmf") {
    value = body;
  } else {
    return {};
  }
  value.erase(std::remove_if(value.begin(), value.end(), ::isspace), value.end());
  if (value == "10") value = "*";
  if (value == "11") value = "#";
  if (value.size() != 1) return {};
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(value[0])));
  if (!strchr("0123456789*#ABCD", c)) return {};
  return std::string(1, c);
}

}  // namespace

void B2bCall::answer_locally(std::function<void(const std::string&)> done) {
  if (local_answer_) return done("");
  if (answered_ || finished_ || caller_gone_ || dialing_ || local_answering_) return done("the call is already answered, ended or dialing");
  if (!engine_.media()) return done("media services need media.mode = \"relay\" (relais-media)");
  const sip_t* sip = invite_->sip();
  std::string offer = payload_of(sip);
  if (offer.empty()) return done("the INVITE has no SDP offer");
  int pt = -1, event_pt = -1;
  if (!choose_codec(offer, pt, event_pt)) return done("the caller offers neither PCMU nor PCMA");
  local_pt_ = pt;
  local_event_pt_ = event_pt;
  local_answering_ = true;
  std::string answer = local_answer_sdp(offer, pt, event_pt, id_);
  std::string our_tag = nta_leg_get_tag(a_leg_) ? nta_leg_get_tag(a_leg_) : "";
  auto answered = [done, our_tag](B2bCall& c, const std::string& error, const std::string& sdp) {
    c.local_answering_ = false;
    if (!error.empty()) return done(error);
    if (c.finished_ || c.caller_gone_ || c.invite_->answered()) return done("the caller hung up");
    c.answered_ = true;
    c.local_answer_ = true;
    assign_call_string(c.local_sdp_, sdp);
    std::string contact = c.our_contact();
    c.invite_->respond(SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                       SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
    c.engine_.call_answered();
    log_info("call.answered_locally").kv("call", c.id_).kv("call_id", c.call_id_).kv("pt", c.local_pt_)
        .kv("telephone_event", c.local_event_pt_);
    done("");
  };
  auto after_offer = [answer, our_tag, answered](B2bCall& c) {
    assign_call_string(c.b_offer_sdp_, keep_formats(c.b_offer_sdp_, c.local_pt_, c.local_event_pt_));
    c.media_request("answer", c.caller_tag(), our_tag, answer, answered);
  };
  if (media_offered_) return after_offer(*this);
  media_request("offer", caller_tag(), "", offer, [done, after_offer](B2bCall& c, const std::string& error, const std::string& sdp) {
    if (!error.empty()) {
      c.local_answering_ = false;
      return done(error);
    }
    assign_call_string(c.b_offer_sdp_, sdp);
    c.media_offered_ = true;
    after_offer(c);
  });
}

void B2bCall::info_digits(const sip_t* sip) {
  std::string digit = info_digit(sip);
  if (!digit.empty()) notify(Event::info_digit, digit);
}

// An in-dialog request from the caller while relais itself is the far end.
void B2bCall::local_request(const SipRequestPtr& request) {
  const sip_t* sip = request->sip();
  sip_method_t method = sip->sip_request->rq_method;
  if (method == sip_method_info || method == sip_method_options) {
    request->respond(SIP_200_OK);
    return;
  }
  if (method != sip_method_invite && method != sip_method_update) {
    request->respond(SIP_501_NOT_IMPLEMENTED);
    return;
  }
  std::string offer = payload_of(sip);
  std::string contact = our_contact();
  if (offer.empty()) {
    // A session refresh without SDP: the same answer again.
    request->respond(SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                     SIPTAG_PAYLOAD_STR(local_sdp_.c_str()), TAG_END());
    return;
  }
  // A new offer (hold, new address): through the relay again, answered with our one codec.
  std::string our_tag = nta_leg_get_tag(a_leg_) ? nta_leg_get_tag(a_leg_) : "";
  std::string answer = local_answer_sdp(offer, local_pt_, local_event_pt_, id_);
  media_request("offer", caller_tag(), our_tag, offer, [request, answer, our_tag](B2bCall& c, const std::string& error, const std::string&) {
    if (!error.empty()) {
      request->respond(500, "Media Relay Unavailable");
      return;
    }
    c.media_request("answer", c.caller_tag(), our_tag, answer, [request](B2bCall& c, const std::string& error, const std::string& sdp) {
      if (!error.empty()) {
        request->respond(500, "Media Relay Unavailable");
        return;
      }
      assign_call_string(c.local_sdp_, sdp);
      std::string contact = c.our_contact();
      request->respond(SIP_200_OK, SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                       SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
    });
  });
}

}  // namespace relais
