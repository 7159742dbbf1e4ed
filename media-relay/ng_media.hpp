// ng_media.hpp — the ng verbs of the media services (`play media`, `stop media`, `play DTMF`,
// `start recording`, `stop recording`): key reading and reply shapes over MediaServices.
// NgCommands puts them in its verb table; like every handler they return an error text.
#pragma once

#include <string>

#include "bencode.hpp"
#include "media_services.hpp"

namespace relais::media {

std::string ng_play_media(MediaServices& media, const bencode::Value& req, bencode::Value& reply);
std::string ng_stop_media(MediaServices& media, const bencode::Value& req, bencode::Value& reply);
std::string ng_play_dtmf(MediaServices& media, const bencode::Value& req, bencode::Value& reply);
std::string ng_start_recording(MediaServices& media, const bencode::Value& req, bencode::Value& reply);
std::string ng_stop_recording(MediaServices& media, const bencode::Value& req, bencode::Value& reply);

}  // namespace relais::media
