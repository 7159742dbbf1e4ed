// relay_engine.hpp — the real MediaPlane: the port range split between the workers, socket
// binding, and the hand-off of stream pairs to the worker that owns their ports. Control thread
// only.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "media_plane.hpp"
#include "relay_worker.hpp"

namespace relais::media {

class RelayEngine final : public MediaPlane {
 public:
  // Ports [port_min, port_max]: every even port p with p+1 in range is one RTP/RTCP pair;
  // pair k belongs to worker k % workers, so a worker's ports never move.
  // events: where the workers' media services report (null: none).
  // settings: the workers' packet backend and scheduling (--io, --realtime). Throws
  // std::runtime_error when a worker's backend cannot be built.
  RelayEngine(std::string address, uint16_t port_min, uint16_t port_max, int workers, size_t batch,
              MediaEventQueue* events = nullptr, WorkerSettings settings = {});
  const char* backend_name() const { return workers_.empty() ? "" : workers_.front()->backend_name(); }
  ~RelayEngine() override;

  std::optional<PairHandle> create_pair(const PairSpec& spec, std::string& error) override;
  void update_pair(uint64_t id, const PairSpec& spec) override;
  void release_pair(uint64_t id) override;
  void media_command(uint64_t id, MediaCommand cmd) override;
  // Stops and joins the workers (their last recording blocks are queued); idempotent.
  void stop();

  int workers() const { return static_cast<int>(workers_.size()); }
  size_t active_pairs() const { return pairs_.size(); }

 private:
  struct Allocation {
    int worker = 0;
    uint16_t port[2] = {0, 0};
  };
  // Binds RTP+RTCP on the first free pair of the worker's pool; ports in use elsewhere go to
  // the back of the pool and are retried later.
  bool bind_pair(int worker, uint16_t& port, Fd& rtp, Fd& rtcp, std::string& error);

  std::string address_;
  std::vector<std::unique_ptr<RelayWorker>> workers_;
  std::vector<std::deque<uint16_t>> free_;  // per worker, even RTP ports; released go last
  std::vector<size_t> load_;                // active pairs per worker
  std::map<uint64_t, Allocation> pairs_;
  uint64_t next_id_ = 1;
};

}  // namespace relais::media
