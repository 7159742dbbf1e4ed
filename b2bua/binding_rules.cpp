// binding_rules.cpp — add, refresh and remove bindings per RFC 3261 §10.3.
#include "binding_rules.hpp"

#include <algorithm>

namespace relais {

namespace {

uint32_t requested_expiry(const RegistrarSettings& s, const RegisterUpdate& u, const ContactUpdate& c) {
  if (c.expires_param) return *c.expires_param;
  if (u.expires_header) return *u.expires_header;
  return static_cast<uint32_t>(s.default_expires);
}

// REGISTERs are answered statelessly (no transaction absorbs retransmissions): the same
// Call-ID, CSeq and Via branch again is the same request retransmitted, answered like the
// first time and changing nothing.
bool retransmission(const Binding& existing, const RegisterUpdate& u) {
  return existing.call_id == u.call_id && u.cseq == existing.cseq && !u.branch.empty() && u.branch == existing.branch;
}

// §10.3 step 7: a binding from the same Call-ID may only be changed by a higher CSeq; a lower
// or equal one (that is not a retransmission) is an old or replayed request.
bool out_of_order(const Binding& existing, const RegisterUpdate& u) {
  return existing.call_id == u.call_id && u.cseq <= existing.cseq && !retransmission(existing, u);
}

RegisterOutcome fail(int status, std::string reason) {
  RegisterOutcome out;
  out.status = status;
  out.reason = std::move(reason);
  return out;
}

}  // namespace

RegisterOutcome check_register(const RegistrarSettings& s, const RegisterUpdate& u) {
  if (u.wildcard) {
    // §10.3 step 6: "*" only alone and only with Expires: 0.
    if (!u.contacts.empty()) return fail(400, "Wildcard Contact Must Be Alone");
    if (!u.expires_header || *u.expires_header != 0) return fail(400, "Wildcard Contact Requires Expires: 0");
    return {};
  }
  for (const ContactUpdate& c : u.contacts) {
    uint32_t expiry = requested_expiry(s, u, c);
    if (expiry != 0 && expiry < static_cast<uint32_t>(s.min_expires)) {
      RegisterOutcome out = fail(423, "Interval Too Brief");
      out.min_expires = s.min_expires;
      return out;
    }
  }
  return {};
}

RegisterOutcome apply_register(const RegistrarSettings& s, const RegisterUpdate& u, std::vector<Binding> current) {
  RegisterOutcome out = check_register(s, u);
  if (out.status != 200) return out;

  if (u.wildcard) {
    for (const Binding& b : current)
      if (out_of_order(b, u)) return fail(500, "Out Of Order CSeq");
    for (const Binding& b : current)
      if (retransmission(b, u)) {
        out.bindings = std::move(current);
        return out;
      }
    out.changed = !current.empty();
    return out;  // no bindings left
  }

  for (const ContactUpdate& c : u.contacts) {
    uint32_t expiry = std::min(requested_expiry(s, u, c), static_cast<uint32_t>(s.max_expires));
    auto found = std::find_if(current.begin(), current.end(), [&](const Binding& b) {
      // RFC 5626 §6: with an instance id the instance identifies the binding, whatever the URI.
      if (!c.instance.empty() && !b.instance.empty()) return b.instance == c.instance;
      return b.key == c.key;
    });
    if (found != current.end()) {
      if (out_of_order(*found, u)) return fail(500, "Out Of Order CSeq");
      if (retransmission(*found, u)) continue;
      out.changed = true;
      if (expiry == 0) {
        current.erase(found);
        continue;
      }
    } else {
      if (expiry == 0) continue;  // removing what is not there is a no-op
      out.changed = true;
      current.emplace_back();
      found = std::prev(current.end());
    }
    Binding& b = *found;
    b.contact = c.uri;
    b.key = c.key;
    b.call_id = u.call_id;
    b.cseq = u.cseq;
    b.branch = u.branch;
    b.expires_at = u.now + expiry;
    b.q_milli = c.q_milli;
    b.instance = c.instance;
    b.received = u.received;
    b.flow = u.flow;
    b.user_agent = u.user_agent;
    b.node = u.node;
    b.registered_at = u.now;
    b.attrs = u.attrs;
  }
  if (current.size() > static_cast<size_t>(s.max_contacts)) return fail(403, "Too Many Contacts");
  // Highest q first (RFC 3261 §16.6 forks in q order); stable so equal q keep their age order.
  if (current.size() > 1)  // (stable_sort allocates a buffer even for one element)
    std::stable_sort(current.begin(), current.end(), [](const Binding& a, const Binding& b) {
      return (a.q_milli < 0 ? 1000 : a.q_milli) > (b.q_milli < 0 ? 1000 : b.q_milli);
    });
  out.bindings = std::move(current);
  return out;
}

}  // namespace relais
