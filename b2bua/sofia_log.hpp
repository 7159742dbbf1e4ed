// sofia_log.hpp — Sofia's own diagnostics (nta, tport, su) routed into our key=value log.
#pragma once

#include "log.hpp"

namespace relais {

// Sofia level 1 = serious errors (e.g. "Via check: invalid transport"); 3 with debug logging.
void route_sofia_logs(LogLevel our_level);

}  // namespace relais
