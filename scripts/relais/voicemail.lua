-- relais.voicemail — mailboxes with PIN, greetings, deposit, retrieval menu, MWI and email.
--
--   local voicemail = require("relais.voicemail")
--   local vm = voicemail.new{
--     dir = "var/voicemail",                  -- WAVs: <dir>/<box>/<id>.wav, greetings beside
--     boxes = { ["101"] = { pin = "1234", email = "dr.martin@example.org", name = "Dr Martin" } },
--     max_seconds = 120, min_seconds = 1, silence = 5,
--   }
--   -- after a failed dial:       vm:deposit(call, "101", { busy = (r.code == 486) })
--   -- on the access code (*97):  vm:access(call)        (asks the box, or uses the caller's own)
--
-- Messages are WAV files plus metadata in relais.kv (keys vm/<box>/msg/<id>), so they survive a
-- restart; a changed PIN lives in relais.kv too (vm/<box>/pin) and wins over the configured one.
-- Every change recounts the box and updates MWI (relais.mwi.update: NOTIFY to subscribed and
-- registered phones). A deposit to a box with `email` queues a mail with the WAV attached.

local M = {}
M.__index = M

-- Metadata as "key=value" lines; values never contain a newline (escaped as \n).
local function encode(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = k .. "=" .. tostring(t[k]):gsub("\\", "\\\\"):gsub("\n", "\\n")
  end
  return table.concat(out, "\n")
end

local function decode(s)
  local t = {}
  for line in (s or ""):gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    if k then t[k] = v:gsub("\\n", "\n"):gsub("\\\\", "\\") end
  end
  return t
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function log(text) relais.log("voicemail " .. text) end

function M.new(o)
  o = o or {}
  local self = setmetatable({}, M)
  self.dir = o.dir or "var/voicemail"
  self.boxes = o.boxes or {}
  self.max_seconds = o.max_seconds or 120
  self.min_seconds = o.min_seconds or 1
  self.silence = o.silence or 0
  self.max_pin_tries = o.max_pin_tries or 3
  math.randomseed(os.time())
  return self
end

function M:box(box) return self.boxes[tostring(box or "")] end

function M:pin(box)
  return relais.kv.get("vm/" .. box .. "/pin") or (self.boxes[box] and self.boxes[box].pin)
end

-- Messages of a box, oldest first: { id=, file=, caller=, time=, seconds=, folder="new"|"old" }.
function M:messages(box)
  local out = {}
  for _, row in ipairs(relais.kv.scan("vm/" .. box .. "/msg/", 10000)) do
    local m = decode(row[2])
    m.key = row[1]
    m.seconds = tonumber(m.seconds) or 0
    out[#out + 1] = m
  end
  return out
end

function M:counts(box)
  local new, old = 0, 0
  for _, m in ipairs(self:messages(box)) do
    if m.folder == "new" then new = new + 1 else old = old + 1 end
  end
  return new, old
end

-- MWI follows every change; without the MWI service (relais --check) there is nothing to do.
function M:notify(box)
  local new, old = self:counts(box)
  if relais.mwi and relais.mwi.update then
    local ok, err = pcall(relais.mwi.update, box, new, old)
    if not ok then log("mwi update failed box=" .. box .. " error=" .. tostring(err)) end
  end
  return new, old
end

local function save(m)
  local key = m.key
  local copy = {}
  for k, v in pairs(m) do if k ~= "key" then copy[k] = v end end
  return relais.kv.set(key, encode(copy))
end

function M:delete(box, m)
  os.remove(m.file)
  relais.kv.delete(m.key)
  log("deleted box=" .. box .. " id=" .. tostring(m.id))
  self:notify(box)
end

function M:mark_old(box, m)
  if m.folder == "old" then return end
  m.folder = "old"
  save(m)
  self:notify(box)
end

local function greeting_file(self, box, kind)
  return string.format("%s/%s/greeting-%s.wav", self.dir, box, kind)
end

local function send_email(self, box, cfg, call, m)
  if not cfg.email or not (relais.mail and relais.mail.send) then return end
  local when = os.date("%Y-%m-%d %H:%M", tonumber(m.time))
  local ok, err = relais.mail.send{
    to = cfg.email,
    subject = string.format("New voicemail from %s (%d s)", m.caller, math.floor(m.seconds + 0.5)),
    text = string.format("Mailbox %s%s received a message from %s on %s, %.1f seconds long.\n" ..
                         "The recording is attached.\n",
                         box, cfg.name and (" (" .. cfg.name .. ")") or "", m.caller, when, m.seconds),
    attachment = m.file,
    attachment_name = "voicemail-" .. m.id .. ".wav",
  }
  if not ok then log("email failed box=" .. box .. " error=" .. tostring(err)) end
end

-- Leave a message in `box`. opts.busy picks the busy greeting. Returns the message table, or
-- nil and why (no such box, hung up before the tone, too short ...).
function M:deposit(call, box, opts)
  box = tostring(box)
  local cfg = self.boxes[box]
  if not cfg then
    log("deposit to unknown box " .. box)
    return nil, "no such mailbox"
  end
  local ok, err = call:answer()
  if not ok then return nil, err end
  local kind = (opts and opts.busy) and "busy" or "unavailable"
  local custom = greeting_file(self, box, kind)
  if file_exists(custom) then
    call:play(custom)
  else
    call:play(kind == "busy" and "vm_busy" or "vm_unavailable")
  end
  if not call:ready() then return nil, "hangup" end
  local id = string.format("%d-%06d", os.time(), math.random(0, 999999))
  local path = string.format("%s/%s/%s.wav", self.dir, box, id)
  local rec, rerr = call:record{ path = path, max_seconds = self.max_seconds, silence = self.silence, beep = true }
  if not rec then
    log("record failed box=" .. box .. " error=" .. tostring(rerr))
    return nil, rerr
  end
  if rec.seconds < self.min_seconds then
    os.remove(rec.path)
    log("too short box=" .. box .. " seconds=" .. rec.seconds)
    return nil, "too short"
  end
  local m = {
    key = "vm/" .. box .. "/msg/" .. id, id = id, file = rec.path, caller = call.caller_id or "unknown",
    time = os.time(), seconds = string.format("%.2f", rec.seconds), folder = "new",
  }
  local saved, serr = save(m)
  if not saved then
    os.remove(rec.path)
    log("cannot store message box=" .. box .. " error=" .. tostring(serr))
    return nil, serr
  end
  m.seconds = rec.seconds
  log(string.format("deposit box=%s id=%s seconds=%.2f reason=%s", box, id, rec.seconds, rec.reason))
  self:notify(box)
  send_email(self, box, cfg, call, m)
  if call:ready() then
    call:play({ "vm_message_saved", "goodbye" })
    call:hangup()
  end
  return m
end

-- The box to open and whether the caller proved it owns it.
local function login(self, call, box)
  if not box and call.auth_user and self.boxes[call.auth_user] then box = call.auth_user end
  if not box then
    box = call:gather{ prompt = "vm_enter_box", max = 10, timeout = 8 }
    if not box then return nil end
  end
  box = tostring(box)
  -- A phone authenticated as the box's own user is already proved (auto-login).
  if call.auth_user == box and self.boxes[box] then return box end
  for _ = 1, self.max_pin_tries do
    local pin = call:gather{ prompt = "vm_enter_pin", max = 12, timeout = 8 }
    if not call:ready() then return nil end
    local want = self:pin(box)
    if pin and self.boxes[box] and want and pin == want then return box end
    call:play("vm_invalid_pin")
  end
  log("login failed box=" .. box .. " from=" .. tostring(call.source_ip))
  return nil
end

local function listen(self, call, box)
  local list = self:messages(box)
  table.sort(list, function(a, b)
    if a.folder ~= b.folder then return a.folder == "new" end
    return a.key < b.key
  end)
  if #list == 0 then
    call:play("vm_no_messages")
    return
  end
  local i = 1
  while i <= #list and call:ready() do
    local m = list[i]
    local intro = { i == 1 and "vm_first_message" or "vm_next_message" }
    local key = call:play(intro, { interrupt = true })
    if not key then key = call:play(m.file, { interrupt = true }) end
    self:mark_old(box, m)
    if not key then key = call:gather{ prompt = "vm_message_menu", max = 1, timeout = 6, terminator = false } end
    if not call:ready() then return end
    if key == "7" then
      self:delete(box, m)
      call:play("vm_deleted")
      i = i + 1
    elseif key == "3" then
      -- listen again: same index
    elseif key == "9" then
      call:play("vm_saved")
      i = i + 1
    elseif key == "#" or key == nil then
      return
    else
      i = i + 1
    end
  end
  if call:ready() then call:play("vm_last_message") end
end

local function record_greeting(self, call, box)
  local final = greeting_file(self, box, "unavailable")
  local tmp = final:gsub("%.wav$", ".new.wav")
  call:play("vm_record_greeting")
  local rec = call:record{ path = tmp, max_seconds = 60, silence = 5, beep = true }
  if rec and rec.seconds >= self.min_seconds then
    os.rename(rec.path, (rec.path:gsub("%.new%.wav$", ".wav")))
    call:play("vm_greeting_saved")
  elseif rec then
    os.remove(rec.path)
  end
end

local function change_pin(self, call, box)
  local pin = call:gather{ prompt = "vm_enter_new_pin", max = 12, timeout = 8 }
  if not pin or #pin < 4 then
    call:play("invalid")
    return
  end
  relais.kv.set("vm/" .. box .. "/pin", pin)
  log("pin changed box=" .. box)
  call:play("vm_pin_changed")
end

-- The retrieval menu: 1 listen, 5 record the greeting, 8 change the PIN, # leave.
function M:access(call, box)
  local ok, err = call:answer()
  if not ok then return nil, err end
  box = login(self, call, box)
  if not box then
    if call:ready() then call:play("goodbye"); call:hangup() end
    return nil, "login failed"
  end
  log("login box=" .. box)
  local new = self:counts(box)
  local key
  if new == 0 then
    key = call:play("vm_no_messages", { interrupt = true })
  else
    local names = { "vm_you_have" }
    for _, n in ipairs(call.number_prompts(new, call.language or relais.default_language)) do names[#names + 1] = n end
    names[#names + 1] = new == 1 and "vm_new_message" or "vm_new_messages"
    key = call:play(names, { interrupt = true })
  end
  for _ = 1, 20 do
    if not call:ready() then return box end
    key = key or call:gather{ prompt = "vm_main_menu", max = 1, timeout = 8, terminator = false }
    if key == "1" then listen(self, call, box)
    elseif key == "5" then record_greeting(self, call, box)
    elseif key == "8" then change_pin(self, call, box)
    elseif key == "#" or key == nil then break
    end
    key = nil
  end
  if call:ready() then
    call:play("goodbye")
    call:hangup()
  end
  return box
end

return M
