// server_header.hpp — the Server header on every response relais sends (sbc.server_header).
// The default names the product without its version: a version tells scanners which exploits
// to try and tells phones nothing they need.
#pragma once

#include <sofia-sip/sip.h>

#include <string>

namespace relais {

// "" = no Server header. Parsed once here, not for every response.
void set_server_header(const std::string& value);
// Null when there is none; valid until the next set_server_header (nta copies it into each
// response, so replacing it on reload is safe).
const sip_server_t* server_header();

}  // namespace relais
