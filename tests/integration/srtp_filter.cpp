// srtp_filter.cpp — an SRTP endpoint's crypto for the Python integration tests (Python has no
// libsrtp binding). It calls libsrtp2 directly, not relais-media's SrtpSession, so the tests
// check the relay against the library rather than against itself.
//
//   srtp_filter SUITE TX_KEY_HEX RX_KEY_HEX
//
// SUITE is an SDES name (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AEAD_AES_128_GCM);
// keys are master key || salt in hex. TX protects what the test sends, RX unprotects what it
// receives. Reads lines "P <hex>" (protect RTP), "U <hex>" (unprotect RTP), "PC"/"UC" (RTCP)
// and answers each with "<hex>" or "ERR <libsrtp status>".
#include <srtp2/srtp.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

bool unhex(const std::string& s, std::vector<unsigned char>& out) {
  if (s.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    unsigned v = 0;
    if (sscanf(s.c_str() + i, "%2x", &v) != 1) return false;
    out.push_back(static_cast<unsigned char>(v));
  }
  return true;
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

bool policy_for(const std::string& suite, srtp_policy_t& p) {
  if (suite == "AES_CM_128_HMAC_SHA1_80") {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
  } else if (suite == "AES_CM_128_HMAC_SHA1_32") {
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
  } else if (suite == "AEAD_AES_128_GCM") {
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
    srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
  } else {
    return false;
  }
  return true;
}

srtp_t make(const std::string& suite, std::vector<unsigned char>& key, bool inbound) {
  srtp_policy_t p;
  memset(&p, 0, sizeof p);
  if (!policy_for(suite, p)) return nullptr;
  p.key = key.data();
  p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
  p.window_size = 128;
  srtp_t s = nullptr;
  return srtp_create(&s, &p) == srtp_err_status_ok ? s : nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: srtp_filter SUITE TX_KEY_HEX RX_KEY_HEX\n");
    return 2;
  }
  std::vector<unsigned char> tx_key, rx_key;
  if (srtp_init() != srtp_err_status_ok || !unhex(argv[2], tx_key) || !unhex(argv[3], rx_key)) return 2;
  srtp_t tx = make(argv[1], tx_key, false), rx = make(argv[1], rx_key, true);
  if (!tx || !rx) {
    fprintf(stderr, "srtp_filter: bad suite or key\n");
    return 2;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
    size_t sp = line.find(' ');
    std::string op = line.substr(0, sp);
    std::vector<unsigned char> buf;
    if (sp == std::string::npos || !unhex(line.substr(sp + 1), buf)) {
      std::cout << "ERR input" << std::endl;
      continue;
    }
    int len = static_cast<int>(buf.size());
    buf.resize(buf.size() + SRTP_MAX_TRAILER_LEN + 4);
    srtp_err_status_t st = srtp_err_status_bad_param;
    if (op == "P") st = srtp_protect(tx, buf.data(), &len);
    else if (op == "U") st = srtp_unprotect(rx, buf.data(), &len);
    else if (op == "PC") st = srtp_protect_rtcp(tx, buf.data(), &len);
    else if (op == "UC") st = srtp_unprotect_rtcp(rx, buf.data(), &len);
    if (st != srtp_err_status_ok) std::cout << "ERR " << static_cast<int>(st) << std::endl;
    else std::cout << hex(buf.data(), static_cast<size_t>(len)) << std::endl;
  }
  srtp_dealloc(tx);
  srtp_dealloc(rx);
  return 0;
}
