// relay_worker.hpp — one packet thread. It owns the ports of the stream pairs handed to it, so
// forwarding touches no state of any other thread: no lock and no shared write per packet. The
// control thread talks to it only through post() (a short mutex-protected queue plus an eventfd
// wake-up, drained between batches) and reads its counters through relaxed atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "media_events.hpp"
#include "media_plane.hpp"
#include "packet_io.hpp"
#include "rtp_stats.hpp"
#include "srtp_session.hpp"
#include "stream_media.hpp"
#include "udp_socket.hpp"

namespace relais::media {

struct WorkerCommand {
  enum class Kind { add, update, remove, media } kind = Kind::add;
  uint64_t id = 0;
  PairSpec spec;
  uint16_t port[2] = {0, 0};            // RTP port facing side i; RTCP is +1
  Fd sockets[4];                        // add: side0 rtp, side0 rtcp, side1 rtp, side1 rtcp
  std::shared_ptr<PairStats> stats;     // add: written here, read by the control thread
  MediaCommand media;                   // media: play / DTMF / record on the pair
};

class RelayWorker {
 public:
  // events: where media services report to the control thread (may be null: no events).
  // io: the packet backend, built on the worker's own thread by start() (an io_uring ring
  // takes submissions from the thread that made it).
  RelayWorker(int index, size_t batch, MediaEventQueue* events = nullptr, WorkerSettings settings = {});
  ~RelayWorker();  // stops and joins
  RelayWorker(const RelayWorker&) = delete;
  RelayWorker& operator=(const RelayWorker&) = delete;

  void start();  // throws std::runtime_error when no packet backend can be built
  const char* backend_name() const { return backend_name_; }
  void post(WorkerCommand cmd);  // control thread
  void stop();

 private:
  struct SideState {
    sockaddr_in dest_rtp{}, dest_rtcp{};  // where this side receives: SDP, then latched source
    bool latched_rtp = false, latched_rtcp = false;
    RtpReceiveState rx;
  };
  // SRTP of one side: `in` decrypts what it sends, `out` protects what we send it (built from
  // the keys in its SideSpec, on this thread; kept across updates with the same keys so the
  // rollover counters and replay windows survive a re-INVITE).
  struct Crypto {
    SideSrtp::Mode mode = SideSrtp::Mode::plain;
    std::unique_ptr<SrtpSession> in, out;
  };
  struct Entry {
    uint64_t id = 0;
    PairSpec spec;
    uint16_t port[2] = {0, 0};
    SideState side[2];
    Crypto crypto[2];
    std::shared_ptr<PairStats> stats;
    std::unique_ptr<StreamMedia> media;   // null until media services are used on the pair
    int64_t media_due = INT64_MAX;        // the timer queued for it (older ones are stale)
  };
  struct PortRef {
    Entry* entry = nullptr;
    uint8_t side = 0;   // the side that sends to this port
    bool rtcp = false;
  };

  void run();
  void drain();
  void apply(WorkerCommand& cmd);
  void apply_spec(Entry& e, const PairSpec& spec);
  void set_crypto(Entry& e, int side, const SideSrtp& want, const SideSrtp* had);
  // Decrypts a packet from an SRTP side in place; false = drop (counted).
  bool unprotect(Crypto& k, Packet& p, bool rtcp, SideCounters& c);
  size_t forward(size_t count, int64_t now_ns);
  // Media services: the slow path of a packet, the timers of players/detectors/recorders.
  StreamMedia& media_of(Entry& e);
  void media_packet(Entry& e, int side, const Packet& p, int64_t now_ns);
  void schedule(Entry& e);
  void run_timers(int64_t now_ns);
  void send_generated();
  class Sink;

  int index_;
  size_t batch_;
  WakeFd wake_;
  WorkerSettings settings_;
  const char* backend_name_ = "";
  std::unique_ptr<PacketIo> io_;
  std::mutex mu_;
  std::vector<WorkerCommand> queue_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::unordered_map<uint64_t, std::unique_ptr<Entry>> entries_;
  std::vector<PortRef> by_port_;
  std::vector<Packet> in_, out_;
  MediaEventQueue* events_;
  // (due, pair id), earliest first; an item whose due no longer matches Entry::media_due is stale.
  using Timer = std::pair<int64_t, uint64_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  static constexpr size_t kGenBatch = 64;
  static constexpr size_t kGenBufSize = MediaOutput::kMaxPacket + kSrtpMaxTrailer;  // room to protect
  std::vector<std::array<uint8_t, kGenBufSize>> gen_buf_;  // packets we generate
  std::vector<Packet> gen_;
};

}  // namespace relais::media
