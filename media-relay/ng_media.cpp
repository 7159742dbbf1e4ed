// ng_media.cpp — media verbs. Integers are accepted as bencoded integers or as decimal strings
// (rtpengine's clients send both); anything else of the wrong type is an error.
#include "ng_media.hpp"

#include <charconv>

#include "ng_commands.hpp"

namespace relais::media {

namespace {

using bencode::Value;

// false (with error) when present but not an integer; missing keys keep `out`.
bool read_int(const Value& req, const char* key, int64_t& out, std::string& error) {
  const Value* v = req.find(key);
  if (!v) return true;
  if (v->is_integer()) {
    out = v->num;
    return true;
  }
  if (v->is_string() && !v->str.empty() && v->str.size() < 20) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(v->str.data(), v->str.data() + v->str.size(), n);
    if (ec == std::errc() && p == v->str.data() + v->str.size()) {
      out = n;
      return true;
    }
  }
  error = std::string("bad ") + key;
  return false;
}

std::string call_and_tag(const Value& req, std::string& call_id, std::string& tag, bool tag_required) {
  if (auto e = ng_required_id(req, "call-id", call_id); !e.empty()) return e;
  if (tag_required || req.find("from-tag")) return ng_required_id(req, "from-tag", tag);
  return "";
}

}  // namespace

std::string ng_play_media(MediaServices& media, const Value& req, Value& reply) {
  std::string call_id, tag, error;
  if (auto e = call_and_tag(req, call_id, tag, true); !e.empty()) return e;
  PlayRequest p;
  if (const Value* f = req.find("file")) {
    if (f->is_string()) {
      p.files.push_back(f->str);
    } else if (f->is_list()) {
      for (const Value& item : f->list) {
        if (!item.is_string() || item.str.empty()) return "bad file";
        if (p.files.size() >= MediaServices::kMaxFiles) return "Too many media files";
        p.files.push_back(item.str);
      }
    } else {
      return "bad file";
    }
  }
  if (const Value* t = req.find("tone")) {
    if (!t->is_string()) return "bad tone";
    p.tone = t->str;
  }
  if (p.files.empty() == p.tone.empty()) return "need one of file or tone";
  if (!read_int(req, "repeat-times", p.repeat, error) || !read_int(req, "duration", p.duration_ms, error)) return error;
  int64_t duration = 0;
  if (auto e = media.play(call_id, tag, p, duration); !e.empty()) return e;
  reply["duration"] = Value::integer(duration);
  return "";
}

std::string ng_stop_media(MediaServices& media, const Value& req, Value&) {
  std::string call_id, tag;
  if (auto e = call_and_tag(req, call_id, tag, true); !e.empty()) return e;
  return media.stop_play(call_id, tag);
}

std::string ng_play_dtmf(MediaServices& media, const Value& req, Value&) {
  std::string call_id, tag, error;
  if (auto e = call_and_tag(req, call_id, tag, true); !e.empty()) return e;
  const Value* code = req.find("code");
  if (!code) return "missing code";
  std::string key;
  if (code->is_string()) key = code->str;
  else if (code->is_integer() && code->num >= 0 && code->num <= 9) key = std::to_string(code->num);
  else return "bad code";
  int64_t duration = 100, volume = 10;
  if (!read_int(req, "duration", duration, error) || !read_int(req, "volume", volume, error)) return error;
  return media.play_dtmf(call_id, tag, key, duration, volume);
}

std::string ng_start_recording(MediaServices& media, const Value& req, Value&) {
  std::string call_id, error;
  RecordRequest r;
  if (auto e = call_and_tag(req, call_id, r.from_tag, false); !e.empty()) return e;
  const Value* dest = req.find("output-destination");
  if (!dest) return "missing output-destination";
  if (!dest->is_string()) return "bad output-destination";
  r.path = dest->str;
  if (!read_int(req, "silence-ms", r.silence_ms, error)) return error;
  return media.start_recording(call_id, r);
}

std::string ng_stop_recording(MediaServices& media, const Value& req, Value& reply) {
  std::string call_id;
  if (auto e = ng_required_id(req, "call-id", call_id); !e.empty()) return e;
  int64_t duration = 0;
  std::string file;
  if (auto e = media.stop_recording(call_id, duration, file); !e.empty()) return e;
  reply["duration"] = Value::integer(duration);
  reply["file"] = Value::string(file);
  return "";
}

}  // namespace relais::media
