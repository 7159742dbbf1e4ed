// local_contact_test.cpp — the Contact relais puts toward a peer.
#include <doctest/doctest.h>

#include "local_contact.hpp"

using namespace relais;

namespace {
ListenAddress at(const char* proto, const char* host, int port) {
  ListenAddress a;
  a.proto = proto;
  a.host = host;
  a.port = port;
  return a;
}
}  // namespace

TEST_CASE("the Contact follows the peer's transport and IP family") {
  std::vector<ListenAddress> listening{at("udp", "192.0.2.10", 5060), at("tcp", "192.0.2.10", 5060),
                                       at("udp", "2001:db8::10", 5070), at("tls", "192.0.2.10", 5061)};
  CHECK(local_contact(listening, "udp", "198.51.100.7", "relais") == "<sip:relais@192.0.2.10:5060>");
  CHECK(local_contact(listening, "tcp", "198.51.100.7", "relais") == "<sip:relais@192.0.2.10:5060;transport=tcp>");
  CHECK(local_contact(listening, "tls", "198.51.100.7", "office") == "<sip:office@192.0.2.10:5061;transport=tls>");
  CHECK(local_contact(listening, "udp", "[2001:db8::7]", "relais") == "<sip:relais@[2001:db8::10]:5070>");
  // No listener of that transport: the first one stands in rather than no Contact at all.
  CHECK(local_contact({at("udp", "192.0.2.10", 5060)}, "tcp", "198.51.100.7", "relais") == "<sip:relais@192.0.2.10:5060>");
  CHECK(local_contact({}, "udp", "198.51.100.7", "relais").empty());
}

TEST_CASE("a wildcard listener is replaced by the address routed toward the peer") {
  std::vector<ListenAddress> listening{at("udp", "0.0.0.0", 5060)};
  CHECK(local_contact(listening, "udp", "127.0.0.1", "relais") == "<sip:relais@127.0.0.1:5060>");
  // A peer we cannot route to (a name, nothing): loopback, never 0.0.0.0.
  CHECK(local_contact(listening, "udp", "", "relais") == "<sip:relais@127.0.0.1:5060>");
  CHECK(local_address_toward("127.0.0.1") == "127.0.0.1");
  CHECK(local_address_toward("not-an-address").empty());
}
