// nat_keepalive.cpp — see nat_keepalive.hpp.
#include "nat_keepalive.hpp"

#include <event2/event.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

#include <ctime>

#include "event_loop.hpp"
#include "log.hpp"
#include "sip_stack.hpp"

namespace relais {

NatKeepalive::NatKeepalive(EventLoop& loop, SipStack& stack, const std::string& domain, int interval_seconds)
    : loop_(loop), stack_(stack), domain_(domain), interval_(interval_seconds) {
  timer_ = evtimer_new(loop_.base(), on_timer, this);
  arm();
}

NatKeepalive::~NatKeepalive() {
  if (timer_) event_free(timer_);
  if (leg_) nta_leg_destroy(leg_);
}

void NatKeepalive::set_interval(int seconds) {
  interval_ = seconds;
  arm();
}

void NatKeepalive::arm() {
  evtimer_del(timer_);
  if (interval_ <= 0) return;
  timeval tv{interval_, 0};
  evtimer_add(timer_, &tv);
}

void NatKeepalive::seen(const std::string& aor, const std::string& token, int64_t expires_at) {
  if (token.rfind("udp~", 0) != 0) return;
  if (expires_at <= 0) {
    tracked_.erase(token);
    return;
  }
  auto it = tracked_.find(token);
  if (it == tracked_.end() && tracked_.size() >= kMaxTracked) return;  // bounded; logged by the tick
  tracked_[token] = Entry{aor, expires_at};
}

void NatKeepalive::on_timer(int, short, void* arg) { static_cast<NatKeepalive*>(arg)->tick(); }

void NatKeepalive::tick() {
  int64_t now = static_cast<int64_t>(time(nullptr));
  if (!leg_ && stack_.agent()) {
    std::string us = "<sip:keepalive@" + domain_ + ">";
    leg_ = nta_leg_tcreate(stack_.agent(), nullptr, nullptr, SIPTAG_FROM_STR(us.c_str()), SIPTAG_TO_STR(us.c_str()),
                           TAG_END());
    if (leg_) nta_leg_tag(leg_, nullptr);
  }
  size_t pinged = 0;
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    if (it->second.expires_at <= now) {
      it = tracked_.erase(it);
      continue;
    }
    std::string route;
    if (leg_ && SipStack::udp_flow_route(it->first, route)) {
      std::string ruri = "sip:" + it->second.aor;
      // No callback: nta's default releases the transaction on its final response or timeout;
      // an unanswered ping is fine (the packet going out is what keeps the mapping).
      if (nta_outgoing_tcreate(leg_, nullptr, nullptr, URL_STRING_MAKE(route.c_str()), SIP_METHOD_OPTIONS,
                               URL_STRING_MAKE(ruri.c_str()), SIPTAG_MAX_FORWARDS_STR("70"), TAG_END()))
        ++pinged;
    }
    ++it;
  }
  sent_ += pinged;
  if (pinged) log_debug("nat.keepalive").kv("pinged", pinged).kv("tracked", tracked_.size());
  loop_.kick();
  arm();
}

}  // namespace relais
