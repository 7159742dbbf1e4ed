"""srtp_tools.py — SRTP for the integration tests: SDES a=crypto lines (RFC 4568) and an SRTP
endpoint's crypto through srtp_filter (tests/integration/srtp_filter.cpp, libsrtp2, built by
CMake next to relais-media), since Python has no libsrtp binding.
"""

import base64
import os
import re
import secrets
import subprocess

import harness_core as core
from relais_media import relais_media_bin
from sip_uac import fail

KEY_LENGTH = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30, "AEAD_AES_128_GCM": 28}
TAG_LENGTH = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4, "AEAD_AES_128_GCM": 16}


def new_key(suite):
    return secrets.token_bytes(KEY_LENGTH[suite])


def crypto_line(tag, suite, key):
    return "a=crypto:%d %s inline:%s" % (tag, suite, base64.b64encode(key).decode())


def crypto_lines(sdp):
    """[(tag, suite, key bytes)] of the a=crypto lines of an SDP body."""
    out = []
    for m in re.finditer(r"(?m)^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)", sdp):
        out.append((int(m.group(1)), m.group(2), base64.b64decode(m.group(3))))
    return out


def sdp_proto(sdp):
    m = re.search(r"(?m)^m=audio \d+ (\S+) ", sdp)
    return m.group(1) if m else None


def srtp_filter_bin():
    path = os.path.join(os.path.dirname(relais_media_bin()), "srtp_filter")
    if not os.access(path, os.X_OK):
        fail("srtp_filter not found at %s (cmake --build builds it)" % path)
    return path


class SrtpEndpoint:
    """An SRTP endpoint's crypto: protect() what it sends with tx_key, unprotect() what it
    receives with rx_key. None for a packet libsrtp refuses (authentication, replay)."""

    def __init__(self, suite, tx_key, rx_key):
        self.suite = suite
        self.proc = core.popen([srtp_filter_bin(), suite, tx_key.hex(), rx_key.hex()],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _call(self, op, data):
        self.proc.stdin.write(("%s %s\n" % (op, data.hex())).encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            fail("srtp_filter died: %s" % self.proc.stderr.read().decode("utf-8", "replace"))
        return None if line.startswith("ERR") else bytes.fromhex(line)

    def protect(self, rtp):
        out = self._call("P", rtp)
        if out is None:
            fail("srtp_filter could not protect a packet")
        return out

    def unprotect(self, srtp):
        return self._call("U", srtp)

    def protect_rtcp(self, rtcp):
        out = self._call("PC", rtcp)
        if out is None:
            fail("srtp_filter could not protect an RTCP packet")
        return out

    def unprotect_rtcp(self, srtcp):
        return self._call("UC", srtcp)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
