// mwi_service.hpp — Message Waiting Indication: the notifier of the `message-summary` event
// package (RFC 3842 over RFC 6665). Phones SUBSCRIBE to their mailbox; relais answers from a
// server dialog leg and NOTIFYs the mailbox's new/old message counts whenever the script (or,
// later, voicemail) updates them; phones that never subscribed get unsolicited NOTIFYs.
#pragma once

#include <sofia-sip/nta.h>
#include <sofia-sip/sip.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "authenticator.hpp"
#include "config.hpp"
#include "location_store.hpp"
#include "sip_request.hpp"

struct event;
struct lua_State;

namespace relais {

class EventLoop;
class SipStack;

// MwiSettings (config `mwi`) lives in config.hpp.

struct MwiCounts {
  int new_messages = 0;
  int old_messages = 0;
  bool operator==(const MwiCounts&) const = default;
};

struct MwiCounters {
  uint64_t active = 0;            // subscriptions now
  uint64_t subscribed = 0;        // SUBSCRIBEs accepted (initial ones)
  uint64_t refreshed = 0;         // in-dialog SUBSCRIBEs accepted (including Expires: 0)
  uint64_t challenged = 0;        // answered 407
  uint64_t rejected = 0;          // answered 4xx/5xx other than 407
  uint64_t expired = 0;           // ended by the expiry timer
  uint64_t notifies_sent = 0;     // in-dialog NOTIFYs
  uint64_t notifies_failed = 0;   // NOTIFYs answered >= 300 or timed out (in-dialog and unsolicited)
  uint64_t unsolicited_sent = 0;  // out-of-dialog NOTIFYs
  uint64_t updates = 0;           // update() calls that changed a mailbox
};

// The application/simple-message-summary body (RFC 3842 §5.2).
std::string message_summary_body(const std::string& account, const MwiCounts& counts);

// A mailbox name relais accepts: a SIP user part of at most 64 characters from RFC 3261's
// unreserved and user-unreserved sets (no '@', ':', spaces or controls).
bool valid_mailbox(std::string_view user);

class MwiService {
 public:
  using Load = std::function<std::optional<std::pair<int, int>>(const std::string& user)>;
  using Save = std::function<void(const std::string& user, int new_count, int old_count)>;

  MwiService(const Config& cfg, EventLoop& loop, SipStack& stack, LocationStore& store, Authenticator& auth,
             MwiSettings settings = {});
  // Sends each live subscription a final NOTIFY and releases every leg and transaction.
  ~MwiService();
  MwiService(const MwiService&) = delete;
  MwiService& operator=(const MwiService&) = delete;

  void set_config(const Config& cfg);  // SIGHUP: domain, aliases and users
  void set_settings(const MwiSettings& settings) { settings_ = settings; }
  const MwiSettings& settings() const { return settings_; }

  // Without persistence, counts live in memory only. `load` returns nullopt for a mailbox it
  // never saw; both run on the loop thread and must not block for long.
  void set_persistence(Load load, Save save);

  // An out-of-dialog SUBSCRIBE (SipStack). Refreshes arrive on the subscription's leg.
  void handle_subscribe(const SipRequestPtr& request);

  // Records the counts of `user`'s mailbox. When they differ from the stored ones, every
  // subscription of the mailbox gets a NOTIFY, or, with none and `unsolicited` on, every
  // registered contact gets an out-of-dialog one. Returns false for an invalid user or
  // negative counts; true otherwise (whether or not anything changed).
  bool update(const std::string& user, int new_count, int old_count);
  MwiCounts counts(const std::string& user) const;

  const MwiCounters& counters() const { return counters_; }

 private:
  struct Subscription;
  struct Unsolicited;

  // Admission (mwi_service.cpp)
  void after_lookup(const SipRequestPtr& request, const std::string& mailbox, int expires);
  void after_auth(const SipRequestPtr& request, const std::string& mailbox, int expires, const std::string& subscriber);
  void accept(const SipRequestPtr& request, const std::string& mailbox, int expires);
  // Answers `status` with extra header tags, counts and logs (rate-limited) the refusal.
  void reject(const SipRequestPtr& request, int status, const char* phrase, const char* why, tag_type_t tag,
              tag_value_t value, ...);
  void challenge(const SipRequestPtr& request, bool stale, const std::string& why);
  bool ours(const char* host) const;
  std::string mailbox_of(const sip_t* sip) const;
  static int on_leg_request(nta_leg_magic_t* magic, nta_leg_t* leg, nta_incoming_t* irq, const sip_t* sip);
  int in_dialog(Subscription& sub, nta_incoming_t* irq, const sip_t* sip);
  void arm_expiry(Subscription& sub);
  static void on_expiry(int, short, void* arg);

  // Notifications (mwi_notify.cpp)
  // Sends the current state in the dialog, or, with one in flight, once that one is answered.
  // `with_body` false: a final NOTIFY at shutdown, when the persistence may be gone already.
  void send_notify(Subscription& sub, bool with_body = true);
  static int on_notify_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  void notify_mailbox(const std::string& mailbox);
  void send_unsolicited(const std::string& mailbox);
  void unsolicited_to(const std::string& mailbox, const Binding& binding);
  static int on_unsolicited_response(nta_outgoing_magic_t* magic, nta_outgoing_t* orq, const sip_t* sip);
  std::string account_of(const std::string& mailbox) const;
  std::string event_header(const Subscription& sub) const;

  // Ends a subscription: unindexed now, its leg, timer and transaction freed by the reaper
  // (never inside the nta callback of its own leg).
  void drop(Subscription& sub, const char* why);
  static void on_reap(int, short, void* arg);

  Config cfg_;
  EventLoop& loop_;
  SipStack& stack_;
  LocationStore& store_;
  Authenticator& auth_;
  MwiSettings settings_;
  Load load_;
  Save save_;
  std::map<std::string, MwiCounts> counts_;  // non-zero mailboxes when there is no persistence
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Subscription>> subs_;
  std::map<std::string, std::set<uint64_t>> by_mailbox_;  // live subscriptions only
  std::map<Unsolicited*, std::unique_ptr<Unsolicited>> unsolicited_;
  std::vector<uint64_t> doomed_;  // dropped, waiting for the reaper
  ::event* reaper_ = nullptr;
  LogRateLimit reject_log_{20};
  // Store and Authenticator replies may arrive after we are gone (Redis): they hold a weak
  // reference to this token and do nothing once it has expired.
  std::shared_ptr<int> life_ = std::make_shared<int>(0);
  MwiCounters counters_;
};

// One subscription: a server dialog of relais with the subscriber. Owns its leg, expiry timer
// and NOTIFY transaction; freed only by the reaper or the service's destructor.
struct MwiService::Subscription {
  MwiService* service = nullptr;
  uint64_t id = 0;
  std::string mailbox;
  std::string subscriber;  // authenticated (or From) user, for logs
  std::string call_id;
  std::string event_id;    // the SUBSCRIBE's Event ;id=, echoed in every NOTIFY (RFC 6665 §8.2.1)
  std::string contact;     // our Contact in this dialog
  nta_leg_t* leg = nullptr;
  nta_outgoing_t* notify = nullptr;  // the NOTIFY in flight; at most one at a time
  ::event* timer = nullptr;
  int64_t expires_at = 0;
  bool terminated = false;    // the next NOTIFY is the final one
  std::string reason;         // its Subscription-State reason
  bool final_sent = false;
  bool notify_again = false;  // the state changed while a NOTIFY was in flight
  bool dead = false;          // dropped: nothing may use it any more

  ~Subscription();
};

// An out-of-dialog NOTIFY to one registered contact: its own client leg (Call-ID, From tag).
struct MwiService::Unsolicited {
  MwiService* service = nullptr;
  std::string mailbox;
  std::string target;
  std::string call_id;
  nta_leg_t* leg = nullptr;
  nta_outgoing_t* orq = nullptr;

  ~Unsolicited();
};

// relais.mwi.update(user, new, old) and relais.mwi.counts(user) in the global `relais` table.
// `mwi` may be null (relais --check): the functions exist and raise when called.
void install_mwi_api(lua_State* L, MwiService* mwi);

}  // namespace relais
