// mail_sender_test.cpp — MailSender against a real SMTP server (tests/integration/smtp_sink.py
// in a child process), a closed port and a server that never answers.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mail_sender.hpp"
#include "sdes.hpp"

extern char** environ;

using namespace relais;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

fs::path temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "relais-mail-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// python3 smtp_sink.py 0 DIR [extra...]: the port comes from its first line on stdout.
class Sink {
 public:
  explicit Sink(std::vector<std::string> extra = {}) : dir_(temp_dir()) {
    const char* src = std::getenv("RELAIS_SOURCE_DIR");
    fs::path script = fs::path(src ? src : ".") / "tests/integration/smtp_sink.py";
    REQUIRE_MESSAGE(fs::exists(script), "set RELAIS_SOURCE_DIR (no " << script << ")");
    std::vector<std::string> args = {"python3", script.string(), "0", (dir_ / "mail").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int fds[2];
    REQUIRE(pipe(fds) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    REQUIRE(rc == 0);

    std::string line;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd p{fds[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);
    size_t colon = line.rfind(':');
    REQUIRE_MESSAGE(colon != std::string::npos, "smtp_sink did not start: " << line);
    port_ = std::atoi(line.c_str() + colon + 1);
    REQUIRE(port_ > 0);
  }
  ~Sink() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  const fs::path& dir() const { return dir_; }

  // The n-th saved mail (1-based), or "" after `wait`.
  std::string message(int n, std::chrono::milliseconds wait = std::chrono::seconds(10)) const {
    fs::path p = dir_ / "mail" / (std::to_string(n) + ".eml");
    auto deadline = Clock::now() + wait;
    while (!fs::exists(p) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return fs::exists(p) ? read_file(p) : "";
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// A TCP socket on 127.0.0.1; listening (but never accepting: the kernel completes the
// handshake and the client then waits forever for the greeting) or closed again (refused).
struct Port {
  int fd = -1;
  int port = 0;
  explicit Port(bool listening) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    if (listening) {
      REQUIRE(listen(fd, 16) == 0);
    } else {
      close(fd);
      fd = -1;
    }
  }
  ~Port() {
    if (fd >= 0) close(fd);
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port); }
  // A client's connection waits in the backlog.
  bool connection_pending(int ms) const {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1;
  }
};

// A MIME base64 body: its lines joined, then decoded by the relay's RFC 4648 decoder.
std::string base64_decode(std::string_view in) {
  std::string text;
  for (char c : in)
    if (c != '\r' && c != '\n') text += c;
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  if (!relais::media::base64_decode(text, reinterpret_cast<uint8_t*>(out.data()), out.size(), len)) return "<bad base64>";
  out.resize(len);
  return out;
}

// The unfolded value of header `name` in the header block of `msg`.
std::string header(const std::string& msg, const std::string& name) {
  size_t at = msg.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  std::string value;
  for (;;) {
    size_t eol = msg.find("\r\n", at);
    value += msg.substr(at, eol - at);
    if (eol + 2 >= msg.size() || (msg[eol + 2] != ' ' && msg[eol + 2] != '\t')) return value;
    at = eol + 2;
  }
}

// "=?UTF-8?B?...?= =?UTF-8?B?...?=" back to text (RFC 2047 §6.2: space between words dropped).
std::string decode_words(const std::string& value) {
  std::string out;
  size_t at = 0;
  while ((at = value.find("=?UTF-8?B?", at)) != std::string::npos) {
    size_t end = value.find("?=", at + 10);
    out += base64_decode(value.substr(at + 10, end - at - 10));
    at = end + 2;
  }
  return out;
}

// A 16-bit mono 8 kHz WAV with every byte value in its samples.
std::string make_wav(size_t samples) {
  std::string data;
  for (size_t i = 0; i < samples * 2; ++i) data += static_cast<char>((i * 37 + i / 256) & 0xff);
  auto le32 = [](uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
  auto le16 = [](uint16_t v) { return std::string{char(v), char(v >> 8)}; };
  return "RIFF" + le32(36 + static_cast<uint32_t>(data.size())) + "WAVEfmt " + le32(16) + le16(1) + le16(1) +
         le32(8000) + le32(16000) + le16(2) + le16(16) + "data" + le32(static_cast<uint32_t>(data.size())) + data;
}

MailSettings settings_for(const std::string& url) {
  MailSettings s;
  s.smtp_url = url;
  s.from = "Relais Voicemail <voicemail@office.example>";
  s.timeout_seconds = 10;
  s.retry_delay_ms = 50;
  s.drain_seconds = 5;
  return s;
}

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds within) {
  auto deadline = Clock::now() + within;
  while (!f()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace

TEST_CASE("a voicemail mail arrives with its subject, recipient and the exact WAV bytes") {
  Sink sink;
  fs::path wav_path = sink.dir() / "msg0001.wav";
  const std::string wav = make_wav(8000);
  std::ofstream(wav_path, std::ios::binary) << wav;

  MailSettings s = settings_for(sink.url());
  s.username = "relais";  // the sink offers AUTH PLAIN/LOGIN and takes any credentials
  s.password = "secret";
  MailSender sender(s);
  Mail m;
  m.to = {"Dr. Martin <martin@office.example>"};
  m.subject = "Voicemail from 101\r\nBcc: evil@example.net";
  m.text = "You have a new message from 101.\n.\nA line with only a dot above.\n";
  m.attachment_path = wav_path.string();
  m.attachment_name = "message 1.wav";
  REQUIRE(sender.send(m));

  std::string msg = sink.message(1);
  REQUIRE(!msg.empty());
  CHECK(msg.rfind("X-Envelope-From: <voicemail@office.example>\r\n", 0) == 0);
  CHECK(msg.find("X-Envelope-To: <martin@office.example>\r\n") != std::string::npos);
  CHECK(header(msg, "To") == "\"Dr. Martin\" <martin@office.example>");
  CHECK(header(msg, "From") == "Relais Voicemail <voicemail@office.example>");
  // The CR LF from a caller-supplied value stays inside the Subject.
  CHECK(header(msg, "Subject") == "Voicemail from 101  Bcc: evil@example.net");
  CHECK(msg.find("\r\nBcc:") == std::string::npos);
  CHECK(header(msg, "Message-ID").find("@office.example>") != std::string::npos);
  CHECK(header(msg, "Date").find(" +0000") != std::string::npos);

  size_t part = msg.find("Content-Type: audio/wav");
  REQUIRE(part != std::string::npos);
  CHECK(msg.find("Content-Disposition: attachment; filename=\"message_1.wav\"") != std::string::npos);
  CHECK(msg.find("quoted-printable\r\n\r\nYou have a new message from 101.\r\n") != std::string::npos);
  size_t enc = msg.find("Content-Transfer-Encoding: base64", part);
  REQUIRE(enc != std::string::npos);
  size_t body = msg.find("\r\n\r\n", enc);
  size_t end = msg.find("\r\n--", body);
  REQUIRE(body != std::string::npos);
  REQUIRE(end != std::string::npos);
  CHECK(base64_decode(msg.substr(body, end - body)) == wav);

  CHECK(eventually([&] { return sender.stats().pending == 0; }, std::chrono::seconds(2)));
  MailStats st = sender.stats();
  CHECK(st.queued == 1);
  CHECK(st.sent == 1);
  CHECK(st.failed == 0);
}

TEST_CASE("a non-ASCII subject is sent as encoded-words that decode to the original") {
  Sink sink;
  MailSender sender(settings_for(sink.url()));
  Mail m;
  m.to = {"zoe@office.example"};
  m.subject = "Nouveau message vocal de Zoé Lefèvre (appel reçu à 14 h 05, durée 42 secondes) — écoutez-le";
  m.text = "Bonjour, vous avez reçu un message.";
  REQUIRE(sender.send(m));
  std::string msg = sink.message(1);
  REQUIRE(!msg.empty());
  std::string subject = header(msg, "Subject");
  CHECK(subject.rfind("=?UTF-8?B?", 0) == 0);
  CHECK(decode_words(subject) == m.subject);
  CHECK(msg.find("charset=utf-8") != std::string::npos);
}

TEST_CASE("a mail refused twice with 451 goes out on the third attempt") {
  Sink sink({"--fail-first", "2"});
  MailSender sender(settings_for(sink.url()));
  Mail m;
  m.to = {"a@office.example"};
  m.subject = "retry";
  m.text = "x";
  REQUIRE(sender.send(m));
  CHECK(!sink.message(1).empty());
  CHECK(eventually([&] { return sender.stats().sent == 1; }, std::chrono::seconds(2)));
  CHECK(sender.stats().failed == 0);
  CHECK(sink.message(2, std::chrono::milliseconds(200)).empty());
}

TEST_CASE("an unreachable server fails the mail after its retries, and stats say so") {
  Port closed(false);
  MailSender sender(settings_for(closed.url()));
  Mail m;
  m.to = {"a@office.example"};
  m.subject = "nobody listens";
  REQUIRE(sender.send(m));
  CHECK(eventually([&] { return sender.stats().failed == 1; }, std::chrono::seconds(5)));
  MailStats st = sender.stats();
  CHECK(st.sent == 0);
  CHECK(st.pending == 0);
}

TEST_CASE("a full queue refuses mail, and stop() returns in bounded time from a silent server") {
  Port silent(true);
  MailSettings s = settings_for(silent.url());
  s.max_queue = 2;
  s.timeout_seconds = 60;
  s.drain_seconds = 1;
  MailSender sender(s);
  Mail m;
  m.to = {"a@office.example"};
  m.subject = "stuck";
  REQUIRE(sender.send(m));
  // The worker took the first mail off the queue once its connection reaches the listener.
  REQUIRE(silent.connection_pending(5000));
  CHECK(sender.send(m));
  CHECK(sender.send(m));
  CHECK_FALSE(sender.send(m));  // two waiting: full
  MailStats st = sender.stats();
  CHECK(st.queued == 3);
  CHECK(st.rejected == 1);
  CHECK(st.pending == 3);

  auto t0 = Clock::now();
  sender.stop();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  CHECK(took < 3000);  // drain_seconds = 1, plus curl's progress callback period
  st = sender.stats();
  CHECK(st.failed == 3);
  CHECK(st.sent == 0);
  CHECK(st.pending == 0);
  CHECK_FALSE(sender.send(m));  // stopped
}

TEST_CASE("a mail without a usable recipient is refused at send()") {
  MailSender sender(settings_for("smtp://127.0.0.1:1"));
  Mail m;
  m.subject = "x";
  CHECK_FALSE(sender.send(m));
  m.to = {"not-an-address"};
  CHECK_FALSE(sender.send(m));
  m.to = {"a@b.example\r\nRCPT TO:<c@d.example>"};
  CHECK_FALSE(sender.send(m));
  CHECK(sender.stats().rejected == 3);
  CHECK(sender.stats().queued == 0);
}

TEST_CASE("header text: plain ASCII stays, UTF-8 becomes whole-character encoded-words") {
  CHECK(encode_header_text("Voicemail from 101") == "Voicemail from 101");
  CHECK(encode_header_text("a\r\nb") == "a  b");
  std::string long_fr;
  for (int i = 0; i < 30; ++i) long_fr += "é";  // 60 bytes: two words, neither splits a character
  std::string enc = encode_header_text(long_fr);
  CHECK(enc.find("\r\n ") != std::string::npos);
  CHECK(decode_words(enc) == long_fr);
  size_t at = 0;
  while ((at = enc.find("=?UTF-8?B?", at)) != std::string::npos) {
    size_t end = enc.find("?=", at + 10);
    CHECK(end + 2 - at <= 75);
    std::string word = base64_decode(enc.substr(at + 10, end - at - 10));
    CHECK(word.size() % 2 == 0);
    at = end;
  }
  CHECK(mail_address("Zoé <zoe@office.example>") == "zoe@office.example");
  CHECK(mail_address("a@b.example\r\nRCPT TO:<c@d.example>").empty());
  CHECK(mail_address(" zoe@office.example ") == "zoe@office.example");
  CHECK(mail_address("zoe").empty());
  CHECK(mail_address("<zoe@office.example").empty());
}
