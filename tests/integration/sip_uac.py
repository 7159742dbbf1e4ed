"""sip_uac.py — a minimal SIP user agent client for the integration tests: builds requests,
sends them over UDP or TCP (IPv4/IPv6), parses responses, answers Digest challenges (MD5 and
SHA-256, qop=auth with nc/cnonce) and runs the REGISTER 401 → authenticated flow.

Use it through relais_harness (which re-exports it); written from RFC 3261, RFC 7616, RFC 8760.
"""

import hashlib
import re
import secrets
import socket
import time

DOMAIN = "it.example"


def fail(message):
    raise AssertionError(message)


# ----------------------------------------------------------------------------------------------
# SIP messages

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
           "v": "via"}


class SipMessage:
    def __init__(self, first_line, headers, body, raw):
        self.first_line = first_line
        self.headers = headers  # list of (name as sent, value)
        self.body = body
        self.raw = raw
        self.status = None
        self.reason = ""
        self.method = None
        m = re.match(r"^SIP/2\.0\s+(\d{3})\s*(.*)$", first_line)
        if m:
            self.status = int(m.group(1))
            self.reason = m.group(2)
        else:
            self.method = first_line.split(" ", 1)[0]

    def all(self, name):
        name = name.lower()
        out = []
        for n, v in self.headers:
            n = n.lower()
            if COMPACT.get(n, n) == name:
                out.append(v)
        return out

    def get(self, name, default=None):
        vals = self.all(name)
        return vals[0] if vals else default

    def contacts(self):
        """Every Contact entry as (uri, {param: value}) — headers may hold comma lists."""
        out = []
        for value in self.all("contact"):
            for item in split_commas(value):
                item = item.strip()
                if not item:
                    continue
                if item == "*":
                    out.append(("*", {}))
                    continue
                if "<" in item:
                    uri = item[item.index("<") + 1:item.index(">")]
                    params = item[item.index(">") + 1:]
                else:
                    uri, _, params = item.partition(";")
                    params = ";" + params if params else ""
                out.append((uri, parse_params(params)))
        return out

    def contact_expires(self):
        """{uri: expires int or None} from a 200 to REGISTER."""
        out = {}
        for uri, params in self.contacts():
            e = params.get("expires")
            out[uri] = int(e) if e is not None and e.isdigit() else None
        return out

    def challenges(self, header="www-authenticate"):
        out = []
        for value in self.all(header):
            out.extend(parse_challenges(value))
        return out

    def summary(self):
        return "%s | %s" % (self.first_line, "; ".join("%s: %s" % (n, v[:120]) for n, v in self.headers
                                                       if n.lower() in ("www-authenticate", "contact", "m",
                                                                        "min-expires", "allow", "warning",
                                                                        "reason", "expires")))

    def __repr__(self):
        return "<SipMessage %s>" % self.first_line


def split_commas(value):
    """Split on commas outside quotes and <>."""
    parts, cur, quote, angle = [], [], False, False
    for ch in value:
        if ch == '"' and not angle:
            quote = not quote
        elif ch == "<" and not quote:
            angle = True
        elif ch == ">" and not quote:
            angle = False
        if ch == "," and not quote and not angle:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_params(text):
    params = {}
    for p in text.split(";"):
        p = p.strip()
        if not p:
            continue
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return params


def parse_auth_params(text):
    params = {}
    for item in split_commas(text):
        k, sep, v = item.strip().partition("=")
        if not sep:
            continue
        v = v.strip()
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = v[1:-1]
        params[k.strip().lower()] = v
    return params


def parse_challenges(value):
    """One header value may hold one or several 'Digest ...' challenges."""
    out = []
    chunks = re.split(r"(?i)(?:^|,)\s*(?=digest\s)", value)
    for chunk in chunks:
        chunk = chunk.strip()
        if not chunk:
            continue
        m = re.match(r"(?i)digest\s+(.*)$", chunk, re.S)
        if not m:
            continue
        p = parse_auth_params(m.group(1))
        p.setdefault("algorithm", "MD5")
        out.append(p)
    return out


def parse_message(data):
    """Parse one SIP message from bytes; raises ValueError on garbage."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    lines = head.decode("utf-8", "replace").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            n, v = headers[-1]
            headers[-1] = (n, v + " " + line.strip())
            continue
        n, sep, v = line.partition(":")
        if not sep:
            continue
        headers.append((n.strip(), v.strip()))
    return SipMessage(first, headers, body, data)


# ----------------------------------------------------------------------------------------------
# Digest (RFC 7616 / RFC 8760 / RFC 3261 §22)

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256, "MD5-SESS": hashlib.md5,
           "SHA-256-SESS": hashlib.sha256}


def digest_response(challenge, method, uri, user, password, nc=1, cnonce=None, algorithm=None):
    algorithm = (algorithm or challenge.get("algorithm") or "MD5").upper()
    hfn = _HASHES.get(algorithm)
    if hfn is None:
        fail("unsupported digest algorithm %r" % algorithm)

    def H(s):
        return hfn(s.encode()).hexdigest()

    realm = challenge.get("realm", "")
    nonce = challenge.get("nonce", "")
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = H("%s:%s:%s" % (user, realm, password))
    if algorithm.endswith("-SESS"):
        ha1 = H("%s:%s:%s" % (ha1, nonce, cnonce))
    ha2 = H("%s:%s" % (method, uri))
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    fields = [("username", user, True), ("realm", realm, True), ("nonce", nonce, True),
              ("uri", uri, True)]
    if "auth" in qops:
        ncs = "%08x" % nc
        resp = H("%s:%s:%s:%s:auth:%s" % (ha1, nonce, ncs, cnonce, ha2))
        fields += [("response", resp, True), ("algorithm", challenge.get("algorithm", "MD5"), False),
                   ("cnonce", cnonce, True), ("qop", "auth", False), ("nc", ncs, False)]
    else:
        resp = H("%s:%s:%s" % (ha1, nonce, ha2))
        fields += [("response", resp, True), ("algorithm", challenge.get("algorithm", "MD5"), False)]
    if "opaque" in challenge:
        fields.append(("opaque", challenge["opaque"], True))
    return "Digest " + ", ".join('%s="%s"' % (k, v) if q else "%s=%s" % (k, v) for k, v, q in fields)


# ----------------------------------------------------------------------------------------------
# SIP client

def new_tag():
    return secrets.token_hex(6)


def new_branch():
    return "z9hG4bK" + secrets.token_hex(8)


def new_call_id():
    return secrets.token_hex(12) + "@relais-it"


class SipClient:
    """A UAC over UDP or TCP (IPv4 or IPv6) that sends requests and parses responses."""

    def __init__(self, server_host, server_port, transport="udp", local_host=None,
                 domain=DOMAIN, user_agent="relais-it/1.0"):
        self.server = (server_host, server_port)
        self.transport = transport.lower()
        self.family = socket.AF_INET6 if ":" in server_host else socket.AF_INET
        self.local_host = local_host or ("::1" if self.family == socket.AF_INET6 else "127.0.0.1")
        self.domain = domain
        self.user_agent = user_agent
        self.cseq = {}          # call-id -> last CSeq sent
        self.call_ids = {}      # user -> Call-ID used for its registrations
        self.last_challenge = {}  # user -> challenge dict (with 'nc' counter)
        self.received = []      # every message received (for debugging)
        self._buf = b""
        self.tcp_closed = False  # set when the server closed or reset the TCP connection
        if self.transport == "udp":
            self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
            self.sock.bind((self.local_host, 0))
        elif self.transport == "tcp":
            self.sock = socket.socket(self.family, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(self.server)
        else:
            fail("unknown transport %r" % transport)
        self.local_port = self.sock.getsockname()[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    # -- addressing helpers

    def host_for_uri(self, host):
        return "[%s]" % host if ":" in host and not host.startswith("[") else host

    def server_uri_host(self):
        return "%s:%d" % (self.host_for_uri(self.server[0]), self.server[1])

    def local_hostport(self):
        return "%s:%d" % (self.host_for_uri(self.local_host), self.local_port)

    def contact_uri(self, user, suffix=""):
        t = "" if self.transport == "udp" else ";transport=%s" % self.transport
        return "sip:%s%s@%s%s" % (user, suffix, self.local_hostport(), t)

    # -- wire

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def recv_message(self, timeout=3.0):
        """Next message (response or request) or None on timeout / closed TCP."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.transport == "tcp":
                msg = self._frame_tcp()
                if msg is not None:
                    self.received.append(msg)
                    return msg
            self.sock.settimeout(left)
            try:
                if self.transport == "udp":
                    data, _ = self.sock.recvfrom(70000)
                else:
                    data = self.sock.recv(65536)
                    if not data:
                        self.tcp_closed = True
                        return None
            except socket.timeout:
                return None
            except ConnectionResetError:
                self.tcp_closed = True
                return None
            if self.transport == "udp":
                try:
                    msg = parse_message(data)
                except ValueError:
                    continue
                self.received.append(msg)
                return msg
            self._buf += data

    def _frame_tcp(self):
        while self._buf.startswith(b"\r\n"):
            self._buf = self._buf[2:]  # keepalive CRLFs
        head_end = self._buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self._buf[:head_end].decode("utf-8", "replace")
        m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        total = head_end + 4 + length
        if len(self._buf) < total:
            return None
        data, self._buf = self._buf[:total], self._buf[total:]
        return parse_message(data)

    def wait_response(self, call_id=None, cseq=None, timeout=5.0, final=True):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            msg = self.recv_message(timeout=left)
            if msg is None:
                return None
            if msg.status is None:
                self._answer_request(msg)
                continue
            if call_id and msg.get("call-id") != call_id:
                continue
            if cseq is not None:
                c = (msg.get("cseq") or "").split()
                if not c or c[0] != str(cseq):
                    continue
            if final and msg.status < 200:
                continue
            return msg

    def _answer_request(self, req):
        """Answer server-originated requests (e.g. OPTIONS keepalives) with 200, ACK silently."""
        if req.method in ("ACK", None):
            return
        lines = ["SIP/2.0 200 OK"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for v in req.all(name):
                lines.append("%s: %s" % (name.title() if name != "call-id" else "Call-ID", v))
        lines.append("Content-Length: 0")
        try:
            self.send_raw("\r\n".join(lines) + "\r\n\r\n")
        except OSError:
            pass

    # -- requests

    def build_request(self, method, uri, from_uri, to_uri, call_id, cseq, headers=(), body=b"",
                      from_tag=None, branch=None, max_forwards=70):
        via_t = self.transport.upper()
        lines = [
            "%s %s SIP/2.0" % (method, uri),
            "Via: SIP/2.0/%s %s;branch=%s;rport" % (via_t, self.local_hostport(), branch or new_branch()),
            "Max-Forwards: %d" % max_forwards,
            "From: <%s>;tag=%s" % (from_uri, from_tag or new_tag()),
            "To: <%s>" % to_uri,
            "Call-ID: %s" % call_id,
            "CSeq: %d %s" % (cseq, method),
            "User-Agent: %s" % self.user_agent,
        ]
        for h in headers:
            lines.append(h if isinstance(h, str) else "%s: %s" % h)
        if isinstance(body, str):
            body = body.encode()
        lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def transaction(self, data, call_id, cseq, timeout=6.0):
        """Send a request; on UDP retransmit (T1=0.5 s doubling). Returns the final response or None."""
        deadline = time.monotonic() + timeout
        interval = 0.5
        self.send_raw(data)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = min(left, interval) if self.transport == "udp" else left
            resp = self.wait_response(call_id=call_id, cseq=cseq, timeout=wait)
            if resp is not None:
                return resp
            if self.transport == "udp" and deadline - time.monotonic() > 0:
                self.send_raw(data)
                interval = min(interval * 2, 4.0)

    def request(self, method, user=None, uri=None, headers=(), body=b"", to_host=None, timeout=6.0):
        """A simple out-of-dialog request (OPTIONS, FOO...). Returns the final response or None."""
        call_id = new_call_id()
        uri = uri or "sip:%s" % self.server_uri_host()
        from_uri = "sip:%s@%s" % (user or "probe", self.domain)
        to_uri = "sip:%s@%s" % (user, to_host or self.domain) if user else uri
        data = self.build_request(method, uri, from_uri, to_uri, call_id, 1, headers, body)
        return self.transaction(data, call_id, 1, timeout=timeout)

    def options(self, **kw):
        return self.request("OPTIONS", headers=["Accept: application/sdp"], **kw)

    # -- REGISTER

    def send_register(self, user, contacts=None, expires=None, cseq=None, call_id=None,
                      authorization=None, to_host=None, extra_headers=(), request_uri=None,
                      timeout=6.0):
        """One REGISTER. contacts: list of Contact header values (raw, e.g. '<sip:..>;expires=5'
        or '*'); None/[] = a query. Returns the final response (or None)."""
        call_id = call_id or self.call_ids.setdefault(user, new_call_id())
        if cseq is None:
            cseq = self.cseq.get(call_id, 0) + 1
        self.cseq[call_id] = max(cseq, self.cseq.get(call_id, 0))
        host = to_host or self.domain
        aor = "sip:%s@%s" % (user, self.host_for_uri(host))
        ruri = request_uri or self.register_ruri(to_host)
        headers = []
        for c in contacts or []:
            headers.append("Contact: %s" % c)
        if expires is not None:
            headers.append("Expires: %d" % expires)
        if authorization:
            headers.append("Authorization: %s" % authorization)
        headers += list(extra_headers)
        data = self.build_request("REGISTER", ruri, aor, aor, call_id, cseq, headers)
        self.last_request = data
        return self.transaction(data, call_id, cseq, timeout=timeout)

    def register_ruri(self, to_host=None):
        """Request-URI of a REGISTER: the domain, or ip:port of relais when To names an IP."""
        host = to_host or self.domain
        if re.match(r"^[0-9.]+$", host) or ":" in host:
            return "sip:%s:%d" % (self.host_for_uri(host), self.server[1])
        return "sip:%s" % host

    def authorization_for(self, challenge, user, password, method="REGISTER", uri=None, to_host=None):
        uri = uri or self.register_ruri(to_host)
        challenge["nc"] = challenge.get("nc", 0) + 1
        return digest_response(challenge, method, uri, user, password, nc=challenge["nc"])

    def register(self, user, password, contacts=None, expires=None, algorithm=None, cseq=None,
                 call_id=None, to_host=None, extra_headers=(), request_uri=None):
        """REGISTER → 401 → REGISTER with Digest. Returns (final response, challenge-401 or None).

        algorithm: pick the challenge with this algorithm (default: the first offered).
        cseq: CSeq of the authenticated request (the first one uses cseq-1).
        """
        call_id = call_id or self.call_ids.setdefault(user, new_call_id())
        first_cseq = None if cseq is None else cseq - 1
        kw = dict(contacts=contacts, expires=expires, call_id=call_id, to_host=to_host,
                  extra_headers=extra_headers, request_uri=request_uri)
        r1 = self.send_register(user, cseq=first_cseq, **kw)
        if r1 is None:
            fail("no response to REGISTER for %s (first request)" % user)
        if r1.status not in (401, 407):
            return r1, None
        header = "www-authenticate" if r1.status == 401 else "proxy-authenticate"
        chals = r1.challenges(header)
        if not chals:
            fail("401 without a Digest challenge: %s" % r1.summary())
        chosen = pick_challenge(chals, algorithm)
        if chosen is None:
            fail("no %s challenge in 401 (offered: %s)" % (
                algorithm, [c.get("algorithm") for c in chals]))
        self.last_challenge[user] = chosen
        auth = self.authorization_for(chosen, user, password, uri=request_uri, to_host=to_host)
        hname = "Authorization" if r1.status == 401 else "Proxy-Authorization"
        if hname != "Authorization":
            kw["extra_headers"] = list(extra_headers) + ["%s: %s" % (hname, auth)]
            auth = None
        r2 = self.send_register(user, cseq=cseq, authorization=auth, **kw)
        if r2 is None:
            fail("no response to authenticated REGISTER for %s" % user)
        return r2, r1

    def query(self, user, password, **kw):
        r, _ = self.register(user, password, contacts=None, **kw)
        return r


def pick_challenge(chals, algorithm=None):
    if algorithm is None:
        return chals[0]
    for c in chals:
        if c.get("algorithm", "MD5").upper() == algorithm.upper():
            return c
    return None


def expect_status(resp, codes, what=""):
    if isinstance(codes, int):
        codes = (codes,)
    if resp is None:
        fail("%s: no response (expected %s)" % (what, codes))
    if resp.status not in codes:
        fail("%s: got %s (expected %s)\n  response: %s" % (
            what, resp.first_line, codes, resp.raw.decode("utf-8", "replace")[:1500]))
    return resp


def find_contact(bindings, uri):
    """Expires of the binding for uri in {uri: expires}; tolerates parameters relais appended."""
    if uri in bindings:
        return uri, bindings[uri]
    for k, v in bindings.items():
        if k.startswith(uri + ";") or k.lower() == uri.lower():
            return k, v
    return None, None


def expect_contacts(bindings, expected, what):
    """expected: {uri: (lo, hi)} exact set of contacts with expiry bounds."""
    seen = set()
    for uri, (lo, hi) in expected.items():
        k, e = find_contact(bindings, uri)
        if k is None:
            fail("%s: contact %s missing; got %s" % (what, uri, bindings))
        if e is None or not lo <= e <= hi:
            fail("%s: contact %s has expires=%s, expected %s..%s; got %s" % (what, uri, e, lo, hi,
                                                                              bindings))
        seen.add(k)
    extra = set(bindings) - seen
    if extra:
        fail("%s: unexpected extra contacts %s; got %s" % (what, sorted(extra), bindings))
