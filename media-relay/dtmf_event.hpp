// dtmf_event.hpp — RFC 4733 telephone-event payloads: the 4-byte event report (event code,
// end bit, volume, duration) and the mapping between DTMF keys and event codes 0–15 (§3.2).
#pragma once

#include <cstddef>
#include <cstdint>

namespace relais::media {

struct Rfc4733Event {
  uint8_t event = 0;      // 0-9, 10 = *, 11 = #, 12-15 = A-D; others are not DTMF
  bool end = false;       // E bit: the last report(s) of this event
  uint8_t volume = 0;     // 0..63, power level in -dBm0
  uint16_t duration = 0;  // in timestamp units since the event's timestamp
};

// Reads the first event report of a telephone-event payload (RFC 2198 redundancy is not
// used with telephone-event in practice). false when shorter than 4 bytes.
bool rfc4733_parse(const uint8_t* payload, size_t len, Rfc4733Event& out);
void rfc4733_write(const Rfc4733Event& ev, uint8_t out[4]);

// '0'..'9', '*', '#', 'A'..'D' for event codes 0..15; '\0' for anything else.
char dtmf_event_key(uint8_t event);
// The event code of a key (lower-case a-d accepted); -1 when not a DTMF key.
int dtmf_key_event(char key);

}  // namespace relais::media
