-- examples/ivr-campaign/switchboard.lua — language choice, opening hours, departments.
--
--   1 English / 2 français  →  outside hours: the hours, then a message for the operator box
--   in hours: 1 sales, 2 support, 3 accounting, 9 leave a message, 0 the operator
-- A department that does not answer in 25 s takes a message in its own box.
-- Internal phones dial 201..203 directly, *97 for their voicemail.

local ivr = require("relais.ivr")
local voicemail = require("relais.voicemail")

local vm = voicemail.new{
  dir = "var/voicemail-atelier",
  boxes = {
    ["200"] = { pin = "2000", name = "Operator" },
    ["201"] = { pin = "2010", name = "Sales" },
    ["202"] = { pin = "2020", name = "Support" },
    ["203"] = { pin = "2030", name = "Accounting" },
  },
}

-- Monday to Friday, 9:00 to 18:00, local time of the server.
local function open_now(now)
  local t = os.date("*t", now)
  local weekday = t.wday >= 2 and t.wday <= 6   -- os.date: 1 = Sunday
  return weekday and t.hour >= 9 and t.hour < 18
end

local function department(box)
  return {
    prompt = "transferring",
    dial = box, timeout = 25,
    fallback = { voicemail = box },
  }
end

local departments = {
  prompt = "dept_menu", timeout = 6, retries = 3,
  options = {
    ["1"] = department("201"),
    ["2"] = department("202"),
    ["3"] = department("203"),
    ["9"] = { voicemail = "200" },
    ["0"] = department("200"),
  },
  on_give_up = { dial = "200", timeout = 25, fallback = { voicemail = "200" } },
}

local closed = {
  prompt = { "closed", "hours_closed" }, timeout = 1, retries = 1,
  options = {},
  on_give_up = { voicemail = "200" },
}

local function after_language(call)
  if open_now(os.time()) then return ivr.run(call, departments, { voicemail = vm }) end
  return ivr.run(call, closed, { voicemail = vm })
end

local welcome = {
  prompt = { "company_welcome", "language_choice" }, timeout = 5, retries = 2,
  options = {
    ["1"] = { language = "en", run = after_language },
    ["2"] = { language = "fr", run = after_language },
  },
  -- No choice: French, the company's language.
  on_give_up = { language = "fr", run = after_language },
}

function on_invite(call)
  local dest = call.ruri.user or ""
  if call.from_trunk then
    call.language = "fr"
    return ivr.run(call, welcome, { voicemail = vm })
  end
  if dest == "*97" then return vm:access(call) end
  if vm:box(dest) then
    local r = call:dial(dest, { timeout = 25 })
    if not r.answered and call:ready() then vm:deposit(call, dest, { busy = (r.code == 486) }) end
    return
  end
  call:reject(404, "Not Found")
end
