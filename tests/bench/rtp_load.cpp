// rtp_load.cpp — RTP load generator and sink for tests/bench/relay_pps.py (one thread).
//
// Flows come from a file, one per line: "SRC_PORT DST_PORT". Each distinct SRC_PORT is one
// UDP socket bound on --address; it sends its flow (172-byte RTP packets) to DST_PORT and
// receives whatever arrives on it (the forwarded packets of the reverse flow). Packets are
// paced over all flows round-robin at --rate packets/s; every send is one sendmmsg of --burst
// packets of one flow. Payload after the 12-byte RTP header: u64 send time (CLOCK_REALTIME
// ns), u32 flow index, u32 phase (0 warm-up, 1 measured, 2 tail).
//
// Reception: epoll + recvmmsg, the arrival time is the kernel's SO_TIMESTAMPNS stamp (taken
// when the packet entered the receive path), so the time this process takes to pick packets
// up is not counted; latency = stamp - embedded send time. SO_RXQ_OVFL reports drops on our
// own sockets (not the relay's fault).
//
// Phases: --warmup s, --duration s (measured), --tail s (still sending, packets not counted, so
// measured packets see the same load until they arrive), then --drain s receiving only. With
// --cpu-pid PID the CPU time of that process (utime+stime from /proc/PID/stat, in clock ticks,
// and the scheduler's run time of all its threads, ns) is read here at the start and the end of
// the measured phase, so no other process has to wake up on this core meanwhile.
// Pacing: packets are due at --rate from the start; a generator that falls more than
// --max-lag-ms behind (preempted) skips the missed packets instead of bursting them ("skipped").
// Output on stdout: "event=measure_start", "event=measure_end", then "result {...}" (JSON).
//
// SRTP (the SRTP<->RTP case of relay_pps.py): a flow line may carry "tx=SUITE:KEYHEX" (its
// packets are protected with libsrtp2 under that master key||salt before sending) and
// "rx=SUITE:KEYHEX" (packets arriving on its source socket are SRTP under that key and are
// unprotected before they are read; one that fails counts as unknown). The payload carries the
// same send time and flow index either way, so latency and loss are measured as for RTP.
// The crypto is relais-media's SrtpSession (media-relay/srtp_session.cpp, OpenSSL for the
// AES-CM suites): Debian's libsrtp2 (NSS) costs 6–9 µs per packet and capped this generator at
// ~72 kpps. rtpengine decrypting it proves it interoperates.
#include <arpa/inet.h>
#include "srtp_session.hpp"
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr size_t kPacketLen = 172;
constexpr size_t kRxBatch = 64;
constexpr size_t kHistUs = 200000;  // 1 µs buckets up to 200 ms, then one overflow bucket
constexpr int64_t kBinNs = 100'000'000;  // timeline bins (by send time) of 100 ms

int64_t now_ns(clockid_t c) {
  timespec ts;
  clock_gettime(c, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void die(const char* what) {
  fprintf(stderr, "rtp_load: %s: %s\n", what, strerror(errno));
  exit(2);
}

struct Flow {
  int sock_index;
  std::shared_ptr<relais::media::SrtpSession> tx_srtp;  // protect what this flow sends
  sockaddr_in dst;
  uint16_t seq;
  uint32_t ts;
  uint64_t tx_measured = 0;
  uint64_t rx_measured = 0;
};

struct Sock {
  int fd;
  uint32_t drops_seen = 0;  // SO_RXQ_OVFL is a running total per socket
  std::shared_ptr<relais::media::SrtpSession> rx_srtp;  // what arrives here is SRTP (rx= on a flow from here)
};

// "SUITE:HEX" → an SRTP session (inbound or outbound), or exits.
std::shared_ptr<relais::media::SrtpSession> make_srtp(const std::string& spec, bool inbound) {
  using namespace relais::media;
  size_t colon = spec.find(':');
  std::string suite = spec.substr(0, colon), hex = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto s = srtp_suite_from_name(suite);
  if (!s) {
    fprintf(stderr, "rtp_load: unsupported SRTP suite %s\n", suite.c_str());
    exit(2);
  }
  SrtpKey key;
  key.suite = *s;
  if (hex.size() != 2 * srtp_key_length(*s)) {
    fprintf(stderr, "rtp_load: SRTP key of the wrong length\n");
    exit(2);
  }
  for (size_t i = 0; i < hex.size() / 2; ++i) key.bytes[i] = static_cast<uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
  std::string error;
  std::shared_ptr<SrtpSession> session =
      SrtpSession::create(key, inbound ? SrtpSession::Direction::inbound : SrtpSession::Direction::outbound, error);
  if (!session) {
    fprintf(stderr, "rtp_load: %s\n", error.c_str());
    exit(2);
  }
  return session;
}

void put_u32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
void put_u64(uint8_t* p, uint64_t v) { memcpy(p, &v, 8); }
uint32_t get_u32(const uint8_t* p) { uint32_t v; memcpy(&v, p, 4); return v; }
uint64_t get_u64(const uint8_t* p) { uint64_t v; memcpy(&v, p, 8); return v; }

double percentile(const std::vector<uint64_t>& hist, uint64_t total, double q) {
  if (total == 0) return -1;
  uint64_t want = static_cast<uint64_t>(std::ceil(q * double(total)));
  if (want == 0) want = 1;
  uint64_t acc = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    acc += hist[i];
    if (acc >= want) return double(i);
  }
  return double(hist.size() - 1);
}

// utime+stime (clock ticks) of pid, the sum of its threads' run time and of their time spent
// runnable but waiting for a CPU (ns, /proc/PID/task/*/schedstat); -1 if gone.
void read_cpu(int pid, long long& ticks, long long& sched, long long& waited) {
  ticks = sched = waited = -1;
  if (pid <= 0) return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "r");
  if (!f) return;
  char buf[2048];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  if (!p) return;
  // fields after the comm: state(3) ... utime(14) stime(15)
  long long ut = 0, st = 0;
  int field = 2;
  for (char* tok = strtok(p + 1, " "); tok; tok = strtok(nullptr, " ")) {
    ++field;
    if (field == 14) ut = atoll(tok);
    if (field == 15) {
      st = atoll(tok);
      break;
    }
  }
  ticks = ut + st;
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR* d = opendir(path);
  if (!d) return;
  long long total = 0, wait_total = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char sp[320];
    snprintf(sp, sizeof sp, "/proc/%d/task/%s/schedstat", pid, e->d_name);
    FILE* g = fopen(sp, "r");
    if (!g) continue;
    long long run = 0, wait = 0;
    if (fscanf(g, "%lld %lld", &run, &wait) == 2) {
      total += run;
      wait_total += wait;
    }
    fclose(g);
  }
  closedir(d);
  sched = total;
  waited = wait_total;
}

}  // namespace

int main(int argc, char** argv) {
  std::string flows_path, address = "127.0.0.1";
  double rate = 50000, warmup = 1, duration = 5, tail = 0.2, drain = 0.2;
  int burst = 1, cpu_pid = 0;
  double max_lag_ms = 2;
  int rcvbuf = 1 << 20;
  // First RTP sequence number of every flow (default random). An SRTP receiver refuses indexes
  // it has seen (replay protection), so runs against the same SRTP sessions must go on from
  // where the last one stopped: relay_pps.py passes a start ahead of the previous run's end.
  long seq_start = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--flows") flows_path = v;
    else if (a == "--address") address = v;
    else if (a == "--rate") rate = atof(v.c_str());
    else if (a == "--warmup") warmup = atof(v.c_str());
    else if (a == "--duration") duration = atof(v.c_str());
    else if (a == "--tail") tail = atof(v.c_str());
    else if (a == "--drain") drain = atof(v.c_str());
    else if (a == "--burst") burst = std::max(1, atoi(v.c_str()));
    else if (a == "--rcvbuf") rcvbuf = atoi(v.c_str());
    else if (a == "--cpu-pid") cpu_pid = atoi(v.c_str());
    else if (a == "--max-lag-ms") max_lag_ms = atof(v.c_str());
    else if (a == "--seq-start") seq_start = atol(v.c_str());
    else {
      fprintf(stderr, "rtp_load: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (flows_path.empty() || rate <= 0 || duration <= 0) {
    fprintf(stderr, "usage: rtp_load --flows FILE --rate PPS [--warmup S --duration S --tail S --drain S --burst K]\n");
    return 2;
  }
  rlimit rl{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);

  in_addr ip{};
  if (inet_pton(AF_INET, address.c_str(), &ip) != 1) {
    fprintf(stderr, "rtp_load: bad address %s\n", address.c_str());
    return 2;
  }
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");

  std::vector<Flow> flows;
  std::vector<Sock> socks;
  std::map<int, int> by_port;
  {
    std::ifstream in(flows_path);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      int src = 0, dst = 0;
      if (!(words >> src >> dst)) continue;
      std::string tx_spec, rx_spec, w;
      while (words >> w) {
        if (w.rfind("tx=", 0) == 0) tx_spec = w.substr(3);
        else if (w.rfind("rx=", 0) == 0) rx_spec = w.substr(3);
      }
      auto it = by_port.find(src);
      if (it == by_port.end()) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) die("socket");
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0) die("SO_TIMESTAMPNS");
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr = ip;
        a.sin_port = htons(uint16_t(src));
        if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
          fprintf(stderr, "rtp_load: bind %s:%d: %s\n", address.c_str(), src, strerror(errno));
          return 2;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = uint32_t(socks.size());
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
        it = by_port.emplace(src, int(socks.size())).first;
        socks.push_back(Sock{fd});
      }
      if (!rx_spec.empty() && !socks[size_t(it->second)].rx_srtp) socks[size_t(it->second)].rx_srtp = make_srtp(rx_spec, true);
      Flow f{};
      f.sock_index = it->second;
      if (!tx_spec.empty()) f.tx_srtp = make_srtp(tx_spec, false);
      f.dst.sin_family = AF_INET;
      f.dst.sin_addr = ip;
      f.dst.sin_port = htons(uint16_t(dst));
      f.seq = seq_start >= 0 ? uint16_t(seq_start) : uint16_t(rand());
      f.ts = uint32_t(rand());
      flows.push_back(f);
    }
  }
  if (flows.empty()) {
    fprintf(stderr, "rtp_load: no flows in %s\n", flows_path.c_str());
    return 2;
  }
  const size_t nflows = flows.size();

  // Transmit buffers: one sendmmsg of `burst` packets at a time.
  std::vector<std::vector<uint8_t>> txbuf(burst, std::vector<uint8_t>(kPacketLen + relais::media::kSrtpMaxTrailer, 0));
  std::vector<iovec> txiov(burst);
  std::vector<mmsghdr> txmsg(burst);

  // Receive buffers with room for the timestamp and overflow control messages.
  constexpr size_t kCtl = CMSG_SPACE(sizeof(timespec)) + CMSG_SPACE(sizeof(uint32_t)) + 64;
  std::vector<std::vector<uint8_t>> rxbuf(kRxBatch, std::vector<uint8_t>(2048));
  std::vector<std::vector<uint8_t>> rxctl(kRxBatch, std::vector<uint8_t>(kCtl));
  std::vector<iovec> rxiov(kRxBatch);
  std::vector<mmsghdr> rxmsg(kRxBatch);
  std::vector<epoll_event> events(512);

  std::vector<uint64_t> hist(kHistUs + 1, 0);
  uint64_t lat_count = 0, late = 0, unknown = 0, rx_other_phase = 0, send_errors = 0, send_eagain = 0;
  double lat_sum_us = 0, lat_max_us = 0;
  uint64_t tx_total = 0, rx_total = 0, gen_drops = 0;
  const int64_t measure_ns = int64_t(duration * 1e9);
  std::vector<uint64_t> bin_tx(size_t((measure_ns + kBinNs - 1) / kBinNs), 0), bin_rx(bin_tx.size(), 0),
      bin_slow(bin_tx.size(), 0);  // per bin: packets that took > 200 µs

  const int64_t t0 = now_ns(CLOCK_MONOTONIC);
  const int64_t t_measure = t0 + int64_t(warmup * 1e9);
  const int64_t t_tail = t_measure + measure_ns;
  const int64_t t_stop_send = t_tail + int64_t(tail * 1e9);
  const int64_t t_end = t_stop_send + int64_t(drain * 1e9);
  int64_t real_measure = 0;  // CLOCK_REALTIME at the start of the measured phase
  bool started = false, ended = false;
  uint64_t sent = 0;  // packets sent (all phases): the pacing counter
  uint64_t tx_measured = 0;
  size_t next_flow = 0;
  int64_t last_rx = 0;
  int64_t actual_measure_start = 0, actual_measure_end = 0;
  long long cpu0 = -1, cpu1 = -1, sched0 = -1, sched1 = -1, wait0 = -1, wait1 = -1;
  uint64_t skipped = 0, skipped_measured = 0;
  const uint64_t max_lag = std::max<uint64_t>(uint64_t(burst), uint64_t(rate * max_lag_ms / 1000.0));

  auto receive_all = [&](int64_t /*mono*/) {
    for (;;) {
      int n = epoll_wait(ep, events.data(), int(events.size()), 0);
      if (n <= 0) return;
      for (int e = 0; e < n; ++e) {
        Sock& s = socks[events[e].data.u32];
        for (;;) {
          for (size_t i = 0; i < kRxBatch; ++i) {
            rxiov[i] = {rxbuf[i].data(), rxbuf[i].size()};
            msghdr& h = rxmsg[i].msg_hdr;
            h = msghdr{};
            h.msg_iov = &rxiov[i];
            h.msg_iovlen = 1;
            h.msg_control = rxctl[i].data();
            h.msg_controllen = rxctl[i].size();
          }
          int got = recvmmsg(s.fd, rxmsg.data(), kRxBatch, MSG_DONTWAIT, nullptr);
          if (got <= 0) break;
          int64_t user_now = 0;
          for (int i = 0; i < got; ++i) {
            ++rx_total;
            msghdr& h = rxmsg[i].msg_hdr;
            int64_t stamp = 0;
            for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
              if (c->cmsg_level != SOL_SOCKET) continue;
              if (c->cmsg_type == SO_TIMESTAMPNS) {
                timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                stamp = int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
              } else if (c->cmsg_type == SO_RXQ_OVFL) {
                uint32_t d;
                memcpy(&d, CMSG_DATA(c), sizeof d);
                if (d > s.drops_seen) {
                  gen_drops += d - s.drops_seen;
                  s.drops_seen = d;
                }
              }
            }
            if (stamp == 0) {
              if (!user_now) user_now = now_ns(CLOCK_REALTIME);
              stamp = user_now;
            }
            uint8_t* p = rxbuf[i].data();
            if (s.rx_srtp) {
              uint32_t len = rxmsg[i].msg_len;
              if (s.rx_srtp->unprotect_rtp(p, len) != relais::media::SrtpSession::Result::ok) {
                ++unknown;
                continue;
              }
              rxmsg[i].msg_len = len;
            }
            if (rxmsg[i].msg_len != kPacketLen) {
              ++unknown;
              continue;
            }
            uint64_t sent_at = get_u64(p + 12);
            uint32_t flow = get_u32(p + 20), phase = get_u32(p + 24);
            if (flow >= nflows) {
              ++unknown;
              continue;
            }
            if (phase != 1) {
              ++rx_other_phase;
              continue;
            }
            ++flows[flow].rx_measured;
            int64_t rel = int64_t(sent_at) - real_measure;
            double us = double(stamp - int64_t(sent_at)) / 1000.0;
            if (us < 0) us = 0;
            if (rel >= 0 && rel < measure_ns) {
              ++bin_rx[size_t(rel / kBinNs)];
              if (us > 200) ++bin_slow[size_t(rel / kBinNs)];
            }
            size_t b = size_t(us);
            if (b >= kHistUs) {
              b = kHistUs;
              ++late;
            }
            ++hist[b];
            ++lat_count;
            lat_sum_us += us;
            lat_max_us = std::max(lat_max_us, us);
          }
          if (got < int(kRxBatch)) break;
        }
      }
      if (n < int(events.size())) return;
    }
  };

  const double per_ns = rate / 1e9;
  for (;;) {
    int64_t now = now_ns(CLOCK_MONOTONIC);
    if (!started && now >= t_measure) {
      started = true;
      read_cpu(cpu_pid, cpu0, sched0, wait0);
      now = now_ns(CLOCK_MONOTONIC);
      real_measure = now_ns(CLOCK_REALTIME);
      actual_measure_start = now;
      printf("event=measure_start\n");
      fflush(stdout);
    }
    if (!ended && now >= t_tail) {
      ended = true;
      actual_measure_end = now;
      read_cpu(cpu_pid, cpu1, sched1, wait1);
      printf("event=measure_end\n");
      fflush(stdout);
    }
    if (now >= t_end) break;
    if (now < t_stop_send) {
      uint32_t phase = now < t_measure ? 0 : (now < t_tail ? 1 : 2);
      uint64_t due = uint64_t(double(now - t0) * per_ns);
      if (due > sent + max_lag) {  // preempted: skip what is overdue rather than burst it
        uint64_t skip = due - sent - max_lag;
        skipped += skip;
        if (phase == 1) skipped_measured += skip;
        sent += skip;
        next_flow = (next_flow + skip) % nflows;
      }
      // At most 64 sends per turn, then look at the receive side.
      for (int k = 0; k < 64 && sent < due; ++k) {
        Flow& f = flows[next_flow];
        next_flow = (next_flow + 1) % nflows;
        uint64_t stamp = uint64_t(now_ns(CLOCK_REALTIME));
        for (int b = 0; b < burst; ++b) {
          uint8_t* p = txbuf[b].data();
          p[0] = 0x80;
          p[1] = 8;  // PCMA
          p[2] = uint8_t(f.seq >> 8);
          p[3] = uint8_t(f.seq);
          uint32_t ts = htonl(f.ts), ssrc = htonl(0x5e000000u + uint32_t(&f - flows.data()));
          memcpy(p + 4, &ts, 4);
          memcpy(p + 8, &ssrc, 4);
          put_u64(p + 12, stamp);
          put_u32(p + 20, uint32_t(&f - flows.data()));
          put_u32(p + 24, phase);
          ++f.seq;
          f.ts += 160;
          uint32_t len = kPacketLen;
          if (f.tx_srtp && f.tx_srtp->protect_rtp(p, len, txbuf[b].size()) != relais::media::SrtpSession::Result::ok)
            die("protect_rtp");
          txiov[b] = {p, size_t(len)};
          msghdr& h = txmsg[b].msg_hdr;
          h = msghdr{};
          h.msg_name = &f.dst;
          h.msg_namelen = sizeof f.dst;
          h.msg_iov = &txiov[b];
          h.msg_iovlen = 1;
        }
        int r = sendmmsg(socks[f.sock_index].fd, txmsg.data(), unsigned(burst), MSG_DONTWAIT);
        int ok = r > 0 ? r : 0;
        if (r < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) ++send_eagain;
          else ++send_errors;
        }
        sent += uint64_t(burst);  // pacing counts attempts, so a failing socket cannot stall it
        tx_total += uint64_t(ok);
        if (phase == 1) {
          f.tx_measured += uint64_t(ok);
          tx_measured += uint64_t(ok);
          int64_t rel = int64_t(stamp) - real_measure;
          if (rel >= 0 && rel < measure_ns) bin_tx[size_t(rel / kBinNs)] += uint64_t(ok);
        }
        if (burst > 1) now = now_ns(CLOCK_MONOTONIC);
      }
    }
    if (now - last_rx >= 20'000) {  // look for arrivals every 20 µs at most
      receive_all(now);
      last_rx = now;
    }
  }
  receive_all(now_ns(CLOCK_MONOTONIC));

  uint64_t rx_measured = 0, flows_lossy = 0, flows_dead = 0;
  for (const Flow& f : flows) {
    rx_measured += f.rx_measured;
    if (f.tx_measured && f.rx_measured == 0) ++flows_dead;
    else if (f.tx_measured && double(f.tx_measured - std::min(f.tx_measured, f.rx_measured)) > 0.01 * double(f.tx_measured)) ++flows_lossy;
  }
  double window = double(actual_measure_end - actual_measure_start) / 1e9;
  double loss = tx_measured ? 100.0 * (double(tx_measured) - double(std::min(rx_measured, tx_measured))) / double(tx_measured) : 100.0;
  printf("result {\"relay_cpu_ticks\": [%lld, %lld], \"relay_sched_ns\": [%lld, %lld], "
         "\"relay_runq_wait_ns\": [%lld, %lld], \"skipped\": %llu, \"skipped_measured\": %llu, ",
         cpu0, cpu1, sched0, sched1, wait0, wait1, (unsigned long long)skipped, (unsigned long long)skipped_measured);
  printf("\"offered_pps\": %.0f, \"window_s\": %.4f, \"tx\": %llu, \"rx\": %llu, "
         "\"tx_pps\": %.1f, \"rx_pps\": %.1f, \"loss_pct\": %.4f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
         "\"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.2f, \"late\": %llu, "
         "\"flows\": %zu, \"flows_lossy\": %llu, \"flows_dead\": %llu, \"gen_drops\": %llu, "
         "\"send_errors\": %llu, \"send_eagain\": %llu, \"unknown\": %llu, \"rx_other_phase\": %llu, "
         "\"tx_total\": %llu, \"rx_total\": %llu, \"timeline\": [",
         rate, window, (unsigned long long)tx_measured, (unsigned long long)rx_measured,
         window > 0 ? double(tx_measured) / window : 0.0, window > 0 ? double(rx_measured) / window : 0.0,
         loss, percentile(hist, lat_count, 0.50), percentile(hist, lat_count, 0.90),
         percentile(hist, lat_count, 0.99), percentile(hist, lat_count, 0.999), lat_max_us,
         lat_count ? lat_sum_us / double(lat_count) : -1.0, (unsigned long long)late, nflows,
         (unsigned long long)flows_lossy, (unsigned long long)flows_dead, (unsigned long long)gen_drops,
         (unsigned long long)send_errors, (unsigned long long)send_eagain, (unsigned long long)unknown,
         (unsigned long long)rx_other_phase, (unsigned long long)tx_total, (unsigned long long)rx_total);
  for (size_t i = 0; i < bin_tx.size(); ++i)
    printf("%s[%llu, %llu, %llu]", i ? ", " : "", (unsigned long long)bin_tx[i], (unsigned long long)bin_rx[i],
           (unsigned long long)bin_slow[i]);
  printf("]}\n");
  return 0;
}
