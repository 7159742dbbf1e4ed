// mail_sender.hpp — sends e-mail (voicemail to e-mail) over SMTP with libcurl on one worker
// thread, so the event loop never waits on a mail server: send() only takes a queue lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

struct lua_State;

namespace relais {

// Config `mail = { smtp = ..., from = ..., username = ..., password = ..., starttls = ... }`.
struct MailSettings {
  std::string smtp_url;  // "smtp://host:port" (plain, upgraded per `starttls`) or "smtps://host:port"
  std::string from;      // "Voicemail <vm@example.com>" or "vm@example.com"
  std::string username;  // SMTP AUTH when set (and offered by the server)
  std::string password;
  bool starttls = true;  // smtp://: upgrade when the server offers STARTTLS, else send in clear
  int timeout_seconds = 30;  // one attempt, connection to final reply
  size_t max_queue = 1000;   // mails waiting; send() refuses more
  int retry_delay_ms = 2000;  // before the 2nd attempt; doubled before the 3rd
  int drain_seconds = 5;      // at destruction: time left to send what is queued, then abandon
};

struct Mail {
  std::vector<std::string> to;  // "a@example.com" or "Name <a@example.com>"
  std::string subject;          // UTF-8; encoded per RFC 2047 when not plain ASCII
  std::string text;             // UTF-8 body
  std::string attachment_path;  // empty: no attachment. Read when the mail is sent, not queued.
  std::string attachment_name;  // file name shown to the reader; default: that of the path
  std::string attachment_type = "audio/wav";
};

struct MailStats {
  uint64_t queued = 0;    // accepted by send()
  uint64_t sent = 0;      // accepted by the SMTP server
  uint64_t failed = 0;    // given up after the retries, or abandoned at shutdown
  uint64_t rejected = 0;  // refused by send(): queue full, no valid recipient, stopping
  uint64_t pending = 0;   // queued or being sent now
};

class MailSender {
 public:
  explicit MailSender(MailSettings settings);
  ~MailSender();  // stop()
  MailSender(const MailSender&) = delete;
  MailSender& operator=(const MailSender&) = delete;

  // Queues `m` for the worker; false (and a log line) if it cannot be queued.
  bool send(Mail m);
  MailStats stats() const;

  // Stops accepting, gives the queue `drain_seconds` to go out, then aborts the transfer under
  // way and abandons the rest (each logged as failed) and joins the worker: returns within
  // drain_seconds + about 1 s. For the owner's thread; stats() stays valid afterwards.
  void stop();

 private:
  void run();
  void deliver(const Mail& m);
  bool wait_before_retry(int delay_ms);  // false: aborted

  const MailSettings settings_;
  std::string from_address_;  // the addr-spec of settings_.from, for MAIL FROM

  mutable std::mutex mu_;
  std::condition_variable wake_;       // worker: a mail is queued, or stop/abort
  std::condition_variable done_;       // destructor: the worker has emptied the queue
  std::deque<Mail> queue_;
  bool stopping_ = false;
  bool worker_done_ = false;
  std::atomic<bool> abort_{false};     // read by curl's progress callback mid-transfer

  std::atomic<uint64_t> queued_{0}, sent_{0}, failed_{0}, rejected_{0}, pending_{0};
  std::thread worker_;  // last: started once everything above exists
};

// "=?UTF-8?B?...?=" encoded-words (RFC 2047), folded, for a header value that is not plain
// printable ASCII; plain ASCII comes back unchanged. Control characters become spaces.
std::string encode_header_text(std::string_view text);

// The addr-spec of "Name <a@b>" or "a@b"; empty if it is not a usable address.
std::string mail_address(std::string_view text);

// Adds relais.mail.send to a script state; sender may be null (mail not configured, --check).
void install_mail_api(lua_State* L, MailSender* sender);

}  // namespace relais
