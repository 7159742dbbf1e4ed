// relay_worker.cpp — the forwarding loop: receive a batch, latch, count, rewrite destination
// and egress port in place, send the batch. Packets never leave their ring buffer.
#include "relay_worker.hpp"

#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <future>
#include <stdexcept>

#include "io_mmsg.hpp"
#include "io_uring.hpp"
#include "io_xdp.hpp"
#include "media_log.hpp"

namespace relais::media {

namespace {

bool same_addr(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

// One writer per counter: a relaxed load+store avoids the locked read-modify-write of
// fetch_add on the packet path; readers only need each value to be untorn.
template <typename T, typename V>
inline void bump(std::atomic<T>& a, V n) {
  a.store(a.load(std::memory_order_relaxed) + static_cast<T>(n), std::memory_order_relaxed);
}

uint32_t rd32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

}  // namespace

RelayWorker::RelayWorker(int index, size_t batch, MediaEventQueue* events, WorkerSettings settings)
    : index_(index), batch_(batch), settings_(settings), by_port_(65536), in_(batch), out_(batch), events_(events),
      gen_buf_(kGenBatch) {
  gen_.reserve(kGenBatch);
}

RelayWorker::~RelayWorker() { stop(); }

void RelayWorker::start() {
  std::promise<std::string> built;
  std::future<std::string> result = built.get_future();
  thread_ = std::thread([this, &built] {
    std::string error;
    if (settings_.realtime_priority > 0) {
      // Real-time scheduling for the packet path only (the control thread stays normal): another
      // process woken on this core no longer delays the queued packets by its time slice.
      sched_param param{};
      param.sched_priority = settings_.realtime_priority;
      if (int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param); e != 0)
        Log(LogLevel::warn, "worker.realtime_refused").kv("worker", index_).kv("priority", settings_.realtime_priority)
            .kv("reason", strerror(e));
    }
    if (settings_.io == IoBackend::xdp) {
      XdpProgram* xdp = settings_.xdp;
      if (xdp && static_cast<unsigned>(index_) < xdp->queues()) {
        std::unique_ptr<UringIo> sockets = UringIo::create(wake_.fd(), batch_, error);
        if (!sockets) return built.set_value("AF_XDP needs io_uring for the kernel sockets: " + error);
        std::unique_ptr<XdpIo> io = XdpIo::create(*xdp, static_cast<unsigned>(index_), std::move(sockets), batch_, error);
        if (!io) return built.set_value(error);
        Log(LogLevel::info, "worker.xdp_ready").kv("worker", index_).kv("interface", xdp->interface())
            .kv("mode", xdp->mode_name()).kv("zero_copy", io->zero_copy() ? "yes" : "no");
        io_ = std::move(io);
        backend_name_ = "xdp";
      } else {
        Log(LogLevel::warn, "worker.xdp_no_queue").kv("worker", index_).kv("queues", xdp ? xdp->queues() : 0u)
            .kv("using", "io_uring");
      }
    }
    if (!io_ && settings_.io != IoBackend::mmsg) {
      io_ = UringIo::create(wake_.fd(), batch_, error);
      if (io_) backend_name_ = "io_uring";
      else if (settings_.io == IoBackend::uring) return built.set_value("io_uring: " + error);
      else Log(LogLevel::info, "worker.io_uring_unavailable").kv("worker", index_).kv("reason", error).kv("using", "recvmmsg");
    }
    if (!io_) {
      try {
        io_ = std::make_unique<MmsgIo>(wake_.fd(), batch_);
        backend_name_ = "recvmmsg";
      } catch (const std::exception& e) {
        return built.set_value(e.what());
      }
    }
    built.set_value("");
    run();
    io_->report(index_);
    io_.reset();  // on the thread that used it
  });
  std::string error = result.get();
  if (!error.empty()) {
    thread_.join();
    throw std::runtime_error("worker " + std::to_string(index_) + ": " + error);
  }
}

void RelayWorker::stop() {
  stop_.store(true);
  wake_.signal();
  if (thread_.joinable()) thread_.join();
}

void RelayWorker::post(WorkerCommand cmd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(cmd));
  }
  wake_.signal();
}

void RelayWorker::run() {
  Log(LogLevel::debug, "worker.start").kv("worker", index_).kv("io", backend_name_);
  while (!stop_.load(std::memory_order_relaxed)) {
    // With media services running, wake up for the next frame (rounded up: waking early would
    // poll(0) until the frame is due); the schedule itself is absolute, so no drift.
    int timeout_ms = 1000;
    if (!timers_.empty()) {
      int64_t wait = timers_.top().first - monotonic_ns();
      timeout_ms = wait <= 0 ? 0 : static_cast<int>(std::min<int64_t>(1000, (wait + 999'999) / 1'000'000));
    }
    RecvResult r = io_->recv_batch(in_, timeout_ms);
    if (r.woken) {
      wake_.drain();
      drain();
    }
    if (r.count > 0) {
      size_t out = forward(r.count, monotonic_ns());
      if (out) io_->send_batch(std::span<const Packet>(out_.data(), out));
    }
    if (!timers_.empty()) run_timers(monotonic_ns());
  }
  // Apply what control posted last (releases), then end every recording still running:
  // StreamMedia's destructor hands its last block to the control thread.
  drain();
  entries_.clear();
}

void RelayWorker::drain() {
  std::vector<WorkerCommand> cmds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cmds.swap(queue_);
  }
  for (WorkerCommand& c : cmds) apply(c);
}

void RelayWorker::set_crypto(Entry& e, int side, const SideSrtp& want, const SideSrtp* had) {
  Crypto& k = e.crypto[side];
  if (had && *had == want) return;
  std::string error;
  k.mode = want.mode;
  if (want.mode != SideSrtp::Mode::srtp) {
    k.in.reset();
    k.out.reset();
    return;
  }
  // A new key starts a new crypto context (RFC 3711 §3.2.1); an unchanged one keeps its own.
  if (!k.in || !had || had->mode != SideSrtp::Mode::srtp || had->rx != want.rx)
    k.in = SrtpSession::create(want.rx, SrtpSession::Direction::inbound, error);
  if (k.in && (!k.out || !had || had->mode != SideSrtp::Mode::srtp || had->tx != want.tx))
    k.out = SrtpSession::create(want.tx, SrtpSession::Direction::outbound, error);
  if (!k.in || !k.out) {
    // Never fall back to plain RTP towards a side that expects SRTP: drop its media instead.
    Log(LogLevel::error, "srtp.session_failed").kv("pair", static_cast<unsigned long>(e.id)).kv("side", side)
        .kv("error", error);
    k.mode = SideSrtp::Mode::pending;
    k.in.reset();
    k.out.reset();
  }
}

void RelayWorker::apply_spec(Entry& e, const PairSpec& spec) {
  for (int i = 0; i < 2; ++i) set_crypto(e, i, spec.side[i].srtp, &e.spec.side[i].srtp);
  for (int i = 0; i < 2; ++i) {
    SideState& s = e.side[i];
    const SideSpec& want = spec.side[i];
    // A new SDP address (or asymmetric mode) replaces the latch; the same address keeps it, so
    // a re-INVITE does not break a NATed side that already latched.
    bool rtp_changed = !same_addr(want.rtp, e.spec.side[i].rtp);
    if (!s.latched_rtp || rtp_changed || spec.asymmetric) {
      s.dest_rtp = want.rtp;
      s.latched_rtp = false;
    }
    if (!s.latched_rtcp || !same_addr(want.rtcp, e.spec.side[i].rtcp) || spec.asymmetric) {
      s.dest_rtcp = want.rtcp;
      s.latched_rtcp = false;
    }
  }
  e.spec = spec;
}

void RelayWorker::apply(WorkerCommand& cmd) {
  if (cmd.kind == WorkerCommand::Kind::add) {
    auto e = std::make_unique<Entry>();
    e->id = cmd.id;
    e->port[0] = cmd.port[0];
    e->port[1] = cmd.port[1];
    e->stats = std::move(cmd.stats);
    for (int i = 0; i < 2; ++i) {
      e->side[i].dest_rtp = cmd.spec.side[i].rtp;
      e->side[i].dest_rtcp = cmd.spec.side[i].rtcp;
    }
    e->spec = cmd.spec;
    for (int i = 0; i < 2; ++i) set_crypto(*e, i, cmd.spec.side[i].srtp, nullptr);
    for (int k = 0; k < 4; ++k) {
      uint16_t port = static_cast<uint16_t>(e->port[k / 2] + (k % 2));
      if (!io_->attach(port, std::move(cmd.sockets[k]))) {
        Log(LogLevel::error, "worker.attach_failed").kv("worker", index_).kv("port", port);
        continue;
      }
      by_port_[port] = PortRef{e.get(), static_cast<uint8_t>(k / 2), (k % 2) == 1};
    }
    entries_[cmd.id] = std::move(e);
    return;
  }
  auto it = entries_.find(cmd.id);
  if (it == entries_.end()) {
    if (cmd.kind == WorkerCommand::Kind::media && cmd.media.kind == MediaCommand::Kind::record_stop && events_) {
      // The pair is gone (its recording already ended): still answer the waiting control thread.
      MediaEvent ev;
      ev.kind = MediaEvent::Kind::record_block;
      ev.pair_id = cmd.id;
      ev.ref = cmd.media.ref;
      ev.final = true;
      events_->push(std::move(ev));
    }
    return;
  }
  Entry& e = *it->second;
  if (cmd.kind == WorkerCommand::Kind::update) {
    apply_spec(e, cmd.spec);
    return;
  }
  if (cmd.kind == WorkerCommand::Kind::media) {
    media_of(e).apply(cmd.media, monotonic_ns());
    schedule(e);
    return;
  }
  for (int k = 0; k < 4; ++k) {
    uint16_t port = static_cast<uint16_t>(e.port[k / 2] + (k % 2));
    io_->detach(port);
    by_port_[port] = PortRef{};
  }
  entries_.erase(it);
}

size_t RelayWorker::forward(size_t count, int64_t now_ns) {
  size_t out = 0;
  for (size_t i = 0; i < count; ++i) {
    Packet& p = in_[i];
    const PortRef ref = by_port_[p.local_port];
    if (!ref.entry) continue;
    Entry& e = *ref.entry;
    const int s = ref.side, o = 1 - s;
    SideCounters& c = e.stats->side[s];
    // Only RTP/RTCP version 2 is relayed: junk is neither forwarded nor allowed to latch.
    bool rtcp = ref.rtcp || (p.len >= 2 && is_rtcp_byte(p.data[1]));
    if (!is_rtp_version2(p.data, p.len) || p.len < (rtcp ? 8u : 12u)) {
      bump(c.dropped, 1);
      continue;
    }
    SideState& from = e.side[s];
    bool& latched = ref.rtcp ? from.latched_rtcp : from.latched_rtp;
    sockaddr_in& learned = ref.rtcp ? from.dest_rtcp : from.dest_rtp;
    // Strangers to a strict side are dropped before any decryption work.
    if (e.spec.strict_source && (e.spec.asymmetric || latched) && !same_addr(learned, p.remote)) {
      bump(c.dropped, 1);
      continue;
    }
    // SRTP: only a packet that authenticates may latch or go anywhere; from here on it is
    // plain RTP/RTCP (recorded, DTMF-detected, forwarded or re-protected).
    if (e.crypto[s].mode != SideSrtp::Mode::plain && !unprotect(e.crypto[s], p, rtcp, c)) continue;
    if (!e.spec.asymmetric && !latched) {
      learned = p.remote;
      latched = true;
      if (!ref.rtcp) {
        c.latched_ip.store(p.remote.sin_addr.s_addr, std::memory_order_relaxed);
        c.latched_port.store(ntohs(p.remote.sin_port), std::memory_order_relaxed);
        // RFC 3605 default until RTCP itself arrives: the RTP source port + 1.
        if (!from.latched_rtcp && !e.spec.side[s].rtcp_mux) {
          from.dest_rtcp = p.remote;
          from.dest_rtcp.sin_port = htons(static_cast<uint16_t>(ntohs(p.remote.sin_port) + 1));
        }
      }
    }
    if (rtcp) {
      bump(c.rtcp_packets, 1);
      bump(c.rtcp_bytes, p.len);
    } else {
      bump(c.packets, 1);
      bump(c.bytes, p.len);
      uint16_t seq = static_cast<uint16_t>((p.data[2] << 8) | p.data[3]);
      uint32_t rate = e.spec.side[s].clock_rate ? e.spec.side[s].clock_rate : 8000;
      auto arrival = static_cast<uint32_t>(static_cast<uint64_t>(static_cast<double>(now_ns) * rate / 1e9));
      from.rx.update(seq, rd32(p.data + 4), rd32(p.data + 8), arrival);
      c.expected.store(from.rx.expected(), std::memory_order_relaxed);
      c.lost.store(from.rx.lost(), std::memory_order_relaxed);
      c.jitter.store(from.rx.jitter(), std::memory_order_relaxed);
      // Media services see the packet before the forwarding decision: what a side sends is
      // recorded and DTMF-detected even when it has nowhere to go. Pairs without services and
      // without telephone-event pay two compares.
      uint8_t pt = p.data[1] & 0x7f;
      if (e.media || pt == e.spec.side[s].te_pt || pt == e.spec.side[o].te_pt) {
        media_packet(e, s, p, now_ns);
        if (e.media->playing_to(o)) {
          bump(c.suppressed, 1);
          e.stats->last_packet_ns.store(now_ns, std::memory_order_relaxed);
          continue;
        }
      }
    }
    e.stats->last_packet_ns.store(now_ns, std::memory_order_relaxed);

    const SideState& to = e.side[o];
    bool via_rtp = !rtcp || e.spec.side[o].rtcp_mux;
    const sockaddr_in& dest = via_rtp ? to.dest_rtp : to.dest_rtcp;
    if (dest.sin_port == 0) {
      bump(c.dropped, 1);  // the other side has no address yet (no answer so far)
      continue;
    }
    if (Crypto& k = e.crypto[o]; k.mode != SideSrtp::Mode::plain) {
      // No key for that side yet (answer pending), a duplicate index, an SSRC past the bound:
      // nothing leaves unprotected towards an SRTP side.
      if (k.mode == SideSrtp::Mode::pending ||
          (rtcp ? k.out->protect_rtcp(p.data, p.len, kPacketBufSize) : k.out->protect_rtp(p.data, p.len, kPacketBufSize)) !=
              SrtpSession::Result::ok) {
        bump(c.dropped, 1);
        continue;
      }
    }
    Packet& q = out_[out++];
    q.data = p.data;
    q.len = p.len;
    q.local_port = static_cast<uint16_t>(e.port[o] + (via_rtp ? 0 : 1));
    q.remote = dest;
    bump(c.forwarded, 1);
  }
  return out;
}

bool RelayWorker::unprotect(Crypto& k, Packet& p, bool rtcp, SideCounters& c) {
  if (k.mode == SideSrtp::Mode::pending) {
    bump(c.dropped, 1);  // SRTP offered, no answer yet: no key can authenticate it
    return false;
  }
  SrtpSession::Result r = rtcp ? k.in->unprotect_rtcp(p.data, p.len) : k.in->unprotect_rtp(p.data, p.len);
  if (r == SrtpSession::Result::ok) return true;
  if (r == SrtpSession::Result::replayed) bump(c.srtp_replayed, 1);
  else bump(c.srtp_failed, 1);
  return false;
}

StreamMedia& RelayWorker::media_of(Entry& e) {
  if (!e.media) e.media = std::make_unique<StreamMedia>(e.id, events_, e.stats.get());
  return *e.media;
}

void RelayWorker::media_packet(Entry& e, int side, const Packet& p, int64_t now_ns) {
  media_of(e).on_rtp(side, p.data, p.len, e.spec, now_ns);
  schedule(e);
}

void RelayWorker::schedule(Entry& e) {
  if (!e.media) return;
  int64_t due = e.media->next_due();
  if (due >= e.media_due) return;  // an earlier (or the same) wake-up is already queued
  e.media_due = due;
  timers_.emplace(due, e.id);
}

// Generated packets leave from the port facing the side that hears them, to that side's
// latched (or SDP) address; a side without an address ("c=0.0.0.0", no answer yet) gets none.
class RelayWorker::Sink final : public FrameSink {
 public:
  Sink(RelayWorker& w, uint16_t port, const sockaddr_in& dest, Crypto& crypto)
      : w_(w), port_(port), dest_(dest), crypto_(crypto) {}
  void packet(const uint8_t* data, size_t len) override {
    if (dest_.sin_port == 0 || dest_.sin_addr.s_addr == 0 || len > MediaOutput::kMaxPacket) return;
    if (crypto_.mode == SideSrtp::Mode::pending) return;  // no key for that side yet
    if (w_.gen_.size() == kGenBatch) w_.send_generated();
    auto& buf = w_.gen_buf_[w_.gen_.size()];
    std::memcpy(buf.data(), data, len);
    auto n = static_cast<uint32_t>(len);
    if (crypto_.mode == SideSrtp::Mode::srtp && crypto_.out->protect_rtp(buf.data(), n, buf.size()) != SrtpSession::Result::ok)
      return;
    Packet q;
    q.data = buf.data();
    q.len = n;
    q.local_port = port_;
    q.remote = dest_;
    w_.gen_.push_back(q);
  }

 private:
  RelayWorker& w_;
  uint16_t port_;
  sockaddr_in dest_;
  Crypto& crypto_;
};

void RelayWorker::send_generated() {
  if (!gen_.empty()) io_->send_batch(gen_);
  gen_.clear();
}

void RelayWorker::run_timers(int64_t now_ns) {
  while (!timers_.empty() && timers_.top().first <= now_ns) {
    auto [due, id] = timers_.top();
    timers_.pop();
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    Entry& e = *it->second;
    if (!e.media || e.media_due != due) continue;  // stale: rescheduled since
    e.media_due = INT64_MAX;
    Sink s0(*this, e.port[0], e.side[0].dest_rtp, e.crypto[0]), s1(*this, e.port[1], e.side[1].dest_rtp, e.crypto[1]);
    FrameSink* sinks[2] = {&s0, &s1};
    e.media->tick(now_ns, sinks);
    schedule(e);
  }
  send_generated();
}

}  // namespace relais::media
