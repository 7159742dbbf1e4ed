-- relais.ivr — table-driven phone menus.
--
--   local ivr = require("relais.ivr")
--   local main = {
--     prompt = "dept_menu",              -- a prompt name, a file, or a list of them
--     timeout = 5, retries = 3,          -- seconds to wait for a choice, tries before giving up
--     invalid = "invalid", no_input = "timeout", goodbye = "goodbye",
--     options = {
--       ["1"] = { dial = "101", timeout = 20 },          -- ring a user / URI / trunk:NAME/number
--       ["2"] = { menu = support_menu },                 -- a submenu (its "*" goes back)
--       ["9"] = { voicemail = "100" },                   -- leave a message in box 100
--       ["0"] = function(call) return call:dial("100") end,  -- anything else: Lua
--     },
--   }
--   function on_invite(call) return ivr.run(call, main, { voicemail = vm }) end
--
-- An option may also carry `prompt` (played before its action, e.g. "transferring") and
-- `language` (switches call.language, for a language-choice menu). ivr.run answers the call if
-- needed and returns what happened: { action = "dial"|"menu"|"voicemail"|"function"|
-- "hangup"|"gave_up", key = "1", result = ... }.

local M = {}

local function log(call, text)
  relais.log(string.format("ivr call=%s %s", tostring(call.call_id), text))
end

local function act(call, menu, key, option, ctx, depth)
  if type(option) == "function" then option = { run = option } end
  if option.language then call.language = option.language end
  if option.prompt then
    local _, status = call:play(option.prompt)
    if status == "hangup" then return { action = "hangup", key = key } end
  end
  if option.run then
    log(call, "key=" .. key .. " action=function")
    return { action = "function", key = key, result = option.run(call, ctx) }
  end
  if option.menu then
    log(call, "key=" .. key .. " action=menu")
    return M.run(call, option.menu, ctx, depth + 1)
  end
  if option.dial then
    log(call, "key=" .. key .. " action=dial target=" .. tostring(option.dial))
    -- The caller was answered by the menu: it hears ringback while the transfer rings
    -- (stopped by relais the moment the callee answers).
    call:tone("ringback", { wait = false })
    local r = call:dial(option.dial, { timeout = option.timeout or 20, caller_id = option.caller_id })
    if not r.answered and option.fallback then
      return act(call, menu, key, option.fallback, ctx, depth)
    end
    return { action = "dial", key = key, result = r }
  end
  if option.voicemail then
    local vm = option.vm or (ctx and ctx.voicemail)
    if not vm then error("ivr: option " .. key .. " wants voicemail but no voicemail was given to ivr.run") end
    log(call, "key=" .. key .. " action=voicemail box=" .. tostring(option.voicemail))
    return { action = "voicemail", key = key, result = vm:deposit(call, option.voicemail) }
  end
  if option.hangup then
    if option.goodbye ~= false then call:play(menu.goodbye or "goodbye") end
    call:hangup()
    return { action = "hangup", key = key }
  end
  error("ivr: option " .. key .. " has no action (dial, menu, voicemail, hangup or a function)")
end

-- Runs `menu` until an option's action ends it. `ctx` is handed to function options and holds
-- shared things such as the voicemail object.
function M.run(call, menu, ctx, depth)
  depth = depth or 0
  if depth > 16 then error("ivr: menus nested deeper than 16 levels (a menu containing itself?)") end
  if not call:ready() then return { action = "hangup" } end
  local ok, err = call:answer()
  if not ok then
    log(call, "cannot answer: " .. tostring(err))
    call:reject(488, "Not Acceptable Here")
    return { action = "hangup", error = err }
  end
  local retries = menu.retries or 3
  for attempt = 1, retries do
    local key, why = call:gather{ prompt = menu.prompt, max = 1, timeout = menu.timeout or 5, terminator = false }
    if why == "hangup" or not call:ready() then return { action = "hangup" } end
    if key then
      local option = menu.options and menu.options[key]
      if key == "*" and depth > 0 and not option then return { action = "back" } end
      if option then
        local result = act(call, menu, key, option, ctx, depth)
        if result.action ~= "back" then return result end
        -- Back from a submenu: this menu plays again, with its tries counted afresh.
        return M.run(call, menu, ctx, depth)
      end
      log(call, "key=" .. key .. " invalid attempt=" .. attempt)
      if attempt < retries then call:play(menu.invalid or "invalid") end
    else
      log(call, "no input attempt=" .. attempt)
      if attempt < retries then call:play(menu.no_input or "timeout") end
    end
  end
  if menu.on_give_up then return act(call, menu, "give_up", menu.on_give_up, ctx, depth) end
  call:play(menu.goodbye or "goodbye")
  call:hangup()
  return { action = "gave_up" }
end

return M
