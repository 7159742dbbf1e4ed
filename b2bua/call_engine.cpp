// call_engine.cpp — INVITE admission (auth, unknown sources), the per-call coroutine, deferred
// resumption, and the default route when the script has no on_invite.
#include "call_engine.hpp"

#include <event2/event.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <strings.h>

#include <lua.hpp>

#include <algorithm>

#include "call_memory.hpp"
#include "event_loop.hpp"
#include "log.hpp"
#include "local_contact.hpp"
#include "sip_stack.hpp"
#include "srtp_policy.hpp"

namespace relais {

namespace {

int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }


struct Deferred {
  CallEngine* engine;
  uint64_t call_id;
};

}  // namespace

CallEngine::CallEngine(const Config& cfg, EventLoop& loop, SipStack& stack, LocationStore& store, Authenticator& auth,
                       ScriptEngine& script)
    : cfg_(cfg), loop_(loop), stack_(stack), store_(store), auth_(auth), script_(script), limits_(cfg) {}

CallEngine::~CallEngine() {
  while (!calls_.empty()) finish(calls_.begin()->first);
  ng_.reset();
}

nta_agent_t* CallEngine::agent() const { return stack_.agent(); }
event_base* CallEngine::base() const { return loop_.base(); }

void CallEngine::kick() { loop_.kick(); }

bool CallEngine::start_media(std::string& error) {
  if (cfg_.media.mode != "relay") return true;
  ng_ = std::make_unique<NgClient>(base(), cfg_.media);
  if (!ng_->start(error)) return false;
  ng_->on_timeout([this](const std::string& call_id, const std::string&) {
    for (auto& [id, ctx] : calls_) {
      if (ctx->done || !ctx->call || ctx->call->call_id() != call_id) continue;
      log_warn("call.media_timeout").kv("call", id).kv("call_id", call_id);
      ctx->call->media_timeout();
    }
    loop_.kick();
  });
  ng_->on_notification([this](const std::string& command, const bencode::Value& message) {
    media_notification(command, message);
    loop_.kick();
  });
  return true;
}

void CallEngine::media_notification(const std::string& command, const bencode::Value& message) {
  std::string call_id = message.get_string("call-id");
  std::string from_tag = message.get_string("from-tag");
  for (auto& [id, ctx] : calls_) {
    if (ctx->done || !ctx->call || !ctx->media || ctx->call->call_id() != call_id) continue;
    // Only the caller's side: a bridged callee's digits are the callee's business.
    if (!from_tag.empty() && from_tag != ctx->call->caller_tag()) continue;
    if (command == "dtmf") {
      std::string digit = message.get_string("digit");
      log_info("call.dtmf").kv("call", id).kv("call_id", call_id).kv("digit", digit).kv("source", message.get_string("source", "rfc4733"));
      ++counters_.digits;
      ctx->media->digit(digit);
    } else if (command == "playback-done") {
      ctx->media->playback_done();
    } else if (command == "silence") {
      ctx->media->silence();
    }
    return;
  }
}

void CallEngine::call_event(uint64_t call_id, B2bCall::Event event, const std::string& digit) {
  Context* ctx = context_of(call_id);
  if (!ctx || !ctx->media) return;
  switch (event) {
    case B2bCall::Event::ended:
      return ctx->media->caller_gone();
    case B2bCall::Event::bridged:
      return ctx->media->stop_playback();
    case B2bCall::Event::info_digit:
      log_info("call.dtmf").kv("call", call_id).kv("call_id", ctx->call->call_id()).kv("digit", digit).kv("source", "info");
      ++counters_.digits;
      return ctx->media->digit(digit);
  }
}

const TrunkConfig* CallEngine::trunk(const std::string& name) const {
  auto it = cfg_.trunks.find(name);
  return it == cfg_.trunks.end() ? nullptr : &it->second;
}

std::string CallEngine::contact_toward(const std::string& transport, const char* peer_host, const std::string& user) const {
  return local_contact(stack_.listening(), transport, peer_host ? peer_host : "", user);
}

std::string CallEngine::normalize_aor(const std::string& aor_or_user) const {
  std::string aor = aor_or_user;
  if (aor.rfind("sip:", 0) == 0) aor = aor.substr(4);
  size_t at = aor.find('@');
  if (at == std::string::npos) return aor + "@" + cfg_.domain;
  std::string host = aor.substr(at + 1);
  if (stack_.is_local_host(host.c_str())) return aor.substr(0, at) + "@" + cfg_.domain;
  return aor;
}

void CallEngine::handle_invite(const SipRequestPtr& request) {
  const sip_t* sip = request->sip();
  const url_t* from = sip->sip_from ? sip->sip_from->a_url : nullptr;
  bool from_ours = from && from->url_host &&
                   (strcasecmp(from->url_host, cfg_.domain.c_str()) == 0 || stack_.is_local_host(from->url_host));
  for (const std::string& alias : cfg_.aliases) from_ours = from_ours || (from && from->url_host && strcasecmp(from->url_host, alias.c_str()) == 0);
  bool local_user = from_ours && from->url_user && cfg_.users.count(from->url_user);

  // A call from an operator: recognised by source address, trusted like the operator is.
  for (const auto& [name, trunk] : cfg_.trunks)
    if (cidr_match(trunk.addresses, request->source().ip)) return start_call(request, "", name);

  if (!local_user) {
    if (cfg_.calls.unknown_sources == "reject") {
      // INVITEs from nobody we know are how toll-fraud scanners probe: they count toward a ban.
      auth_.report_failure(request->source().ip, from && from->url_user ? from->url_user : "", "unknown source");
      log_info("call.rejected").kv("reason", "unknown source").kv("src", request->source().to_string()).kv("call_id", request->call_id());
      request->respond(403, "Unknown Source");
      return;
    }
    return start_call(request, "");
  }
  if (!cfg_.calls.authenticate) return start_call(request, "");

  // RFC 3261 §22.3: a B2BUA acting for the caller's domain challenges with 407.
  auth_.verify(sip, unix_now(), true, [this, request, user = std::string(from->url_user)](const Authenticator::Outcome& outcome) {
    switch (outcome.verdict) {
      case Authenticator::Verdict::ok:
        if (outcome.user != user) {
          auth_.report_failure(request->source().ip, outcome.user, "Username Does Not Match From");
          request->respond(403, "Username Does Not Match From");
          return;
        }
        return start_call(request, outcome.user);
      case Authenticator::Verdict::challenge:
      case Authenticator::Verdict::stale: {
        ++counters_.challenged;
        log_debug("call.challenge").kv("user", user).kv("why", outcome.reason).kv("call_id", request->call_id());
        std::vector<std::string> headers = auth_.challenges(unix_now(), outcome.verdict == Authenticator::Verdict::stale, user);
        if (headers.size() == 1)
          request->respond(SIP_407_PROXY_AUTH_REQUIRED, SIPTAG_PROXY_AUTHENTICATE_STR(headers[0].c_str()), TAG_END());
        else
          request->respond(SIP_407_PROXY_AUTH_REQUIRED, SIPTAG_PROXY_AUTHENTICATE_STR(headers[0].c_str()),
                           SIPTAG_PROXY_AUTHENTICATE_STR(headers[1].c_str()), TAG_END());
        return;
      }
      case Authenticator::Verdict::bad_request:
        request->respond(400, outcome.reason.c_str());
        return;
      case Authenticator::Verdict::forbidden:
        auth_.report_failure(request->source().ip, outcome.user, outcome.reason);
        log_warn("call.auth_failed").kv("user", outcome.user).kv("reason", outcome.reason)
            .kv("src", request->source().to_string()).kv("call_id", request->call_id());
        request->respond(SIP_403_FORBIDDEN);
        return;
      case Authenticator::Verdict::unavailable:
        request->respond(503, "Store Unavailable", SIPTAG_RETRY_AFTER_STR("5"), TAG_END());
        return;
    }
  });
}

void CallEngine::start_call(const SipRequestPtr& request, const std::string& auth_user, const std::string& from_trunk) {
  // SRTP policy of the caller (users/trunks .srtp, media.srtp): RFC 3264 §6 lets an answerer
  // refuse an offer it cannot accept with 488; nothing of the call is set up.
  SrtpPolicy srtp = caller_srtp_policy(cfg_, auth_user, from_trunk);
  if (std::string why = srtp_refusal(srtp, request->sip()); !why.empty()) {
    log_info("call.rejected").kv("reason", why).kv("policy", srtp_policy_name(srtp)).kv("user", auth_user)
        .kv("trunk", from_trunk).kv("src", request->source().to_string()).kv("call_id", request->call_id());
    request->respond(488, "Not Acceptable Here", SIPTAG_WARNING_STR(("399 relais \"" + why + "\"").c_str()), TAG_END());
    return;
  }
  // SBC concurrent-call limits: refused before any leg, media or script work.
  if (!limits_.claim_user(auth_user)) {
    log_warn("call.limit").kv("user", auth_user).kv("active", limits_.user_calls(auth_user))
        .kv("src", request->source().to_string()).kv("call_id", request->call_id());
    request->respond(503, "Too Many Calls");
    return;
  }
  if (!from_trunk.empty() && !limits_.claim_trunk(from_trunk)) {
    limits_.release_user(auth_user);
    log_warn("call.limit").kv("trunk", from_trunk).kv("active", limits_.trunk_calls(from_trunk))
        .kv("src", request->source().to_string()).kv("call_id", request->call_id());
    request->respond(503, "Trunk Capacity Reached");
    return;
  }
  uint64_t id = next_id_++;
  std::unique_ptr<Context> ctx;
  {
    CallMemory memory;  // what the call keeps while it is up: not among the setup's messages
    ctx = std::make_unique<Context>();
    ctx->id = id;
    ctx->engine = this;
    ctx->auth_user = auth_user;
    ctx->from_trunk = from_trunk;
    if (!from_trunk.empty()) ctx->trunks.push_back(from_trunk);
    ctx->call = std::make_unique<B2bCall>(*this, id, request);
  }
  if (!ctx->call->accept_leg()) {
    limits_.release_user(auth_user);
    if (!from_trunk.empty()) limits_.release_trunk(from_trunk);
    request->respond(500, "Cannot Create Dialog");
    return;
  }
  ++counters_.started;
  ++counters_.active;
  const sip_t* sip = request->sip();
  log_info("call.start").kv("call", id).kv("call_id", request->call_id())
      .kv("from", sip->sip_from && sip->sip_from->a_url->url_user ? sip->sip_from->a_url->url_user : "")
      .kv("to", sip->sip_request->rq_url->url_user ? sip->sip_request->rq_url->url_user : "")
      .kv("src", request->source().to_string()).kv("trunk", from_trunk);
  Context& c = *ctx;
  {
    CallMemory memory;
    calls_[id] = std::move(ctx);
    c.call->set_observer([this, id](B2bCall::Event event, const std::string& digit) { call_event(id, event, digit); });
  }

  ScriptStatePtr script = script_.current();
  if (!script || !script->has_hook("on_invite")) return default_route(id);
  c.script = script;
  lua_State* L = script->lua();
  c.co = lua_newthread(L);
  c.co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(c.co, "on_invite");
  push_call_table(c.co, c);
  run_coroutine(c, 1);
}

bool CallEngine::claim_trunk(uint64_t call_id, const std::string& trunk) {
  Context* ctx = context_of(call_id);
  if (!ctx) return false;
  if (std::find(ctx->trunks.begin(), ctx->trunks.end(), trunk) != ctx->trunks.end()) return true;
  if (!limits_.claim_trunk(trunk)) {
    log_warn("call.limit").kv("call", call_id).kv("trunk", trunk).kv("active", limits_.trunk_calls(trunk))
        .kv("call_id", ctx->call ? ctx->call->call_id() : "");
    return false;
  }
  ctx->trunks.push_back(trunk);
  return true;
}

CallEngine::Context* CallEngine::context_of(uint64_t call_id) {
  auto it = calls_.find(call_id);
  return it == calls_.end() || it->second->done ? nullptr : it->second.get();
}

CallEngine::Context* CallEngine::context_of_thread(lua_State* co) {
  for (auto& [id, ctx] : calls_)
    if (ctx->co == co && !ctx->done) return ctx.get();
  return nullptr;
}

void CallEngine::run_coroutine(Context& ctx, int nargs) {
  lua_State* co = ctx.co;
  ctx.running = true;
  arm_instruction_limit(co);
  int status = lua_resume(co, nargs);
  disarm_instruction_limit(co);
  ctx.running = false;
  if (status == LUA_YIELD) return;
  if (status == 0) return script_finished(ctx, "");
  // Error: the coroutine is dead; its stack still holds the frames for a traceback.
  lua_State* L = ctx.script->lua();
  std::string message = lua_error_text(co);
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushstring(L, message.c_str());
  std::string traced = lua_pcall(L, 2, 1, 0) == 0 ? lua_error_text(L) : message;
  lua_pop(L, 2);
  script_finished(ctx, traced);
}

void CallEngine::script_finished(Context& ctx, const std::string& error) {
  B2bCall& call = *ctx.call;
  if (!error.empty()) {
    ++counters_.script_errors;
    log_error("script.error").kv("hook", "on_invite").kv("call", ctx.id).kv("call_id", call.call_id()).kv("error", error);
    if (call.answered())
      call.hangup();
    else
      call.reject(500, "Script Error");
  } else if (!call.finished()) {
    // The script returned without answering: the caller hears why the last dial failed.
    int code = call.last_failure_code() >= 300 ? call.last_failure_code() : 480;
    call.reject(code, call.last_failure_code() >= 300 ? call.last_failure_reason() : "Temporarily Unavailable");
  }
  finish_later(ctx.id);
}

void CallEngine::default_route(uint64_t id) {
  Context* ctx = context_of(id);
  const sip_t* sip = ctx->call->invite()->sip();
  std::string user = sip->sip_request->rq_url->url_user ? sip->sip_request->rq_url->url_user : "";
  lookup_contacts(user, [this, id](const std::string& error, std::vector<std::string> contacts) {
    Context* ctx = context_of(id);
    if (!ctx) return;
    if (!error.empty() || contacts.empty()) {
      ctx->call->reject(error.empty() ? 404 : 503, error.empty() ? "Not Found" : "Store Unavailable");
      return finish_later(id);
    }
    DialOptions options;
    options.timeout_seconds = cfg_.calls.no_answer_timeout;
    bool started = ctx->call->dial({contacts}, options, [this, id](const DialResult& r) {
      Context* ctx = context_of(id);
      if (!ctx) return;
      if (!r.answered) ctx->call->reject(r.code >= 300 ? r.code : 480, r.reason);
      finish_later(id);
    });
    if (!started) finish_later(id);
  });
}

// A contact registered over a TCP/TLS connection is reached through that connection (RFC 5626
// flows, NAT): the edge's flow token rides along as a URI parameter the dialer strips again
// (SipStack::route_to_flow), so it survives a trip through the script unchanged.
std::string CallEngine::with_flow(const std::string& contact, const std::string& flow) {
  std::string param = std::string(";") + SipStack::kFlowParam + "=" + flow;
  size_t headers = contact.find('?');
  if (headers == std::string::npos) return contact + param;
  return contact.substr(0, headers) + param + contact.substr(headers);
}

void CallEngine::lookup_contacts(const std::string& aor_or_user,
                                 std::function<void(const std::string&, std::vector<std::string>)> done) {
  std::string aor = normalize_aor(aor_or_user);
  store_.lookup(aor, unix_now(), [done = std::move(done)](const std::string& error, std::vector<Binding> bindings) {
    std::vector<std::string> contacts;
    // Highest q first, as the registrar orders them.
    std::stable_sort(bindings.begin(), bindings.end(), [](const Binding& a, const Binding& b) {
      return (a.q_milli < 0 ? 1000 : a.q_milli) > (b.q_milli < 0 ? 1000 : b.q_milli);
    });
    for (const Binding& b : bindings) contacts.push_back(b.flow.empty() ? b.contact : with_flow(b.contact, b.flow));
    done(error, std::move(contacts));
  });
}

void CallEngine::resolve_targets(std::vector<std::vector<std::string>> targets,
                                 std::function<void(const std::string&, DialPlan)> done) {
  // Resolve AoR targets one at a time (a Redis lookup is asynchronous), keeping the stages.
  struct State {
    std::vector<std::vector<std::string>> targets;
    DialPlan plan;
    size_t stage = 0, index = 0;
    std::function<void(const std::string&, DialPlan)> done;
  };
  auto state = std::make_shared<State>();
  state->targets = std::move(targets);
  state->plan.resize(state->targets.size());
  state->done = std::move(done);
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, state, step]() {
    while (state->stage < state->targets.size()) {
      if (state->index >= state->targets[state->stage].size()) {
        ++state->stage;
        state->index = 0;
        continue;
      }
      const std::string& target = state->targets[state->stage][state->index++];
      if (target.rfind("sip:", 0) == 0 || target.rfind("sips:", 0) == 0 || target.rfind("trunk:", 0) == 0) {
        state->plan[state->stage].push_back(target);
        continue;
      }
      lookup_contacts(target, [state, step](const std::string& error, std::vector<std::string> contacts) {
        if (!error.empty()) {
          auto done = std::move(state->done);
          *step = nullptr;  // break the self-reference
          return done(error, {});
        }
        for (std::string& c : contacts) state->plan[state->stage].push_back(std::move(c));
        (*step)();
      });
      return;
    }
    DialPlan plan;
    for (auto& stage : state->plan)
      if (!stage.empty()) plan.push_back(std::move(stage));
    auto done = std::move(state->done);
    *step = nullptr;
    done("", std::move(plan));
  };
  (*step)();
}

void CallEngine::resume_later(uint64_t call_id, std::function<int(lua_State*)> push_results) {
  Context* ctx = context_of(call_id);
  if (!ctx) return;
  ctx->pending = std::move(push_results);
  auto* d = new Deferred{this, call_id};
  timeval now{0, 0};
  if (event_base_once(base(), -1, EV_TIMEOUT, on_deferred, d, &now) != 0) delete d;
}

void CallEngine::on_deferred(int, short, void* arg) {
  std::unique_ptr<Deferred> d(static_cast<Deferred*>(arg));
  Context* ctx = d->engine->context_of(d->call_id);
  if (!ctx || !ctx->pending || ctx->running) return;
  auto push = std::move(ctx->pending);
  ctx->pending = nullptr;
  int n = push(ctx->co);
  d->engine->run_coroutine(*ctx, n);
  d->engine->loop_.kick();
}

void CallEngine::sleep(uint64_t call_id, double seconds) {
  Context* ctx = context_of(call_id);
  if (!ctx) return;
  if (ctx->timer) event_free(ctx->timer);
  // The timer is freed with the context (finish), so the raw pointer cannot dangle.
  ctx->timer = evtimer_new(
      base(),
      [](int, short, void* arg) {
        auto* ctx = static_cast<Context*>(arg);
        ctx->engine->resume_later(ctx->id, [](lua_State*) { return 0; });
      },
      ctx);
  long usec = static_cast<long>(seconds * 1e6);
  timeval tv{usec / 1000000, usec % 1000000};
  evtimer_add(ctx->timer, &tv);
}

void CallEngine::finish_later(uint64_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end() || it->second->done) return;
  it->second->done = true;
  auto* d = new Deferred{this, call_id};
  timeval now{0, 0};
  // Destroying the call now could free nta objects whose callback is on the stack.
  event_base_once(base(), -1, EV_TIMEOUT, [](int, short, void* arg) {
    std::unique_ptr<Deferred> d(static_cast<Deferred*>(arg));
    d->engine->finish(d->call_id);
  }, d, &now);
}

void CallEngine::finish(uint64_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  Context& ctx = *it->second;
  if (ctx.call && !ctx.call->finished()) {
    if (ctx.call->answered())
      ctx.call->hangup();
    else
      ctx.call->reject(503, "Service Unavailable");
  }
  if (ctx.timer) {
    event_free(ctx.timer);
    ctx.timer = nullptr;
  }
  if (ctx.script && ctx.co_ref != -2) luaL_unref(ctx.script->lua(), LUA_REGISTRYINDEX, ctx.co_ref);
  if (ctx.script && ctx.dtmf_hook_ref != -2) luaL_unref(ctx.script->lua(), LUA_REGISTRYINDEX, ctx.dtmf_hook_ref);
  ctx.media.reset();  // before the call: its stop-recording request names the call's relay session
  log_info("call.end").kv("call", call_id).kv("call_id", ctx.call ? ctx.call->call_id() : "")
      .kv("answered", ctx.call && ctx.call->answered() ? "true" : "false");
  --counters_.active;
  limits_.release_user(ctx.auth_user);
  for (const std::string& trunk : ctx.trunks) limits_.release_trunk(trunk);
  ctx.call.reset();
  calls_.erase(it);
  loop_.kick();
}

}  // namespace relais
