// media_log.hpp — relais-media logs with relais's logger (b2bua/log.hpp): one key=value line
// per event, one write() per line, so control and worker threads never interleave.
#pragma once

#include "log.hpp"

namespace relais::media {

using relais::LogLevel;
using relais::log_enabled;
using relais::parse_log_level;
using relais::set_log_level;
using Log = relais::LogLine;

}  // namespace relais::media
