"""tls_tools.py — TLS helpers for the integration tests: dev certificates made by
tls/make-dev-certs.sh, a SIP client over TLS (the harness's SipClient on a wrapped socket),
`openssl s_client` runs, and certificate fingerprints to tell which certificate a server
presented."""

import hashlib
import os
import ssl
import subprocess

import relais_harness as h


def make_certs(directory):
    """Runs tls/make-dev-certs.sh into `directory`; returns {name: path} of what it made."""
    script = os.path.join(h.source_dir(), "tls", "make-dev-certs.sh")
    r = subprocess.run(["bash", script, directory], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        h.fail("make-dev-certs.sh failed (%d): %s %s" % (r.returncode, r.stdout, r.stderr))
    names = ["ca", "server", "server2", "client", "rogue-ca", "rogue"]
    out = {}
    for n in names:
        out[n] = os.path.join(directory, n + ".pem")
        if not os.path.isfile(out[n]):
            h.fail("make-dev-certs.sh did not write %s" % out[n])
        if n not in ("ca", "rogue-ca"):
            out[n + ".key"] = os.path.join(directory, n + ".key")
    return out


def client_context(cafile, verify=True):
    ctx = ssl.create_default_context(cafile=cafile) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsSipClient(h.SipClient):
    """SipClient over TLS: the framing of its TCP mode on an SSL socket; Via and Contact say TLS."""

    def __init__(self, host, port, context, server_hostname="localhost", **kw):
        super().__init__(host, port, "tcp", **kw)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.sock.settimeout(5)

    def build_request(self, *a, **kw):
        return super().build_request(*a, **kw).replace(b"SIP/2.0/TCP ", b"SIP/2.0/TLS ", 1)

    def contact_uri(self, user, suffix=""):
        return "sip:%s%s@%s;transport=tls" % (user, suffix, self.local_hostport())

    def peer_fingerprint(self):
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()


def pem_fingerprint(path):
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def s_client(port, args, timeout=10):
    """`openssl s_client` against 127.0.0.1:port; returns (exit code, combined output). stdin is
    empty, so a successful handshake ends at once."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"] + list(args)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def negotiated(output):
    """(protocol, cipher) from s_client's session summary, or None when no session was set up."""
    proto = cipher = None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Protocol") and ":" in line:
            proto = line.split(":", 1)[1].strip()
        elif line.startswith("Cipher") and ":" in line:
            cipher = line.split(":", 1)[1].strip()
    if not cipher or cipher in ("0000", "(NONE)"):
        return None
    return proto, cipher
