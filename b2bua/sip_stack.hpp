// sip_stack.hpp — the Sofia nta agent: transports from config, and the entry point of every
// out-of-dialog request: REGISTER/OPTIONS (and refusals) are answered statelessly, INVITE and
// other methods get a server transaction; either way a SipRequest goes to the method's handler.
#pragma once

#include <sofia-sip/nta.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config.hpp"
#include "sip_request.hpp"

struct event;

namespace relais {

class EventLoop;
class SourceGuard;

struct SipCounters {
  size_t requests = 0;      // requests received
  size_t bad_messages = 0;  // unparsable or insane messages nta answered 400/413 or dropped
  size_t server_transactions = 0;
};

// We build on nta, not nua: a registrar answers each REGISTER from a store lookup and needs no
// dialog or media state, and the measured per-call memory (SOFIA-NOTES.md: nua 9.6 KiB vs nta
// 3.45 KiB) points the call engine at nta too. See docs/decisions.md.
class SipStack {
 public:
  using Handler = std::function<void(const SipRequestPtr&)>;

  explicit SipStack(EventLoop& loop) : loop_(loop) {}
  ~SipStack();
  SipStack(const SipStack&) = delete;
  SipStack& operator=(const SipStack&) = delete;

  bool start(const Config& cfg, std::string& error);

  // The SBC's per-source admission (source_guard.hpp), asked before any other work on every
  // out-of-dialog request; expiry runs on a one-second timer. Null = no checks.
  void set_source_guard(SourceGuard* guard);

  void on_method(const std::string& method, Handler handler) { handlers_[method] = std::move(handler); }

  // Addresses we listen on, for recognising requests addressed to "us".
  const std::vector<ListenAddress>& listening() const { return listening_; }
  bool is_local_host(const char* host) const;

  nta_agent_t* agent() const { return agent_; }
  SipCounters counters() const;
  std::string allow_header() const;

 private:
  static int on_message(nta_agent_magic_t* magic, nta_agent_t* agent, msg_t* msg, sip_t* sip);
  void dispatch(msg_t* msg, sip_t* sip);
  static void on_stats_timer(int, short, void* arg);
  bool admit(msg_t* msg, sip_t* sip);

  EventLoop& loop_;
  nta_agent_t* agent_ = nullptr;
  std::vector<ListenAddress> listening_;
  std::map<std::string, Handler> handlers_;
  ::event* stats_timer_ = nullptr;
  SourceGuard* guard_ = nullptr;
  ::event* guard_timer_ = nullptr;
  size_t bad_messages_logged_ = 0;
  LogRateLimit bad_log_{20};
};

}  // namespace relais
