-- examples/office/dialplan.lua — the medical house (main site) of a two-site clinic.
--
--   1xx          cabinets of this site (100 reception, 101/102 doctors, 200 lab)
--   *2xx         a cabinet of the other site, through the "site2" trunk
--   10 digits    an outside number, through the operator trunk
--   *97          voicemail: a phone reaches its own box without PIN, others give box + PIN
--   from the operator: the clinic's number rings reception
--
-- A cabinet rings 10 s; then the caller leaves a message in the cabinet's voicemail (busy
-- greeting when the line was busy). Boxes e-mail new messages when `email` is set and the
-- config has a `mail` section.

local RING_SECONDS = 10

local voicemail = require("relais.voicemail")
local vm = voicemail.new{
  dir = "var/voicemail",
  max_seconds = 120, silence = 5,
  boxes = {
    ["100"] = { pin = "1000", name = "Reception" },
    ["101"] = { pin = "1101", name = "Dr. Martin", email = "dr.martin@office.example" },
    ["102"] = { pin = "1102", name = "Dr. Bernard" },
    ["200"] = { pin = "1200", name = "Laboratory" },
  },
}

-- Called for every REGISTER that passed digest authentication, before the binding is stored.
-- Return nothing to accept; req:reject(code, reason) to refuse; req:annotate(k, v) to keep a
-- note on the binding (visible to later routing).
function on_register(req)
  -- The lab extension only registers from inside the office.
  if req.user == "200" and not req.source_ip:match("^127%.") and not req.source_ip:match("^10%.") then
    return req:reject(403, "Lab phone must register from the LAN")
  end
  req:annotate("site", "main")
end

local function ring_cabinet(call, extension)
  local r = call:dial(extension, { timeout = RING_SECONDS })
  if r.answered then return end
  relais.log("no answer at", extension, "code", r.code)
  if vm:box(extension) and call:ready() then
    return vm:deposit(call, extension, { busy = (r.code == 486) })
  end
  call:reject(r.code == 486 and 486 or 480, r.code == 486 and "Busy Here" or "Temporarily Unavailable")
end

function on_invite(call)
  local dest = call.ruri.user or ""

  if call.from_trunk == "operator" then
    return ring_cabinet(call, "100")
  end

  if dest == "*97" then
    return vm:access(call)
  elseif dest:match("^%d%d%d%d%d%d%d%d%d%d$") then
    local r = call:dial("trunk:operator/" .. dest, { timeout = 60 })
    if not r.answered then call:reject(r.code, r.reason) end
  elseif dest:match("^%*%d%d%d$") then
    local r = call:dial("trunk:site2/" .. dest:sub(2), { timeout = 30 })
    if not r.answered then call:reject(r.code, r.reason) end
  elseif dest:match("^%d%d%d$") then
    ring_cabinet(call, dest)
  else
    call:reject(404, "Not Found")
  end
end
