"""baresip_phone.py — a headless baresip run from its own config directory (tests write the
config and accounts files; CLIENT-NOTES.md has the recipe), with its log, start and stop."""

import os
import signal
import subprocess

from harness_core import make_tempdir, popen

MODULE_PATH = "/usr/lib/baresip/modules"


def write_baresip_files(directory, config_lines, account_line):
    """config (one "key<TAB>value" per item) and accounts, as baresip -f DIR reads them."""
    with open(os.path.join(directory, "config"), "w") as f:
        f.write("\n".join(list(config_lines) + [""]))
    with open(os.path.join(directory, "accounts"), "w") as f:
        f.write(account_line + "\n")


def audio_phone_config(sip_listen, net_interface, rtp_ports, tone, snd_dir, ctrl_listen=None):
    """config lines of a phone with audio: plays `tone` (aufile), drops what it hears to a
    null player but dumps it to `snd_dir` (sndfile: dump-*-dec.wav), G.711 only."""
    lines = [
        "poll_method\t\tepoll",
        "sip_listen\t\t%s" % sip_listen,
        "net_interface\t\t%s" % net_interface,
        "rtp_ports\t\t%s" % rtp_ports,
        "audio_source\t\taufile,%s" % tone,
        "audio_player\t\taubridge,null",
        "audio_alert\t\taubridge,null",
        "snd_path\t\t%s" % snd_dir,
    ]
    if ctrl_listen:
        lines.append("ctrl_tcp_listen\t\t%s" % ctrl_listen)
    lines += [
        "module_path\t\t%s" % MODULE_PATH,
        "module\t\t\tg711.so",
        "module\t\t\taufile.so",
        "module\t\t\taubridge.so",
        "module\t\t\tsndfile.so",
        "module_app\t\taccount.so",
        "module_app\t\tmenu.so",
    ]
    if ctrl_listen:
        lines.append("module_app\t\tctrl_tcp.so")
    return lines


def registered_line(text):
    """baresip's log line for a successful registration, or None."""
    for line in text.splitlines():
        if "200 OK" in line and "binding" in line:
            return line
    return None


class BaresipProcess:
    """Subclasses fill self.dir with config and accounts before start()."""

    def __init__(self, name):
        self.name = name
        self.dir = make_tempdir("baresip-" + name)
        self.log_path = os.path.join(self.dir, "baresip.log")
        self.proc = None
        self.logf = None

    def start(self, seconds=40):
        self.logf = open(self.log_path, "wb")
        self.proc = popen(["timeout", "-s", "INT", "-k", "5", str(seconds), "baresip", "-f", self.dir],
                          stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT)
        return self

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def registered_line(self):
        return registered_line(self.log_text())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        if self.logf:
            self.logf.close()
            self.logf = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False
