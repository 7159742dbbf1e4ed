// relay_worker.hpp — one packet thread. It owns the ports of the stream pairs handed to it, so
// forwarding touches no state of any other thread: no lock and no shared write per packet. The
// control thread talks to it only through post() (a short mutex-protected queue plus an eventfd
// wake-up, drained between batches) and reads its counters through relaxed atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "media_plane.hpp"
#include "packet_io.hpp"
#include "rtp_stats.hpp"
#include "udp_socket.hpp"

namespace relais::media {

struct WorkerCommand {
  enum class Kind { add, update, remove } kind = Kind::add;
  uint64_t id = 0;
  PairSpec spec;
  uint16_t port[2] = {0, 0};            // RTP port facing side i; RTCP is +1
  Fd sockets[4];                        // add: side0 rtp, side0 rtcp, side1 rtp, side1 rtcp
  std::shared_ptr<PairStats> stats;     // add: written here, read by the control thread
};

class RelayWorker {
 public:
  RelayWorker(int index, size_t batch);
  ~RelayWorker();  // stops and joins
  RelayWorker(const RelayWorker&) = delete;
  RelayWorker& operator=(const RelayWorker&) = delete;

  void start();
  void post(WorkerCommand cmd);  // control thread
  void stop();

 private:
  struct SideState {
    sockaddr_in dest_rtp{}, dest_rtcp{};  // where this side receives: SDP, then latched source
    bool latched_rtp = false, latched_rtcp = false;
    RtpReceiveState rx;
  };
  struct Entry {
    uint64_t id = 0;
    PairSpec spec;
    uint16_t port[2] = {0, 0};
    SideState side[2];
    std::shared_ptr<PairStats> stats;
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
  size_t forward(size_t count, int64_t now_ns);

  int index_;
  size_t batch_;
  WakeFd wake_;
  std::unique_ptr<PacketIo> io_;
  std::mutex mu_;
  std::vector<WorkerCommand> queue_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::unordered_map<uint64_t, std::unique_ptr<Entry>> entries_;
  std::vector<PortRef> by_port_;
  std::vector<Packet> in_, out_;
};

}  // namespace relais::media
