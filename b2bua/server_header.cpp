// server_header.cpp — one parsed Server header for the whole process.
#include "server_header.hpp"

#include <sofia-sip/sip_header.h>
#include <sofia-sip/su_alloc.h>

namespace relais {

namespace {
struct State {
  su_home_t home[1] = {SU_HOME_INIT(home)};
  sip_server_t* server = sip_server_make(home, "relais");
  ~State() { su_home_deinit(home); }
};

State& state() {
  static State s;
  return s;
}
}  // namespace

void set_server_header(const std::string& value) {
  State& s = state();
  if (s.server) su_free(s.home, s.server);
  s.server = value.empty() ? nullptr : sip_server_make(s.home, value.c_str());
}

const sip_server_t* server_header() { return state().server; }

}  // namespace relais
