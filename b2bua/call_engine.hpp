// call_engine.hpp — runs every incoming INVITE as a B2bCall driven by the script's
// on_invite(call) in its own Lua coroutine; verbs that wait (dial, sleep, registrar.lookup)
// yield and the loop resumes them on their event.
#pragma once

#include <sofia-sip/nta.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "authenticator.hpp"
#include "b2b_call.hpp"
#include "call_limits.hpp"
#include "call_media.hpp"
#include "config.hpp"
#include "location_store.hpp"
#include "ng_client.hpp"
#include "script_engine.hpp"
#include "sip_request.hpp"

struct event;
struct event_base;
struct lua_State;

namespace relais {

class EventLoop;
class SipStack;
class KvStore;
class MailSender;

struct CallCounters {
  uint64_t started = 0;
  uint64_t challenged = 0;  // INVITEs answered 407
  uint64_t answered = 0;
  uint64_t failed = 0;
  uint64_t script_errors = 0;
  uint64_t active = 0;
  uint64_t answered_locally = 0;  // call:answer(): menus, voicemail
  uint64_t digits = 0;            // DTMF digits from callers (RFC 4733 or SIP INFO)
};

class CallEngine {
 public:
  CallEngine(const Config& cfg, EventLoop& loop, SipStack& stack, LocationStore& store, Authenticator& auth,
             ScriptEngine& script);
  ~CallEngine();

  void handle_invite(const SipRequestPtr& request);
  // Starts the media relay client when media.mode = "relay".
  bool start_media(std::string& error);
  NgClient* media() const { return ng_.get(); }
  void set_config(const Config& cfg) {
    cfg_ = cfg;
    limits_.configure(cfg);
  }
  const CallLimits& limits() const { return limits_; }
  const CallCounters& counters() const { return counters_; }
  // The store behind relais.kv (voicemail metadata ...); set before the script loads.
  void set_kv(KvStore* kv) { kv_ = kv; }
  KvStore* kv() const { return kv_; }
  // The SMTP sender behind relais.mail (null when mail.smtp is not configured).
  void set_mail(MailSender* mail) { mail_ = mail; }
  MailSender* mail() const { return mail_; }

  // For B2bCall
  nta_agent_t* agent() const;
  event_base* base() const;
  const Config& config() const { return cfg_; }
  std::string contact_toward(const std::string& transport, const char* peer_host, const std::string& user = "relais") const;
  void kick();
  const TrunkConfig* trunk(const std::string& name) const;
  SipStack& stack() const { return stack_; }
  static std::string with_flow(const std::string& contact, const std::string& flow);
  void call_answered() { ++counters_.answered; }
  void call_answered_locally() { ++counters_.answered_locally; }
  // Counts the call against `trunk` (once per call, until it ends); false = the trunk is at
  // its concurrent-call limit and the call must not dial it.
  bool claim_trunk(uint64_t call_id, const std::string& trunk);

  // Adds call verbs, registrar.lookup and relais.sleep to a script state. `engine` may be
  // null (--check): the functions exist and raise when used.
  static void install_api(lua_State* L, CallEngine* engine);

  // --- used by the Lua bindings (lua_call.cpp) ---
  struct Context;
  Context* context_of(uint64_t call_id);
  Context* context_of_thread(lua_State* co);
  // Resolves targets ("100", "100@domain", "sip:...") into a dial plan; AoRs via the store.
  void resolve_targets(std::vector<std::vector<std::string>> targets,
                       std::function<void(const std::string& error, DialPlan plan)> done);
  void lookup_contacts(const std::string& aor_or_user, std::function<void(const std::string&, std::vector<std::string>)> done);
  // Resumes the call's coroutine from the loop (never from inside the verb that yielded).
  void resume_later(uint64_t call_id, std::function<int(lua_State* co)> push_results);
  void sleep(uint64_t call_id, double seconds);
  // Answers the call with relais as the far end and gives it a CallMedia (lua_media.cpp).
  void answer_locally(uint64_t call_id);
  // The prompt file for `name` in `language` ("" when there is none); a path is kept as is.
  std::string resolve_prompt(const std::string& name, const std::string& language) const;
  // Runs the call's on_dtmf function; true = it asked to interrupt the waiting verb.
  bool digit_hook(uint64_t call_id, const std::string& digit);

 private:
  void start_call(const SipRequestPtr& request, const std::string& auth_user, const std::string& from_trunk = "");
  void run_coroutine(Context& ctx, int nargs);
  void script_finished(Context& ctx, const std::string& error);
  void default_route(uint64_t call_id);
  void finish(uint64_t call_id);
  void finish_later(uint64_t call_id);
  static void push_call_table(lua_State* co, const Context& ctx);  // lua_call.cpp
  std::string normalize_aor(const std::string& aor_or_user) const;
  static void on_deferred(int, short, void* arg);
  void media_notification(const std::string& command, const bencode::Value& message);
  void call_event(uint64_t call_id, B2bCall::Event event, const std::string& digit);

  Config cfg_;
  EventLoop& loop_;
  SipStack& stack_;
  LocationStore& store_;
  Authenticator& auth_;
  ScriptEngine& script_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Context>> calls_;
  std::unique_ptr<NgClient> ng_;
  CallCounters counters_;
  CallLimits limits_;
  KvStore* kv_ = nullptr;
  MailSender* mail_ = nullptr;
};

// Per-call state of the engine: the call, the script generation it runs in, its coroutine.
struct CallEngine::Context {
  uint64_t id = 0;
  CallEngine* engine = nullptr;
  std::unique_ptr<B2bCall> call;
  ScriptStatePtr script;      // keeps the generation alive until this call ends (hot reload)
  lua_State* co = nullptr;    // the call's coroutine (a thread of script->lua())
  int co_ref = -2;            // registry reference pinning the coroutine (LUA_NOREF)
  bool running = false;       // inside lua_resume
  bool done = false;
  ::event* timer = nullptr;   // relais.sleep
  std::function<int(lua_State*)> pending;  // results waiting for resume_later
  std::string auth_user;
  std::string from_trunk;     // trunk name when the INVITE came from a trunk's address
  std::vector<std::string> trunks;  // trunks this call counts against (CallLimits)
  std::unique_ptr<CallMedia> media;  // once the script answered the call itself
  int dtmf_hook_ref = -2;     // call:on_dtmf(fn) in the registry (LUA_NOREF)
};

}  // namespace relais
