// options.cpp — command-line parsing for relais-media; every value is range-checked here so
// main() never starts half-configured.
#include "options.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace relais::media {

namespace {

bool to_int(const std::string& s, long lo, long hi, long& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= lo && out <= hi;
}

}  // namespace

const char* usage() {
  return "usage: relais-media [options]\n"
         "  --ng IP:PORT        ng control socket (UDP), default 127.0.0.1:2223\n"
         "  --address IP        IPv4 bound for RTP and announced in SDP, default 127.0.0.1\n"
         "  --ports MIN-MAX     relay port range, default 30000-39999\n"
         "  --workers N         packet worker threads, default one per core\n"
         "  --io BACKEND        auto|uring|mmsg|xdp: packet I/O, default auto (io_uring when the\n"
         "                      kernel has multishot receives, Linux >= 6.0; else recvmmsg).\n"
         "                      xdp: AF_XDP kernel bypass for relay ports (root; one worker\n"
         "                      per receive queue of the interface, the rest use io_uring)\n"
         "  --xdp-interface IF  --io xdp: the interface, default the one holding --address\n"
         "  --xdp-mode MODE     --io xdp: auto|native|skb, default auto (native if the driver\n"
         "                      has XDP, else generic skb mode)\n"
         "  --realtime PRIO     run the packet threads SCHED_FIFO at PRIO (1-99; needs\n"
         "                      CAP_SYS_NICE or an rtprio limit), default off\n"
         "  --timeout SECONDS   delete a call without packets for this long, default 60\n"
         "  --log-level LEVEL   debug|info|warn|error, default info\n"
         "  --help, --version\n";
}

bool parse_options(const std::vector<std::string>& args, Options& o, std::string& error) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      o.help = true;
      continue;
    }
    if (a == "--version") {
      o.version = true;
      continue;
    }
    if (i + 1 >= args.size()) return error = "missing value for " + a, false;
    const std::string& v = args[++i];
    long n = 0;
    if (a == "--ng") {
      o.ng = v;
    } else if (a == "--address") {
      in_addr tmp{};
      if (inet_pton(AF_INET, v.c_str(), &tmp) != 1) return error = "bad --address " + v, false;
      o.address = v;
    } else if (a == "--ports") {
      size_t dash = v.find('-');
      long lo = 0, hi = 0;
      if (dash == std::string::npos || !to_int(v.substr(0, dash), 1024, 65535, lo) ||
          !to_int(v.substr(dash + 1), 1024, 65535, hi) || hi < lo + 3)
        return error = "bad --ports " + v + " (MIN-MAX, 1024..65535, at least two port pairs)", false;
      o.port_min = static_cast<uint16_t>(lo);
      o.port_max = static_cast<uint16_t>(hi);
    } else if (a == "--io") {
      if (v == "auto") o.worker.io = IoBackend::automatic;
      else if (v == "uring") o.worker.io = IoBackend::uring;
      else if (v == "mmsg") o.worker.io = IoBackend::mmsg;
      else if (v == "xdp") o.worker.io = IoBackend::xdp;
      else return error = "bad --io " + v + " (auto, uring, mmsg or xdp)", false;
    } else if (a == "--xdp-interface") {
      if (v.empty() || v.size() >= 16) return error = "bad --xdp-interface " + v, false;
      o.xdp_interface = v;
    } else if (a == "--xdp-mode") {
      if (v == "auto") o.xdp_mode = XdpMode::automatic;
      else if (v == "native") o.xdp_mode = XdpMode::native;
      else if (v == "skb") o.xdp_mode = XdpMode::skb;
      else return error = "bad --xdp-mode " + v + " (auto, native or skb)", false;
    } else if (a == "--realtime") {
      if (!to_int(v, 1, 99, n)) return error = "bad --realtime " + v + " (1-99)", false;
      o.worker.realtime_priority = static_cast<int>(n);
    } else if (a == "--workers") {
      if (!to_int(v, 1, 256, n)) return error = "bad --workers " + v, false;
      o.workers = static_cast<int>(n);
    } else if (a == "--timeout") {
      if (!to_int(v, 1, 86400, n)) return error = "bad --timeout " + v, false;
      o.timeout_s = static_cast<int>(n);
    } else if (a == "--log-level") {
      if (!parse_log_level(v, o.log_level)) return error = "bad --log-level " + v, false;
    } else {
      return error = "unknown option " + a, false;
    }
  }
  if ((!o.xdp_interface.empty() || o.xdp_mode != XdpMode::automatic) && o.worker.io != IoBackend::xdp)
    return error = "--xdp-interface and --xdp-mode need --io xdp", false;
  return true;
}

}  // namespace relais::media
