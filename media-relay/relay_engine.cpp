// relay_engine.cpp — port pools and worker hand-off.
#include "relay_engine.hpp"

#include "media_log.hpp"

namespace relais::media {

RelayEngine::RelayEngine(std::string address, uint16_t port_min, uint16_t port_max, int workers, size_t batch,
                         MediaEventQueue* events, WorkerSettings settings)
    : address_(std::move(address)), free_(static_cast<size_t>(workers)), load_(static_cast<size_t>(workers), 0) {
  for (int i = 0; i < workers; ++i) workers_.push_back(std::make_unique<RelayWorker>(i, batch, events, settings));
  uint32_t first = port_min + (port_min % 2);
  uint32_t k = 0;
  for (uint32_t p = first; p + 1 <= port_max; p += 2, ++k)
    free_[k % static_cast<uint32_t>(workers)].push_back(static_cast<uint16_t>(p));
  for (auto& w : workers_) w->start();
}

RelayEngine::~RelayEngine() { stop(); }

void RelayEngine::stop() {
  for (auto& w : workers_) w->stop();
}

bool RelayEngine::bind_pair(int worker, uint16_t& port, Fd& rtp, Fd& rtcp, std::string& error) {
  auto& pool = free_[static_cast<size_t>(worker)];
  for (size_t tries = pool.size(); tries > 0; --tries) {
    uint16_t p = pool.front();
    pool.pop_front();
    rtp = bind_udp(address_, p, error);
    if (rtp) rtcp = bind_udp(address_, static_cast<uint16_t>(p + 1), error);
    if (rtp && rtcp) {
      port = p;
      return true;
    }
    rtp.reset();
    rtcp.reset();
    pool.push_back(p);
  }
  if (error.empty()) error = "port range exhausted";
  return false;
}

std::optional<PairHandle> RelayEngine::create_pair(const PairSpec& spec, std::string& error) {
  // The least loaded worker with at least two free pairs gets the whole stream pair.
  int best = -1;
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (free_[i].size() < 2) continue;
    if (best < 0 || load_[i] < load_[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best < 0) {
    error = "port range exhausted";
    return std::nullopt;
  }
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::Kind::add;
  if (!bind_pair(best, cmd.port[0], cmd.sockets[0], cmd.sockets[1], error)) return std::nullopt;
  if (!bind_pair(best, cmd.port[1], cmd.sockets[2], cmd.sockets[3], error)) {
    free_[static_cast<size_t>(best)].push_back(cmd.port[0]);  // its sockets close with cmd
    return std::nullopt;
  }
  cmd.id = next_id_++;
  cmd.spec = spec;
  cmd.stats = std::make_shared<PairStats>();
  cmd.stats->last_packet_ns.store(0, std::memory_order_relaxed);
  PairHandle h;
  h.id = cmd.id;
  h.port[0] = cmd.port[0];
  h.port[1] = cmd.port[1];
  h.worker = best;
  h.stats = cmd.stats;
  pairs_[cmd.id] = Allocation{best, {cmd.port[0], cmd.port[1]}};
  ++load_[static_cast<size_t>(best)];
  workers_[static_cast<size_t>(best)]->post(std::move(cmd));
  Log(LogLevel::debug, "stream.create").kv("id", static_cast<unsigned long>(h.id)).kv("worker", best)
      .kv("port-a", h.port[0]).kv("port-b", h.port[1]);
  return h;
}

void RelayEngine::update_pair(uint64_t id, const PairSpec& spec) {
  auto it = pairs_.find(id);
  if (it == pairs_.end()) return;
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::Kind::update;
  cmd.id = id;
  cmd.spec = spec;
  workers_[static_cast<size_t>(it->second.worker)]->post(std::move(cmd));
}

void RelayEngine::media_command(uint64_t id, MediaCommand media) {
  auto it = pairs_.find(id);
  if (it == pairs_.end()) return;
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::Kind::media;
  cmd.id = id;
  cmd.media = std::move(media);
  workers_[static_cast<size_t>(it->second.worker)]->post(std::move(cmd));
}

void RelayEngine::release_pair(uint64_t id) {
  auto it = pairs_.find(id);
  if (it == pairs_.end()) return;
  const Allocation a = it->second;
  pairs_.erase(it);
  WorkerCommand cmd;
  cmd.kind = WorkerCommand::Kind::remove;
  cmd.id = id;
  workers_[static_cast<size_t>(a.worker)]->post(std::move(cmd));
  // Back of the queue: by the time the pool comes round to them the worker has closed them
  // (and a port still bound is skipped by bind_pair anyway).
  free_[static_cast<size_t>(a.worker)].push_back(a.port[0]);
  free_[static_cast<size_t>(a.worker)].push_back(a.port[1]);
  --load_[static_cast<size_t>(a.worker)];
}

}  // namespace relais::media
