-- examples/office/dialplan.lua — the medical house (main site) of a two-site clinic.
--
--   1xx          cabinets of this site (100 reception, 101/102 doctors, 200 lab)
--   *2xx         a cabinet of the other site, through the "site2" trunk
--   10 digits    an outside number, through the operator trunk
--   from the operator: the clinic's number rings reception
--
-- A cabinet rings 10 s; then the caller falls back (voicemail arrives in a later release;
-- until then the caller hears 480 Temporarily Unavailable).

local RING_SECONDS = 10

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
  if r.code == 486 then return call:reject(486, "Busy Here") end
  call:reject(480, "Temporarily Unavailable")  -- voicemail will take over here
end

function on_invite(call)
  local dest = call.ruri.user or ""

  if call.from_trunk == "operator" then
    return ring_cabinet(call, "100")
  end

  if dest:match("^%d%d%d%d%d%d%d%d%d%d$") then
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
