-- examples/ivr-campaign/relais.lua — the switchboard of a small company ("Atelier Lumière"):
-- callers from the operator trunk choose French or English, hear the opening hours outside
-- them, and pick a department (sales, support, accounting) or leave a message.
-- Run it: build/relais --config examples/ivr-campaign/relais.lua (relais-media on 127.0.0.1:2223).
return {
  node_id = "ivr-1",
  domain = "atelier.example",
  sip = { listen = { "udp:0.0.0.0:5070", "tcp:0.0.0.0:5070" } },
  auth = { algorithms = { "MD5" }, secret = "change-me-ivr-secret" },
  store = { backend = "sqlite", path = "var/ivr-campaign.db", kv_path = "var/ivr-campaign-kv.db" },
  users = {
    ["201"] = { password = "sales-201", name = "Sales" },
    ["202"] = { password = "support-202", name = "Support" },
    ["203"] = { password = "accounts-203", name = "Accounting" },
    ["200"] = { password = "operator-200", name = "Operator" },
  },
  calls = { authenticate = true, unknown_sources = "reject", no_answer_timeout = 25 },
  trunks = {
    operator = { proxy = "sip:192.0.2.10:5060", domain = "operator.example", addresses = { "192.0.2.10/32" } },
  },
  media = { mode = "relay", ng = "127.0.0.1:2223" },
  prompts = { dir = "var/prompts", language = "fr" },
  script = "switchboard.lua",
}
