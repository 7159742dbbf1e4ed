// lua_mail.cpp — relais.mail.send{ to=, subject=, text=, attachment=, attachment_name= }:
// queues an e-mail for the SMTP worker thread (never waits on the mail server).
// Returns true, or nil and why (mail not configured, queue full, bad arguments).
#include <lua.hpp>

#include "mail_sender.hpp"

namespace relais {

namespace {

std::string field(lua_State* L, const char* key) {
  lua_getfield(L, 1, key);
  std::string v = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return v;
}

int mail_send(lua_State* L) {
  auto* sender = static_cast<MailSender*>(lua_touserdata(L, lua_upvalueindex(1)));
  luaL_checktype(L, 1, LUA_TTABLE);
  Mail m;
  lua_getfield(L, 1, "to");
  if (lua_isstring(L, -1)) {
    m.to.push_back(lua_tostring(L, -1));
  } else if (lua_istable(L, -1)) {
    for (int i = 1; i <= 50; ++i) {
      lua_rawgeti(L, -1, i);
      if (lua_isstring(L, -1)) m.to.push_back(lua_tostring(L, -1));
      bool end = lua_isnil(L, -1);
      lua_pop(L, 1);
      if (end) break;
    }
  }
  lua_pop(L, 1);
  if (m.to.empty()) return luaL_error(L, "relais.mail.send: `to` (an address or a list) is required");
  m.subject = field(L, "subject");
  m.text = field(L, "text");
  m.attachment_path = field(L, "attachment");
  m.attachment_name = field(L, "attachment_name");
  std::string type = field(L, "attachment_type");
  if (!type.empty()) m.attachment_type = type;
  if (!sender) {
    lua_pushnil(L);
    lua_pushstring(L, "mail is not configured (mail.smtp in the config)");
    return 2;
  }
  if (!sender->send(std::move(m))) {
    lua_pushnil(L);
    lua_pushstring(L, "mail queue full or no valid recipient");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

void install_mail_api(lua_State* L, MailSender* sender) {
  lua_getglobal(L, "relais");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  lua_pushlightuserdata(L, sender);
  lua_pushcclosure(L, mail_send, 1);
  lua_setfield(L, -2, "send");
  lua_setfield(L, -2, "mail");
  lua_pop(L, 1);
}

}  // namespace relais
