// sip_framer.hpp — cutting a byte stream (TCP or TLS) into SIP messages (RFC 3261 §18.3:
// Content-Length frames the body) and RFC 5626 keepalives, with every size bounded first.
#pragma once

#include <cstddef>
#include <string>

namespace relais {

struct Frame {
  enum class Kind {
    need_more,  // no complete message yet: wait for more bytes
    skip,       // `length` bytes of stray CRLF between messages (RFC 3261 §7.5): drop them
    ping,       // a CRLFCRLF keepalive ping (RFC 5626 §3.5.1): answer one CRLF
    message,    // one message of `length` bytes, its header section `header_length` bytes
    error,      // the stream cannot be framed: answer `status` if possible, then close
  };
  Kind kind = Kind::need_more;
  size_t length = 0;
  size_t header_length = 0;  // including the blank line
  int status = 0;
  const char* reason = "";
};

// Looks at the start of `data` (what the stream delivered so far, possibly more than one
// message). Never reads past `len`; a message larger than `max_size` is an error (413) before
// its body arrives; a start line over 8 KiB or a header section over 32 KiB (or max_size) is
// one (400) before it ends.
Frame next_frame(const char* data, size_t len, size_t max_size);

// The start line says request ("METHOD SP URI SP SIP/2.0") or response ("SIP/2.0 NNN ...").
bool plausible_start_line(const char* line, size_t len);

}  // namespace relais
