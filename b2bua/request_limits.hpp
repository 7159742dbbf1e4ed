// request_limits.hpp — checks on a parsed request that Sofia's parser lets through but we
// refuse: oversized fields and UDP bodies shorter than announced.
#pragma once

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>

#include <string>

namespace relais {

// A header value longer than this is refused with 400. Real headers are far shorter (a
// Contact with instance id and params is ~300 bytes); huge ones are scans or exploits.
constexpr size_t kMaxHeaderBytes = 4096;

// Empty if the request is acceptable, else the 400 reason phrase.
std::string request_limit_problem(msg_t* msg, const sip_t* sip, bool datagram);

}  // namespace relais
