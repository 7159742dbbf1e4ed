// sip_rewrite.hpp — the header edits the stream edge makes on a framed message as it crosses
// between a phone's connection and Sofia's internal TCP listener (SOFIA-NOTES.md, "An edge in
// front of Sofia"): the top Via's transport and address, the flow's Record-Route, the edge's
// own Route/Record-Route entries removed toward the phone. Everything else passes untouched.
#pragma once

#include <string>
#include <string_view>

namespace relais {

// What the edge knows about one flow (a phone's TCP or TLS connection).
struct FlowAddressing {
  std::string transport;       // "TLS" | "TCP": what the phone speaks (its Via says so)
  std::string peer_ip;         // the phone's address as seen on the socket (no brackets)
  int peer_port = 0;
  std::string source;          // "tls:203.0.113.5:5061" (IPv6 in brackets)
  std::string token;           // the flow's id.generation, as Sofia-side code sees it
  std::string record_route;    // "<sip:127.0.0.1:P;transport=tcp;lr;rls-flow=TOKEN>"
  std::string core_sent_by;    // Sofia's internal listener "127.0.0.1:PORT" (its Via sent-by)
  std::string public_sent_by;  // the address the phone connected to, "host:port"
};

// Phone → Sofia. A request: top Via transport → TCP (nta drops any other transport on its TCP
// listener), flow token and real source added as Via parameters (any the phone sent removed),
// the flow's Record-Route on top for dialog-creating methods. A response (to Sofia's request):
// the top Via restored to Sofia's own, the flow's Record-Route at the bottom of dialog-creating
// responses, so in-dialog requests come back through this connection.
// Returns false with `why` when the message has no usable top Via.
bool rewrite_toward_core(std::string_view message, size_t header_length, const FlowAddressing& flow,
                         std::string& out, std::string& why);

// Sofia → phone. The edge's Route/Record-Route entries removed; a request's top Via shows the
// phone's transport and the address it connected to; a response's top Via gets the phone's
// transport back with received/rport of its real address, the flow parameters removed.
bool rewrite_toward_phone(std::string_view message, size_t header_length, const FlowAddressing& flow,
                          std::string& out, std::string& why);

// An error response the edge itself sends to a request it refuses (framing, size): Via, From,
// To, Call-ID and CSeq copied from `head` (whatever of it arrived). Empty when `head` is not a
// request or lacks one of them (the connection is then just closed).
std::string local_response(std::string_view head, int status, const char* reason);

}  // namespace relais
