// mail_sender.cpp — SMTP delivery with libcurl's smtp and mime APIs on one worker thread.
#include "mail_sender.hpp"

#include <curl/curl.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include "log.hpp"

namespace relais {

namespace {

constexpr int kAttempts = 3;  // the first try and two retries
// RFC 5322 §2.1.1 caps a line at 998 characters; an unfolded ASCII subject or a file name must
// stay well below, and a longer one is a bug upstream, not something a reader wants.
constexpr size_t kMaxSubject = 400;
constexpr size_t kMaxFileName = 100;

struct EasyDelete {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MimeDelete {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};
struct SlistDelete {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDelete>;
using MimePtr = std::unique_ptr<curl_mime, MimeDelete>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDelete>;

bool append(SlistPtr& list, const std::string& line) {
  curl_slist* head = curl_slist_append(list.get(), line.c_str());
  if (!head) return false;  // allocation failed; the old list is intact and still owned
  (void)list.release();     // same head when the list was not empty
  list.reset(head);
  return true;
}

// curl_global_init is thread-safe only where libcurl says so (CURL_VERSION_THREADSAFE, 7.84+)
// and it initialises OpenSSL, which relais uses too: run it once, from the first MailSender
// (built on the main thread at start). No curl_global_cleanup: nothing guarantees every curl
// user is gone before exit, and the OS reclaims it anyway.
bool curl_ready() {
  static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return ok;
}

bool is_plain_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// At most `max` bytes, never ending inside a UTF-8 sequence.
std::string clip_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// A header value must stay one header: CR or LF from a caller's display name would let the
// caller add headers (or a body) to the mail.
std::string without_controls(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < in.size() ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

// RFC 5322 §3.3 date, built by hand: strftime's %a and %b follow the process locale.
std::string rfc5322_date(time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  tm u{};
  gmtime_r(&t, &u);
  char buf[64];
  snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[u.tm_wday % 7], u.tm_mday,
           kMonths[u.tm_mon % 12], u.tm_year + 1900, u.tm_hour, u.tm_min, u.tm_sec);
  return buf;
}

// RFC 5322 §3.6.4: unique per mail; kept across retries so a server that took the mail but
// whose reply was lost lets the reader's client drop the duplicate.
std::string make_message_id(const std::string& from_address) {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  size_t at = from_address.rfind('@');
  std::string domain = at == std::string::npos ? "relais.invalid" : from_address.substr(at + 1);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  char buf[80];
  snprintf(buf, sizeof buf, "<%llx.%llx.%016llx@", static_cast<unsigned long long>(ms),
           static_cast<unsigned long long>(++counter), static_cast<unsigned long long>(rng()));
  return buf + domain + ">";
}

// "Name <a@b>" for a From/To header: a non-ASCII name as encoded-words, an ASCII one quoted
// when it holds RFC 5322 specials (a "Dr. Martin" phrase is not valid unquoted).
std::string header_mailbox(std::string_view text) {
  std::string addr = mail_address(text);
  size_t lt = text.rfind('<');
  std::string_view name = lt == std::string_view::npos ? std::string_view() : trim(text.substr(0, lt));
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
  if (name.empty()) return addr;
  if (!is_plain_ascii(name)) return encode_header_text(name) + " <" + addr + ">";
  if (name.find_first_of("()<>[]:;@\\,.\"") == std::string_view::npos) return std::string(name) + " <" + addr + ">";
  std::string quoted = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\" <" + addr + ">";
}

// curl writes the name raw into Content-Disposition; non-ASCII would need RFC 2231, which a
// voicemail file name does not deserve.
std::string safe_file_name(const Mail& m) {
  std::string name = m.attachment_name;
  if (name.empty()) {
    size_t slash = m.attachment_path.rfind('/');
    name = slash == std::string::npos ? m.attachment_path : m.attachment_path.substr(slash + 1);
  }
  name = name.substr(0, kMaxFileName);
  for (char& c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) c = '_';
  }
  return name.empty() ? "attachment" : name;
}

// RFC 2045 §6.7 (4): line breaks in text are CRLF; curl's quoted-printable encoder turns a bare
// LF into "=0A", which readers show as one long line.
std::string crlf_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

std::string recipients_text(const std::vector<std::string>& to) {
  std::string out;
  for (const auto& t : to) {
    if (!out.empty()) out += ',';
    out += mail_address(t).empty() ? t : mail_address(t);
  }
  return out;
}

// Called by curl about once a second even while a server stays silent: this is what bounds
// the destructor's wait for a transfer stuck on a dead server.
int on_progress(void* abort_flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(abort_flag)->load() ? 1 : 0;
}

struct Outcome {
  bool ok = false;
  bool final = false;  // retrying cannot help
  std::string error;
};

Outcome send_once(const MailSettings& s, const std::string& from_address, const Mail& m,
                  const std::string& message_id, std::atomic<bool>& abort_flag) {
  Outcome r;
  if (!m.attachment_path.empty()) {
    struct stat st{};
    if (stat(m.attachment_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      r.final = true;
      r.error = "attachment not readable: " + m.attachment_path;
      return r;
    }
  }
  // Declared so that the easy handle is destroyed first, then the lists and the mime tree it
  // points to: the order of curl's smtp-mime example.
  SlistPtr recipients, headers;
  MimePtr mime;
  EasyPtr easy(curl_easy_init());
  if (!easy) {
    r.error = "curl_easy_init failed";
    return r;
  }

  std::string to_header;
  bool ok = true;
  for (const auto& t : m.to) {
    ok = ok && append(recipients, "<" + mail_address(t) + ">");
    if (!to_header.empty()) to_header += ", ";
    to_header += header_mailbox(t);
  }
  ok = ok && append(headers, "Date: " + rfc5322_date(time(nullptr)));
  ok = ok && append(headers, "From: " + header_mailbox(s.from));
  ok = ok && append(headers, "To: " + to_header);
  ok = ok && append(headers, "Subject: " + encode_header_text(clip_utf8(m.subject, kMaxSubject)));
  ok = ok && append(headers, "Message-ID: " + message_id);

  mime.reset(curl_mime_init(easy.get()));
  curl_mimepart* body = mime ? curl_mime_addpart(mime.get()) : nullptr;
  ok = ok && body;
  // Quoted-printable: French text is 8-bit, and not every relay on the way takes 8BITMIME.
  const std::string text = crlf_lines(m.text);
  ok = ok && curl_mime_data(body, text.data(), text.size()) == CURLE_OK;
  ok = ok && curl_mime_type(body, "text/plain; charset=utf-8") == CURLE_OK;
  ok = ok && curl_mime_encoder(body, "quoted-printable") == CURLE_OK;
  if (ok && !m.attachment_path.empty()) {
    curl_mimepart* part = curl_mime_addpart(mime.get());
    std::string type = without_controls(m.attachment_type.empty() ? "application/octet-stream" : m.attachment_type);
    ok = part && curl_mime_filedata(part, m.attachment_path.c_str()) == CURLE_OK &&
         curl_mime_filename(part, safe_file_name(m).c_str()) == CURLE_OK &&
         curl_mime_type(part, type.c_str()) == CURLE_OK && curl_mime_encoder(part, "base64") == CURLE_OK;
  }
  if (!ok) {
    r.error = "cannot build the message (out of memory)";
    return r;
  }

  char errbuf[CURL_ERROR_SIZE] = "";
  CURL* h = easy.get();
  const std::string mail_from = "<" + from_address + ">";
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_URL, s.smtp_url.c_str());
  // A config typo such as file:// or http:// must not turn into another kind of request.
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, recipients.get());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_MIMEPOST, mime.get());
  curl_easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(s.starttls ? CURLUSESSL_TRY : CURLUSESSL_NONE));
  if (!s.username.empty()) {
    curl_easy_setopt(h, CURLOPT_USERNAME, s.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, s.password.c_str());
  }
  long timeout = std::max(1, s.timeout_seconds);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, std::min(timeout, 10L));
  // No SIGALRM-based DNS timeouts in a threaded process.
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &abort_flag);

  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) {
    r.ok = true;
    return r;
  }
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (code > 0) r.error += " (smtp " + std::to_string(code) + ")";
  // RFC 5321 §4.2.1: a 5yz reply is permanent; sending the same mail again gets the same answer.
  r.final = rc == CURLE_ABORTED_BY_CALLBACK || (code >= 500 && code < 600);
  return r;
}

}  // namespace

std::string encode_header_text(std::string_view text) {
  std::string clean = without_controls(text);
  if (is_plain_ascii(clean)) return clean;
  // RFC 2047 §2: an encoded-word is at most 75 characters. 39 bytes make 52 base64 characters,
  // 64 with the wrapper, so even the first word fits a "Subject: " line within 78 (RFC 5322
  // §2.1.1). Words are folded onto continuation lines; the space between two encoded-words is
  // dropped by readers (RFC 2047 §6.2).
  constexpr size_t kChunk = 39;
  std::string out;
  size_t i = 0;
  while (i < clean.size()) {
    size_t n = std::min(kChunk, clean.size() - i);
    // RFC 2047 §5: each word holds whole characters; back off to a UTF-8 lead byte.
    size_t whole = n;
    while (whole > 0 && i + whole < clean.size() && (static_cast<unsigned char>(clean[i + whole]) & 0xC0) == 0x80) --whole;
    if (whole > 0) n = whole;  // else invalid UTF-8 (a long run of continuation bytes): cut anyway
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(std::string_view(clean).substr(i, n)) + "?=";
    i += n;
  }
  return out;
}

std::string mail_address(std::string_view text) {
  // Control bytes anywhere (not only in the address) mean a forged or broken value.
  if (std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) return "";
  std::string_view v = text;
  size_t lt = v.rfind('<');
  if (lt != std::string_view::npos) {
    size_t gt = v.find('>', lt);
    if (gt == std::string_view::npos) return "";
    v = v.substr(lt + 1, gt - lt - 1);
  }
  v = trim(v);
  size_t at = v.rfind('@');
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254.
  if (v.empty() || v.size() > 254 || at == std::string_view::npos || at == 0 || at + 1 == v.size()) return "";
  for (char c : v) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return "";
    if (std::string_view("<>()[],;:\\\"").find(c) != std::string_view::npos) return "";
  }
  return std::string(v);
}

MailSender::MailSender(MailSettings settings)
    : settings_(std::move(settings)), from_address_(mail_address(settings_.from)) {
  if (!curl_ready()) log_error("mail.init_failed").kv("error", "curl_global_init failed");
  if (from_address_.empty()) log_error("mail.bad_from").kv("from", settings_.from);
  worker_ = std::thread([this] { run(); });
}

MailSender::~MailSender() { stop(); }

void MailSender::stop() {
  if (!worker_.joinable()) return;
  std::unique_lock lk(mu_);
  stopping_ = true;
  wake_.notify_all();
  auto drain = std::chrono::seconds(std::max(0, settings_.drain_seconds));
  if (!done_.wait_for(lk, drain, [this] { return worker_done_; })) {
    // Set under mu_ so a worker about to wait before a retry cannot miss it.
    abort_ = true;
    wake_.notify_all();
  }
  lk.unlock();
  worker_.join();
}

bool MailSender::send(Mail m) {
  const char* why = nullptr;
  if (from_address_.empty()) why = "no valid from address";
  if (m.to.empty()) why = "no recipient";
  for (const auto& t : m.to) {
    if (mail_address(t).empty()) why = "bad recipient address";
  }
  if (!why) {
    std::lock_guard lk(mu_);
    if (stopping_) {
      why = "stopping";
    } else if (queue_.size() >= settings_.max_queue) {
      why = "queue full";
    } else {
      queue_.push_back(std::move(m));
      ++queued_;
      ++pending_;
    }
  }
  if (!why) {
    wake_.notify_one();
    return true;
  }
  ++rejected_;
  log_warn("mail.rejected").kv("reason", why).kv("to", recipients_text(m.to)).kv("subject", m.subject);
  return false;
}

MailStats MailSender::stats() const {
  MailStats s;
  s.queued = queued_.load();
  s.sent = sent_.load();
  s.failed = failed_.load();
  s.rejected = rejected_.load();
  s.pending = pending_.load();
  return s;
}

void MailSender::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    wake_.wait(lk, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) break;  // stopping, and everything went out
    Mail m = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    if (abort_) {
      ++failed_;
      log_error("mail.failed").kv("to", recipients_text(m.to)).kv("subject", m.subject)
          .kv("attempts", 0).kv("error", "abandoned at shutdown");
    } else {
      deliver(m);
    }
    --pending_;
    lk.lock();
  }
  worker_done_ = true;
  done_.notify_all();
}

void MailSender::deliver(const Mail& m) {
  const std::string id = make_message_id(from_address_);
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  int tries = 0;
  for (;;) {
    ++tries;
    Outcome r = send_once(settings_, from_address_, m, id, abort_);
    if (r.ok) {
      ++sent_;
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
      log_info("mail.sent").kv("to", recipients_text(m.to)).kv("subject", m.subject).kv("message_id", id)
          .kv("attempts", tries).kv("ms", static_cast<long long>(ms));
      return;
    }
    error = r.error;
    if (r.final || tries >= kAttempts) break;
    log_debug("mail.retry").kv("message_id", id).kv("attempt", tries).kv("error", error);
    if (!wait_before_retry(settings_.retry_delay_ms << (tries - 1))) {
      error += "; abandoned at shutdown";
      break;
    }
  }
  ++failed_;
  log_error("mail.failed").kv("to", recipients_text(m.to)).kv("subject", m.subject).kv("message_id", id)
      .kv("attempts", tries).kv("error", error);
}

bool MailSender::wait_before_retry(int delay_ms) {
  std::unique_lock lk(mu_);
  return !wake_.wait_for(lk, std::chrono::milliseconds(std::max(0, delay_ms)), [this] { return abort_.load(); });
}

}  // namespace relais
