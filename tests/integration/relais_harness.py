"""relais_harness.py — the one module the integration tests import (`import relais_harness as h`):
it re-exports the harness modules and the SIP client of sip_uac.py.

  harness_core.py    binaries, temp dirs, child processes killed at exit, Checks, main + watchdog
  free_ports.py      free UDP/TCP ports, media port pairs and ranges, udp_port_bound
  relais_process.py  the Relais process, its config written as Lua, test users, state read back
  sipp_tools.py      sipp in the foreground or background, one call's sipps, trace parsing
  peers.py           redis-server and kamailio run beside relais
  relais_media.py    relais-media, bencode and the ng client, RTP/SDP helpers
  sip_uac.py         the SIP client (UDP/TCP, Digest MD5/SHA-256, the REGISTER 401 flow)

Every external process started through them is registered, bounded by a timeout and killed
when the test ends, even on failure.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Order matters only for readers: later modules build on earlier ones, no name is redefined.
from sip_uac import *  # noqa: F401,F403,E402 - the SIP client is part of the harness API
from harness_core import *  # noqa: F401,F403,E402
from free_ports import *  # noqa: F401,F403,E402
from relais_process import *  # noqa: F401,F403,E402
from sipp_tools import *  # noqa: F401,F403,E402
from peers import *  # noqa: F401,F403,E402
from relais_media import *  # noqa: F401,F403,E402
from baresip_phone import *  # noqa: F401,F403,E402

# Underscore names are not covered by `import *`; these stay reachable as h._name.
from harness_core import (_children, _cleanup, _kill_children, _register_child,  # noqa: F401,E402
                          _relais_instances, _tempdirs)
from free_ports import _bindable  # noqa: F401,E402
from relais_process import _LUA_IDENT  # noqa: F401,E402
from sipp_tools import _trace_files  # noqa: F401,E402
from peers import _resp_read  # noqa: F401,E402
