"""mwi_phone.py — a phone's side of message waiting indication for the integration tests:
REGISTER, SUBSCRIBE to a mailbox's message-summary (answering relais's 407 with Digest), refresh
or end the subscription in its dialog, and collect the NOTIFYs relais sends (in the dialog or
unsolicited), answering each with a chosen status. Written from RFC 6665 and RFC 3842.

Import it beside relais_harness (`import mwi_phone`); it builds on sip_uac.SipClient.
"""

import time

from sip_uac import DOMAIN, digest_response, expect_status, fail, new_branch, new_call_id, new_tag

PACKAGE = "message-summary"
BODY_TYPE = "application/simple-message-summary"

_REASONS = {200: "OK", 481: "Subscription Does Not Exist", 500: "Server Internal Error"}


def summary_of(notify):
    """The RFC 3842 body of a NOTIFY as {header name lower case: value}."""
    out = {}
    for line in notify.body.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def tag_of(header_value):
    for part in (header_value or "").split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == "tag":
            return v
    return None


class MwiPhone:
    """One UDP phone of `user` talking to a relais (see relais_process.Relais)."""

    def __init__(self, relais, user, password):
        self.client = relais.client("udp")
        self.user = user
        self.password = password
        self.notify_status = 200  # how the phone answers NOTIFYs
        self.notifies = []        # NOTIFYs received and not yet taken, in arrival order
        self.responses = []
        self._seen = set()        # (Call-ID, CSeq) of NOTIFYs, to drop retransmissions
        self.dialog = None        # the current subscription: call_id, tag, to, cseq, ruri
        self.challenged = False   # the last subscribe() was answered 407 first

    def close(self):
        self.client.close()

    # -- wire

    def _answer(self, req, status):
        lines = ["SIP/2.0 %d %s" % (status, _REASONS.get(status, "Error"))]
        for name, label in (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
                            ("cseq", "CSeq")):
            for v in req.all(name):
                lines.append("%s: %s" % (label, v))
        lines.append("Content-Length: 0")
        self.client.send_raw("\r\n".join(lines) + "\r\n\r\n")

    def pump(self, timeout):
        """Reads one message (answering requests); False when nothing came within timeout."""
        msg = self.client.recv_message(timeout=timeout)
        if msg is None:
            return False
        if msg.status is not None:
            self.responses.append(msg)
            return True
        if msg.method == "ACK":
            return True
        key = (msg.get("call-id"), msg.get("cseq"))
        status = self.notify_status if msg.method == "NOTIFY" else 200
        self._answer(msg, status)
        if msg.method == "NOTIFY" and key not in self._seen:
            self._seen.add(key)
            self.notifies.append(msg)
        return True

    def _send(self, method, ruri, to_header, call_id, cseq, from_tag, headers=()):
        lines = [
            "%s %s SIP/2.0" % (method, ruri),
            "Via: SIP/2.0/UDP %s;branch=%s;rport" % (self.client.local_hostport(), new_branch()),
            "Max-Forwards: 70",
            "From: <sip:%s@%s>;tag=%s" % (self.user, DOMAIN, from_tag),
            "To: %s" % to_header,
            "Call-ID: %s" % call_id,
            "CSeq: %d %s" % (cseq, method),
            "Contact: <%s>" % self.client.contact_uri(self.user),
            "User-Agent: relais-it-mwi",
        ]
        lines += list(headers)
        lines.append("Content-Length: 0")
        self.client.send_raw("\r\n".join(lines) + "\r\n\r\n")

    def wait_response(self, call_id, cseq, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, r in enumerate(self.responses):
                c = (r.get("cseq") or "").split()
                if r.get("call-id") == call_id and c and c[0] == str(cseq) and r.status >= 200:
                    return self.responses.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 0.5))

    def wait_notify(self, timeout=5.0, call_id=None, other_than=None):
        """The next NOTIFY (in dialog call_id, or not in dialog other_than), or None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.notifies):
                cid = m.get("call-id")
                if (call_id is None or cid == call_id) and (other_than is None or cid != other_than):
                    return self.notifies.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 0.5))

    def expect_no_notify(self, seconds, call_id=None, what="NOTIFY"):
        n = self.wait_notify(timeout=seconds, call_id=call_id)
        if n is not None:
            fail("%s: unexpected NOTIFY %s\n%s" % (what, n.first_line, n.raw.decode("utf-8", "replace")))

    # -- flows

    def register(self, expires=300):
        r, _ = self.client.register(self.user, self.password,
                                    contacts=["<%s>" % self.client.contact_uri(self.user)], expires=expires)
        expect_status(r, 200, "REGISTER %s" % self.user)
        return self.client.contact_uri(self.user)

    def subscribe(self, mailbox=None, event=PACKAGE, expires=None, accept=BODY_TYPE):
        """SUBSCRIBE (Digest on 407). Returns the final response; a 2xx starts self.dialog."""
        mailbox = mailbox or self.user
        ruri = "sip:%s@%s" % (mailbox, DOMAIN)
        call_id, tag, cseq = new_call_id(), new_tag(), 1
        headers = ["Event: %s" % event]
        if accept:
            headers.append("Accept: %s" % accept)
        if expires is not None:
            headers.append("Expires: %d" % expires)
        self._send("SUBSCRIBE", ruri, "<%s>" % ruri, call_id, cseq, tag, headers)
        r = self.wait_response(call_id, cseq)
        self.challenged = r is not None and r.status == 407
        if self.challenged:
            chals = r.challenges("proxy-authenticate")
            if not chals:
                fail("407 to SUBSCRIBE without a Proxy-Authenticate challenge: %s" % r.summary())
            auth = digest_response(chals[0], "SUBSCRIBE", ruri, self.user, self.password, nc=1)
            cseq += 1
            self._send("SUBSCRIBE", ruri, "<%s>" % ruri, call_id, cseq, tag,
                       headers + ["Proxy-Authorization: %s" % auth])
            r = self.wait_response(call_id, cseq)
        if r is not None and 200 <= r.status < 300:
            contacts = r.contacts()
            self.dialog = {"call_id": call_id, "tag": tag, "to": r.get("to"), "cseq": cseq,
                           "ruri": contacts[0][0] if contacts else ruri}
        return r

    def refresh(self, expires, event=PACKAGE, dialog=None):
        """An in-dialog SUBSCRIBE (Expires: 0 ends the subscription). Returns the response."""
        d = dialog or self.dialog
        if d is None:
            fail("refresh without a subscription")
        d["cseq"] += 1
        self._send("SUBSCRIBE", d["ruri"], d["to"], d["call_id"], d["cseq"], d["tag"],
                   ["Event: %s" % event, "Expires: %d" % expires])
        return self.wait_response(d["call_id"], d["cseq"])

    def request(self, method, headers=()):
        """An out-of-dialog request to relais itself; returns the final response."""
        ruri = "sip:%s" % self.client.server_uri_host()
        call_id = new_call_id()
        self._send(method, ruri, "<%s>" % ruri, call_id, 1, new_tag(), headers)
        return self.wait_response(call_id, 1)
