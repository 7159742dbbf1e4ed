"""smtp_sink.py — a small SMTP server for tests: takes every mail (any sender, any recipient,
any AUTH PLAIN/LOGIN credentials), keeps it in memory and saves it as OUTDIR/N.eml, preceded
by `X-Envelope-From: <...>` and one `X-Envelope-To: <...>` line per RCPT (as an MTA adds
Return-Path), so a test reading the file sees the envelope too.

As a module:

    sink = SmtpSink(0, outdir).start()      # port 0: a free port, see sink.port
    ... sink.messages[0] (bytes), sink.envelopes[0] (mail_from, [rcpt...]), sink.auths ...
    sink.stop()

As a script (prints `smtp_sink listening on 127.0.0.1:PORT` once ready, stops on SIGTERM):

    python3 smtp_sink.py PORT OUTDIR [--fail-first N] [--fail-code CODE]

`--fail-first N` answers the first N DATA commands with CODE (default 451, a transient
failure) instead of taking the mail, to exercise a client's retries.
"""

import argparse
import base64
import os
import signal
import socketserver
import sys
import threading

MAX_LINE = 4096             # RFC 5321 §4.5.3.1.6 allows 1000; be lenient, but bounded
MAX_MESSAGE = 50 * 1024 * 1024


class _Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionError("client closed")
        if len(line) > MAX_LINE:
            raise ConnectionError("line too long")
        return line.rstrip(b"\r\n")

    def handle(self):
        sink = self.server.sink
        self.reply("220 smtp_sink ESMTP ready")
        mail_from, rcpts = None, []
        try:
            while True:
                line = self.readline()
                verb, _, arg = line.decode("utf-8", "replace").partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    self.wfile.write(b"250-smtp_sink\r\n250-8BITMIME\r\n250-SIZE %d\r\n"
                                     b"250 AUTH PLAIN LOGIN\r\n" % MAX_MESSAGE)
                    self.wfile.flush()
                elif verb == "HELO":
                    self.reply("250 smtp_sink")
                elif verb == "AUTH":
                    self.auth(arg)
                elif verb == "MAIL":
                    if not arg.upper().startswith("FROM:"):
                        self.reply("501 syntax: MAIL FROM:<address>")
                        continue
                    mail_from, rcpts = _path(arg[5:]), []
                    self.reply("250 sender ok")
                elif verb == "RCPT":
                    if mail_from is None:
                        self.reply("503 MAIL first")
                    elif not arg.upper().startswith("TO:"):
                        self.reply("501 syntax: RCPT TO:<address>")
                    else:
                        rcpts.append(_path(arg[3:]))
                        self.reply("250 recipient ok")
                elif verb == "DATA":
                    if not rcpts:
                        self.reply("503 RCPT first")
                        continue
                    self.reply("354 end with <CRLF>.<CRLF>")
                    data = self.read_data()
                    code = sink._take(mail_from, rcpts, data)
                    self.reply(code)
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    self.reply("250 reset")
                elif verb == "NOOP":
                    self.reply("250 ok")
                elif verb == "VRFY":
                    self.reply("252 cannot verify")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                elif verb == "STARTTLS":
                    self.reply("454 TLS not available")
                else:
                    self.reply("502 command not implemented")
        except (ConnectionError, OSError):
            return

    def auth(self, arg):
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        if mech == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = self.readline().decode()
            parts = base64.b64decode(initial + "===").split(b"\0")
            user, password = (parts[1], parts[2]) if len(parts) == 3 else (b"", b"")
        elif mech == "LOGIN":
            if initial:
                user = base64.b64decode(initial)
            else:
                self.reply("334 " + base64.b64encode(b"Username:").decode())
                user = base64.b64decode(self.readline())
            self.reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self.readline())
        else:
            self.reply("504 mechanism not supported")
            return
        self.server.sink.auths.append((user.decode("utf-8", "replace"), password.decode("utf-8", "replace")))
        self.reply("235 authenticated")

    def read_data(self):
        lines, size = [], 0
        while True:
            line = self.readline()
            if line == b".":
                break
            if line.startswith(b"."):  # RFC 5321 §4.5.2 transparency
                line = line[1:]
            size += len(line) + 2
            if size > MAX_MESSAGE:
                raise ConnectionError("message too large")
            lines.append(line)
        return b"\r\n".join(lines) + b"\r\n"


def _path(text):
    text = text.strip()
    if "<" in text and ">" in text:
        return text[text.index("<") + 1:text.index(">")]
    return text.split(" ")[0]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SmtpSink:
    """The server. messages[i] is the i-th mail as bytes (CRLF line ends, dots unstuffed);
    envelopes[i] is (mail_from, [recipients]); auths lists (user, password) pairs."""

    def __init__(self, port=0, outdir=None, fail_first=0, fail_code=451, host="127.0.0.1"):
        self.host, self.port, self.outdir = host, port, outdir
        self.fail_first, self.fail_code = fail_first, fail_code
        self.messages, self.envelopes, self.auths = [], [], []
        self.refused = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = None
        self._thread = None

    def start(self):
        if self.outdir:
            os.makedirs(self.outdir, exist_ok=True)
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="smtp_sink", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def wait_for(self, count, timeout=10.0):
        """Blocks until `count` messages arrived; returns whether they did."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.messages) >= count, timeout)

    def _take(self, mail_from, rcpts, data):
        with self._changed:
            if self.refused < self.fail_first:
                self.refused += 1
                return "%d try again later (refusal %d of %d)" % (self.fail_code, self.refused, self.fail_first)
            self.messages.append(data)
            self.envelopes.append((mail_from, list(rcpts)))
            n = len(self.messages)
            if self.outdir:
                # Written whole, then renamed: a test polling the directory never reads half a mail.
                path = os.path.join(self.outdir, "%d.eml" % n)
                envelope = "X-Envelope-From: <%s>\r\n" % mail_from
                envelope += "".join("X-Envelope-To: <%s>\r\n" % r for r in rcpts)
                with open(path + ".tmp", "wb") as f:
                    f.write(envelope.encode() + data)
                os.rename(path + ".tmp", path)
            self._changed.notify_all()
            return "250 ok queued as %d" % n


def main():
    ap = argparse.ArgumentParser(description="SMTP sink for tests")
    ap.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("outdir", help="each mail is saved as OUTDIR/N.eml")
    ap.add_argument("--fail-first", type=int, default=0, help="refuse the first N mails")
    ap.add_argument("--fail-code", type=int, default=451, help="reply code for refused mails")
    args = ap.parse_args()
    sink = SmtpSink(args.port, args.outdir, args.fail_first, args.fail_code).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("smtp_sink listening on %s:%d" % (sink.host, sink.port), flush=True)
    while not stop.wait(0.5):
        pass
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
