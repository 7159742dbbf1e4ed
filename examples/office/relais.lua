-- examples/office/relais.lua — a small office: one domain, a few extensions, embedded store.
-- Start it with `make run` (or `build/relais --config examples/office/relais.lua`).
-- Any value can be overridden on the command line: --set sip.listen=udp:0.0.0.0:5060
return {
  node_id = "office-1",
  log_level = "info",                 -- debug | info | warn | error
  domain = "office.example",          -- the SIP domain served; REGISTERs to our own IPs count as it

  sip = {
    -- "proto:host:port" entries (proto udp|tcp); IPv6 as udp:[::1]:5060
    listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "udp:[::]:5060", "tcp:[::]:5060" },
    max_message_size = 65536,         -- bytes; larger requests get 413 / are dropped
  },

  registrar = {
    min_expires = 60,                 -- shorter → 423 Interval Too Brief + Min-Expires
    max_expires = 3600,               -- longer is shortened to this
    default_expires = 3600,           -- when neither Expires header nor parameter is given
    max_contacts = 5,                 -- per address-of-record
  },

  auth = {
    -- realm defaults to domain. Challenges offered, in preference order. MD5 alone is the safe
    -- default: many phones (and baresip 1.0.0, sipp 3.6.1) fail when offered SHA-256 at all.
    -- Users whose phones do RFC 8760 can get SHA-256 first (see extension 101 below).
    algorithms = { "MD5" },
    nonce_ttl = 300,                  -- seconds; an older nonce gets 401 with stale=true
    secret = "change-me-office-secret",  -- signs nonces; nodes sharing a Redis must share it
  },

  store = {
    backend = "sqlite",               -- "sqlite" (embedded) | "redis"
    path = "var/relais.db",
    -- redis_host = "127.0.0.1", redis_port = 6379, prefix = "relais:",
  },

  -- Extensions. A password may be given as `password` or pre-hashed as
  -- ha1_md5 / ha1_sha256 (hex of H(user:realm:password)).
  users = {
    ["100"] = { password = "reception-100", name = "Reception" },
    ["101"] = { password = "doctor-101",    name = "Dr. Martin", algorithms = { "SHA-256", "MD5" } },
    ["102"] = { password = "doctor-102",    name = "Dr. Bernard" },
    ["200"] = { password = "lab-200",       name = "Laboratory" },
  },

  calls = {
    authenticate = true,              -- phones' INVITEs are challenged (407) like their REGISTERs
    unknown_sources = "reject",       -- INVITEs from neither a user nor a trunk get 403
    no_answer_timeout = 30,           -- default dial timeout, seconds
  },

  -- The operator (outside numbers) and the clinic's other site (*2xx). Fill in your
  -- operator's details and set register = true.
  trunks = {
    operator = {
      proxy = "sip:192.0.2.10:5060",  -- the operator's SIP server (TEST-NET placeholder)
      domain = "operator.example",
      username = "clinic", password = "change-me",
      register = false, expires = 300,
      addresses = { "192.0.2.10/32" },  -- INVITEs from here are calls from the operator
    },
    site2 = {
      proxy = "sip:10.20.0.2:5060",   -- relais of the other site
      domain = "site2.clinic.example",
      addresses = { "10.20.0.0/16" },
    },
  },

  -- Every call's media is anchored on relais-media (make run starts it); "passthrough" lets
  -- phones send RTP to each other directly.
  media = { mode = "relay", ng = "127.0.0.1:2223" },

  -- Prompts spoken at build time into var/prompts/{en,fr}; a WAV in var/prompts/custom/<lang>/
  -- replaces the prompt of the same name.
  prompts = { dir = "var/prompts", language = "en" },

  -- Voicemail to e-mail (SMTP from a worker thread). Uncomment with your mail server.
  -- mail = { smtp = "smtp://127.0.0.1:25", from = "Voicemail <voicemail@office.example>", starttls = true },

  -- /health, /metrics (Prometheus) and /v1/registrations?aor=...; keep it off the internet.
  http = { listen = "127.0.0.1:8089" },

  script = "dialplan.lua",            -- routing hooks, relative to this file
}
