// rtp_packet.hpp — the RFC 3550 §5.1 fixed header as the media services read and write it:
// payload type, marker, sequence, timestamp, SSRC, and where the payload starts (after CSRCs
// and a header extension, before padding). Parsing is bounded by the datagram length.
#pragma once

#include <cstddef>
#include <cstdint>

namespace relais::media {

struct RtpHeader {
  uint8_t pt = 0;
  bool marker = false;
  uint16_t seq = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  size_t payload_offset = 0;
  size_t payload_len = 0;
};

inline uint32_t rtp_rd32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

inline void rtp_wr32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// false for anything that is not a well-formed version-2 RTP packet.
inline bool rtp_parse(const uint8_t* data, size_t len, RtpHeader& h) {
  if (len < 12 || (data[0] >> 6) != 2) return false;
  size_t off = 12 + 4 * static_cast<size_t>(data[0] & 0x0f);
  if (off > len) return false;
  if (data[0] & 0x10) {  // §5.3.1 extension: 16-bit profile, 16-bit length in words
    if (off + 4 > len) return false;
    off += 4 + 4 * ((static_cast<size_t>(data[off + 2]) << 8) | data[off + 3]);
    if (off > len) return false;
  }
  size_t end = len;
  if (data[0] & 0x20) {  // padding: the last byte counts the padding bytes
    size_t pad = data[len - 1];
    if (pad == 0 || pad > end - off) return false;
    end -= pad;
  }
  h.marker = (data[1] & 0x80) != 0;
  h.pt = data[1] & 0x7f;
  h.seq = static_cast<uint16_t>((data[2] << 8) | data[3]);
  h.timestamp = rtp_rd32(data + 4);
  h.ssrc = rtp_rd32(data + 8);
  h.payload_offset = off;
  h.payload_len = end - off;
  return true;
}

// A 12-byte header without CSRCs, extension or padding.
inline void rtp_write(uint8_t* out, uint8_t pt, bool marker, uint16_t seq, uint32_t ts, uint32_t ssrc) {
  out[0] = 0x80;
  out[1] = static_cast<uint8_t>((marker ? 0x80 : 0) | (pt & 0x7f));
  out[2] = static_cast<uint8_t>(seq >> 8);
  out[3] = static_cast<uint8_t>(seq);
  rtp_wr32(out + 4, ts);
  rtp_wr32(out + 8, ssrc);
}

}  // namespace relais::media
