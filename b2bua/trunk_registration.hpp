// trunk_registration.hpp — relais as a client of an operator's registrar: REGISTER with digest
// authentication, refreshed before expiry, retried after failures, status logged.
#pragma once

#include <sofia-sip/nta.h>

#include <map>
#include <memory>
#include <string>

#include "config.hpp"

struct event;

namespace relais {

class CallEngine;

class TrunkRegistration {
 public:
  TrunkRegistration(CallEngine& engine, TrunkConfig trunk);
  ~TrunkRegistration();
  TrunkRegistration(const TrunkRegistration&) = delete;
  TrunkRegistration& operator=(const TrunkRegistration&) = delete;

  void start();
  void link_up();  // a TLS trunk's connection (re)opened
  bool registered() const { return registered_; }

 private:
  void send(const std::string& authorization, bool proxy_auth);
  static int on_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  void response(const sip_t* sip);
  void schedule(int seconds);
  static void on_timer(int, short, void* arg);

  CallEngine& engine_;
  TrunkConfig trunk_;
  nta_leg_t* leg_ = nullptr;
  nta_outgoing_t* pending_ = nullptr;
  ::event* timer_ = nullptr;
  std::string contact_;
  bool registered_ = false;
  bool authenticated_attempt_ = false;  // the request in flight carried credentials
  uint32_t nc_ = 0;
};

// All trunks with register = true; rebuilt when the trunk configuration changes on SIGHUP.
class TrunkRegistrations {
 public:
  explicit TrunkRegistrations(CallEngine& engine) : engine_(engine) {}
  void apply(const std::map<std::string, TrunkConfig>& trunks);
  void link_up(const std::string& trunk);

 private:
  CallEngine& engine_;
  std::map<std::string, TrunkConfig> current_;
  std::map<std::string, std::unique_ptr<TrunkRegistration>> active_;
};

}  // namespace relais
