-- relais.call — call helpers written in Lua on top of the verbs relais binds in C++
-- (answer, play, wait_digit ...): say_digits, say_number, gather. relais loads this module into
-- every script state; a site can replace it by putting its own relais/call.lua next to its
-- script.

local methods = relais and relais.call_methods
if not methods then return {} end

local spoken = { ["*"] = "star", ["#"] = "pound", ["-"] = "minus" }

-- call:say_digits("2024") plays 2, 0, 2, 4 (and star / pound for * and #).
function methods:say_digits(digits, opts)
  local list = {}
  for c in tostring(digits):gmatch("[%d%*#%-]") do list[#list + 1] = spoken[c] or c end
  if #list == 0 then return nil, "done" end
  return self:play(list, opts)
end

-- Numbers as prompt lists. 0..99 each have a prompt; hundreds and thousands are composed the
-- way each language says them.
local compose = {}

local function below_thousand_en(n, out)
  if n >= 100 then
    out[#out + 1] = tostring(math.floor(n / 100))
    out[#out + 1] = "hundred"
    n = n % 100
    if n == 0 then return end
  end
  out[#out + 1] = tostring(n)
end

function compose.en(n, out)
  if n >= 1000 then
    below_thousand_en(math.floor(n / 1000), out)
    out[#out + 1] = "thousand"
    n = n % 1000
    if n == 0 then return end
  end
  below_thousand_en(n, out)
end

-- French: « cent », « deux cents » (with an s only when nothing follows), « deux cent trois »,
-- « mille » (never « un mille »), « deux mille ».
local function below_thousand_fr(n, out, final)
  if n >= 100 then
    local h = math.floor(n / 100)
    n = n % 100
    if h > 1 then out[#out + 1] = tostring(h) end
    out[#out + 1] = (h > 1 and n == 0 and final) and "hundreds" or "hundred"
    if n == 0 then return end
  end
  out[#out + 1] = tostring(n)
end

function compose.fr(n, out)
  if n >= 1000 then
    local t = math.floor(n / 1000)
    if t > 1 then below_thousand_fr(t, out, false) end
    out[#out + 1] = "thousand"
    n = n % 1000
    if n == 0 then return end
  end
  below_thousand_fr(n, out, true)
end

-- The prompt names that say n in `language` (en or fr; others fall back to en).
function methods.number_prompts(n, language)
  n = math.floor(tonumber(n) or 0)
  local out = {}
  if n < 0 then
    out[1] = "minus"
    n = -n
  end
  if n >= 1000000 then
    -- Past a million a phone menu reads digits; nobody waits for "two million ...".
    for c in tostring(n):gmatch("%d") do out[#out + 1] = c end
    return out
  end
  local f = compose[language] or compose.en
  f(n, out)
  return out
end

-- call:say_number(42) plays "forty two" (or « quarante-deux » when call.language is "fr").
function methods:say_number(n, opts)
  local language = (opts and opts.language) or self.language or relais.default_language or "en"
  return self:play(methods.number_prompts(n, language), opts)
end

-- call:gather{ max = 4, timeout = 5, inter_digit = 3, terminator = "#", prompt = "vm_enter_pin" }
-- Plays the prompt (a digit interrupts it and counts), then collects up to `max` digits; the
-- terminator ends early and is not returned. Returns the digits, or nil and "timeout" /
-- "hangup" / an error.
function methods:gather(o)
  o = o or {}
  local max = o.max or 1
  local timeout = o.timeout or 5
  local inter_digit = o.inter_digit or timeout
  local terminator = o.terminator
  if terminator == nil then terminator = "#" end
  local digits = ""
  if o.prompt then
    local d, status, err = self:play(o.prompt, { interrupt = true, language = o.language })
    if status == "hangup" then return nil, "hangup" end
    if status == "error" then relais.log("gather: prompt failed: " .. tostring(err)) end
    if d then
      if terminator and d == terminator then return nil, "timeout" end
      digits = d
    end
  end
  while #digits < max do
    local d, status = self:wait_digit(#digits == 0 and timeout or inter_digit)
    if not d then
      if status == "hangup" then return nil, "hangup" end
      break
    end
    if terminator and d == terminator then break end
    digits = digits .. d
  end
  if digits == "" then return nil, "timeout" end
  return digits
end

return methods
