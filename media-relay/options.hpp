// options.hpp — relais-media's command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "media_log.hpp"
#include "packet_io.hpp"
#include "xdp_program.hpp"

namespace relais::media {

struct Options {
  std::string ng = "127.0.0.1:2223";  // ng control socket
  std::string address = "127.0.0.1"; // bound for RTP and written into SDP
  uint16_t port_min = 30000, port_max = 39999;
  int workers = 0;                    // 0 = one per core
  WorkerSettings worker;              // --io auto|uring|mmsg|xdp, --realtime PRIO
  std::string xdp_interface;          // --io xdp: empty = the interface holding --address
  XdpMode xdp_mode = XdpMode::automatic;
  int timeout_s = 60;
  LogLevel log_level = LogLevel::info;
  bool help = false, version = false;
};

// false + error (with the offending argument) on a bad command line.
bool parse_options(const std::vector<std::string>& args, Options& out, std::string& error);
const char* usage();

}  // namespace relais::media
