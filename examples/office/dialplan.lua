-- examples/office/dialplan.lua — the office's routing hooks.

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
