// mwi_notify.cpp — what MWI tells phones: the message-summary body, NOTIFYs in a
// subscription's dialog, out-of-dialog NOTIFYs to registered contacts, and the stored counts
// behind them.
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <exception>

#include "event_loop.hpp"
#include "local_contact.hpp"
#include "log.hpp"
#include "call_engine.hpp"
#include "mwi_service.hpp"
#include "sip_stack.hpp"

namespace relais {

namespace {

constexpr const char* kPackage = "message-summary";
constexpr const char* kBodyType = "application/simple-message-summary";
// Out-of-dialog NOTIFYs in flight: each holds a leg and a transaction for up to 32 s when a
// phone is gone. Past the bound an update skips them; the phone still learns the counts when
// it subscribes or at the next change.
constexpr size_t kMaxUnsolicited = 2000;
constexpr size_t kMaxContactsPerMailbox = 16;
// Mailboxes held in memory without persistence (only those with messages are kept).
constexpr size_t kMaxMailboxesInMemory = 100000;

int64_t unix_now() { return static_cast<int64_t>(time(nullptr)); }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The IP of a binding's flow ("udp:203.0.113.5:5060", "udp:[2001:db8::1]:5060"), or empty.
std::string flow_ip(const std::string& received) {
  size_t first = received.find(':'), last = received.rfind(':');
  if (first == std::string::npos || last <= first) return {};
  std::string ip = received.substr(first + 1, last - first - 1);
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  return ip;
}

int status_of(const sip_t* sip) {
  // nta reports a transaction timeout as a 408 of its own; no message at all counts the same.
  return sip && sip->sip_status ? static_cast<int>(sip->sip_status->st_status) : 408;
}

}  // namespace

std::string message_summary_body(const std::string& account, const MwiCounts& c) {
  return std::string("Messages-Waiting: ") + (c.new_messages > 0 ? "yes" : "no") + "\r\n" +
         "Message-Account: " + account + "\r\n" +
         "Voice-Message: " + std::to_string(c.new_messages) + "/" + std::to_string(c.old_messages) + "\r\n";
}

bool valid_mailbox(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  for (char c : user) {
    // RFC 3261 §25.1 user: unreserved / user-unreserved (escapes are not accepted).
    if (std::isalnum(static_cast<unsigned char>(c)) || (c != '\0' && strchr("-_.!~*'()&=+$,;?/", c))) continue;
    return false;
  }
  return true;
}

MwiService::Unsolicited::~Unsolicited() {
  if (orq) nta_outgoing_destroy(orq);
  if (leg) nta_leg_destroy(leg);
}

std::string MwiService::account_of(const std::string& mailbox) const { return "sip:" + mailbox + "@" + cfg_.domain; }

std::string MwiService::event_header(const Subscription& sub) const {
  return sub.event_id.empty() ? kPackage : std::string(kPackage) + ";id=" + sub.event_id;
}

MwiCounts MwiService::counts(const std::string& user) const {
  if (load_) {
    // The persistence is the truth when there is one (it may be shared by several nodes).
    try {
      std::optional<std::pair<int, int>> stored = load_(user);
      return stored ? MwiCounts{stored->first, stored->second} : MwiCounts{};
    } catch (const std::exception& e) {
      log_error("mwi.load_failed").kv("mailbox", user).kv("error", e.what());
    }
  }
  auto it = counts_.find(user);
  return it == counts_.end() ? MwiCounts{} : it->second;
}

bool MwiService::update(const std::string& user, int new_count, int old_count) {
  if (!valid_mailbox(user) || new_count < 0 || old_count < 0) return false;
  MwiCounts fresh{new_count, old_count};
  // Phones are told about changes only: the same state again would light nothing new and only
  // cost every subscriber a transaction.
  if (counts(user) == fresh) return true;
  if (fresh == MwiCounts{})
    counts_.erase(user);
  else if (counts_.size() < kMaxMailboxesInMemory || counts_.count(user))
    counts_[user] = fresh;
  else
    log_warn("mwi.memory_full").kv("mailbox", user).kv("mailboxes", counts_.size());
  if (save_) {
    try {
      save_(user, new_count, old_count);
    } catch (const std::exception& e) {
      log_error("mwi.save_failed").kv("mailbox", user).kv("error", e.what());
    }
  }
  ++counters_.updates;
  log_info("mwi.update").kv("mailbox", user).kv("new", new_count).kv("old", old_count);
  notify_mailbox(user);
  return true;
}

void MwiService::notify_mailbox(const std::string& mailbox) {
  auto listed = by_mailbox_.find(mailbox);
  if (listed == by_mailbox_.end() || listed->second.empty()) {
    if (settings_.unsolicited) send_unsolicited(mailbox);
    return;
  }
  // send_notify may drop a subscription, which edits the index under us: walk a copy.
  std::vector<uint64_t> ids(listed->second.begin(), listed->second.end());
  for (uint64_t id : ids) {
    auto it = subs_.find(id);
    if (it != subs_.end() && !it->second->dead) send_notify(*it->second);
  }
  loop_.kick();
}

void MwiService::send_notify(Subscription& sub, bool with_body) {
  if (sub.dead || sub.final_sent || !sub.leg) return;
  // One NOTIFY at a time per dialog: two in flight could arrive out of CSeq order, and the
  // subscriber's dialog would refuse the older one (RFC 3261 §12.2.2). The latest state is
  // sent once the pending one is answered.
  if (sub.notify) {
    sub.notify_again = true;
    return;
  }
  sub.notify_again = false;
  std::string state = sub.terminated
                          ? "terminated;reason=" + sub.reason
                          : "active;expires=" + std::to_string(std::max<int64_t>(sub.expires_at - unix_now(), 1));
  MwiCounts c = with_body ? counts(sub.mailbox) : MwiCounts{};
  std::string body = message_summary_body(account_of(sub.mailbox), c);
  std::string event = event_header(sub);
  sub.notify = nta_outgoing_tcreate(sub.leg, on_notify_response, reinterpret_cast<nta_outgoing_magic_t*>(&sub), nullptr,
                                    SIP_METHOD_NOTIFY, nullptr, SIPTAG_EVENT_STR(event.c_str()),
                                    SIPTAG_SUBSCRIPTION_STATE_STR(state.c_str()),
                                    SIPTAG_CONTACT_STR(sub.contact.c_str()),
                                    TAG_IF(with_body, SIPTAG_CONTENT_TYPE_STR(kBodyType)),
                                    TAG_IF(with_body, SIPTAG_PAYLOAD_STR(body.c_str())), TAG_END());
  if (!sub.notify) {
    ++counters_.notifies_failed;
    log_warn("mwi.notify_failed").kv("mailbox", sub.mailbox).kv("reason", "cannot send").kv("call_id", sub.call_id);
    drop(sub, "notify not sent");
    return;
  }
  if (sub.terminated) sub.final_sent = true;
  ++counters_.notifies_sent;
  log_info("mwi.notify").kv("mailbox", sub.mailbox).kv("state", state)
      .kv("waiting", with_body ? (c.new_messages > 0 ? "yes" : "no") : "").kv("call_id", sub.call_id);
}

int MwiService::on_notify_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip) {
  auto& sub = *reinterpret_cast<Subscription*>(magic);
  int status = status_of(sip);
  if (status < 200) return 0;
  MwiService& self = *sub.service;
  nta_outgoing_destroy(orq);
  sub.notify = nullptr;
  if (sub.dead) return 0;
  if (status >= 300) {
    // RFC 6665 §4.2.2: a 481 or a timeout means the subscription is gone at the subscriber; any
    // other refusal of a NOTIFY says as much, so the subscription ends either way.
    ++self.counters_.notifies_failed;
    log_warn("mwi.notify_failed").kv("mailbox", sub.mailbox).kv("status", status).kv("call_id", sub.call_id);
    self.drop(sub, "notify failed");
  } else if (sub.final_sent) {
    self.drop(sub, sub.reason.c_str());
  } else if (sub.notify_again) {
    self.send_notify(sub);
  }
  self.loop_.kick();
  return 0;
}

void MwiService::send_unsolicited(const std::string& mailbox) {
  if (unsolicited_.size() >= kMaxUnsolicited) {
    log_warn("mwi.unsolicited_skipped").kv("mailbox", mailbox).kv("in_flight", unsolicited_.size());
    return;
  }
  // The registrar keys bindings by user@domain with the domain in lower case.
  std::string aor = mailbox + "@" + lower(cfg_.domain);
  std::weak_ptr<int> alive = life_;
  store_.lookup(aor, unix_now(), [this, alive, mailbox](const std::string& error, std::vector<Binding> bindings) {
    if (alive.expired()) return;
    if (!error.empty()) {
      log_warn("mwi.unsolicited_failed").kv("mailbox", mailbox).kv("error", error);
      return;
    }
    // A subscription that arrived meanwhile got the news in its own dialog.
    if (by_mailbox_.count(mailbox)) return;
    size_t sent = 0;
    for (const Binding& binding : bindings) {
      if (sent++ >= kMaxContactsPerMailbox) break;
      unsolicited_to(mailbox, binding);
    }
    loop_.kick();
  });
}

void MwiService::unsolicited_to(const std::string& mailbox, const Binding& binding) {
  if (unsolicited_.size() >= kMaxUnsolicited) return;
  su_home_t home[1] = {SU_HOME_INIT(home)};
  url_t* target = url_make(home, binding.contact.c_str());
  if (!target || (target->url_type != url_sip && target->url_type != url_sips) || !target->url_host) {
    su_home_deinit(home);
    log_warn("mwi.notify_failed").kv("mailbox", mailbox).kv("reason", "bad contact").kv("target", binding.contact);
    return;
  }
  char transport[16] = "udp";
  if (target->url_params) url_param(target->url_params, "transport", transport, sizeof transport);
  // Toward a NATed phone the kernel picks the address facing its flow, not its private Contact.
  std::string peer = flow_ip(binding.received);
  std::string contact = local_contact(stack_.listening(), lower(transport), peer.empty() ? target->url_host : peer, "relais");
  std::string aor = "<" + account_of(mailbox) + ">";
  MwiCounts c = counts(mailbox);
  std::string body = message_summary_body(account_of(mailbox), c);

  // A phone behind NAT or on a TCP/TLS connection is reached through the flow it registered
  // on, like a call to it (SipStack::route_to_flow); a closed connection: nothing to notify.
  std::string request_uri = binding.flow.empty() ? binding.contact : CallEngine::with_flow(binding.contact, binding.flow);
  std::string route;
  if (stack_.route_to_flow(request_uri, route) == SipStack::FlowTarget::gone) {
    su_home_deinit(home);
    return;
  }
  auto u = std::make_unique<Unsolicited>();
  u->service = this;
  u->mailbox = mailbox;
  u->target = request_uri;
  sip_call_id_t* call_id = sip_call_id_create(home, nullptr);
  u->call_id = call_id && call_id->i_id ? call_id->i_id : "";
  // A client leg of its own gives the NOTIFY a Call-ID, a From tag and a CSeq; it is no dialog
  // anyone continues (RFC 3842 §3.2 allows such unsolicited NOTIFYs by local policy).
  u->leg = nta_leg_tcreate(stack_.agent(), nullptr, nullptr, SIPTAG_FROM_STR(aor.c_str()), SIPTAG_TO_STR(aor.c_str()),
                           SIPTAG_CALL_ID(call_id), TAG_END());
  if (u->leg) {
    nta_leg_tag(u->leg, nullptr);
    u->orq = nta_outgoing_tcreate(u->leg, on_unsolicited_response, reinterpret_cast<nta_outgoing_magic_t*>(u.get()),
                                  route.empty() ? nullptr : URL_STRING_MAKE(route.c_str()), SIP_METHOD_NOTIFY,
                                  URL_STRING_MAKE(request_uri.c_str()),
                                  SIPTAG_EVENT_STR(kPackage), SIPTAG_SUBSCRIPTION_STATE_STR("active"),
                                  SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_CONTENT_TYPE_STR(kBodyType),
                                  SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END());
  }
  su_home_deinit(home);
  if (!u->orq) {
    ++counters_.notifies_failed;
    log_warn("mwi.notify_failed").kv("mailbox", mailbox).kv("reason", "cannot send").kv("target", binding.contact)
        .kv("call_id", u->call_id);
    return;
  }
  ++counters_.unsolicited_sent;
  log_info("mwi.notify").kv("mailbox", mailbox).kv("state", "unsolicited").kv("target", binding.contact)
      .kv("waiting", c.new_messages > 0 ? "yes" : "no").kv("call_id", u->call_id);
  Unsolicited* key = u.get();
  unsolicited_[key] = std::move(u);
}

int MwiService::on_unsolicited_response(nta_outgoing_magic_t* magic, nta_outgoing_t*, const sip_t* sip) {
  auto* u = reinterpret_cast<Unsolicited*>(magic);
  int status = status_of(sip);
  if (status < 200) return 0;
  MwiService& self = *u->service;
  if (status >= 300) {
    ++self.counters_.notifies_failed;
    log_warn("mwi.notify_failed").kv("mailbox", u->mailbox).kv("status", status).kv("target", u->target)
        .kv("call_id", u->call_id);
  }
  // Frees the transaction and the leg; neither is touched by nta after this callback returns.
  self.unsolicited_.erase(u);
  self.loop_.kick();
  return 0;
}

}  // namespace relais
