// dtmf_event.cpp — RFC 4733 §2.3 payload format: event (8 bits), E (1), R (1, sent as 0 and
// ignored on receipt), volume (6), duration (16, network order).
#include "dtmf_event.hpp"

namespace relais::media {

namespace {
constexpr char kKeys[] = "0123456789*#ABCD";
}

bool rfc4733_parse(const uint8_t* payload, size_t len, Rfc4733Event& out) {
  if (len < 4) return false;
  out.event = payload[0];
  out.end = (payload[1] & 0x80) != 0;
  out.volume = payload[1] & 0x3f;
  out.duration = static_cast<uint16_t>((payload[2] << 8) | payload[3]);
  return true;
}

void rfc4733_write(const Rfc4733Event& ev, uint8_t out[4]) {
  out[0] = ev.event;
  out[1] = static_cast<uint8_t>((ev.end ? 0x80 : 0) | (ev.volume & 0x3f));
  out[2] = static_cast<uint8_t>(ev.duration >> 8);
  out[3] = static_cast<uint8_t>(ev.duration);
}

char dtmf_event_key(uint8_t event) { return event < 16 ? kKeys[event] : '\0'; }

int dtmf_key_event(char key) {
  if (key >= 'a' && key <= 'd') key = static_cast<char>(key - 'a' + 'A');
  for (int i = 0; i < 16; ++i)
    if (kKeys[i] == key) return i;
  return -1;
}

}  // namespace relais::media
