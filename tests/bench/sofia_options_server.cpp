// sofia_options_server.cpp — the reference for tls_options.py: Debian's Sofia answering OPTIONS
// statelessly on its own TLS and TCP tports (nta_msg_treply, as relais answers OPTIONS), one
// thread, nothing else. Built by tls_options.py into its temp dir (not part of the CMake build).
//
//   sofia_options_server CERTDIR TLS_PORT TCP_PORT
//
// CERTDIR holds agent.pem (certificate + key) and cafile.pem, as Sofia's TLS tport wants them.
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport_tag.h>

#include <climits>
#include <cstdio>
#include <string>

namespace {

int on_message(nta_agent_magic_t*, nta_agent_t* agent, msg_t* msg, sip_t* sip) {
  if (sip && sip->sip_request && sip->sip_request->rq_method == sip_method_options)
    nta_msg_treply(agent, msg, 200, "OK", SIPTAG_ALLOW_STR("OPTIONS"), TAG_END());
  else
    msg_destroy(msg);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CERTDIR TLS_PORT TCP_PORT\n", argv[0]);
    return 2;
  }
  su_init();
  su_root_t* root = su_root_create(nullptr);
  nta_agent_t* agent = nta_agent_create(root, reinterpret_cast<url_string_t*>(-1), on_message, nullptr,
                                        NTATAG_STATELESS(1), NTATAG_UA(1), TAG_END());
  std::string tls = std::string("sips:127.0.0.1:") + argv[2] + ";transport=tls";
  std::string tcp = std::string("sip:127.0.0.1:") + argv[3] + ";transport=tcp";
  if (!agent ||
      nta_agent_add_tport(agent, URL_STRING_MAKE(tls.c_str()), TPTAG_CERTIFICATE(argv[1]), TPTAG_IDLE(UINT_MAX), TAG_END()) < 0 ||
      nta_agent_add_tport(agent, URL_STRING_MAKE(tcp.c_str()), TPTAG_IDLE(UINT_MAX), TAG_END()) < 0) {
    fprintf(stderr, "cannot listen on %s / %s\n", tls.c_str(), tcp.c_str());
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  su_root_run(root);  // until SIGTERM
  return 0;
}
