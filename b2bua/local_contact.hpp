// local_contact.hpp — the Contact URI relais puts in requests and answers toward one peer: a
// listening address of the peer's transport and IP family, with a wildcard listener replaced by
// the local address the kernel routes toward that peer.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace relais {

// `transport` is "udp", "tcp" or "tls"; `peer_host` an IP literal (brackets allowed) or empty/unknown,
// in which case the loopback address of the family stands in. Returns "<sip:user@host:port...>",
// or empty when relais listens nowhere.
std::string local_contact(const std::vector<ListenAddress>& listening, const std::string& transport,
                          const std::string& peer_host, const std::string& user);

// The local address the kernel would use to reach `peer` (an IP literal), or empty. No packet
// is sent: a connected UDP socket only asks the routing table.
std::string local_address_toward(const std::string& peer);

}  // namespace relais
